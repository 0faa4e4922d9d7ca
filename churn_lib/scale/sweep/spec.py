"""The sweep spec: what to run and how the winner is chosen, built from YAML and checked.

:func:`load_spec` reads a YAML file, :func:`build_spec` checks its shape and
expands its sets into a :class:`SweepSpec` (the parameter names and types are
checked against the notebooks later, by :func:`.params.check_sets`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ...exceptions import InvalidParameter
from ...run import runner
from .params import describe_params, expand, mapping, scalar_list

#: Selection metrics -> True when higher is better (values of :func:`churn_lib.learn.metrics.compute_metrics`).
METRICS: dict[str, bool] = {"f1": True, "roc_auc": True, "average_precision": True, "accuracy": True,
                            "precision": True, "recall": True, "brier": False}
DEFAULT_METRIC = "f1"
DEFAULT_HOLDOUT_ROWS = 20_000
#: Seed of the common holdout draws; a run with this seed would train on them, so it is refused.
DEFAULT_HOLDOUT_SEED = 2_147_483_647
#: Share of a file source's rows held out when ``holdout_rows`` is not given.
DEFAULT_HOLDOUT_FRACTION = 0.2
_SPEC_KEYS = {"name", "stages", "params", "grid", "sets", "select", "promote"}
_SELECT_KEYS = {"metric", "holdout_rows", "holdout_seed", "holdout_fraction"}


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


def _parameter_sets(raw: Mapping[str, Any], source: str) -> list[dict[str, Any]]:
    """The spec's ``params``, ``grid`` and ``sets``, checked and expanded: at least one set, none twice."""
    params = mapping(raw.get("params"), "params", source)
    grid_raw = raw.get("grid") or {}
    if not isinstance(grid_raw, Mapping):
        raise InvalidParameter(f"{source}: grid must map parameter names to lists of values", name="grid")
    grid = {str(k): scalar_list(str(k), v, source) for k, v in grid_raw.items()}
    sets_raw = raw.get("sets") or []
    if not isinstance(sets_raw, list):
        raise InvalidParameter(f"{source}: sets must be a list of mappings", name="sets")
    sets = [mapping(s, f"sets[{i}]", source) for i, s in enumerate(sets_raw)]
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
    return expanded


def _stages(raw: Mapping[str, Any], source: str) -> tuple[str, ...]:
    stages = runner.resolve_stages(raw.get("stages"))
    missing = [s for s in ("generate", "train") if s not in stages]
    if missing:
        raise InvalidParameter(f"{source}: stages must include {' and '.join(missing)}: each run draws its "
                               "own data and trains one version", name="stages")
    return stages


def _selection(raw: Mapping[str, Any], source: str) -> tuple[str, Holdout]:
    """The spec's ``select``, checked: the metric and the holdout."""
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
    return metric, holdout


def _check_data(sets: list[dict[str, Any]], holdout: Holdout, source: str) -> None:
    """No set names its own source, nor trains on the holdout's draws (the holdout's seed)."""
    if any("source" in s for s in sets):
        raise InvalidParameter(f"{source}: a sweep reads the home's source (over a file: its own pool of the "
                               "data, the rest held out); a set may not name a source", name="source")
    clash = [i for i, s in enumerate(sets) if s.get("seed", 42) == holdout.seed]
    if clash:
        raise InvalidParameter(f"{source}: set {clash[0]} uses seed {holdout.seed}, the holdout's seed: it would "
                               "train on the test data; change select.holdout_seed", name="holdout_seed")


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
    sets = _parameter_sets(raw, source)
    stages = _stages(raw, source)
    metric, holdout = _selection(raw, source)
    _check_data(sets, holdout, source)
    promote = raw.get("promote", True)
    if not isinstance(promote, bool):
        raise InvalidParameter(f"{source}: promote must be true or false", name="promote")
    label = raw.get("name", name)
    if not isinstance(label, str) or not label.strip():
        raise InvalidParameter(f"{source}: name must be a non-empty string", name="name")
    return SweepSpec(sets=tuple(sets), stages=stages, metric=metric, holdout=holdout, promote=promote,
                     name=label.strip())


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec from a YAML file (see :mod:`churn_lib.scale.sweep`).

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
