"""Sweep: many notebook runs at once on a Dask cluster, one model version per parameter set.

A sweep spec (YAML, :func:`load_spec`) lists parameter sets, as a grid (every
combination) and/or explicitly; :func:`run_sweep` executes one full notebook
run (:func:`churn_lib.run.runner.run`) per set, in parallel on a Dask cluster
(:mod:`churn_lib.scale.cluster`: a local one by default, or an existing scheduler),
then picks and promotes the best version.

Design (see ``docs/scale-out.md``):

* **Data isolation.** Every run gets a data folder of its own,
  ``data/sweeps/<sweep id>/set-NNN/`` (:attr:`churn_lib.home.Home.data_root`):
  its ``raw.csv``, ``processed.csv``, quality report and ``train_stats.json``
  never meet another run's. Registry and reports are shared: the runner claims
  a distinct version label per run and registers under the registry's lock.
* **No promotion during the sweep.** Runs register their model without making
  it current (``runner.run(promote=False)``), so every run's gate compares with
  the same current model (the one before the sweep), whatever the order in
  which runs finish.
* **Winner on the same test data.** Runs with different ``n_rows`` or ``seed``
  have different data and test splits, so their own test metrics do not
  compare. Every registered version of the sweep is re-scored, through the
  registry (sha256-checked), on one common holdout set that no run trained
  on: for the lab's generator, fresh draws with a seed no run uses (20,000
  rows by default); for a file source, a seeded split of the user's data
  (20 % by default, ``holdout_rows`` to set a count): the runs read the
  rest (``data/sweeps/<id>/pool.csv``, as their ``source``). The best version
  that passed its gate by the chosen metric (F1 at the model's stored
  threshold by default; ties: ROC AUC, then set order) is promoted; if none
  passed, nothing is.
* **Failures are results.** A failing run does not stop the others; the
  summary lists it with its report. Progress (runs done, running, failed, and
  each stage) reaches the caller through ``on_progress``; the library never prints.

This face holds the entry point, :func:`run_sweep`; its modules do the work:
:mod:`.spec` (the spec and its checks), :mod:`.params` (parameter sets:
expansion, description, the check against the notebooks), :mod:`.running`
(the runs, in this process or on Dask), :mod:`.selection` (the holdout and
the winner) and :mod:`.results`.

Spec::

    name: regularisation            # optional; default the file's name
    stages: generate,prepare,train,evaluate   # optional; generate and train are required
    params: {n_rows: 5000}          # optional; every set starts from these
    grid: {C: [0.1, 1.0, 10.0], seed: [1, 2]}    # every combination ...
    sets: [{C: 1.0, n_rows: 20000}]              # ... and/or listed sets
    select: {metric: f1, holdout_rows: 20000, holdout_seed: 2147483647}   # holdout_fraction: 0.2 (file source)
    promote: true
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ... import contract as _contract
from ... import registry
from ..._io import atomic_write_json, utc_now
from ...exceptions import InvalidParameter
from ...home import Home
from ...run import reports
from .params import check_sets, describe_params, expand
from .results import RunOutcome, SweepProgress, SweepResult
from .running import Tracker, run_on_cluster, run_serial
from .selection import select, split_source
from .spec import (DEFAULT_HOLDOUT_FRACTION, DEFAULT_HOLDOUT_ROWS, DEFAULT_HOLDOUT_SEED, DEFAULT_METRIC, METRICS,
                   Holdout, SweepSpec, build_spec, load_spec)

__all__ = ["DEFAULT_HOLDOUT_FRACTION", "DEFAULT_HOLDOUT_ROWS", "DEFAULT_HOLDOUT_SEED", "DEFAULT_METRIC", "METRICS",
           "Holdout", "RunOutcome", "SweepProgress", "SweepResult", "SweepSpec", "build_spec", "describe_params",
           "expand", "load_spec", "run_sweep", "sweep_dir"]

log = logging.getLogger(__name__)


def sweep_dir(sweep_id: str, *, home: Home | str | None = None) -> Path:
    """Where a sweep's record and pages live: ``reports/_sweeps/<id>/`` (no version label starts with ``_``)."""
    return Home.resolve(home).reports_dir / "_sweeps" / sweep_id


def run_sweep(spec: SweepSpec, *, home: Home | str | None = None, scheduler: str | None = None,
              n_workers: int | None = None, serial: bool = False, promote: bool | None = None,
              on_progress: Callable[[SweepProgress], None] | None = None) -> SweepResult:
    """Run every parameter set of ``spec`` as its own notebook run, in parallel; promote the best version.

    Parameters
    ----------
    spec : SweepSpec
        From :func:`load_spec` or :func:`build_spec`.
    home : Home or path, optional
        The project home: shared registry and reports; each run's data goes
        to ``data/sweeps/<sweep id>/set-NNN/``.
    scheduler : str, optional
        None or ``"local"``: a local Dask cluster for the sweep (workers =
        cores, processes, 127.0.0.1); else the address of a running scheduler,
        whose workers must see the home at the same path.
    n_workers : int, optional
        Workers of the local cluster.
    serial : bool, default=False
        Run the sets one after the other in this process, without Dask (the
        benchmark's baseline; handy for debugging a set).
    promote : bool, optional
        Override the spec's ``promote``.
    on_progress : callable, optional
        Called with a :class:`SweepProgress` on every stage start/end and run end.

    Returns
    -------
    SweepResult
        Also written to ``reports/_sweeps/<id>/sweep.json``; the index shows the sweep as a group.

    Raises
    ------
    InvalidParameter
        A set's parameters do not match the notebooks (nothing ran), or the
        scheduler cannot be reached.
    """
    if serial and scheduler is not None:
        raise InvalidParameter("a serial sweep runs in this process: drop the scheduler or serial",
                               name="scheduler")
    home = Home.resolve(home).ensure()
    contract = _contract.load(home)
    spec, folder, pool = _prepare(spec, home, contract)
    promote = spec.promote if promote is None else promote
    result = _new_result(spec, folder, home, serial=serial)
    record = Path(result.record_path)
    started = time.perf_counter()
    state = Tracker(result.runs, on_progress)
    log.info("sweep %s: %d run(s) of %s", result.sweep_id, len(result.runs), ", ".join(spec.stages))
    _run_sets(result, spec, home, state, record, pool, serial=serial, scheduler=scheduler, n_workers=n_workers)
    select(result, home, promote=promote, contract=contract, folder=folder)
    _finish(result, home, record, started)
    return result


def _run_sets(result: SweepResult, spec: SweepSpec, home: Home, state: Tracker, record: Path, pool: str | None, *,
              serial: bool, scheduler: str | None, n_workers: int | None) -> None:
    """Every set's run, saving the record as runs end."""
    def save() -> None:
        _save(result, record)

    try:
        if serial:
            run_serial(result, spec, home, state, save, pool)
        else:
            run_on_cluster(result, spec, home, state, save, pool, scheduler=scheduler, n_workers=n_workers)
    except BaseException:  # interrupted or the cluster went away: the record says so, then the error goes on
        result.status = "interrupted"
        save()
        raise


def _new_id() -> str:
    return f"sweep-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def _prepare(spec: SweepSpec, home: Home, contract: _contract.Contract) -> tuple[SweepSpec, Path, str | None]:
    """Check every set against the notebooks; over a file source, hold the holdout out of the runs' pool.

    Returns the spec (its holdout as used), the sweep's data folder and the pool the runs read (None: the
    contract's own source).
    """
    if not contract.source.is_generator:
        spec = replace(spec, holdout=replace(spec.holdout, from_file=True))
    check_sets(spec.stages, spec.sets)
    folder = home.data_dir / "sweeps" / _new_id()
    if not spec.holdout.from_file:
        return spec, folder, None
    folder.mkdir(parents=True, exist_ok=True)  # the runs read the pool; the holdout stays out of every run
    spec = replace(spec, holdout=split_source(contract, spec.holdout, home, folder))
    return spec, folder, str(folder / "pool.csv")


def _new_result(spec: SweepSpec, folder: Path, home: Home, *, serial: bool) -> SweepResult:
    """The sweep's record before any run: every set pending, each with a data folder of its own."""
    runs = [RunOutcome(index=i, params=dict(p), data_dir=str(folder / f"set-{i:03d}"))
            for i, p in enumerate(spec.sets)]
    current = registry.current_entry(home=home)
    return SweepResult(sweep_id=folder.name, name=spec.name, metric=spec.metric, holdout=spec.holdout, runs=runs,
                       where="this process, one run at a time" if serial else "", spec=spec.to_dict(),
                       started_at_utc=utc_now(), current_before={"version": current["version"]} if current else None,
                       home=str(home.root), record_path=str(sweep_dir(folder.name, home=home) / "sweep.json"))


def _finish(result: SweepResult, home: Home, record: Path, started: float) -> None:
    """Mark the sweep done, save its record, write its pages and the index."""
    result.status = "done"
    result.finished_at_utc = utc_now()
    result.seconds = round(time.perf_counter() - started, 3)
    _save(result, record)
    reports.write_sweep_pages(result.to_dict(), home=home)
    reports.write_index(home=home)
    log.info("%s", result.summary())


def _save(result: SweepResult, path: Path) -> None:
    atomic_write_json(path, result.to_dict())
