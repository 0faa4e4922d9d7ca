"""The API's routes: input validated by a dependency, one call to the service, the answer out.

* ``GET /health`` and ``GET /model``: :class:`churn_lib.serving.Service`'s
  state and the served model's registry entry, as declared response models;
  ``/health`` is 503 when no model can be served.
* ``POST /predict`` and ``POST /predict/batch``: rows validated in one pass
  against the served model's contract (:mod:`serve.body`, :mod:`serve.schemas`),
  one ``Service`` call, and an answer built from the log lines churn_lib
  already encoded, with ``logged``, ``log_error`` and ``ignored_fields``
  spliced in (:func:`prediction_response`, :func:`batch_response`) rather than
  validated again. Their request and 200 schemas are the served contract's,
  filled into the OpenAPI document by :mod:`serve.app`.
* ``POST /feedback``: records parsed by :func:`serve.body.outcomes_body`,
  checked and appended by :func:`churn_lib.logs.outcomes.ingest_records` in
  a worker thread; a failed write is 503 and nothing is written.
* ``GET /metrics``: Prometheus text from :mod:`serve.metrics`, synced with the
  service first.

Status codes of errors (413, 422, 503) and their bodies are shaped by
:mod:`serve.errors`; with tokens configured, :mod:`serve.auth`'s middleware
checks them before any route runs.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from churn_lib.logs import outcomes as _outcomes

from churn_lib.scoring import MAX_EXPLAIN
from churn_lib.serving import SHADOW_CHUNK, STATUS_UNAVAILABLE, BatchPrediction, Prediction, Service

from .body import BATCH_BODY, PREDICT_BODY, outcomes_body
from .deps import get_service
from .models import (FeedbackResponse, HealthResponse, MessageResponse, ModelResponse,
                     ValidationErrorResponse)
from .schemas import Row

router = APIRouter()

ServiceDep = Annotated[Service, Depends(get_service)]
ExplainQuery = Annotated[int | None, Query(ge=1, le=MAX_EXPLAIN, description=(
    "add the top N reasons: the features with the largest |contribution| to the log-odds, and the sum of the "
    f"rest, so that sigmoid(base + sum + other) is the probability (1 to {MAX_EXPLAIN})"))]

ERRORS = {
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


# The request and 200 response schemas of the two prediction routes are the served model's contract's,
# filled into the OpenAPI document by serve.app (they change when a promotion changes the contract).

@router.post("/predict", responses=ERRORS)
async def predict(rows: Annotated[list[Row], Depends(PREDICT_BODY)], service: ServiceDep,
                  explain: ExplainQuery = None) -> Response:
    """Score one customer at the model's stored threshold (`?explain=N`: with its top N reasons); the result is
    appended to the prediction log."""
    (row,) = rows
    result = service.predict(row.features, request_id=row.request_id, ids=row.ids, explain=explain)
    response = prediction_response(result, row.ignored)
    response.background = shadow_task(service)
    return response


@router.post("/predict/batch", responses=ERRORS)
async def predict_batch(rows: Annotated[list[Row], Depends(BATCH_BODY)], service: ServiceDep,
                        explain: ExplainQuery = None) -> Response:
    """Score 1 to 1000 customers (MAX_BATCH_ROWS) with one model (`?explain=N`: each with its top N reasons); one
    result and one log line per row, in order."""
    result = service.predict_batch([r.features for r in rows], [r.request_id for r in rows], [r.ids for r in rows],
                                   explain=explain)
    ignored = tuple(dict.fromkeys(name for r in rows for name in r.ignored))
    response = batch_response(result, ignored)
    response.background = shadow_task(service)
    return response


# The challenger's jobs the prediction routes queued are scored once the answer is sent, on the event loop's
# thread: a thread of their own would take the GIL from the next requests at every system call they make (a
# hand-off of up to 5 ms each: the p99 of /predict at 1 connection went from 0.7 to 4 ms, and at 10 connections
# the requests/s fell by half in some runs). The service's own thread scores what nobody drained within 50 ms.

async def _drain_shadow(service: Service) -> None:
    service.shadow.drain(SHADOW_CHUNK, wait=False)


def shadow_task(service: Service) -> BackgroundTask | None:
    """A task that scores the challenger's queued jobs after the response is sent (None until a drain is due:
    a few jobs per write cost less than one each)."""
    return BackgroundTask(_drain_shadow, service) if service.shadow.due() else None


# The two prediction routes answer with the log lines churn_lib already encoded, spliced into the
# declared response models (tests validate every shape): encoding and validating the same records a
# second time would cost as much as the rest of the request.

def _tail(logged: bool, log_error: str | None, ignored: tuple[str, ...]) -> bytes:
    tail = ',"logged":true' if logged else f',"logged":false,"log_error":{json.dumps(log_error)}'
    if ignored:
        tail += f',"ignored_fields":{json.dumps(list(ignored))}'
    return tail.encode() + b"}"


def prediction_response(result: Prediction, ignored: tuple[str, ...] = ()) -> Response:
    """The PredictResponse JSON: the log line plus ``logged`` (``log_error``, ``ignored_fields``)."""
    return Response(result.line.rstrip(b"\n")[:-1] + _tail(result.logged, result.log_error, ignored),
                    media_type="application/json")


def batch_response(result: BatchPrediction, ignored: tuple[str, ...] = ()) -> Response:
    """The BatchResponse JSON: the batch's fields, then its log lines as ``results``."""
    head = {k: v for k, v in result.header().items() if v is not None}
    if ignored:
        head["ignored_fields"] = list(ignored)
    body = (json.dumps(head, separators=(",", ":"))[:-1].encode() + b',"results":['
            + b",".join(line.rstrip(b"\n") for line in result.lines) + b"]}")
    return Response(body, media_type="application/json")


@router.get("/model", response_model=ModelResponse, responses={503: ERRORS[503]})
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


@router.post("/feedback", response_model=FeedbackResponse,
             responses={413: ERRORS[413], 422: ERRORS[422],
                        503: {"model": MessageResponse, "description": "the outcomes could not be stored"}})
async def feedback(records: Annotated[list[dict[str, Any]], Depends(outcomes_body)],
                   service: ServiceDep) -> Any:
    """Append outcomes to logs/feedback.log (one write: all accepted lines land whole). Records that cannot be
    accepted are counted by reason and named by position, never written; an outcome given again for the same
    prediction counts from then on."""
    contract = service.request_contract()
    try:
        result = await run_in_threadpool(_outcomes.ingest_records, records, home=service.home, contract=contract)
    except OSError as exc:
        return JSONResponse({"detail": f"the outcomes could not be stored ({exc.strerror or exc}); nothing was "
                                       "written"}, status_code=503)
    return result.to_dict()
