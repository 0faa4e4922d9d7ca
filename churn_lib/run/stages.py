"""The stage table: each stage's notebook and parameters, declared once.

A parameter is declared once, as a field of the dataclass its stage feeds
(:class:`churn_lib.data.DataParams`, :class:`churn_lib.data.lab.Faults`,
:class:`churn_lib.quality.Thresholds`, :class:`churn_lib.learn.train.TrainParams`,
:class:`churn_lib.drift.Window`, :class:`churn_lib.drift.Thresholds`), with its
default, help and constraint in the field's metadata (:func:`churn_lib._params.param`;
:meth:`churn_lib._params.Param.check` is the one check of a value). Everything
else derives from :data:`TABLE`: the ``churn`` flags of each stage command and
their checks in the parser, ``churn run``'s parameter check before any kernel
starts, :func:`churn_lib.run.runner.run_direct`, the notebooks (their
``parameters`` cells must read as :meth:`Stage.parameters_cell` renders them, a
test holds them to it, and their build cells call :func:`build`), and the run
records the reports index reads.

A name applies to every stage that declares it (``seed`` seeds both the data
and the training). A renamed parameter's old name (its declaration's ``was``)
is accepted for one release by :func:`renamed`, with a warning naming what it
sets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .. import drift, models, quality
from ..learn import train as training
from ..data import DataParams
from ..data.lab import Faults
from .._params import Param, declared
from ..exceptions import InvalidParameter

_SIMPLE = (bool, int, float, str)
log = logging.getLogger(__name__)



def _params_of(cls: type, names: Iterable[str] | None = None) -> tuple[Param, ...]:
    out = []
    for p in declared(cls):
        if not p.stage or (names is not None and p.name not in names):
            continue
        if p.kind not in _SIMPLE:
            raise TypeError(f"{cls.__name__}.{p.name}: stage parameters are bool, int, float or str")
        out.append(p)
    return tuple(out)


VERSION = Param("version", None, "unique version label; None: the next vN", str, optional=True)


@dataclass(frozen=True)
class Stage:
    """A stage: its notebook, the dataclasses its parameters feed, and parameters of its own."""

    name: str
    notebook: str
    groups: tuple[tuple[type, tuple[str, ...] | None], ...] = ()
    extra: tuple[Param, ...] = ()
    runner_set: tuple[str, ...] = ()

    @property
    def params(self) -> dict[str, Param]:
        """Every parameter of the stage, in notebook order (read again when a model family is registered)."""
        key = models.names()
        cached = self.__dict__.get("_params")
        if cached is None or cached[0] != key:
            out = {p.name: p for p in self.extra if p.name == "version"}
            for cls, names in self.groups:
                out.update({p.name: p for p in _params_of(cls, names)})
            out.update({p.name: p for p in self.extra if p.name != "version"})
            cached = (key, out)
            object.__setattr__(self, "_params", cached)  # a cache of a frozen dataclass, as cached_property
        return cached[1]

    @property
    def user_params(self) -> dict[str, Param]:
        """The parameters a user may set (not the runner's own)."""
        return {k: p for k, p in self.params.items() if k not in self.runner_set}

    def build(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The stage's dataclasses, in order, from ``values`` (a namespace; unknown names ignored).

        Raises
        ------
        InvalidParameter
            A value of the wrong type, or refused by its dataclass.
        """
        out = []
        for cls, names in self.groups:
            kwargs = {}
            for p in _params_of(cls, names):
                if p.name in values:
                    value = values[p.name]
                    if not p.accepts(value):
                        raise InvalidParameter(f"parameter {p.name}={value!r} of {self.notebook} must be "
                                               f"{p.type_name} (default {p.default!r})", name=p.name)
                    kwargs[p.name] = p.coerce(value)
            out.append(cls(**kwargs))
        return tuple(out)

    def parameters_cell(self) -> str:
        """The source of the notebook's ``parameters`` cell: ``name = default  # help`` per parameter."""
        return "\n".join(f"{p.name} = {p.literal()}  # {p.help}" for p in self.params.values())


TABLE: dict[str, Stage] = {s.name: s for s in (
    Stage("generate", "01_generate_data", groups=((DataParams, None), (Faults, None))),
    Stage("prepare", "02_prepare_data", groups=((quality.Thresholds, None),)),
    Stage("train", "03_train", groups=((training.TrainParams, None),),
          extra=(VERSION, Param("register", True, "False: stage a candidate (the runner registers it when the "
                                                  "run succeeds)", bool)),
          runner_set=("register",)),
    Stage("evaluate", "04_evaluate",
          extra=(Param("version", None, "version label or model file; None: the most recently registered", str,
                       optional=True),)),
    Stage("monitor_drift", "05_monitor_drift",
          groups=((drift.Window, None), (drift.Thresholds, None)),
          extra=(Param("version", None, "version label or model file whose traffic is checked; None: the "
                                        "current model", str, optional=True),)),
)}
#: Stages of a default run, in order.
DEFAULT_RUN: tuple[str, ...] = ("generate", "prepare", "train", "evaluate")
#: Stages that make data or a model (a run of them owns its version's run.json).
CREATES: tuple[str, ...] = ("generate", "prepare", "train")


def resolve(stages: str | Iterable[str] | None) -> tuple[str, ...]:
    """Stage names (or notebook names) -> stage names in execution order."""
    if stages is None:
        return DEFAULT_RUN
    names = [s.strip() for s in stages.split(",")] if isinstance(stages, str) else list(stages)
    by_notebook = {s.notebook: s.name for s in TABLE.values()}
    out = set()
    for name in filter(None, names):
        stage = by_notebook.get(name, name)
        if stage not in TABLE:
            raise InvalidParameter(f"unknown stage {name!r}; stages are {', '.join(TABLE)}", name="stages")
        out.add(stage)
    if not out:
        raise InvalidParameter("no stage selected", name="stages")
    return tuple(s for s in TABLE if s in out)


def listing(stages: Iterable[str]) -> str:
    """``01_generate_data: n_rows (int or None), ...; 02_prepare_data: ...`` for error messages."""
    parts = []
    for name in stages:
        s = TABLE[name]
        names = ", ".join(f"{p.name} ({p.type_name})" for p in s.user_params.values()) or "-"
        parts.append(f"{s.notebook}: {names}")
    return "; ".join(parts)


def _renames(stages: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """Old parameter name -> (stage, new name) of each selected stage whose parameter was called that."""
    out: dict[str, list[tuple[str, str]]] = {}
    for stage in stages:
        for p in TABLE[stage].user_params.values():
            if p.was:
                out.setdefault(p.was, []).append((stage, p.name))
    return out


def _targets(old: str, stages: Iterable[str]) -> str:
    """``min_clean_rows (02_prepare_data) and min_window_rows (05_monitor_drift)``: what ``old`` names now."""
    return " and ".join(f"{new} ({TABLE[stage].notebook})" for stage, new in _renames(stages).get(old, ()))


def renamed(stages: Iterable[str], params: Mapping[str, Any], *, warn: bool = True) -> dict[str, Any]:
    """``params`` with a renamed parameter's old name replaced by its new name(s) in the selected stages.

    An old name is accepted for one release: a warning says which parameters
    it sets (``min_rows`` was both the quality and the drift threshold). A new
    name given too wins. An old name no selected stage had stays, for
    :func:`check` to refuse.
    """
    stages = tuple(stages)
    renames = _renames(stages)
    out = dict(params)
    for old in [name for name in params if name in renames]:
        value = out.pop(old)
        for _, new in renames[old]:
            out.setdefault(new, value)
        if warn:
            log.warning("parameter %s is deprecated and will be removed in the next release: here it sets %s; "
                        "use the new name(s)", old, _targets(old, stages))
    return out


def check(stages: tuple[str, ...], params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Split ``params`` per stage; refuse unknown names, wrong types and refused values (no kernel has started).

    A name applies to every selected stage that declares it.

    Raises
    ------
    InvalidParameter
    """
    params = renamed(stages, params)
    known = {n for s in stages for n in TABLE[s].user_params} | {"version"}
    runner_set = {n for s in stages for n in TABLE[s].runner_set}
    unknown = sorted((set(params) - known) | (set(params) & runner_set))
    if unknown:
        moved = "".join(f" ({old} is now {_targets(old, TABLE)})" for old in unknown if _targets(old, TABLE))
        raise InvalidParameter(f"unknown parameter(s) {', '.join(unknown)} for the selected stages{moved}. "
                               f"Parameters: {listing(stages)}", name=unknown[0])
    per_stage: dict[str, dict[str, Any]] = {s: {} for s in stages}
    for stage in stages:
        decl = TABLE[stage].params
        for name, value in params.items():
            if name in decl:
                p = decl[name]
                if not p.accepts(value):
                    raise InvalidParameter(f"parameter {name}={value!r} of {TABLE[stage].notebook} must be "
                                           f"{p.type_name} (default {p.default!r})", name=name)
                per_stage[stage][name] = p.coerce(value)
        TABLE[stage].build(per_stage[stage])  # the dataclasses' own checks (ranges, choices)
    return per_stage


def build(stage: str, namespace: Mapping[str, Any]) -> tuple[Any, ...]:
    """A notebook's parameters as its stage's dataclasses: ``(params,) = stages.build("train", globals())``."""
    return TABLE[stage].build(namespace)


def defaults() -> dict[str, Any]:
    """Every user parameter's default, by name (the first stage's where names repeat)."""
    out: dict[str, Any] = {}
    for s in TABLE.values():
        for name, p in s.user_params.items():
            out.setdefault(name, p.default)
    return out


def changed(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of a run that differ from their defaults (what the index shows)."""
    d = defaults()
    params = renamed(TABLE, params, warn=False)
    return {k: v for k, v in params.items() if k != "version" and (k not in d or d[k] != v)}
