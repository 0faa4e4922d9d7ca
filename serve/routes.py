"""The API's routes: validated request model in, one churn_lib call, declared response model out."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from churn_lib import schema
from churn_lib.serving import STATUS_UNAVAILABLE, BatchPrediction, Prediction, Service

from .body import JSONBody
from .models import (MAX_BATCH_ROWS, BatchResponse, HealthResponse, MessageResponse, ModelResponse, PredictRequest,
                     PredictResponse, ValidationErrorResponse)

router = APIRouter()


async def get_service(request: Request) -> Service:
    """The app's :class:`~churn_lib.serving.Service`, its model refreshed if the registry pointer moved.

    The reload (sha256 check, unpickling, compiling: tens of ms) runs in a
    worker thread; requests arriving meanwhile keep the model being served.
    """
    service: Service = request.app.state.service
    if service.holder.needs_refresh():
        await run_in_threadpool(service.holder.refresh, wait=False)
    return service


ServiceDep = Annotated[Service, Depends(get_service)]

_EXAMPLE_NAMES = ("lab request req-001 (churn)", "lab request req-safe (stays)", "lab drift request (no request_id)")
PREDICT_EXAMPLES = {name: {"summary": name, "value": ex} for name, ex in zip(_EXAMPLE_NAMES, schema.LAB_EXAMPLES)}
BATCH_EXAMPLES = {"the lab's three requests": {"summary": "the lab's three requests",
                                               "value": list(schema.LAB_EXAMPLES)}}

_ERRORS = {
    413: {"model": MessageResponse, "description": "body too large"},
    422: {"model": ValidationErrorResponse, "description": "invalid request: each error names the field "
                                                           "and what it accepts"},
    503: {"model": MessageResponse, "description": "no model can be served (the reason is in `detail`)"},
}


@router.get("/health", response_model=HealthResponse,
            responses={503: {"model": HealthResponse, "description": "no model can be served"}})
async def health(response: Response, service: ServiceDep) -> dict:
    """200 when a model is served (`status` ok, or degraded with the `reason`); 503 with the reason otherwise."""
    state = service.health()
    if state["status"] == STATUS_UNAVAILABLE:
        response.status_code = 503
    return state


PREDICT_BODY = JSONBody(PredictRequest, examples=PREDICT_EXAMPLES, description="one lab request")
BATCH_BODY = JSONBody(Annotated[list[PredictRequest], Field(min_length=1, max_length=MAX_BATCH_ROWS)],
                      examples=BATCH_EXAMPLES, description=f"1 to {MAX_BATCH_ROWS} lab requests")


@router.post("/predict", response_model=PredictResponse, responses=_ERRORS,
             openapi_extra=PREDICT_BODY.openapi_extra)
async def predict(body: Annotated[PredictRequest, Depends(PREDICT_BODY)], service: ServiceDep) -> Response:
    """Score one customer at the model's stored threshold; the result is appended to the prediction log."""
    return prediction_response(service.predict(body.features(), request_id=body.request_id))


@router.post("/predict/batch", response_model=BatchResponse, responses=_ERRORS,
             openapi_extra=BATCH_BODY.openapi_extra)
async def predict_batch(rows: Annotated[list[PredictRequest], Depends(BATCH_BODY)], service: ServiceDep) -> Response:
    """Score 1 to 1000 customers (MAX_BATCH_ROWS) with one model; one result and one log line per row, in order."""
    return batch_response(service.predict_batch([r.features() for r in rows], [r.request_id for r in rows]))


# The two prediction routes answer with the log lines churn_lib already encoded, spliced into the
# declared response models (PredictResponse, BatchResponse; tests validate every shape): encoding
# and validating the same records a second time would cost as much as the rest of the request.

def _tail(logged: bool, log_error: str | None) -> bytes:
    tail = ',"logged":true' if logged else f',"logged":false,"log_error":{json.dumps(log_error)}'
    return tail.encode() + b"}"


def prediction_response(result: Prediction) -> Response:
    """The :class:`PredictResponse` JSON: the log line plus ``logged`` (and ``log_error``)."""
    return Response(result.line.rstrip(b"\n")[:-1] + _tail(result.logged, result.log_error),
                    media_type="application/json")


def batch_response(result: BatchPrediction) -> Response:
    """The :class:`BatchResponse` JSON: the batch's fields, then its log lines as ``results``."""
    head = {k: v for k, v in result.header().items() if v is not None}
    body = (json.dumps(head, separators=(",", ":"))[:-1].encode() + b',"results":['
            + b",".join(line.rstrip(b"\n") for line in result.lines) + b"]}")
    return Response(body, media_type="application/json")


@router.get("/model", response_model=ModelResponse, responses={503: _ERRORS[503]})
async def model(service: ServiceDep) -> dict:
    """The served model's registry entry: metrics, threshold, gate verdict, training time, hashes."""
    return service.model()


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests and errors by endpoint, latency, predictions by class, served version."""
    m = request.app.state.metrics
    m.sync(request.app.state.service)
    return Response(m.render(), media_type=m.content_type)
