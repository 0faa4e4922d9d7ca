"""The quality gate: its settings and a model's test scores in, each criterion's verdict and reason out.

Pure: no file is read, no model is scored; :func:`churn_lib.learn.train.train`
measures the scores and records the verdict. The settings are one object, the
contract's :class:`churn_lib.contract.Gate` (``gate:`` in ``dataset.yaml``),
each overridden by the train parameter of the same name when that is set
(:func:`settings`, :func:`override`).

A model is judged on the objective its threshold was tuned for (its
``threshold_metric``: F1 or profit) plus a threshold-free metric, ROC AUC,
and every reason names the metric it judged. The criteria, each with a
verdict and a reason:

* ``min_f1``: F1 on the test split at the stored threshold >= ``min_f1``
  (an absolute floor; dataset-specific, so it lives in the contract: the
  lab's is 0.65, a new contract has none). A floor on F1 alone, so it does
  not judge a profit-tuned model, whoever set it: the criterion shows its F1
  and says why it was not judged;
* ``beats_always_0`` / ``beats_always_1`` / ``beats_prior``: above each
  trivial baseline on the objective (and, for the prior, a lower Brier
  score). F1-tuned: F1 higher by at least ``baseline_margin``. Profit-tuned:
  a higher expected profit per 1,000 customers than "contact nobody" (0),
  "contact everyone" and "contact a random share at the churn rate", at the
  model's own costs (``baseline_margin`` is in F1 points, so it does not apply);
* ``min_lift_top_decile``: the test split's top-decile lift >= it (only when set);
* ``no_regression``: not worse on the objective than the current model,
  re-scored on the same test rows at its own threshold. F1-tuned: F1 lower by
  at most ``regression_tolerance``. Profit-tuned: expected profit at the new
  model's costs (the current model's decisions priced the same way) lower by
  at most ``regression_tolerance`` times the current model's profit. The
  new model's objective judges both (when the current model was tuned for
  the other one, the reason says so);
* ``no_regression_auc``: ROC AUC on those rows lower than the current model's
  by at most ``auc_tolerance`` (None: ``regression_tolerance``), whatever the
  objective: a model tuned for one decision must not rank customers worse.

So a profit-tuned model is never refused for a lower F1 alone. The lab's
defaults are chosen so that the default run passes honestly: on the
lab's data the honest F1 is 0.697, barely above the "always churn"
baseline's 0.696. The lab's 0.70 gate was only met by tuning the threshold on
the test set, hence its floor of 0.65 and margin of 0. A new contract asks
instead to beat every trivial baseline by 0.02 and not to regress: a model
clearly better than the baselines passes on defaults, whatever the data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ..contract import Gate
from .._params import declared, param

#: The gate's settings, named as in ``dataset.yaml``'s ``gate:``; a train parameter of each name overrides it.
SETTINGS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Gate))


def override(name: str, *, was: str | None = None) -> Any:
    """The train parameter overriding the contract's gate setting ``name``: default None (the contract's value),
    the setting's help and range (declared once, on :class:`~churn_lib.contract.Gate`).

    Parameters
    ----------
    name : str
        One of :data:`SETTINGS`.
    was : str, optional
        The parameter's old name, accepted for one release (:func:`churn_lib._params.param`).
    """
    setting = next(p for p in declared(Gate) if p.name == name)
    return param(None, f"gate: {setting.help}; None: the contract's gate.{name}", range=setting.range, was=was)


def settings(base: Gate, overrides: Any) -> Gate:
    """The gate's settings of one run: ``base`` (the contract's) with each of ``overrides``'s
    attributes of the same name that is not None.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> settings(Gate(min_f1=0.65), SimpleNamespace(min_f1=None, baseline_margin=0.1)).baseline_margin
    0.1
    """
    return dataclasses.replace(base, **{n: getattr(overrides, n) for n in SETTINGS
                                        if getattr(overrides, n, None) is not None})


@dataclass(frozen=True)
class Criterion:
    """One gate criterion: its verdict, the measured value, what was required, and why."""

    name: str
    passed: bool
    value: float | None
    required: float | None
    reason: str


@dataclass(frozen=True)
class Verdict:
    """Every criterion's verdict, in order; the gate passes when each does."""

    criteria: tuple[Criterion, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria)

    @property
    def reasons(self) -> list[str]:
        """The failed criteria's reasons (the registry entry's ``gate_reasons``)."""
        return [c.reason for c in self.criteria if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        """``{"passed": ..., "criteria": [...]}``: the registry entry's ``gate``."""
        return {"passed": self.passed, "criteria": [asdict(c) for c in self.criteria]}


#: What a model may be tuned for (its ``threshold_metric``), and so judged on.
OBJECTIVES: tuple[str, ...] = ("f1", "profit")
_BASELINE_DECISIONS = {"always_0": "contact nobody", "always_1": "contact everyone",
                       "prior": "contact a random share at the churn rate"}


def check(settings: Gate, metrics: Mapping[str, Any], baselines: Mapping[str, Mapping[str, float]],
          current: Mapping[str, Any] | None = None, *, objective: str = "f1") -> Verdict:
    """Judge a model's test scores against the gate's settings, on the objective it was tuned for.

    Parameters
    ----------
    settings : Gate
        The run's settings (:func:`settings`).
    metrics : mapping
        The model's test metrics at its stored threshold (:func:`churn_lib.learn.metrics.compute_metrics`):
        ``f1``, ``threshold``, ``brier`` and ``lift_top_decile`` are read, and ``profit_per_1000`` for a
        profit-tuned model.
    baselines : mapping
        Each trivial baseline's ``f1`` and ``brier`` by name (:func:`churn_lib.learn.metrics.baselines`), and
        its ``profit_per_1000`` for a profit-tuned model.
    current : mapping, optional
        The current model re-scored on the same rows: ``version``, the ``objective`` it was tuned for, its
        ``threshold``, ``f1``, ``roc_auc`` and (for a profit-tuned model, at its costs) ``profit_per_1000``;
        the new model's on those rows as ``f1_new``, ``roc_auc_new`` and ``profit_per_1000_new``; and a
        ``note`` saying which rows. Or ``version`` and ``error`` when it could not be; None when no model is
        current.
    objective : {"f1", "profit"}, default="f1"
        What the model's threshold was tuned for (its ``threshold_metric``).

    Returns
    -------
    Verdict

    Examples
    --------
    >>> m = {"f1": 0.7, "threshold": 0.3, "brier": 0.2, "lift_top_decile": 1.5}
    >>> check(Gate(min_f1=0.8), m, {"always_1": {"f1": 0.6}}).reasons
    ['F1 0.7000 at threshold 0.30 < min_f1 0.8000']
    >>> m = {**m, "profit_per_1000": 41_000.0}
    >>> check(Gate(min_f1=0.8), m, {"always_1": {"f1": 0.6, "profit_per_1000": 45_000.0}}, objective="profit").reasons
    ['profit per 1,000 41,000.0 vs always_1 baseline (contact everyone) 45,000.0 (-4,000.0)']
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    profit = objective == "profit"
    criteria = [_min_f1(settings, metrics, profit=profit)]
    criteria += [_beats_profit(name, b, metrics) if profit else _beats(name, b, settings, metrics)
                 for name, b in baselines.items()]
    if settings.min_lift_top_decile is not None:
        criteria.append(_min_lift(settings.min_lift_top_decile, metrics.get("lift_top_decile")))
    criteria.append(_no_regression_profit(settings, metrics["profit_per_1000"], current) if profit
                    else _no_regression(settings, metrics["f1"], current))
    criteria.append(_no_regression_auc(settings, metrics.get("roc_auc"), current))
    return Verdict(tuple(criteria))


def _min_f1(settings: Gate, metrics: Mapping[str, Any], *, profit: bool = False) -> Criterion:
    f1, floor = metrics["f1"], settings.min_f1
    shown = f"F1 {f1:.4f} at threshold {metrics['threshold']:.2f}"
    if profit:
        which = "no F1 floor applies" if floor is None else f"min_f1 {floor:.4f} applies to F1-tuned models only"
        return Criterion("min_f1", True, f1, None, f"{shown}, not judged: the model was tuned for profit, so it is "
                                                   f"judged on profit per 1,000 and ROC AUC ({which})")
    if floor is None:
        return Criterion("min_f1", True, f1, None, f"{shown}; no absolute floor set (gate.min_f1 in dataset.yaml, "
                                                   "or the train parameter min_f1)")
    return Criterion("min_f1", f1 >= floor, f1, floor, f"{shown} {'>=' if f1 >= floor else '<'} min_f1 {floor:.4f}")


def _beats(name: str, baseline: Mapping[str, float], settings: Gate, metrics: Mapping[str, Any]) -> Criterion:
    f1 = metrics["f1"]
    need = baseline["f1"] + settings.baseline_margin
    ok = f1 > baseline["f1"] and f1 >= need
    reason = f"F1 {f1:.4f} vs {name} baseline {baseline['f1']:.4f} (margin {f1 - baseline['f1']:+.4f})"
    return _brier(name, baseline, metrics, Criterion(f"beats_{name}", ok, f1, need, reason))


def _beats_profit(name: str, baseline: Mapping[str, float], metrics: Mapping[str, Any]) -> Criterion:
    mine, theirs = metrics["profit_per_1000"], baseline["profit_per_1000"]
    decision = f" ({_BASELINE_DECISIONS[name]})" if name in _BASELINE_DECISIONS else ""
    reason = f"profit per 1,000 {mine:,.1f} vs {name} baseline{decision} {theirs:,.1f} ({mine - theirs:+,.1f})"
    return _brier(name, baseline, metrics, Criterion(f"beats_{name}", mine > theirs, mine, theirs, reason))


def _brier(name: str, baseline: Mapping[str, float], metrics: Mapping[str, Any], crit: Criterion) -> Criterion:
    """The prior's criterion also asks for a lower Brier score (threshold-free: whatever the objective)."""
    if name != "prior":
        return crit
    ok = crit.passed and metrics["brier"] < baseline["brier"]
    return dataclasses.replace(crit, passed=ok,
                               reason=f"{crit.reason}; Brier {metrics['brier']:.4f} vs {baseline['brier']:.4f}")


def _min_lift(least: float, lift: float | None) -> Criterion:
    ok = lift is not None and lift >= least
    shown = "n/a" if lift is None else f"{lift:.2f}"
    return Criterion("min_lift_top_decile", ok, lift, least,
                     f"top-decile lift {shown} {'>=' if ok else '<'} min_lift_top_decile {least:.2f}")


def _unjudged(name: str, current: Mapping[str, Any] | None) -> Criterion | None:
    """The criterion passed with its reason when there is nothing to compare with, else None."""
    if current is None:
        return Criterion(name, True, None, None, "no current model to compare with")
    if "error" in current:
        return Criterion(name, True, None, None,
                         f"current model {current['version']} could not be re-scored: {current['error']}")
    return None


def _no_regression(settings: Gate, f1: float, current: Mapping[str, Any] | None) -> Criterion:
    if (skip := _unjudged("no_regression", current)) is not None:
        return skip
    tolerance = settings.regression_tolerance
    need = current["f1"] - tolerance
    mine = current.get("f1_new", f1)
    where = current.get("note") or " on the same test split"
    return Criterion("no_regression", mine >= need, mine, need,
                     f"F1 {mine:.4f} vs current {current['version']} {current['f1']:.4f}{where} "
                     f"(tolerance {tolerance:.4f}){_tuned_otherwise(current, 'f1')}")


def _no_regression_profit(settings: Gate, profit: float, current: Mapping[str, Any] | None) -> Criterion:
    if (skip := _unjudged("no_regression", current)) is not None:
        return skip
    tolerance, theirs = settings.regression_tolerance, current["profit_per_1000"]
    need = theirs - tolerance * abs(theirs)
    mine = current.get("profit_per_1000_new", profit)
    where = current.get("note") or " on the same test split"
    at = f" at its threshold {current['threshold']:.2f}" if current.get("threshold") is not None else ""
    return Criterion("no_regression", mine >= need, mine, need,
                     f"profit per 1,000 {mine:,.1f} vs current {current['version']} {theirs:,.1f}{at}, same costs "
                     f"(this model's){where} (tolerance {tolerance * 100:g}% of the current model's profit)"
                     f"{_tuned_otherwise(current, 'profit')}")


def _tuned_otherwise(current: Mapping[str, Any], objective: str) -> str:
    """A note when the current model was tuned for another objective: the new model's objective judges both."""
    theirs = current.get("objective", objective)
    return "" if theirs == objective else f"; {current['version']} was tuned for {theirs}, judged here on {objective}"


def _no_regression_auc(settings: Gate, auc: float | None, current: Mapping[str, Any] | None) -> Criterion:
    if (skip := _unjudged("no_regression_auc", current)) is not None:
        return skip
    tolerance = settings.regression_tolerance if settings.auc_tolerance is None else settings.auc_tolerance
    mine, theirs = current.get("roc_auc_new", auc), current.get("roc_auc")
    where = current.get("note") or " on the same test split"
    if mine is None or theirs is None:
        return Criterion("no_regression_auc", True, mine, None,
                         f"ROC AUC not measured{where}: it needs churners and stayers among the rows")
    need = theirs - tolerance
    return Criterion("no_regression_auc", mine >= need, mine, need,
                     f"ROC AUC {mine:.4f} vs current {current['version']} {theirs:.4f}{where} "
                     f"(tolerance {tolerance:.4f})")
