"""Dependencies of the routes: the app's service, its model and challenger refreshed when a registry pointer moved.

Tests replace them through ``app.dependency_overrides``.
"""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from churn_lib.serving import Service


async def get_service(request: Request) -> Service:
    """The app's :class:`~churn_lib.serving.Service`, its model and its challenger refreshed if their registry
    pointers moved (one ``stat()`` each).

    The reload (sha256 check, unpickling, compiling: tens of ms) runs in a
    worker thread; requests arriving meanwhile keep the model (and the
    challenger) being served.
    """
    service: Service = request.app.state.service
    if service.holder.needs_refresh():
        await run_in_threadpool(service.holder.refresh, wait=False)
    if service.challenger.needs_refresh():
        await run_in_threadpool(service.challenger.refresh, wait=False)
    return service
