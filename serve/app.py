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
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from churn_lib import Home, __version__, schema
from churn_lib.serving import Service

from . import errors
from .limits import ContentLengthLimit
from .metrics import Metrics, MetricsMiddleware
from .models import MAX_BATCH_BODY_BYTES, MAX_BODY_BYTES
from .routes import router

DESCRIPTION = f"""
Serves the registry's current churn model (`registry/current_model.txt`), following it without a
restart, and appends every prediction to `logs/predictions.log`.

* `/predict` takes the lab's request and answers the lab's keys, plus the decision `threshold`
  and the model `version`; `/predict/batch` takes 1 to 1000 such requests.
* Categories are normalised (plan lower-cased, region upper-cased, both stripped) and checked:
  plan_type in {", ".join(schema.CATEGORIES["plan_type"])}; region in {", ".join(schema.CATEGORIES["region"])}.
* Errors: 422 names the field and what is allowed, 413 for an oversized body, 503 when no model
  can be served (see `/health`).
* `/metrics` is Prometheus text; `/reports/` serves the reports folder and its index.
"""


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
    """

    home: Home
    retry_interval: float = 5.0
    fast: bool = True


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
    settings = settings or Settings(home=Home.resolve(home))
    metrics = Metrics()
    service = Service(settings.home, retry_interval=settings.retry_interval, fast=settings.fast,
                      on_predict=metrics.predicted)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.start)
        metrics.sync(service)
        yield
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
                       per_path={"/predict/batch": MAX_BATCH_BODY_BYTES})
    app.add_middleware(MetricsMiddleware, metrics=metrics, service=service,
                       known_paths=frozenset(getattr(r, "path", "") for r in app.routes))
    return app
