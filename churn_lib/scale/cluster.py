"""Cluster: the Dask client that sweeps and batch scoring run on.

:func:`connect` either joins an existing Dask cluster (``scheduler`` is its
address, e.g. ``tcp://10.0.0.5:8786``) or starts a local one for the length of
a ``with`` block: one worker *process* per core with one thread each, all
listening on 127.0.0.1 only (ports chosen by the OS). Processes, not threads: a notebook
run changes process-wide state (papermill's engine registry, logging, the
kernels it starts), and scoring is CPU-bound Python that threads would
serialise on the GIL. The local workers do not get Dask's default
``MALLOC_TRIM_THRESHOLD_=65536``: it turns off glibc's adaptive mmap threshold,
so every large numpy temporary is mapped and unmapped again, which made block
scoring 3 times slower (and the kernels of sweep runs inherit it).

We use Dask rather than an engine of our own because data scientists who
outgrow a laptop already run it (``dask-scheduler``/``dask-worker``, Kubernetes,
HPC job queues, cloud services) and the same two commands then scale out by
changing one flag.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator

from ..exceptions import InvalidParameter

log = logging.getLogger(__name__)

#: ``scheduler`` value that starts a local cluster.
LOCAL = "local"
#: Dask config key of the malloc setting its nannies export to workers (None unsets it).
_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def cpu_count() -> int:
    """Cores this process may run on (the default number of local workers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - platforms without affinity
        return max(1, os.cpu_count() or 1)


def _check_address(scheduler: str) -> str:
    address = scheduler.strip()
    if not address or any(c.isspace() for c in address):
        raise InvalidParameter(f"scheduler address {scheduler!r} is not valid; use e.g. tcp://HOST:8786 "
                               f"or {LOCAL!r}", name="scheduler")
    return address


@contextlib.contextmanager
def connect(scheduler: str | None = None, *, n_workers: int | None = None,
            timeout: float = 30.0) -> Iterator[Any]:
    """A ``distributed.Client`` for the ``with`` block; a local cluster is shut down at its end.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://HOST:PORT``), or None /
        ``"local"`` to start a local cluster.
    n_workers : int, optional
        Workers of a local cluster (default: one per core). Ignored for an
        existing cluster, which has the workers it has.
    timeout : float, default=30.0
        Seconds to wait for the scheduler.

    Yields
    ------
    distributed.Client

    Raises
    ------
    InvalidParameter
        The address is malformed or the scheduler cannot be reached.

    Examples
    --------
    >>> with connect(n_workers=1) as client:                    # doctest: +SKIP
    ...     client.submit(sum, [1, 2]).result()
    3
    """
    import dask
    from distributed import Client, LocalCluster

    if n_workers is not None and (not isinstance(n_workers, int) or n_workers < 1):
        raise InvalidParameter(f"n_workers must be a positive integer, got {n_workers!r}", name="workers")
    if scheduler is None or scheduler == LOCAL:
        workers = n_workers or cpu_count()
        log.info("starting a local Dask cluster: %d worker process(es), 1 thread each, on 127.0.0.1", workers)
        with dask.config.set({_TRIM: None}), \
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                             dashboard_address=":0", silence_logs=logging.ERROR) as local, \
                Client(local, timeout=timeout) as client:
            yield client
        return
    address = _check_address(scheduler)
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InvalidParameter(f"cannot reach the Dask scheduler at {address} ({exc}); check the address "
                               "or omit --scheduler to use a local cluster", name="scheduler") from None
    try:
        yield client
    finally:
        client.close()


def describe(client: Any) -> str:
    """``"local cluster (2 workers)"`` or ``"tcp://host:8786 (16 workers)"``, for summaries."""
    workers = len(client.scheduler_info().get("workers", {}))
    cluster = getattr(client, "cluster", None)
    where = "local cluster" if cluster is not None else str(client.scheduler.address)
    return f"{where} ({workers} worker{'s' if workers != 1 else ''})"
