"""The FastAPI app, built by :func:`create_app` (nothing happens at import).

``uvicorn serve.app:create_app --factory`` or ``churn serve`` runs it. The
project home comes from the ``home`` argument, else ``CHURN_HOME`` / the
marker file / the working directory, resolved when the app is created; the
model is loaded at startup and followed afterwards (see
:mod:`churn_lib.serving`). Tests replace the service or settings through
``app.dependency_overrides`` or by passing ``settings``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import AsyncIterator

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from churn_lib import ChurnError, Home, __version__
from churn_lib import contract as _contract
from churn_lib.serving import Service

from . import errors
from .auth import OPEN_PATHS, BearerAuth, Tokens, document, open_paths
from .body import BATCH_BODY, OUTCOMES, OUTCOME_EXAMPLES, PREDICT_BODY, inline
from .limits import ContentLengthLimit
from .metrics import Metrics, MetricsMiddleware
from .models import MAX_BATCH_BODY_BYTES, MAX_BODY_BYTES, MAX_FEEDBACK_BODY_BYTES
from .routes import router
from .schemas import MAX_BATCH_ROWS, Schemas, schemas_for

DESCRIPTION = """
Serves the registry's current churn model (`registry/current_model.txt`), following it without a
restart, and appends every prediction to `logs/predictions.log`.

* `/predict` takes one customer's features (as the served model's dataset contract defines them)
  and answers the lab's keys, plus the decision `threshold` and the model `version`;
  `/predict/batch` takes 1 to 1000 such requests.
* Categories are normalised and checked as the contract says; numbers must lie in its ranges.
  Fields that are not features are accepted, ignored and named in `ignored_fields`.
* Errors: 422 names the field and what is allowed, 413 for an oversized body, 503 when no model
  can be served (see `/health`).
* `/feedback` takes outcomes (a JSON array: `request_id` or the contract's id, `outcome`, optional `time`)
  and appends them to `logs/feedback.log`; `churn performance` joins them to the predictions.
* A challenger (`churn challenger VERSION [--sample FRACTION]`, `registry/challenger.txt`) scores a
  sample of requests in shadow, after the answer is sent: its answers are logged with
  `"role": "challenger"` and never returned; `/health` shows it, its counts and failures.
* `/metrics` is Prometheus text, with gauges read from the monitoring history (drift, performance, the
  watch's decision); `/reports/` serves the reports folder and its index.
* With a token configured (`CHURN_API_TOKEN`), every path but `/health` (and `/metrics`, unless
  `CHURN_METRICS_AUTH=1`) needs `Authorization: Bearer <token>`, 401 otherwise.
"""

_LAB_EXAMPLE_NAMES = ("lab request req-001 (churn)", "lab request req-safe (stays)",
                      "lab drift request (no request_id)")


@dataclass(frozen=True)
class Settings:
    """What the app needs to know; built by :func:`create_app`, replaceable in tests.

    Attributes
    ----------
    home : Home
    retry_interval : float
        Seconds between retries while the current pointer names a model that cannot be loaded.
    fast : bool
        Use the compiled numpy scorer when it verifies.
    tokens : serve.auth.Tokens or None
        The accepted bearer tokens; None: no authentication.
    open_paths : frozenset of str
        Paths that need no token when ``tokens`` is set.
    """

    home: Home
    retry_interval: float = 5.0
    fast: bool = True
    tokens: Tokens | None = None
    open_paths: frozenset[str] = OPEN_PATHS | {"/metrics"}


class ReportFiles(StaticFiles):
    """The reports folder; a folder that does not exist yet is a 404, not a 500."""

    async def check_config(self) -> None:
        return None


def create_app(home: Home | str | os.PathLike | None = None, *, settings: Settings | None = None) -> FastAPI:
    """Build the API for a project home.

    Parameters
    ----------
    home : Home or path, optional
        Default: ``CHURN_HOME``, else the folder holding ``.churn-home``, else the working directory.
    settings : Settings, optional
        Overrides ``home``.

    Returns
    -------
    FastAPI
    """
    settings = settings or Settings(home=Home.resolve(home), tokens=Tokens.from_env(), open_paths=open_paths())
    metrics = Metrics(settings.home.monitoring_log)
    service = Service(settings.home, retry_interval=settings.retry_interval, fast=settings.fast,
                      on_predict=metrics.predicted)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.start)
        metrics.sync(service)
        yield
        await run_in_threadpool(service.stop)  # the challenger's queued rows are scored and logged
        metrics.sync(service)
        metrics.process_exited()

    app = FastAPI(title="churn-mlops API", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.service = service
    app.state.metrics = metrics
    errors.install(app)
    app.include_router(router)
    app.mount("/reports", ReportFiles(directory=settings.home.reports_dir, html=True, check_dir=False),
              name="reports")
    app.add_middleware(ContentLengthLimit, default=MAX_BODY_BYTES,
                       per_path={"/predict/batch": MAX_BATCH_BODY_BYTES,
                                                             "/feedback": MAX_FEEDBACK_BODY_BYTES})
    if settings.tokens is not None:  # inside the metrics, so refused requests are counted
        app.add_middleware(BearerAuth, tokens=settings.tokens, open_paths=settings.open_paths)
    app.add_middleware(MetricsMiddleware, metrics=metrics, service=service,
                       known_paths=frozenset(getattr(r, "path", "") for r in app.routes))
    app.openapi = _openapi(app, service, settings)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI, service: Service, settings: Settings):
    """``app.openapi`` with the prediction routes' bodies and answers of the served contract (cached per contract)."""
    cache: dict[str | None, dict] = {}

    def openapi() -> dict:
        try:
            schemas: Schemas | None = schemas_for(service.request_contract())
        except ChurnError:
            schemas = None
        key = schemas.contract.sha256() if schemas else None
        if key not in cache:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            if schemas is not None:
                _fill_predict_routes(doc, schemas)
            key = " or ".join(["request_id", *(schemas.contract.id[:1] if schemas else ())])
            doc["paths"]["/feedback"]["post"]["requestBody"] = {
                "required": True, "description": f"1 or more outcomes, each naming its prediction by {key}, with "
                                                 "outcome (a target label, 1/0 or true/false) and optionally time "
                                                 "(Unix seconds or ISO); other fields are ignored",
                "content": {"application/json": {"schema": OUTCOMES.json_schema(), "examples": OUTCOME_EXAMPLES}}}
            if settings.tokens is not None:
                document(doc, settings.open_paths)
            cache[key] = doc
        return cache[key]

    return openapi


def _fill_predict_routes(doc: dict, schemas: Schemas) -> None:
    lab = _contract.is_lab(schemas.contract)
    names = _LAB_EXAMPLE_NAMES if lab else [f"example {i + 1}" for i in range(len(schemas.examples))]
    examples = {name: {"summary": name, "value": ex} for name, ex in zip(names, schemas.examples)}
    for path, body, model, what, batch_examples in (
            ("/predict", PREDICT_BODY, schemas.predict_response, "one request", examples),
            ("/predict/batch", BATCH_BODY, schemas.batch_response, f"1 to {MAX_BATCH_ROWS} requests",
             {"examples": {"summary": "the examples as one batch", "value": list(schemas.examples)}})):
        op = doc["paths"][path]["post"]
        op["requestBody"] = {"required": True, "description": f"{what} of the contract {schemas.contract.name!r}",
                             "content": {"application/json": {"schema": body.request_schema(schemas),
                                                              "examples": batch_examples}}}
        response = model.model_json_schema()
        op["responses"]["200"] = {"description": "Successful Response",
                                  "content": {"application/json": {"schema": inline(response,
                                                                                    response.get("$defs", {}))}}}
