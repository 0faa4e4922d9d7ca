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

import itertools
import json
import logging
import queue
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .. import contract as _contract
from .. import registry
from ..run import runner
from .._io import atomic_file, atomic_write, atomic_write_json, utc_now
from ..exceptions import ChurnError, InvalidParameter, PromotionRefused, StageFailed
from ..home import Home

log = logging.getLogger(__name__)

#: Selection metrics -> True when higher is better (values of :func:`churn_lib.learn.metrics.compute_metrics`).
METRICS: dict[str, bool] = {"f1": True, "roc_auc": True, "average_precision": True, "accuracy": True,
                            "precision": True, "recall": True, "brier": False}
DEFAULT_METRIC = "f1"
DEFAULT_HOLDOUT_ROWS = 20_000
#: Seed of the common holdout draws; a run with this seed would train on them, so it is refused.
DEFAULT_HOLDOUT_SEED = 2_147_483_647
_SPEC_KEYS = {"name", "stages", "params", "grid", "sets", "select", "promote"}
_SELECT_KEYS = {"metric", "holdout_rows", "holdout_seed", "holdout_fraction"}
#: Share of a file source's rows held out when ``holdout_rows`` is not given.
DEFAULT_HOLDOUT_FRACTION = 0.2
_SCALARS = (int, float, bool, str)


# --- the spec ----------------------------------------------------------------------

@dataclass(frozen=True)
class Holdout:
    """The common test data every sweep version is scored on, which no run trains on.

    For the lab's generator: ``n_rows`` fresh draws with ``seed``. For a file
    source: ``n_rows`` (or ``fraction`` of the rows when ``n_rows`` is None) of
    the user's data, drawn with ``seed``; the runs read the rest.
    """

    n_rows: int | None = None
    seed: int = DEFAULT_HOLDOUT_SEED
    fraction: float = DEFAULT_HOLDOUT_FRACTION
    from_file: bool = False
    rows_used: int | None = None

    @property
    def generator_rows(self) -> int:
        return self.n_rows if self.n_rows is not None else DEFAULT_HOLDOUT_ROWS

    def describe(self) -> str:
        if self.from_file:
            size = f"{self.rows_used:,} rows" if self.rows_used is not None else (
                f"{self.n_rows:,} rows" if self.n_rows else f"{self.fraction:.0%}")
            return f"{size} of the data set held out (seed {self.seed}), used by no run"
        return f"{self.generator_rows:,} fresh generator rows (seed {self.seed}), used by no run"


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: the expanded parameter sets and how the winner is chosen."""

    sets: tuple[dict[str, Any], ...]
    stages: tuple[str, ...] = runner.STAGES
    metric: str = DEFAULT_METRIC
    holdout: Holdout = field(default_factory=Holdout)
    promote: bool = True
    name: str = "sweep"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "stages": list(self.stages), "metric": self.metric,
                "holdout": asdict(self.holdout), "promote": self.promote, "sets": [dict(s) for s in self.sets]}


def _scalar_list(name: str, values: Any, where: str) -> list[Any]:
    if not isinstance(values, list) or not values:
        raise InvalidParameter(f"{where}: grid.{name} must be a non-empty list of values, got {values!r}",
                               name=name)
    for v in values:
        if not isinstance(v, _SCALARS) and v is not None:
            raise InvalidParameter(f"{where}: grid.{name} holds {v!r}; values must be numbers, strings, "
                                   "booleans or null", name=name)
    return values


def _mapping(value: Any, what: str, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidParameter(f"{where}: {what} must be a mapping of name: value, got {value!r}", name=what)
    for k, v in value.items():
        if not isinstance(v, _SCALARS) and v is not None:
            raise InvalidParameter(f"{where}: {what}.{k} is {v!r}; values must be numbers, strings, booleans "
                                   "or null", name=k)
    return dict(value)


def expand(*, params: Mapping[str, Any] | None = None, grid: Mapping[str, Sequence[Any]] | None = None,
           sets: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The parameter sets of a sweep: listed ``sets``, then every combination of ``grid``, each over ``params``.

    Examples
    --------
    >>> expand(params={"n_rows": 500}, grid={"C": [0.1, 1.0], "seed": [1]})
    [{'n_rows': 500, 'C': 0.1, 'seed': 1}, {'n_rows': 500, 'C': 1.0, 'seed': 1}]
    """
    base = dict(params or {})
    out = [{**base, **s} for s in (sets or [])]
    if grid:
        names = list(grid)
        out += [{**base, **dict(zip(names, combo))} for combo in itertools.product(*(grid[n] for n in names))]
    return out


def build_spec(raw: Mapping[str, Any], *, source: str = "sweep spec", name: str = "sweep") -> SweepSpec:
    """Validate a spec mapping (as read from YAML) and expand its sets.

    Checks the shape only; parameter names and types are checked against the
    stage table by :func:`run_sweep` before any kernel starts.

    Raises
    ------
    InvalidParameter
        Unknown keys, no set, a set naming ``version``, duplicate sets, an
        unknown metric, a stage list without generate and train, or a set
        seeded like the holdout.
    """
    if not isinstance(raw, Mapping):
        raise InvalidParameter(f"{source} must be a mapping with grid and/or sets", name="spec")
    unknown = sorted(set(raw) - _SPEC_KEYS)
    if unknown:
        raise InvalidParameter(f"{source}: unknown key(s) {', '.join(unknown)}; allowed: "
                               f"{', '.join(sorted(_SPEC_KEYS))}", name=unknown[0])
    params = _mapping(raw.get("params"), "params", source)
    grid_raw = raw.get("grid") or {}
    if not isinstance(grid_raw, Mapping):
        raise InvalidParameter(f"{source}: grid must map parameter names to lists of values", name="grid")
    grid = {str(k): _scalar_list(str(k), v, source) for k, v in grid_raw.items()}
    sets_raw = raw.get("sets") or []
    if not isinstance(sets_raw, list):
        raise InvalidParameter(f"{source}: sets must be a list of mappings", name="sets")
    sets = [_mapping(s, f"sets[{i}]", source) for i, s in enumerate(sets_raw)]
    expanded = expand(params=params, grid=grid, sets=sets)
    if not expanded:
        raise InvalidParameter(f"{source} has no parameter set: give a grid and/or sets", name="sets")
    for i, s in enumerate(expanded):
        if "version" in s:
            raise InvalidParameter(f"{source}: set {i} names a version; a sweep labels its runs itself",
                                   name="version")
    seen: dict[str, int] = {}
    for i, s in enumerate(expanded):
        key = json.dumps(s, sort_keys=True)
        if key in seen:
            raise InvalidParameter(f"{source}: sets {seen[key]} and {i} are the same ({describe_params(s)})",
                                   name="sets")
        seen[key] = i
    stages = runner.resolve_stages(raw.get("stages"))
    missing = [s for s in ("generate", "train") if s not in stages]
    if missing:
        raise InvalidParameter(f"{source}: stages must include {' and '.join(missing)}: each run draws its "
                               "own data and trains one version", name="stages")
    select = raw.get("select") or {}
    if not isinstance(select, Mapping) or set(select) - _SELECT_KEYS:
        raise InvalidParameter(f"{source}: select takes {', '.join(sorted(_SELECT_KEYS))}", name="select")
    metric = select.get("metric", DEFAULT_METRIC)
    if metric not in METRICS:
        raise InvalidParameter(f"{source}: metric {metric!r} is not one of {', '.join(METRICS)}", name="metric")
    holdout = Holdout(n_rows=select.get("holdout_rows"), seed=select.get("holdout_seed", DEFAULT_HOLDOUT_SEED),
                      fraction=select.get("holdout_fraction", DEFAULT_HOLDOUT_FRACTION))
    if holdout.n_rows is not None and (not isinstance(holdout.n_rows, int) or isinstance(holdout.n_rows, bool)
                                       or holdout.n_rows < 100):
        raise InvalidParameter(f"{source}: holdout_rows must be an integer of at least 100", name="holdout_rows")
    f = holdout.fraction
    if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.05 <= f <= 0.5:
        raise InvalidParameter(f"{source}: holdout_fraction must be between 0.05 and 0.5", name="holdout_fraction")
    if not isinstance(holdout.seed, int) or isinstance(holdout.seed, bool) or holdout.seed < 0:
        raise InvalidParameter(f"{source}: holdout_seed must be a non-negative integer", name="holdout_seed")
    if any("source" in s for s in expanded):
        raise InvalidParameter(f"{source}: a sweep reads the home's source (over a file: its own pool of the "
                               "data, the rest held out); a set may not name a source", name="source")
    clash = [i for i, s in enumerate(expanded) if s.get("seed", 42) == holdout.seed]
    if clash:
        raise InvalidParameter(f"{source}: set {clash[0]} uses seed {holdout.seed}, the holdout's seed: it would "
                               "train on the test data; change select.holdout_seed", name="holdout_seed")
    promote = raw.get("promote", True)
    if not isinstance(promote, bool):
        raise InvalidParameter(f"{source}: promote must be true or false", name="promote")
    label = raw.get("name", name)
    if not isinstance(label, str) or not label.strip():
        raise InvalidParameter(f"{source}: name must be a non-empty string", name="name")
    return SweepSpec(sets=tuple(expanded), stages=stages, metric=metric, holdout=holdout, promote=promote,
                     name=label.strip())


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec from a YAML file (see the module docstring).

    Raises
    ------
    InvalidParameter
        The file cannot be read, is not YAML, or the spec is not valid.
    """
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidParameter(f"cannot read sweep spec {path}: {exc.strerror}", name="spec") from None
    except yaml.YAMLError as exc:
        raise InvalidParameter(f"sweep spec {path} is not valid YAML: {exc}".replace("\n", " "),
                               name="spec") from None
    return build_spec(raw, source=f"sweep spec {path}", name=path.stem)


# --- results -----------------------------------------------------------------------

@dataclass
class RunOutcome:
    """One parameter set of a sweep: its run, its version and how it scored."""

    index: int
    params: dict[str, Any]
    data_dir: str
    status: str = "pending"  # pending | running | ok | failed
    version: str | None = None
    seconds: float | None = None
    passed_gate: bool | None = None
    gate_reasons: list[str] = field(default_factory=list)
    metrics: dict[str, Any] | None = None  # on the run's own test split
    holdout: dict[str, Any] | None = None  # on the sweep's common holdout
    report: str | None = None  # the run's reports folder, or the failed stage's report
    error: str | None = None


@dataclass
class SweepProgress:
    """Counts of a sweep in progress, and what just happened.

    ``event`` is ``"stage"`` (a stage of run ``index`` started or ended:
    ``stage``, ``status``, ``seconds``) or ``"finished"`` (run ``index`` ended:
    ``outcome``). ``done`` counts finished runs, failed ones included.
    """

    total: int
    done: int
    running: int
    failed: int
    event: str
    index: int
    stage: str | None = None
    status: str | None = None
    seconds: float | None = None
    outcome: RunOutcome | None = None

    @property
    def pending(self) -> int:
        return self.total - self.done - self.running


@dataclass
class SweepResult:
    """What a sweep did: every run, the holdout scores, the winner and whether it was promoted."""

    sweep_id: str
    name: str
    metric: str
    holdout: Holdout
    runs: list[RunOutcome]
    where: str
    started_at_utc: str
    finished_at_utc: str | None = None
    seconds: float | None = None
    status: str = "running"
    current_before: dict[str, Any] | None = None  # version and holdout scores of the model current before
    winner: str | None = None
    promoted: bool = False
    note: str = ""
    record_path: str | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    home: str = ""

    @property
    def failed(self) -> list[RunOutcome]:
        return [r for r in self.runs if r.status == "failed"]

    @property
    def passed(self) -> list[RunOutcome]:
        return [r for r in self.runs if r.status == "ok" and r.passed_gate]

    def ranking(self) -> list[RunOutcome]:
        """Runs scored on the holdout, best first by the sweep's metric (ties: ROC AUC, then set order)."""
        return sorted((r for r in self.runs if r.holdout), key=lambda r: _rank_key(r, self.metric))

    def summary(self) -> str:
        """The sweep in a few lines: counts, the winner and its fate, every failure with its report."""
        ok = sum(r.status == "ok" for r in self.runs)
        lines = [f"sweep {self.name} ({self.sweep_id}): {ok} of {len(self.runs)} runs ok, {len(self.failed)} failed, "
                 f"{len(self.passed)} passed the gate; {self.where}, {self.seconds or 0:.1f} s"]
        if self.winner:
            best = next(r for r in self.runs if r.version == self.winner)
            fate = "promoted, now current" if self.promoted else "not promoted"
            lines.append(f"winner: {self.winner} (set {best.index}: {describe_params(best.params)}), holdout "
                         f"{self.metric} {best.holdout[self.metric]:.4f}; {fate}")
        if self.note:
            lines.append(self.note)
        for r in self.failed:
            report = "" if r.report and r.report in (r.error or "") else f"; report: {r.report or '-'}"
            label = f" as {r.version}" if r.version else ""
            lines.append(f"failed: set {r.index} ({describe_params(r.params)}){label}: {r.error}{report}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["holdout"] = asdict(self.holdout) | {"description": self.holdout.describe()}
        return out


def _rank_key(r: RunOutcome, metric: str) -> tuple:
    value = r.holdout.get(metric)
    auc = r.holdout.get("roc_auc") or 0.0
    primary = float("inf") if value is None else (-value if METRICS[metric] else value)
    return (primary, -auc, r.index)


def describe_params(params: Mapping[str, Any]) -> str:
    """``C=0.1, seed=2`` (or ``defaults``): a parameter set in one line."""
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"


# --- one run (a Dask task) -------------------------------------------------------------

def _run_set(root: str, data_dir: str, params: dict[str, Any], stages: tuple[str, ...], index: int,
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


# --- the sweep ------------------------------------------------------------------------

def _new_id() -> str:
    return f"sweep-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def _check_sets(spec: SweepSpec) -> None:
    """Every set's parameters against the notebooks' parameter cells, before any kernel starts."""
    for i, params in enumerate(spec.sets):
        try:
            runner.check_parameters(spec.stages, params)
        except InvalidParameter as exc:
            raise InvalidParameter(f"set {i} ({describe_params(params)}): {exc}",
                                   name=getattr(exc, "name", None)) from None


def _holdout_frame(holdout: Holdout, contract: _contract.Contract | None = None, folder: Path | None = None):
    """The holdout's features and 0/1 labels: generator draws, or the held-out rows of the user's data, cleaned."""
    from .. import data, quality

    contract = contract or _contract.lab()
    if not holdout.from_file:
        df = data.generate(holdout.generator_rows, seed=holdout.seed)
    else:
        raw = data.read_csv(folder / "holdout.csv", contract)
        df, _ = quality.check_and_clean(raw, quality.Thresholds(max_missing_rate=1.0, max_invalid_rate=1.0,
                                                                min_clean_rows=2), contract=contract)
    return df[list(contract.feature_names)], df[contract.target.column].to_numpy()


def _split_source(contract: _contract.Contract, holdout: Holdout, home: Home, folder: Path) -> Holdout:
    """Copy the file source (checked), hold ``holdout`` of its rows out, write the rest as the runs' pool."""
    import numpy as np
    import pandas as pd

    from ..data.ingest import ingest

    copy = folder / "source.csv"
    info = ingest(contract, root=home.root, target=copy)
    frame = pd.read_csv(copy, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    n = len(frame)
    k = holdout.n_rows if holdout.n_rows is not None else int(round(holdout.fraction * n))
    if not 1 <= k < n:
        raise InvalidParameter(f"the holdout of {k} rows does not fit the {n} rows of {info.files[0]}",
                               name="holdout_rows")
    held = np.zeros(n, dtype=bool)
    held[np.random.default_rng(holdout.seed).choice(n, size=k, replace=False)] = True
    for name, part in (("holdout.csv", frame[held]), ("pool.csv", frame[~held])):
        with atomic_file(folder / name, "w") as out:
            part.to_csv(out, index=False)
    copy.unlink()
    return replace(holdout, rows_used=k)


def _score_holdout(version: str, X, y, home: Home) -> dict[str, Any]:
    from .. import scoring
    from ..learn.metrics import compute_metrics

    scorer = scoring.load(version, home=home)  # through the registry: sha256-checked
    metrics = compute_metrics(y, scorer.predict_proba(X), scorer.threshold)
    metrics.pop("confusion_matrix", None)
    return metrics


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
    from . import cluster
    from ..run import reports

    if serial and scheduler is not None:
        raise InvalidParameter("a serial sweep runs in this process: drop the scheduler or serial",
                               name="scheduler")
    home = Home.resolve(home).ensure()
    contract = _contract.load(home)
    if not contract.source.is_generator:
        spec = replace(spec, holdout=replace(spec.holdout, from_file=True))
    _check_sets(spec)
    promote = spec.promote if promote is None else promote
    sweep_id = _new_id()
    base = home.data_dir / "sweeps" / sweep_id
    pool = None
    if spec.holdout.from_file:  # the runs read the pool; the holdout stays out of every run
        base.mkdir(parents=True, exist_ok=True)
        spec = replace(spec, holdout=_split_source(contract, spec.holdout, home, base))
        pool = str(base / "pool.csv")
    runs = [RunOutcome(index=i, params=dict(p), data_dir=str(base / f"set-{i:03d}")) for i, p in enumerate(spec.sets)]
    current = registry.current_entry(home=home)
    result = SweepResult(sweep_id=sweep_id, name=spec.name, metric=spec.metric, holdout=spec.holdout, runs=runs,
                         where="this process, one run at a time" if serial else "", spec=spec.to_dict(),
                         started_at_utc=utc_now(),
                         current_before={"version": current["version"]} if current else None,
                         home=str(home.root))
    record = sweep_dir(sweep_id, home=home) / "sweep.json"
    result.record_path = str(record)
    started = time.perf_counter()
    state = _Tracker(runs, on_progress)
    log.info("sweep %s: %d run(s) of %s", sweep_id, len(runs), ", ".join(spec.stages))
    try:
        if serial:
            _save(result, record)
            for r in runs:
                def on_event(stage: str, status: str, seconds: float | None, index: int = r.index) -> None:
                    state.stage(index, stage, status, seconds)

                state.finished(_run_set(str(home.root), r.data_dir, r.params, spec.stages, r.index, None,
                                        on_event, pool))
                _save(result, record)
        else:
            with cluster.connect(scheduler, n_workers=n_workers) as client:
                result.where = cluster.describe(client)
                threads = client.nthreads()
                if any(n > 1 for n in threads.values()):
                    log.warning("some Dask workers run several threads; runs of a sweep are meant to have a "
                                "process each (start workers with --nthreads 1)")
                state.slots = max(1, sum(threads.values()))
                _save(result, record)
                _run_on_cluster(client, home, spec, runs, state, sweep_id, lambda: _save(result, record), pool)
    except BaseException:  # interrupted or the cluster went away: the record says so, then the error goes on
        result.status = "interrupted"
        _save(result, record)
        raise
    _select(result, home, promote=promote, contract=contract, folder=base)
    result.status = "done"
    result.finished_at_utc = utc_now()
    result.seconds = round(time.perf_counter() - started, 3)
    _save(result, record)
    reports.write_sweep_pages(result.to_dict(), home=home)
    reports.write_index(home=home)
    log.info("%s", result.summary())
    return result


def _save(result: SweepResult, path: Path) -> None:
    atomic_write_json(path, result.to_dict())


class _Tracker:
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


def _run_on_cluster(client: Any, home: Home, spec: SweepSpec, runs: list[RunOutcome], state: _Tracker,
                    sweep_id: str, save: Callable[[], None], pool: str | None = None) -> None:
    from distributed import as_completed

    topic = f"churn-{sweep_id}"
    events: queue.Queue = queue.Queue()
    client.subscribe_topic(topic, lambda event: events.put(event[1]))
    futures = {client.submit(_run_set, str(home.root), r.data_dir, r.params, spec.stages, r.index, topic, None,
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


def _select(result: SweepResult, home: Home, *, promote: bool, contract: _contract.Contract | None = None,
            folder: Path | None = None) -> None:
    """Score every registered sweep version on the holdout; promote the best that passed its gate."""
    scored = [r for r in result.runs if r.status == "ok" and r.version]
    if scored:
        X, y = _holdout_frame(result.holdout, contract, folder)
        for r in scored:
            try:
                r.holdout = _score_holdout(r.version, X, y, home)
            except ChurnError as exc:
                r.error = f"not scored on the holdout: {exc}"
                log.warning("sweep version %s not scored on the holdout: %s", r.version, exc)
        if result.current_before:
            try:
                result.current_before["holdout"] = _score_holdout(result.current_before["version"], X, y, home)
            except ChurnError as exc:
                result.current_before["error"] = str(exc)
    ranked = [r for r in result.ranking() if r.passed_gate]
    if not ranked:
        result.note = ("no version of the sweep passed the gate; nothing promoted" if scored
                       else "no run succeeded; nothing promoted")
        return
    best = ranked[0]
    result.winner = best.version
    if not promote:
        result.note = "promotion disabled: the current model is unchanged"
        return
    reason = (f"best of sweep {result.sweep_id} by holdout {result.metric} {best.holdout[result.metric]:.4f} "
              f"({len(ranked)} of {len(result.runs)} versions passed the gate)")
    try:
        registry.promote(best.version, home=home, reason=reason)
    except PromotionRefused as exc:
        result.note = f"winner {best.version} was not promoted: {exc}"
        log.warning("%s", result.note)
        return
    result.promoted = True
    stats = Path(best.data_dir) / "train_stats.json"
    if stats.is_file():  # the lab's file describes the current model's training data again
        atomic_write(home.train_stats_json, lambda tmp: shutil.copyfile(stats, tmp))
