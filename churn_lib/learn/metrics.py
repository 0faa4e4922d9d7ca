"""Metrics of churn scores: F1 and profit against the threshold, gains and lift, the trivial
baselines, and the classification metrics at a threshold (what training, evaluation, sweeps,
plots and the performance check measure).

Pure functions of outcomes ``y`` (0/1) and probabilities ``proba``; scikit-learn is
imported inside the functions that use it (it costs about a second to import).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import InvalidParameter

#: Thresholds scanned for F1, as in the lab: 0.10 .. 0.90 by 0.01.
THRESHOLD_GRID = np.round(np.arange(10, 91) / 100, 2)
#: Thresholds scanned for profit: 0.005 .. 0.995 by 0.005 (cheap offers want thresholds below 0.10).
PROFIT_GRID = np.round(np.arange(1, 200) / 200, 3)
#: What the decision threshold may maximise.
THRESHOLD_METRICS: tuple[str, ...] = ("f1", "profit")


@dataclass(frozen=True)
class Costs:
    """What a decision is worth: a churner kept is worth ``retention_value``, an offer costs ``offer_cost``,
    and a contacted churner stays with probability ``offer_success``."""

    retention_value: float
    offer_cost: float
    offer_success: float = 1.0

    def profit(self, tp: np.ndarray, fp: np.ndarray) -> np.ndarray:
        """Expected profit of contacting ``tp`` churners and ``fp`` stayers (the rest: nothing spent, nothing kept)."""
        return tp * (self.offer_success * self.retention_value - self.offer_cost) - fp * self.offer_cost


def pick_threshold(y: np.ndarray, proba: np.ndarray, metric: str = "f1",
                   costs: Costs | None = None) -> tuple[float, pd.DataFrame, float]:
    """The threshold that maximises ``metric`` on ``(y, proba)``: ``(threshold, curve, best value)``.

    ``f1`` scans :data:`THRESHOLD_GRID` (the lab's); ``profit`` scans
    :data:`PROFIT_GRID` with ``costs`` (:func:`profit_curve`). Ties go to the lowest threshold.
    """
    if metric == "profit":
        if costs is None:
            raise InvalidParameter("threshold_metric=profit needs retention_value and offer_cost",
                                   name="threshold_metric")
        curve = profit_curve(y, proba, costs)
        column = "profit_per_1000"
    else:
        curve = threshold_curve(y, proba)
        column = "f1"
    values = curve[column].to_numpy()
    best = int(np.argmax(values))
    return float(curve["threshold"].iloc[best]), curve, float(values[best])


def _counts(y: np.ndarray, proba: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """True and false positives at each threshold of ``grid`` (``proba >= t``), and the class sizes.

    Two sorted arrays and ``searchsorted`` (O(n log n) once), not one pass per
    threshold: a million rows take milliseconds.
    """
    y = np.asarray(y).astype(bool)
    proba = np.asarray(proba, dtype=float)
    pos, neg = np.sort(proba[y]), np.sort(proba[~y])
    tp = len(pos) - np.searchsorted(pos, grid, side="left")
    fp = len(neg) - np.searchsorted(neg, grid, side="left")
    return tp, fp, len(pos), len(neg)


def threshold_curve(y: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """F1, precision and recall at each threshold of :data:`THRESHOLD_GRID`.

    Values equal sklearn's ``f1_score`` etc. with ``zero_division=0``.
    """
    tp, fp, n_pos, _ = _counts(y, proba, THRESHOLD_GRID)
    fn = n_pos - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        recall = np.where(n_pos > 0, tp / max(n_pos, 1), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    return pd.DataFrame({"threshold": THRESHOLD_GRID.astype(float), "f1": f1, "precision": precision,
                         "recall": recall})


def profit_curve(y: np.ndarray, proba: np.ndarray, costs: Costs) -> pd.DataFrame:
    """Expected profit per 1,000 customers of contacting every one scored at or above each threshold.

    Columns: ``threshold`` (:data:`PROFIT_GRID`), ``profit_per_1000``,
    ``contacted`` (share of customers), ``recall``.
    """
    tp, fp, n_pos, n_neg = _counts(y, proba, PROFIT_GRID)
    n = max(n_pos + n_neg, 1)
    return pd.DataFrame({"threshold": PROFIT_GRID.astype(float),
                         "profit_per_1000": costs.profit(tp, fp) * 1000.0 / n,
                         "contacted": (tp + fp) / n, "recall": tp / max(n_pos, 1)})


def gains(y: np.ndarray, proba: np.ndarray, *, bins: int = 10) -> pd.DataFrame:
    """Cumulative gains and lift by riskiest share of customers (deciles by default).

    ``share``: the riskiest ``share`` of customers (sorted by probability);
    ``gain``: the share of all churners among them; ``lift``: their churn
    rate over the overall churn rate.
    """
    y = np.asarray(y).astype(float)
    order = np.argsort(-np.asarray(proba, dtype=float), kind="stable")
    hits = np.cumsum(y[order])
    n, total = len(y), max(float(y.sum()), 1.0)
    share = np.arange(1, bins + 1) / bins
    take = np.maximum(np.ceil(share * n).astype(int), 1)
    gain = hits[take - 1] / total
    return pd.DataFrame({"share": share, "gain": gain, "lift": gain / share})


@dataclass(frozen=True)
class Gains:
    """What :func:`churn_lib.plots.gains_and_lift` draws: the cumulative gains in 50 steps, the lift per
    decile, and, at ``threshold``, the share of customers ``contacted``."""

    curve: pd.DataFrame
    deciles: pd.DataFrame
    threshold: float | None = None
    contacted: float | None = None


def gains_at(y: np.ndarray, proba: np.ndarray, threshold: float | None = None) -> Gains:
    """The gains and lift of ``proba`` against the outcomes ``y`` (and the share contacted at ``threshold``)."""
    contacted = None if threshold is None else float(np.mean(np.asarray(proba) >= threshold))
    return Gains(gains(y, proba, bins=50), gains(y, proba), threshold, contacted)


def lift_top_decile(y: np.ndarray, proba: np.ndarray) -> float | None:
    """The churn rate of the riskiest tenth of customers over the overall rate (None without churners)."""
    y = np.asarray(y)
    if len(y) == 0 or y.sum() == 0:
        return None
    return float(gains(y, proba)["lift"].iloc[0])


def compute_metrics(y: np.ndarray, proba: np.ndarray, threshold: float,
                    costs: Costs | None = None) -> dict[str, Any]:
    """Classification metrics at ``threshold`` plus threshold-free ones (and the profit, given ``costs``)."""
    from sklearn.metrics import (accuracy_score, average_precision_score, brier_score_loss, confusion_matrix,
                                 f1_score, precision_score, recall_score, roc_auc_score)

    y = np.asarray(y)
    pred = (proba >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "threshold": round(float(threshold), 4),
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, proba)) if both else None,
        "average_precision": float(average_precision_score(y, proba)) if both else None,
        "brier": float(brier_score_loss(y, proba)),
        "confusion_matrix": confusion_matrix(y, pred, labels=[0, 1]).tolist(),
        "positive_rate": float(pred.mean()),
        "lift_top_decile": lift_top_decile(y, proba),
        "profit_per_1000": None if costs is None else float(
            costs.profit(np.sum(pred & (y == 1)), np.sum(pred & (y == 0))) * 1000.0 / max(len(y), 1)),
    }


def baselines(y_train: np.ndarray, y_test: np.ndarray, *, seed: int = 42,
              costs: Costs | None = None) -> dict[str, dict[str, float]]:
    """Trivial baselines on the test split: always 0, always 1, and the class prior.

    The prior baseline scores every row with the training churn rate (for the
    Brier score) and labels rows at random at that rate (for F1). Given
    ``costs``, each also has its expected ``profit_per_1000``: always 0 is
    "contact nobody" (0), always 1 "contact everyone", the prior "contact a
    random share at the churn rate".
    """
    from sklearn.metrics import accuracy_score, brier_score_loss, f1_score

    y_test = np.asarray(y_test)
    prior = float(np.mean(y_train))
    rng = np.random.default_rng(seed)
    out = {}
    for name, pred, proba in (
        ("always_0", np.zeros_like(y_test), np.zeros(len(y_test))),
        ("always_1", np.ones_like(y_test), np.ones(len(y_test))),
        ("prior", (rng.random(len(y_test)) < prior).astype(int), np.full(len(y_test), prior)),
    ):
        out[name] = {
            "f1": float(f1_score(y_test, pred, zero_division=0)),
            "accuracy": float(accuracy_score(y_test, pred)),
            "brier": float(brier_score_loss(y_test, proba)),
        }
        if costs is not None:
            hit = pred.astype(bool)
            out[name]["profit_per_1000"] = float(costs.profit(np.sum(hit & (y_test == 1)), np.sum(hit & (y_test == 0)))
                                                 * 1000.0 / max(len(y_test), 1))
    return out


def metrics_frame(entry: dict[str, Any]) -> pd.DataFrame:
    """Test metrics of an entry at its threshold and at 0.5, side by side with the baselines."""
    keys = ["accuracy", "precision", "recall", "f1", "roc_auc", "average_precision", "brier", "lift_top_decile",
            "profit_per_1000"]
    cols = {f"model @ {entry['threshold']:.2f}": entry["metrics"]}
    if "metrics_at_0_5" in entry:
        cols["model @ 0.50"] = entry["metrics_at_0_5"]
    for name, b in entry.get("baselines", {}).items():
        cols[f"baseline {name}"] = b
    return pd.DataFrame({k: [v.get(m) for m in keys] for k, v in cols.items()}, index=keys)


