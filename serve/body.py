"""Request bodies parsed and validated in one pass by pydantic, against the served model's contract.

FastAPI's ``Body()`` parses JSON with ``json.loads`` and then validates the
Python objects; pydantic's ``validate_json`` does both in one pass in Rust,
which is about a sixth of the app's time on ``/predict``. :class:`JSONBody`
is a dependency giving the route the validated rows, raising FastAPI's
``RequestValidationError`` (so the same 422 handler answers). The models come
from the contract of the model being served (:mod:`serve.schemas`), so a
promotion to a model of another contract changes what is accepted without a
restart. Like FastAPI, it accepts only ``application/json`` (or ``+json``)
bodies: a ``text/plain`` one would skip a browser's CORS preflight.
Undecodable bytes, deep nesting, an empty body: all are 422 on ``body``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr, TypeAdapter, ValidationError

from churn_lib.serving import Service

from .deps import get_service
from .models import MAX_FEEDBACK_ROWS
from .schemas import Row, Schemas, schemas_for


def inline(schema: Any, defs: dict[str, Any]) -> Any:
    """Replace ``{"$ref": "#/$defs/X"}`` by X's schema: in OpenAPI a ref is read from the document root."""
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return inline(defs[ref.rsplit("/", 1)[1]], defs)
        return {k: inline(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [inline(v, defs) for v in schema]
    return schema


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class JSONBody:
    """A dependency returning the body's rows, validated against the served model's contract.

    Parameters
    ----------
    batch : bool
        False: one request object; True: a JSON array of 1 to MAX_BATCH_ROWS of them.
    """

    def __init__(self, *, batch: bool) -> None:
        self.batch = batch

    def request_schema(self, schemas: Schemas) -> dict[str, Any]:
        """The body's JSON schema for OpenAPI, refs inlined."""
        schema = (schemas.batch if self.batch else schemas.single).json_schema()
        return inline(schema, schema.get("$defs", {}))

    async def __call__(self, request: Request, service: Annotated[Service, Depends(get_service)]) -> list[Row]:
        schemas = schemas_for(service.request_contract())
        request.state.schemas = schemas  # the 422 handler words its messages from the same contract
        if not _is_json(request.headers.get("content-type", "")):
            raise RequestValidationError([{"type": "content_type", "loc": ("body",), "input": None,
                                           "msg": "must be sent with Content-Type: application/json"}])
        adapter = schemas.batch if self.batch else schemas.single
        try:
            parsed = adapter.validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                          for e in exc.errors(include_url=False)]) from None
        return [schemas.row(r) for r in parsed] if self.batch else [schemas.row(parsed)]


PREDICT_BODY = JSONBody(batch=False)
BATCH_BODY = JSONBody(batch=True)


OutcomeValue = StrictStr | StrictInt | StrictFloat | StrictBool | None
#: POST /feedback: 1 to MAX_FEEDBACK_ROWS flat objects (the key, the outcome, an optional time; others ignored).
OUTCOMES = TypeAdapter(Annotated[list[dict[str, OutcomeValue]], Field(min_length=1, max_length=MAX_FEEDBACK_ROWS)])
OUTCOME_EXAMPLES = {"two outcomes": {"summary": "two outcomes, by request_id", "value": [
    {"request_id": "req-001", "outcome": 1}, {"request_id": "req-safe", "outcome": 0, "time": "2026-11-30T12:00:00Z"}]}}


async def outcomes_body(request: Request, service: Annotated[Service, Depends(get_service)]) -> list[dict[str, Any]]:
    """The outcome records of a POST /feedback body (the same 422s as the prediction bodies)."""
    try:
        request.state.schemas = schemas_for(service.request_contract())
    except Exception:  # no contract to word the messages with: generic ones
        request.state.schemas = None
    if not _is_json(request.headers.get("content-type", "")):
        raise RequestValidationError([{"type": "content_type", "loc": ("body",), "input": None,
                                       "msg": "must be sent with Content-Type: application/json"}])
    try:
        return OUTCOMES.validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                      for e in exc.errors(include_url=False)]) from None
