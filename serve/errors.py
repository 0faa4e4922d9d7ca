"""Map bad input and churn_lib errors to status codes with messages a client can act on.

* invalid input -> 422, one item per problem: ``loc``, ``field``, ``row`` (batch),
  ``msg`` naming the field, what is wrong and what is allowed, ``type``;
* a body over the route's limit -> 413 with the limit;
* no model can be served (:class:`~churn_lib.NoCurrentModel` and other
  registry errors) -> 503 with the reason;
* any other :class:`~churn_lib.ChurnError` -> 422 when the caller's input
  caused it, else 503. User input never gets a 500.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from churn_lib import ChurnError, DataError, InvalidParameter

from .limits import too_large_message
from .models import MAX_BATCH_BODY_BYTES, MAX_BATCH_ROWS, MAX_BODY_BYTES, MAX_FEEDBACK_BODY_BYTES, MAX_FEEDBACK_ROWS
from .schemas import Schemas


def _is_batch(request: Request) -> bool:
    return request.url.path.rstrip("/").endswith("/batch")


def _is_feedback(request: Request) -> bool:
    return request.url.path.rstrip("/") == "/feedback"


def _body_text(request: Request, schemas: Schemas | None) -> str:
    if _is_feedback(request):
        key = " or ".join(["request_id", *(schemas.contract.id[:1] if schemas else ())])
        return (f"a JSON array of 1 to {MAX_FEEDBACK_ROWS} objects, each with {key}, outcome (a target label or "
                "1/0) and optionally time, sent as application/json")
    fields = schemas.fields_text if schemas else "of the served model's contract (see /docs)"
    optional = "request_id and the ids optional" if schemas and schemas.contract.id else "request_id optional"
    if _is_batch(request):
        return (f"a JSON array of 1 to {MAX_BATCH_ROWS} objects, each with the fields {fields} ({optional}), "
                "sent as application/json")
    return f"a JSON object with the fields {fields} ({optional}), sent as application/json"


def _message(err: dict[str, Any], request: Request) -> dict[str, Any]:
    schemas: Schemas | None = getattr(request.state, "schemas", None)
    allowed = schemas.allowed if schemas else {}
    loc = [p for p in err.get("loc", ()) if p != "body"]
    row = loc.pop(0) if loc and isinstance(loc[0], int) and _is_batch(request) else None
    field = ".".join(str(p) for p in loc) or "body"
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind == "json_invalid":
        text = (f"body: not valid JSON ({err.get('ctx', {}).get('error', 'decode error')}); "
                f"expected {_body_text(request, schemas)}")
        field = "body"
    elif field == "body":
        if kind == "too_long":
            most = MAX_FEEDBACK_ROWS if _is_feedback(request) else MAX_BATCH_ROWS
            text = f"body: at most {most} rows per request ({msg})"
        elif kind == "too_short":
            text = "body: at least 1 row per request" if _is_feedback(request) else "body: at least 1 row per batch"
        else:
            text = f"body: {msg}; expected {_body_text(request, schemas)}"
    elif kind == "missing":
        text = f"{field}: required; allowed: {allowed.get(field, 'see /docs')}"
    elif field in allowed:
        text = f"{field}: {msg}; allowed: {allowed[field]}"
    else:
        text = f"{field}: {msg}"
    if row is not None:
        text = f"row {row}: {text}"
    return {"loc": list(err.get("loc", ())), "field": field, "row": row, "msg": text, "type": kind}


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [_message(e, request) for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 413:
        limit = MAX_FEEDBACK_BODY_BYTES if _is_feedback(request) else MAX_BATCH_BODY_BYTES if _is_batch(request) \
            else MAX_BODY_BYTES
        return JSONResponse({"detail": too_large_message(request.url.path, limit)}, status_code=413)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def churn_error(request: Request, exc: ChurnError) -> JSONResponse:
    status = 422 if isinstance(exc, (InvalidParameter, DataError)) else 503
    return JSONResponse({"detail": str(exc)}, status_code=status)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(ChurnError, churn_error)
