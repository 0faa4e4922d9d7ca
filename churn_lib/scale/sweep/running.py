"""Running the sets of a sweep: one notebook run per set, one after the other or as Dask tasks.

:func:`run_set` is one set's full notebook run (a Dask task on a cluster;
its failure becomes its outcome); :func:`run_serial` and :func:`run_on_cluster`
run every set, tracking progress (:class:`Tracker`) and saving the sweep's
record after each run. Stage events of runs on workers reach the client
through the scheduler's event log.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from ...exceptions import ChurnError, StageFailed
from ...home import Home
from ...run import runner
from .. import cluster
from .params import describe_params
from .results import RunOutcome, SweepProgress, SweepResult
from .spec import SweepSpec

log = logging.getLogger(__name__)


def run_set(root: str, data_dir: str, params: dict[str, Any], stages: tuple[str, ...], index: int,
            topic: str | None, on_event: Callable[[str, str, float | None], None] | None = None,
            source: str | None = None) -> RunOutcome:
    """Execute one parameter set as a full notebook run; never raises a ChurnError (it becomes the outcome).

    Stage events go to ``on_event`` in this process, or to the Dask event ``topic`` on a worker.
    ``source`` is the file the run's stage 01 reads (a file source's pool), None for the contract's own.
    """
    outcome = RunOutcome(index=index, params=params, data_dir=data_dir, status="running")
    home = Home(Path(root), data_root=Path(data_dir))
    publish = on_event or _publisher(topic, index)
    started = time.perf_counter()
    run_params = {**params, "source": source} if source else params
    try:
        record = runner.run(home=home, stages=stages, params=run_params, on_event=publish, promote=False)
    except StageFailed as exc:
        outcome.status, outcome.error = "failed", str(exc)
        outcome.version, outcome.report = getattr(exc, "version", None), getattr(exc, "report_path", None)
    except ChurnError as exc:
        outcome.status, outcome.error = "failed", str(exc)
    else:
        entry = record.get("entry") or {}
        outcome.status, outcome.version = "ok", record["version"]
        outcome.passed_gate = entry.get("passed_gate")
        outcome.gate_reasons = list(entry.get("gate_reasons") or [])
        outcome.metrics = {k: v for k, v in (entry.get("metrics") or {}).items() if k != "confusion_matrix"}
        outcome.report = str(home.reports_dir / record["version"])
    outcome.seconds = round(time.perf_counter() - started, 3)
    return outcome


def _publisher(topic: str | None, index: int) -> Callable[[str, str, float | None], None]:
    """Stage events of a run on a worker, sent to the client through the scheduler's event log."""
    if topic is None:
        return lambda *a: None

    def publish(stage: str, status: str, seconds: float | None) -> None:
        try:
            from distributed import get_worker

            get_worker().log_event(topic, {"index": index, "stage": stage, "status": status, "seconds": seconds})
        except Exception as exc:  # progress is best effort; the run goes on
            log.debug("progress event lost: %s", exc)

    return publish


class Tracker:
    """Counts runs started, finished and failed; reports each change to the caller's callback."""

    def __init__(self, runs: list[RunOutcome], on_progress: Callable[[SweepProgress], None] | None,
                 slots: int = 1) -> None:
        self.runs = runs
        self.on_progress = on_progress
        self.slots = slots
        self.started: set[int] = set()
        self.finished_set: set[int] = set()

    def _emit(self, **kwargs: Any) -> None:
        if self.on_progress is None:
            return
        # A run's first event can overtake the news that the run before it on that worker ended
        # (two channels); never show more runs going than there are worker threads.
        running = min(len(self.started - self.finished_set), self.slots)
        failed = sum(r.status == "failed" for r in self.runs)
        self.on_progress(SweepProgress(total=len(self.runs), done=len(self.finished_set), running=running,
                                       failed=failed, **kwargs))

    def stage(self, index: int, stage: str, status: str, seconds: float | None) -> None:
        if index in self.finished_set:
            return
        if index not in self.started:
            self.started.add(index)
            self.runs[index].status = "running"
        self._emit(event="stage", index=index, stage=stage, status=status, seconds=seconds)

    def finished(self, outcome: RunOutcome) -> None:
        self.runs[outcome.index] = outcome
        self.started.add(outcome.index)
        self.finished_set.add(outcome.index)
        log.info("sweep run %d (%s): %s%s", outcome.index, describe_params(outcome.params), outcome.status,
                 f" as {outcome.version}" if outcome.version else "")
        self._emit(event="finished", index=outcome.index, outcome=outcome)


def run_serial(result: SweepResult, spec: SweepSpec, home: Home, state: Tracker, save: Callable[[], None],
               pool: str | None) -> None:
    """Every set in this process, one after the other; the record is saved before and after each run."""
    save()
    for r in result.runs:
        def on_event(stage: str, status: str, seconds: float | None, index: int = r.index) -> None:
            state.stage(index, stage, status, seconds)

        state.finished(run_set(str(home.root), r.data_dir, r.params, spec.stages, r.index, None, on_event, pool))
        save()


def run_on_cluster(result: SweepResult, spec: SweepSpec, home: Home, state: Tracker, save: Callable[[], None],
                   pool: str | None, *, scheduler: str | None, n_workers: int | None) -> None:
    """Every set as a Dask task on a cluster (a local one when ``scheduler`` is None or ``"local"``)."""
    with cluster.connect(scheduler, n_workers=n_workers) as client:
        result.where = cluster.describe(client)
        threads = client.nthreads()
        if any(n > 1 for n in threads.values()):
            log.warning("some Dask workers run several threads; runs of a sweep are meant to have a "
                        "process each (start workers with --nthreads 1)")
        state.slots = max(1, sum(threads.values()))
        save()
        _gather(client, home, spec, result.runs, state, result.sweep_id, save, pool)


def _gather(client: Any, home: Home, spec: SweepSpec, runs: list[RunOutcome], state: Tracker,
            sweep_id: str, save: Callable[[], None], pool: str | None) -> None:
    """Submit a task per set; pass on stage events and outcomes as they come; save after each run."""
    from distributed import as_completed  # only a sweep on Dask pays for importing distributed

    topic = f"churn-{sweep_id}"
    events: queue.Queue = queue.Queue()
    client.subscribe_topic(topic, lambda event: events.put(event[1]))
    futures = {client.submit(run_set, str(home.root), r.data_dir, r.params, spec.stages, r.index, topic, None,
                             pool, key=f"{sweep_id}-set-{r.index:03d}", pure=False): r for r in runs}

    def drain() -> None:
        while True:
            try:
                msg = events.get_nowait()
            except queue.Empty:
                return
            state.stage(msg["index"], msg["stage"], msg["status"], msg["seconds"])

    try:
        pending = as_completed(list(futures))
        while not pending.is_empty():
            if not pending.has_ready():
                drain()
                time.sleep(0.2)
                continue
            for future in pending.next_batch(block=False):
                run = futures[future]
                try:
                    outcome = future.result()
                except Exception as exc:  # a lost worker or a bug: this run failed, the others go on
                    outcome = replace(run, status="failed", error=f"{type(exc).__name__}: {exc}")
                drain()
                state.finished(outcome)
                save()
        drain()
    finally:
        try:
            client.unsubscribe_topic(topic)
        except Exception:  # pragma: no cover - the client may already be closing
            pass
