"""Training: the family's model on the contract's split, an honest decision threshold, the
test metrics (:mod:`churn_lib.learn.metrics`), the quality gate's verdict
(:mod:`churn_lib.learn.gate`), and the registry entry.

The decision threshold is chosen (for F1 or for profit) on out-of-fold
predictions of the training split, never on the test split, and is stored with
the model: the test split only reports. The gate then judges the test scores,
on the objective the threshold was tuned for plus ROC AUC, against the
contract's ``gate:`` settings, each overridden by the train parameter of the
same name (``min_f1``, ``baseline_margin``, ``regression_tolerance``,
``min_lift_top_decile``, ``auc_tolerance``); ``no_regression``'s evidence is
the current model re-scored here on the same unseen rows at its own threshold
(its profit priced at the new model's costs).
"""

from __future__ import annotations

import dataclasses
import logging
import platform
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from .. import contract as _contract
from .. import drift, models, registry
from .._io import sha256_file
from ..data import read_csv
from ..exceptions import ChurnError, DataError, InvalidParameter
from ..home import Home
from .._params import Range, check_fields, param
from ..models import calibration as _calibration
from . import gate as _gate
from .metrics import (THRESHOLD_METRICS, Costs, Gains, baselines, compute_metrics, gains_at, metrics_frame,
                      pick_threshold, profit_curve, threshold_curve)

# scikit-learn is imported inside the functions that use it: it costs about a
# second, and every `churn` command (even `churn history`) imports this module
# for its flag defaults.

log = logging.getLogger(__name__)


_AT_LEAST_0 = Range(0)


@dataclass(frozen=True, init=False)
class TrainParams:
    """Parameters of one training run: the common fields plus the chosen family's ``Params``.

    Built from flat names (the notebook's parameters, ``churn train`` flags,
    ``-p``): ``TrainParams(family="lightgbm", num_leaves=7)``. A family's
    hyperparameters are declared once, in its module's ``Params``
    (:mod:`churn_lib.models`); one left unset or None takes the family's
    default, and one of another family is refused by name. ``hyperparameters``
    may also be given whole (a ``Params`` or a mapping). ``model`` is the old
    name of ``family``, accepted for one release with a deprecation message.

    The gate's settings (``min_f1`` and the rest, named as in ``dataset.yaml``'s
    ``gate:``, declared on :class:`churn_lib.contract.Gate`) default to None:
    the contract's values (the lab's F1 floor 0.65, margin 0.0), see
    :meth:`gate_settings`. ``gate_f1`` is the old name of ``min_f1``, accepted
    for one release like ``model``.

    Raises
    ------
    InvalidParameter
        An unknown name, a hyperparameter of another family, or a value its constraints refuse.
    """

    seed: int = param(42, "split and model seed", range=Range(0))
    family: str = param("logreg", "model family: logreg (the lab's logistic regression) or lightgbm",
                        choices=models.names, was="model")
    calibration: str = param("none", "probability calibration fitted on out-of-fold predictions: none, sigmoid "
                                     "or isotonic", choices=_calibration.METHODS)
    threshold_metric: str = param("f1", "what the threshold maximises on out-of-fold predictions: f1 or profit",
                                  choices=THRESHOLD_METRICS)
    retention_value: float | None = param(None, "profit: value of keeping a customer who would have churned",
                                          range=_AT_LEAST_0)
    offer_cost: float | None = param(None, "profit: cost of one retention offer", range=_AT_LEAST_0)
    offer_success: float = param(1.0, "profit: share of contacted churners who stay", range=Range(0, 1, open_low=True))
    test_size: float = param(0.25, "share of rows held out for the test split",
                             range=Range(0, 1, open_low=True, open_high=True))
    cv_folds: int = param(5, "folds of the out-of-fold predictions that choose the threshold", range=Range(2))
    # The gate's settings: overrides of the contract's gate:, each declared once, on contract.Gate.
    min_f1: float | None = _gate.override("min_f1", was="gate_f1")
    baseline_margin: float | None = _gate.override("baseline_margin")
    regression_tolerance: float | None = _gate.override("regression_tolerance")
    min_lift_top_decile: float | None = _gate.override("min_lift_top_decile")
    auc_tolerance: float | None = _gate.override("auc_tolerance")
    hyperparameters: Any = field(default=None, metadata={"stage": False, "help": "the family's Params"})

    def __init__(self, *, hyperparameters: Any = None, **values: Any) -> None:
        own = {f.name: f for f in dataclasses.fields(self) if f.name != "hyperparameters"}
        for old, new in _aliases().items():
            if values.get(old) is not None:
                log.warning("the train parameter %s=%r is deprecated and will be removed in the next release: "
                            "call it %s", old, values[old], new)
                if values.get(new, values[old]) != values[old]:
                    raise InvalidParameter(f"{old} (the old name of {new}) and {new} disagree", name=new)
                values[new] = values[old]
            values.pop(old, None)
        for name, f in own.items():
            object.__setattr__(self, name, values.pop(name, f.default))
        fam = models.family(self.family)  # an unknown family is refused here, naming the known ones
        given = dict(values)
        if dataclasses.is_dataclass(hyperparameters):
            given = {**dataclasses.asdict(hyperparameters), **given}
        elif hyperparameters is not None:
            given = {**dict(hyperparameters), **given}
        object.__setattr__(self, "hyperparameters", fam.Params(**self._own_hyperparameters(given)))
        check_fields(self.hyperparameters)
        check_fields(self)
        if self.threshold_metric == "profit":
            absent = [n for n in ("retention_value", "offer_cost") if getattr(self, n) is None]
            if absent:
                raise InvalidParameter(f"threshold_metric=profit needs {' and '.join(absent)} (the value of a "
                                       "churner kept and the cost of one offer, both >= 0)", name=absent[0])

    def _own_hyperparameters(self, given: dict[str, Any]) -> dict[str, Any]:
        """The hyperparameters set in ``given`` that are this family's; None values are unset.

        Raises
        ------
        InvalidParameter
            A name no family declares, or another family's hyperparameter set to a value.
        """
        mine = [f.name for f in dataclasses.fields(models.params(self.family))]
        out = {}
        for name, value in given.items():
            owner = self.family if name in mine else models.owner_of(name)
            if owner is None:
                raise InvalidParameter(f"{name} is not a train parameter; family={self.family} takes "
                                       f"{', '.join(mine) or 'no hyperparameter'}", name=name)
            if value is None:
                continue
            if owner != self.family:
                raise InvalidParameter(f"{name} is a parameter of family={owner}, not of family={self.family}; "
                                       f"family={self.family} takes {', '.join(mine) or 'no hyperparameter'}",
                                       name=name)
            out[name] = value
        return out

    @classmethod
    def stage_fields(cls) -> tuple[dataclasses.Field, ...]:
        """The train stage's parameters, in notebook order (the stage table derives the ``churn train``
        flags, the notebook's parameters cell and ``churn run``'s checks from them): these fields with
        every family's hyperparameters after ``family`` (:func:`churn_lib.models.fields`). An old name
        (a field's ``was``: ``model`` of ``family``, ``gate_f1`` of ``min_f1``) is accepted by the stage
        table and the flags for one release."""
        own = [f for f in dataclasses.fields(cls) if f.name != "hyperparameters"]
        at = [f.name for f in own].index("family") + 1
        return (*own[:at], *models.fields(), *own[at:])

    @property
    def family_params(self) -> dict[str, Any]:
        """The family's hyperparameters: its defaults, overridden by those set here (``model_params``)."""
        return dataclasses.asdict(self.hyperparameters)

    def to_dict(self) -> dict[str, Any]:
        """Every parameter by its flat name (the registry entry's ``params``)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "hyperparameters"}
        at = list(out).index("family") + 1
        items = list(out.items())
        return dict(items[:at] + list(self.family_params.items()) + items[at:])

    def changed(self) -> dict[str, Any]:
        """The parameters that differ from the defaults (the family's, for its hyperparameters)."""
        default = TrainParams(family=self.family).to_dict() | {"family": TrainParams().family}
        return {k: v for k, v in self.to_dict().items() if default.get(k) != v}

    @property
    def costs(self) -> Costs | None:
        """The profit's costs when both are set (else None: the profit is not measured)."""
        if self.retention_value is None or self.offer_cost is None:
            return None
        return Costs(float(self.retention_value), float(self.offer_cost), float(self.offer_success))

    def gate_settings(self, contract: _contract.Contract) -> _contract.Gate:
        """The gate's settings of this run: the contract's ``gate:``, each overridden by this run's value when set."""
        return _gate.settings(contract.gate, self)

    def resolved(self, contract: _contract.Contract) -> "TrainParams":
        """These parameters with the gate settings left at None taken from ``contract`` (what the entry records)."""
        return replace(self, **asdict(self.gate_settings(contract)))


def _aliases() -> dict[str, str]:
    """Old names of train parameters, kept one release: old -> new (the declarations' ``was``)."""
    return {f.metadata["was"]: f.name for f in dataclasses.fields(TrainParams) if f.metadata.get("was")}


@dataclass
class TrainResult:
    """What a training run produced (the registered entry plus the evaluation data)."""

    entry: dict[str, Any]
    promoted: bool
    y_test: np.ndarray = field(repr=False)
    proba_test: np.ndarray = field(repr=False)
    threshold_curve: pd.DataFrame = field(repr=False)
    model: Any = field(repr=False)
    y_train: np.ndarray = field(default=None, repr=False)
    proba_oof: np.ndarray = field(default=None, repr=False)
    profit_curve: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def pipeline(self) -> Any:
        """The fitted model (the name the lab's notebooks use)."""
        return self.model

    @property
    def version(self) -> str:
        return self.entry["version"]

    @property
    def passed_gate(self) -> bool:
        return self.entry["passed_gate"]

    def summary(self) -> str:
        """One sentence: the version, the gate's verdict and what happened to the model."""
        failed = [c["name"] for c in self.entry["gate"]["criteria"] if not c["passed"]]
        verdict = "passed the gate" if not failed else f"was refused by the gate ({', '.join(failed)})"
        if self.entry.get("pending"):
            fate = "staged; it is registered when every stage of this run has succeeded"
        elif self.promoted:
            fate = "registered and now current"
        else:
            fate = "registered, not current"
        m = self.entry["metrics"]
        auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"
        profit = ("" if m.get("profit_per_1000") is None
                  else f", expected profit {m['profit_per_1000']:,.0f} per 1,000 customers")
        return (f"{self.version} ({self.entry.get('model_family', 'logreg')}) {verdict}: test F1 {m['f1']:.4f} at "
                f"threshold {m['threshold']:.2f}, ROC AUC {auc}{profit}; {fate}.")

    def gains(self) -> Gains:
        """Gains and lift on the test split, the stored threshold marked (:func:`churn_lib.plots.gains_and_lift`)."""
        return gains_at(self.y_test, self.proba_test, self.entry["threshold"])

    def gate_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.entry["gate"]["criteria"])

    def metrics_frame(self) -> pd.DataFrame:
        return metrics_frame(self.entry)


def split(df: pd.DataFrame, contract: _contract.Contract | None = None, *, test_size: float = 0.25,
          seed: int = 42):
    """The lab's stratified split of a processed frame: returns ``X_train, X_test, y_train, y_test``."""
    from sklearn.model_selection import train_test_split

    c = contract or _contract.lab()
    X = df[list(c.feature_names)]
    y = df[c.target.column]
    return train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed)


def _check_classes(y: pd.Series, *, test_size: float, cv_folds: int, path: str) -> None:
    """Refuse data whose rarer class cannot fill the split and the threshold's cross-validation."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=2)
    rare = int(counts.min())
    need = max(2, int(np.ceil(cv_folds / (1 - test_size))) + 1)
    if rare < need:
        which = "churned" if counts[1] < counts[0] else "staying"
        raise DataError(f"{path} has only {rare} {which} customer(s); the test split and the {cv_folds}-fold "
                        f"cross-validation that chooses the threshold need at least {need} of each class "
                        "(more data, or a smaller cv_folds)", path=path)


def out_of_fold(model: Any, X: pd.DataFrame, y: pd.Series, *, seed: int = 42, cv_folds: int = 5) -> np.ndarray:
    """Churn probabilities of the training rows, each predicted by a model fitted without its fold."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    cv = StratifiedKFold(cv_folds, shuffle=True, random_state=seed)
    return cross_val_predict(clone(model), X, y, cv=cv, method="predict_proba")[:, 1]


def _rescore_current(home: Home, frame: pd.DataFrame, X_test: pd.DataFrame, y_test: pd.Series, proba: np.ndarray,
                     threshold: float, data_sha: str, contract: _contract.Contract,
                     costs: Costs | None = None) -> dict[str, Any] | None:
    """The current model and the new one on the same unseen rows (``no_regression``'s and
    ``no_regression_auc``'s evidence): F1 and ROC AUC, and the profit at the new model's ``costs``
    when set, each model deciding at its own threshold.

    When the current model was trained on the same data file with another
    split, the rows of this test split that it trained on are left out, so
    neither model is scored on rows it has seen. On other data that cannot be
    known: both are scored on this test split, and the reason says so.
    """
    from .. import scoring

    entry = registry.current_entry(home=home)
    if entry is None:
        return None
    try:
        scorer = scoring.load(entry["version"], home=home, fast=False)
    except ChurnError as exc:
        return {"version": entry["version"], "error": str(exc)}
    absent = [f for f in scorer.contract.feature_names if f not in X_test.columns]
    if absent:
        return {"version": entry["version"], "error": f"it was trained on other columns ({', '.join(absent[:5])} "
                                                      "are not in this data)"}
    keep = np.ones(len(X_test), dtype=bool)
    note = ""
    params = entry.get("params", {})
    if entry.get("data_sha256") == data_sha:
        seen = split(frame, contract, test_size=params.get("test_size", 0.25), seed=entry.get("seed", 42))[0].index
        keep = ~X_test.index.isin(seen)
        if keep.sum() < 30 or len(np.unique(np.asarray(y_test)[keep])) < 2:
            return {"version": entry["version"], "error": f"only {int(keep.sum())} test rows are unseen by it"}
        note = f" on the {int(keep.sum())} test rows neither model trained on"
    else:
        note = " on this test split (it was trained on other data, possibly on some of these rows)"
    y = np.asarray(y_test)[keep]
    current = compute_metrics(y, scorer.predict_proba(X_test[keep]), entry.get("threshold", 0.5), costs)
    new = compute_metrics(y, proba[keep], threshold, costs)
    return {"version": entry["version"], "threshold": current["threshold"], "rows": int(keep.sum()), "note": note,
            "objective": entry.get("threshold_metric", "f1"),
            **{f"{name}{suffix}": m[name] for name in ("f1", "roc_auc", "profit_per_1000")
               for suffix, m in (("", current), ("_new", new))}}


def library_versions(*, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of the libraries a model depends on (plus ``extra``), without importing them."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("numpy", "pandas", "scikit-learn", "joblib", *extra):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def train(*, home: Home | str | None = None, version: str | None = None,
          params: TrainParams | None = None, register: bool = True) -> TrainResult:
    """Train on ``data/processed.csv``, gate, and register the model.

    The model is always registered; it becomes current only when it passes
    the gate (see :func:`churn_lib.registry.register`).

    Parameters
    ----------
    home : Home or path, optional
    version : str, optional
        A unique label; default the next ``vN``.
    params : TrainParams, optional
    register : bool, default=True
        False stages the model as a candidate instead (``version`` required);
        the notebook runner registers it only once every stage of the run
        succeeded (:func:`churn_lib.registry.register_candidate`), so a failed
        run leaves the registry unchanged.

    Returns
    -------
    TrainResult
    """
    home = Home.resolve(home)
    contract = _contract.load(home)
    given = params or TrainParams()
    params = given.resolved(contract)
    if version is not None:
        registry.validate_label(version)
    elif not register:
        raise InvalidParameter("a version label is needed to stage a candidate", name="version")
    df, data_sha = _read_processed(home, contract, params)
    X_train, X_test, y_train, y_test = split(df, contract, test_size=params.test_size, seed=params.seed)
    fit = _fit(contract, params, X_train, y_train)
    proba = fit.model.predict_proba(X_test)[:, 1]
    scores = _Scores(metrics=compute_metrics(y_test, proba, fit.threshold, params.costs),
                     metrics_05=compute_metrics(y_test, proba, 0.5, params.costs),
                     baselines=baselines(y_train, y_test, seed=params.seed, costs=params.costs),
                     n_train=len(y_train), n_test=len(y_test))
    current = _rescore_current(home, df, X_test, y_test, proba, fit.threshold, data_sha, contract, params.costs)
    verdict = _gate.check(params.gate_settings(contract), scores.metrics, scores.baselines, current,
                          objective=params.threshold_metric)
    entry = _entry(home, params, fit, scores, verdict, changed=given.changed(), data_sha=data_sha,
                   contract=contract)
    profile = drift.build_profile(X_train, proba, threshold=fit.threshold, contract=contract).to_dict()
    result = dict(y_test=np.asarray(y_test), proba_test=proba, threshold_curve=fit.f1_curve, model=fit.model,
                  y_train=np.asarray(y_train), proba_oof=fit.oof, profit_curve=fit.gains_curve)
    if not register:
        registry.stage_candidate(version, home=home, model=fit.model, fields=entry, profile=profile,
                                 contract=contract)
        log.info("staged candidate %s (gate %s)", version, "passed" if verdict.passed else "refused")
        return TrainResult(entry={"version": version, **entry, "pending": True}, promoted=False, **result)
    entry, promoted = registry.register(fit.model, entry, home=home, version=version, profile=profile,
                                        contract=contract)
    log.info("registered %s (gate %s)", entry["version"], "passed" if verdict.passed else "refused")
    return TrainResult(entry=entry, promoted=promoted, **result)


def _read_processed(home: Home, contract: _contract.Contract, params: TrainParams) -> tuple[pd.DataFrame, str]:
    """The processed frame and its file's sha256, refused when it lacks a contract column or a class is too rare.

    Raises
    ------
    DataError
    """
    path = home.processed_csv
    df = read_csv(path, contract, columns=(*contract.feature_names, contract.target.column))
    missing = [c for c in (*contract.feature_names, contract.target.column) if c not in df.columns]
    if missing:
        raise DataError(f"{path} lacks columns {missing} of the contract {contract.name!r}: re-run "
                        "`churn prepare`", path=str(path))
    data_sha = sha256_file(path)
    _check_classes(df[contract.target.column], test_size=params.test_size, cv_folds=params.cv_folds, path=str(path))
    return df, data_sha


@dataclass
class _Fit:
    """A fitted model (calibrated when asked) and how its threshold was chosen from out-of-fold predictions."""

    model: Any
    calibrator: Any
    oof: np.ndarray
    threshold: float
    best: float
    f1_curve: pd.DataFrame
    gains_curve: pd.DataFrame | None


def _fit(contract: _contract.Contract, params: TrainParams, X_train: pd.DataFrame, y_train: pd.Series) -> _Fit:
    """Out-of-fold predictions, the calibration fitted on them, the threshold chosen on the calibrated ones,
    then the model fitted on the whole training split."""
    fam = models.family(params.family)
    model = fam.build(contract, seed=params.seed, params=params.hyperparameters)
    oof = out_of_fold(model, X_train, y_train, seed=params.seed, cv_folds=params.cv_folds)
    cal = _calibration.fit(params.calibration, _calibration.logit(oof), y_train)
    if cal is not None:
        oof = cal.proba(_calibration.logit(oof))  # the threshold is chosen on the probabilities served
    costs, y = params.costs, np.asarray(y_train)
    threshold, curve, best = pick_threshold(y, oof, params.threshold_metric, costs)
    f1_curve = curve if params.threshold_metric == "f1" else threshold_curve(y, oof)
    gains_curve = profit_curve(y, oof, costs) if costs is not None else None
    model.fit(X_train, y_train)
    if cal is not None:
        model = _calibration.Calibrated(model, cal)
    return _Fit(model, cal, oof, threshold, best, f1_curve, gains_curve)


@dataclass
class _Scores:
    """The test split's metrics (at the stored threshold and at 0.5), the trivial baselines, the split's sizes."""

    metrics: dict[str, Any]
    metrics_05: dict[str, Any]
    baselines: dict[str, dict[str, float]]
    n_train: int
    n_test: int


def _entry(home: Home, params: TrainParams, fit: _Fit, scores: _Scores, verdict: _gate.Verdict, *,
           changed: dict[str, Any], data_sha: str, contract: _contract.Contract) -> dict[str, Any]:
    """The registry entry's fields of a trained model (``params`` resolved: the gate settings it was judged by)."""
    path = home.processed_csv
    costs = params.costs
    if params.threshold_metric == "profit":
        source = (f"profit-best on out-of-fold predictions of the training split ({params.cv_folds} folds): "
                  f"{fit.best:,.0f} per 1,000 customers")
    else:
        source = f"F1-best on out-of-fold predictions of the training split ({params.cv_folds} folds)"
    oof_profit = None if fit.gains_curve is None else float(fit.gains_curve["profit_per_1000"].iloc[
        int(np.argmin(np.abs(fit.gains_curve["threshold"].to_numpy() - fit.threshold)))])
    return {
        "data_file": str(path.relative_to(home.root)) if path.is_relative_to(home.root) else str(path),
        "seed": params.seed,
        "model_family": params.family,
        "model_params": params.family_params,
        "calibration": None if fit.calibrator is None else fit.calibrator.to_dict(),
        "metrics": scores.metrics,
        "metrics_at_0_5": scores.metrics_05,
        # The lab's entry field (registry/metadata.json, seed_lab.md): it keeps its name, gate_f1, though the
        # setting it records is called min_f1 everywhere else.
        "gate_f1": params.min_f1,
        "passed_gate": verdict.passed,
        "threshold": fit.threshold,
        "threshold_metric": params.threshold_metric,
        "threshold_source": source,
        "threshold_cv_f1": float(fit.f1_curve["f1"].max()),
        "costs": None if costs is None else asdict(costs),
        "expected_profit_per_1000": oof_profit,
        "params": params.to_dict(),
        "params_changed": changed,
        "data_sha256": data_sha,
        "n_train": int(scores.n_train),
        "n_test": int(scores.n_test),
        "baselines": scores.baselines,
        "gate": verdict.to_dict(),
        "gate_reasons": verdict.reasons,
        "libraries": library_versions(extra=tuple(models.family(params.family).LIBRARIES)),
        "contract_name": contract.name,
    }
