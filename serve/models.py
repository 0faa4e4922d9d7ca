"""Request and response models of the API, built from churn_lib.schema.

Validation happens here, once, at the way in: numbers must be JSON numbers
of the right kind (``6`` for the integer fields, not ``6.0``, ``"6"`` or
``true``) inside the schema's ranges, NaN and infinity are refused, categories are normalised the lab's way
(plan lower-cased, region upper-cased, both stripped) and then checked against
the allowed values, request ids are bounded. :data:`ALLOWED` describes each
field for error messages.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from churn_lib import schema

#: Rows accepted by one ``POST /predict/batch`` (larger files: batch scoring in churn_lib).
MAX_BATCH_ROWS = 1000
#: Largest request body of ``POST /predict`` and the other routes (one request is about 150 bytes).
MAX_BODY_BYTES = 16 * 1024
#: Largest request body of ``POST /predict/batch`` (1000 rows with 128-character ids is about 300 KB).
MAX_BATCH_BODY_BYTES = 1024 * 1024
#: Longest category value accepted before normalisation (the allowed values are far shorter).
MAX_CATEGORY_LENGTH = 64


def _range_text(name: str) -> str:
    r = schema.RANGES[name]
    if name in schema.INTEGER:
        return f"a JSON integer from {int(r.low)} to {int(r.high)}"
    return f"a finite JSON number from {r.low:g} to {r.high:g}"


def _category_text(name: str) -> str:
    case = "upper" if name == "region" else "lower"
    return (f"one of {', '.join(schema.CATEGORIES[name])} "
            f"(compared after stripping spaces and {case}-casing)")


#: What each request field accepts, in words (used in every 422 message).
ALLOWED: dict[str, str] = {
    **{name: _range_text(name) for name in schema.NUMERIC},
    **{name: _category_text(name) for name in schema.CATEGORICAL},
    "request_id": f"an optional string of 1 to {schema.REQUEST_ID_MAX_LENGTH} characters",
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _range_field(name: str, kind: type) -> Any:
    # strict: pydantic's lax mode would take "6", true or 6.0 for a number; NaN and infinity are refused
    r = schema.RANGES[name]
    low, high = (int(r.low), int(r.high)) if kind is int else (r.low, r.high)
    extra = {} if kind is int else {"allow_inf_nan": False}
    return Annotated[kind, Field(ge=low, le=high, strict=True, description=ALLOWED[name], **extra)]


TenureMonths = _range_field("tenure_months", int)
NumComplaints = _range_field("num_complaints", int)
AvgSessionMinutes = _range_field("avg_session_minutes", float)


def _categorical(name: str) -> Any:
    return Annotated[str, Field(min_length=1, max_length=MAX_CATEGORY_LENGTH, description=ALLOWED[name],
                                json_schema_extra={"enum": list(schema.CATEGORIES[name])})]


class Features(BaseModel):
    """The five normalised features, in the lab's order."""

    tenure_months: int
    num_complaints: int
    avg_session_minutes: float
    plan_type: str
    region: str


class PredictRequest(BaseModel):
    """The lab's request: five features and an optional request id."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": list(schema.LAB_EXAMPLES)})

    tenure_months: TenureMonths
    num_complaints: NumComplaints
    avg_session_minutes: AvgSessionMinutes
    plan_type: _categorical("plan_type")
    region: _categorical("region")
    request_id: Annotated[str | None, Field(min_length=1, max_length=schema.REQUEST_ID_MAX_LENGTH,
                                            description=ALLOWED["request_id"] + "; generated when absent")] = None

    @field_validator("plan_type", "region")
    @classmethod
    def _allowed_category(cls, value: str, info) -> str:
        normalised = schema.normalise_category(info.field_name, value)
        if normalised not in schema.CATEGORIES[info.field_name]:
            raise ValueError(f"{_short(value)} is not allowed")
        return normalised

    def features(self) -> dict[str, Any]:
        """The normalised features, in the schema's order (what is scored and logged)."""
        return {name: getattr(self, name) for name in schema.FEATURES}


class Prediction(BaseModel):
    """One prediction: the lab's response keys, in the lab's order, then the decision threshold
    and the version (exactly the line appended to the prediction log)."""

    request_id: str
    model_version: str = Field(description="the model file name, as in the lab")
    prediction: Literal[0, 1] = Field(description="1 when probability >= threshold")
    probability: float = Field(description="churn probability, 6 decimals")
    latency_ms: float
    features: Features
    ts: float = Field(description="Unix time, seconds")
    threshold: float = Field(description="the model's stored decision threshold")
    version: str = Field(description="the model's version label")


class PredictResponse(Prediction):
    """A prediction and whether it reached the prediction log."""

    logged: bool = Field(description="false when the line could not be written to the prediction log")
    log_error: str | None = Field(default=None, description="why the line could not be written")


class BatchResponse(BaseModel):
    """One result per row, in order, all scored by the same model."""

    model_version: str
    version: str
    threshold: float
    count: int
    latency_ms: float
    logged: bool
    log_error: str | None = None
    results: list[Prediction]


class PredictionLogStatus(BaseModel):
    path: str
    ok: bool
    failures: int
    last_error: str | None
    last_error_at: str | None


class HealthResponse(BaseModel):
    """``status``: ok (200), degraded (200: a model is served, see ``reason``) or unavailable (503)."""

    status: Literal["ok", "degraded", "unavailable"]
    current_model: str | None = Field(description="file name of the served model, as in the lab")
    version: str | None
    threshold: float | None
    reason: str | None
    pointer: str | None = Field(description="what registry/current_model.txt names")
    scorer: Literal["numpy", "sklearn"] | None
    scorer_note: str | None
    loaded_at: str | None
    prediction_log: PredictionLogStatus
    pid: int = Field(description="the worker process that answered")


class ModelResponse(BaseModel):
    """The served model's registry entry (every field of metadata.json is passed through)."""

    model_config = ConfigDict(extra="allow")

    model_file: str
    version: str
    trained_at_utc: str | None = None
    threshold: float = 0.5
    passed_gate: bool | None = None
    metrics: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None


class ErrorItem(BaseModel):
    """One validation error: FastAPI's ``loc``/``msg``/``type`` plus the field and batch row."""

    loc: list[str | int]
    field: str
    row: int | None = None
    msg: str = Field(description="names the field, what is wrong and what is allowed")
    type: str


class ValidationErrorResponse(BaseModel):
    detail: list[ErrorItem]


class MessageResponse(BaseModel):
    detail: str
