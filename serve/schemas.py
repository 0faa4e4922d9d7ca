"""Request and response models of the prediction routes, generated from a dataset contract.

:func:`schemas_for` builds (once per contract) the pydantic models with
``pydantic.create_model``: one field per feature, typed and bounded as the
contract says, plus the contract's id column(s) and ``request_id``. The rules
are the contract's, written once in :class:`churn_lib.contract.Feature`:

* an integer takes a JSON number without a fractional part (``6`` or ``6.0``,
  as JSON Schema counts them), never ``"6"`` or ``true``;
* a float takes a finite JSON number (NaN and infinity are refused);
* a boolean takes ``true``/``false`` or one of the contract's spellings (``"Yes"``);
* a category is normalised (stripped, case) and checked against the allowed
  values unless the contract lets unseen ones through;
* a feature the model fills in (``on_missing: impute``) may be null or absent;
* unknown fields are accepted, ignored and named in the response
  (``ignored_fields``): the lab accepted extra fields and its clients send them.

Field names are the contract's column names (any text), carried as aliases.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, WithJsonSchema, create_model

from churn_lib import contract as _contract
from churn_lib.contract import records

#: Rows accepted by one ``POST /predict/batch`` (larger files: batch scoring in churn_lib).
MAX_BATCH_ROWS = 1000
#: Longest ``request_id``.
REQUEST_ID_MAX_LENGTH = records.MAX_KEY_LENGTH
#: Longest category text accepted before normalisation.
MAX_CATEGORY_LENGTH = _contract.MAX_TEXT_LENGTH


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _whole(value: Any) -> Any:
    # 6.0 is an integer to JSON Schema; the strict int check that follows refuses "6", true and 6.5
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _boolean(feature: _contract.Feature, value: Any) -> Any:
    if type(value) is int and value in (0, 1):  # a 0/1 number (not true/false, which pass as they are)
        return bool(value)
    if isinstance(value, str):
        b = feature.boolean(value)
        if b is None:
            raise ValueError(f"{_short(value)} is not a boolean")
        return b
    return value


def _category(feature: _contract.Feature, value: Any) -> Any:
    if not isinstance(value, str):
        return value  # the str check that follows names the type
    if len(value) > MAX_CATEGORY_LENGTH:
        raise ValueError(f"{_short(value)} is longer than {MAX_CATEGORY_LENGTH} characters")
    normalised = feature.normalise(value)
    if not normalised:
        raise ValueError(f"{_short(value)} is empty after normalisation")
    if not feature.allows(normalised):
        raise ValueError(f"{_short(value)} is not allowed")
    return normalised


def _id_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _spelled(text: str, case: str) -> str:
    """A regex matching ``text`` in any case the contract's normalisation folds to it."""
    if case == "none":
        return re.escape(text)
    out = []
    for ch in text:
        lo, up = ch.lower(), ch.upper()
        out.append(f"[{re.escape(lo)}{re.escape(up)}]" if lo != up and len(lo) == len(up) == 1 else re.escape(ch))
    return "".join(out)


def _one_of(texts: tuple[str, ...], *, strip: bool, case: str) -> str:
    """The regex (JSON Schema ``pattern``) of exactly the texts that normalise to one of ``texts``."""
    space = r"\s*" if strip else ""
    return f"^{space}(?:{'|'.join(_spelled(t, case) for t in texts)}){space}$"


def _category_schema(f: _contract.Feature) -> dict[str, Any]:
    """The JSON schema of a category as validation sees it: the raw text, before normalisation."""
    schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": MAX_CATEGORY_LENGTH,
                              "description": allowed_text(f)}
    if f.unseen == "reject":
        schema["pattern"] = _one_of(f.values, strip=f.strip, case=f.case)
        schema["examples"] = list(f.values)
    else:
        schema["pattern"] = r"\S" if f.strip else "."
    return schema


def _boolean_schema(f: _contract.Feature) -> dict[str, Any]:
    words = tuple(dict.fromkeys(t.strip() for t in (*f.true_values, *f.false_values)))
    return {"anyOf": [{"type": "boolean"}, {"type": "integer", "enum": [0, 1]},
                      {"type": "string", "pattern": _one_of(words, strip=True, case="lower")}],
            "description": allowed_text(f)}


def allowed_text(f: _contract.Feature) -> str:
    """What a request field accepts, in JSON's words (every 422 message quotes it)."""
    if f.type == _contract.INTEGER:
        text = f.range_text("JSON integer")
    elif f.type == _contract.FLOAT:
        text = f.range_text("finite JSON number")
    elif f.type == _contract.BOOLEAN:
        text = f"true or false (or 1 / 0, or the text {', '.join(f.true_values + f.false_values)})"
    else:
        how = ["stripping spaces"] if f.strip else []
        if f.case != "none":
            how.append(f"{f.case}-casing")
        after = f" (compared after {' and '.join(how)})" if how else ""
        if f.unseen == "ignore":
            known = f"; known: {', '.join(f.values[:20])}{' ...' if len(f.values) > 20 else ''}" if f.values else ""
            text = f"a text of 1 to {MAX_CATEGORY_LENGTH} characters{after}; an unseen one scores as no category{known}"
        else:
            text = f"one of {', '.join(f.values)}{after}"
    if f.imputed:
        text += "; or null / absent (the model fills it in)"
    return text


def _annotation(f: _contract.Feature) -> Any:
    """The pydantic type of a feature. Field constraints come before the validator, so that they
    appear in the JSON schema; where validation takes more than the type says (a boolean's
    spellings, a category's case and spaces), the schema says exactly what it takes."""
    desc = allowed_text(f)
    if f.type == _contract.INTEGER:
        bounds = {k: int(v) for k, v in (("ge", f.low), ("le", f.high)) if v is not None}
        return Annotated[int, Field(strict=True, description=desc, **bounds), BeforeValidator(_whole)]
    if f.type == _contract.FLOAT:
        bounds = {k: float(v) for k, v in (("ge", f.low), ("le", f.high)) if v is not None}
        return Annotated[float, Field(strict=True, allow_inf_nan=False, description=desc, **bounds)]
    if f.type == _contract.BOOLEAN:
        return Annotated[bool, Field(strict=True, description=desc), BeforeValidator(functools.partial(_boolean, f)),
                         WithJsonSchema(_boolean_schema(f))]
    return Annotated[str, Field(min_length=1, description=desc), BeforeValidator(functools.partial(_category, f)),
                     WithJsonSchema(_category_schema(f))]


_ID_SCHEMA = {"anyOf": [{"type": "string", "minLength": 1, "maxLength": _contract.MAX_TEXT_LENGTH},
                        {"type": "integer"}, {"type": "null"}]}


@dataclass(frozen=True)
class Row:
    """One validated request: features in the contract's order, ids, request id, ignored field names."""

    features: dict[str, Any]
    ids: dict[str, Any] | None
    request_id: str | None
    ignored: tuple[str, ...]


class Schemas:
    """Everything the prediction routes need from one contract: models, adapters, texts, examples."""

    def __init__(self, contract: _contract.Contract) -> None:
        self.contract = contract
        self.allowed: dict[str, str] = {f.name: allowed_text(f) for f in contract.features}
        for name in contract.id:
            self.allowed[name] = f"an optional text (or integer) of 1 to {_contract.MAX_TEXT_LENGTH} characters, " \
                                 "echoed in the answer and the log"
        self.allowed["request_id"] = f"an optional string of 1 to {REQUEST_ID_MAX_LENGTH} characters"
        self.fields_text = ", ".join((*contract.id, *contract.feature_names, "request_id"))
        self._attr: dict[str, str] = {f.name: f"f{k}" for k, f in enumerate(contract.features)}  # python names
        self._attr.update({name: f"id{k}" for k, name in enumerate(contract.id)})
        self.examples = [dict(e) for e in contract.examples] or [contract.example()]
        self.request_model = self._request_model()
        self.single = TypeAdapter(self.request_model)
        self.batch = TypeAdapter(Annotated[list[self.request_model], Field(min_length=1, max_length=MAX_BATCH_ROWS)])
        self.features_model = create_model(
            "Features", __config__=ConfigDict(populate_by_name=False),
            __doc__="The normalised features the model scored, in the contract's order (null: filled in).",
            **{self._attr[f.name]: (_response_type(f), Field(alias=f.name)) for f in contract.features})
        self.explanation_model = _explanation_model(contract)
        if contract.id:
            self.id_model = create_model("CustomerId", __config__=ConfigDict(populate_by_name=False),
                                         **{self._attr[n]: (Optional[str], Field(default=None, alias=n))
                                            for n in contract.id})
        self.prediction_model = self._prediction_model()
        self._response_models()

    def _request_model(self) -> type[BaseModel]:
        """``PredictRequest``: a field per feature (typed and bounded), the id columns and ``request_id``."""
        contract = self.contract
        fields: dict[str, Any] = {}
        for f in contract.features:
            ann = _annotation(f)
            if f.imputed:
                fields[self._attr[f.name]] = (Optional[ann], Field(default=None, alias=f.name,
                                                                   description=self.allowed[f.name]))
            else:
                fields[self._attr[f.name]] = (ann, Field(alias=f.name, description=self.allowed[f.name]))
        for name in contract.id:
            fields[self._attr[name]] = (
                Annotated[Optional[Annotated[str, Field(min_length=1, max_length=_contract.MAX_TEXT_LENGTH),
                                             BeforeValidator(_id_text)]],
                          WithJsonSchema(_ID_SCHEMA | {"description": self.allowed[name]})],
                Field(default=None, alias=name))
        fields["request_id"] = (Optional[Annotated[str, Field(min_length=1, max_length=REQUEST_ID_MAX_LENGTH)]],
                                Field(default=None, description=self.allowed["request_id"] + "; generated when absent"))
        return create_model(
            "PredictRequest", __config__=ConfigDict(extra="allow", populate_by_name=False,
                                                    json_schema_extra={"examples": self.examples}),
            __doc__=f"One customer of the contract {contract.name!r}: its features"
                    + (f", {', '.join(contract.id)}" if contract.id else "") + " and an optional request id.",
            **fields)

    def _prediction_model(self) -> type[BaseModel]:
        """``Prediction``: the lab's response keys in the lab's order, then threshold, version, explanation, id."""
        pred_fields: dict[str, Any] = {
            "request_id": (str, ...),
            "model_version": (str, Field(description="the model file name, as in the lab")),
            "prediction": (Literal[0, 1], Field(description="1 when probability >= threshold")),
            "probability": (float, Field(description="churn probability, 6 decimals")),
            "latency_ms": (float, ...),
            "features": (self.features_model, ...),
            "ts": (float, Field(description="Unix time, seconds")),
            "threshold": (float, Field(description="the model's stored decision threshold")),
            "version": (str, Field(description="the model's version label")),
            "explanation": (Optional[self.explanation_model],
                            Field(default=None, description="with ?explain=N: the prediction's reasons")),
        }
        if self.contract.id:
            pred_fields["id"] = (Optional[self.id_model], Field(default=None, description="the request's id columns"))
        return create_model(
            "Prediction", __doc__="One prediction: the lab's response keys, in the lab's order, then the decision "
                                  "threshold and the version (exactly the line appended to the prediction log).",
            **pred_fields)

    def _response_models(self) -> None:
        """``PredictResponse`` (a prediction and its logging) and ``BatchResponse``."""
        self.predict_response = create_model(
            "PredictResponse", __base__=self.prediction_model,
            __doc__="A prediction, whether it reached the prediction log, and the request fields that were ignored.",
            logged=(bool, Field(description="false when the line could not be written to the prediction log")),
            log_error=(Optional[str], Field(default=None, description="why the line could not be written")),
            ignored_fields=(Optional[list[str]], Field(default=None, description="request fields that are not "
                                                                                 "features and were ignored")))
        self.batch_response = create_model(
            "BatchResponse", __doc__="One result per row, in order, all scored by the same model.",
            model_version=(str, ...), version=(str, ...), threshold=(float, ...), count=(int, ...),
            latency_ms=(float, ...), logged=(bool, ...), log_error=(Optional[str], None),
            ignored_fields=(Optional[list[str]], None), results=(list[self.prediction_model], ...))

    def row(self, req: BaseModel) -> Row:
        """The validated request as the service takes it."""
        features = {f.name: getattr(req, self._attr[f.name]) for f in self.contract.features}
        ids = {n: getattr(req, self._attr[n]) for n in self.contract.id} or None
        ignored = tuple(req.model_extra) if req.model_extra else ()
        return Row(features, ids, req.request_id, ignored)


def _explanation_model(contract: _contract.Contract) -> type[BaseModel]:
    """``Explanation``: the base log-odds, the top N contributions and the sum of the rest."""
    reason = create_model(
        "Contribution", __doc__="One feature's contribution to the log-odds of churn.",
        feature=(Literal[tuple(contract.feature_names)], Field(description="the feature")),
        value=(Any, Field(description="its value, as the model scored it (null: filled in)")),
        contribution=(float, Field(description="its contribution to the log-odds (positive: towards churn)")))
    return create_model(
        "Explanation", __doc__="Why: the base log-odds, the top N features by |contribution| and the sum of the "
                               "rest; sigmoid(base + sum of contributions + other) is the probability.",
        base=(float, Field(description="log-odds of churn before any feature's contribution")),
        contributions=(list[reason], Field(description="the top N, largest |contribution| first")),
        other=(float, Field(description="the sum of every other feature's contribution")))


def _response_type(f: _contract.Feature) -> Any:
    kind = {_contract.INTEGER: int, _contract.FLOAT: float, _contract.BOOLEAN: bool}.get(f.type, str)
    return Optional[kind] if f.imputed else kind


_CACHE: dict[str, Schemas] = {}


def schemas_for(contract: _contract.Contract) -> Schemas:
    """The :class:`Schemas` of a contract, built once per contract (keyed by its sha256)."""
    key = contract.sha256()
    found = _CACHE.get(key)
    if found is None:
        if len(_CACHE) >= 16:
            _CACHE.pop(next(iter(_CACHE)))
        found = _CACHE[key] = Schemas(contract)
    return found
