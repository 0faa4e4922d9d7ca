"""Plots for the stage notebooks and reports (matplotlib).

Each function takes a result (a frame, a TrainResult, an Evaluation) and an
optional ``ax`` (or ``axes``), draws, and returns what it drew on, in the
manner of scikit-learn's display objects. Plots of large data are drawn from
aggregates (histograms, rates), so a million rows plot as fast as a thousand.
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import contract as _contract


def _axes(n: int, axes: Sequence[Any] | None, *, width: float = 4.0, height: float = 3.0):
    if axes is not None:
        return list(np.ravel(axes))
    _, new = plt.subplots(1, n, figsize=(width * n, height), layout="constrained")
    return list(np.ravel(new))


def feature_distributions(df: pd.DataFrame, contract: _contract.Contract | None = None, axes: Sequence[Any] | None = None,
                          *, max_plots: int = 24):
    """A histogram per numeric feature and a bar chart per categorical or boolean one (the first ``max_plots``)."""
    c = contract or _contract.lab()
    features = list(c.features)[:max_plots]
    if axes is None:
        cols = min(len(features), 5)
        rows = -(-len(features) // cols)
        _, grid = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), layout="constrained", squeeze=False)
        axes = list(np.ravel(grid))
        for ax in axes[len(features):]:
            ax.set_axis_off()
    else:
        axes = list(np.ravel(axes))
    for ax, f in zip(axes, features):
        if f.type in (_contract.INTEGER, _contract.FLOAT):
            values = pd.to_numeric(df[f.name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            values = values[np.isfinite(values)]
            counts, edges = np.histogram(values, bins=30)
            ax.stairs(counts, edges, fill=True, alpha=0.7)
        else:
            counts = df[f.name].astype(object).where(df[f.name].notna(), "(missing)").value_counts().head(15)
            ax.bar([str(i)[:12] for i in counts.index], counts.to_numpy(), alpha=0.7)
            ax.tick_params(axis="x", labelrotation=45 if len(counts) > 4 else 0, labelsize=8)
        ax.set_title(f.name, fontsize=10)
    return axes


def churn_rate_by(df: pd.DataFrame, contract: _contract.Contract | None = None, columns: Sequence[str] | None = None,
                  axes=None, *, max_plots: int = 12):
    """Churn rate per category of each categorical or boolean feature, with the overall rate as a line.

    ``df`` holds the target as 0/1 (processed data) or as the contract's labels (raw data).
    """
    from .data import target_rates

    c = contract or _contract.lab()
    columns = list(columns) if columns is not None else [f.name for f in c.features if not f.is_numeric
                                                         or f.type == _contract.BOOLEAN][:max_plots]
    if not columns:
        return []
    axes = _axes(len(columns), axes)
    for ax, col in zip(axes, columns):
        rates = target_rates(df, col, c)
        overall = float((rates["churn_rate"] * rates["rows"]).sum() / rates["rows"].sum())
        rates = rates.sort_values("rows", ascending=False).head(15)
        ax.bar([str(i)[:12] for i in rates.index], rates["churn_rate"].to_numpy(), alpha=0.7)
        ax.axhline(overall, color="k", lw=1, ls="--", label=f"overall {overall:.1%}")
        ax.set_ylim(0, 1)
        ax.set_title(f"churn rate by {col}", fontsize=10)
        ax.tick_params(axis="x", labelrotation=45 if len(rates) > 4 else 0, labelsize=8)
        ax.legend(loc="lower right", fontsize=8)
    return axes


def confusion_matrix(metrics: dict[str, Any], ax=None):
    """The confusion matrix stored in a metrics dict (rows: truth, columns: prediction)."""
    ax = ax or _axes(1, None, width=3.5)[0]
    cm = np.asarray(metrics["confusion_matrix"])
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks([0, 1], ["stay", "churn"])
    ax.set_yticks([0, 1], ["stay", "churn"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"confusion matrix @ {metrics['threshold']:.2f}")
    return ax


def roc_and_pr(y: np.ndarray, proba: np.ndarray, threshold: float, axes=None):
    """ROC and precision-recall curves, with the operating point of ``threshold`` marked."""
    from sklearn.metrics import precision_recall_curve, roc_curve  # sklearn is slow to import; only here

    ax_roc, ax_pr = _axes(2, axes)
    fpr, tpr, thr = roc_curve(y, proba)
    ax_roc.plot(fpr, tpr)
    ax_roc.plot([0, 1], [0, 1], "k--", lw=1)
    i = int(np.argmin(np.abs(thr - threshold)))
    ax_roc.plot(fpr[i], tpr[i], "o", color="C3", label=f"threshold {threshold:.2f}")
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax_roc.legend(loc="lower right")
    prec, rec, thr = precision_recall_curve(y, proba)
    ax_pr.plot(rec, prec)
    ax_pr.axhline(float(np.mean(y)), color="k", ls="--", lw=1, label="prevalence")
    j = int(np.argmin(np.abs(thr - threshold)))
    ax_pr.plot(rec[j], prec[j], "o", color="C3", label=f"threshold {threshold:.2f}")
    ax_pr.set(xlabel="recall", ylabel="precision", title="precision-recall")
    ax_pr.legend(loc="lower left")
    return [ax_roc, ax_pr]


def threshold_curve(curve: pd.DataFrame, threshold: float, ax=None, *, title: str | None = None):
    """F1, precision and recall against the threshold, the chosen one marked."""
    ax = ax or _axes(1, None, width=6)[0]
    for col in ("f1", "precision", "recall"):
        ax.plot(curve["threshold"], curve[col], label=col)
    ax.axvline(threshold, color="C3", ls="--", label=f"chosen {threshold:.2f}")
    ax.set(xlabel="threshold", ylim=(0, 1.02), title=title or "F1 against threshold")
    ax.legend(loc="lower left")
    return ax


def coefficients(pipeline: Any, ax=None):
    """The logistic regression's coefficients per (scaled / one-hot) feature."""
    ax = ax or _axes(1, None, width=6)[0]
    names = [n.split("__", 1)[-1] for n in pipeline[:-1].get_feature_names_out()]
    coef = pipeline[-1].coef_.ravel()
    order = np.argsort(coef)
    ax.barh(np.array(names)[order], coef[order], color=["C3" if c > 0 else "C0" for c in coef[order]])
    ax.axvline(0, color="k", lw=1)
    ax.set_title("coefficients (positive: more churn)")
    return ax


def version_comparison(table: pd.DataFrame, ax=None, *, metrics: Sequence[str] = ("f1", "roc_auc", "accuracy")):
    """Bars of each version's metrics on the same test split; the current one hatched."""
    ax = ax or _axes(1, None, width=max(5, 1.2 * len(table)))[0]
    width = 0.8 / len(metrics)
    x = np.arange(len(table))
    for k, m in enumerate(metrics):
        values = pd.to_numeric(table.get(m), errors="coerce") if m in table else np.full(len(table), np.nan)
        bars = ax.bar(x + k * width, values, width, label=m)
        for bar, current in zip(bars, table["current"]):
            if current:
                bar.set_hatch("//")
    labels = [f"{v}{' *' if c else ''}" for v, c in zip(table["version"], table["current"])]
    ax.set_xticks(x + width * (len(metrics) - 1) / 2, labels)
    ax.set(ylim=(0, 1), title="versions on the same test split (* current)")
    ax.legend(loc="lower right")
    return ax


def drift_feature(result: Any, feature: str, *, version: str | None = None, ax=None):
    """Reference against production proportions of one feature on the reference bins; returns ``ax``.

    ``result`` is a :class:`~churn_lib.drift.DriftResult` (``version`` picks the model) or a ``ModelDrift``.
    """
    from .drift import PREDICTION, DriftResult

    md = result.model(version) if isinstance(result, DriftResult) else result
    fd = md.feature(feature)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(len(fd.bins))
    ax.bar(x - 0.2, fd.reference, 0.4, label=f"reference (n={fd.n_reference})", color="#9aa7b8")
    ax.bar(x + 0.2, fd.production, 0.4, label=f"production (n={fd.n_production})", color="#d9822b")
    ax.set_xticks(x, fd.bins, rotation=45 if len(fd.bins) > 5 else 0, ha="right" if len(fd.bins) > 5 else "center",
                  fontsize=8)
    ax.set_ylabel("share of rows")
    key = PREDICTION if fd.kind == "probability" else fd.feature
    alerts = [s.name for s in md.statistics if s.feature == key and s.alert]
    state = (f"DRIFT ({', '.join(alerts)})" if alerts else "no alert") if md.statistics else md.verdict
    ax.set_title(f"{md.version} · {fd.feature}: {state}", fontsize=10)
    ax.legend(fontsize=8)
    return ax


def drift_features(result: Any, *, version: str | None = None, axes=None):
    """:func:`drift_feature` for every feature and the probability, on a grid; returns the axes array."""
    from .drift import DriftResult

    md = result.model(version) if isinstance(result, DriftResult) else result
    if axes is None:
        n = max(len(md.features), 1)
        _, axes = plt.subplots((n + 2) // 3, 3, figsize=(15, 3.8 * ((n + 2) // 3)), constrained_layout=True,
                               squeeze=False)
    flat = np.asarray(axes).ravel()
    for ax, fd in zip(flat, md.features):
        drift_feature(md, fd.feature, ax=ax)
    for ax in flat[len(md.features):]:
        ax.set_axis_off()
    if not md.features:
        flat[0].text(0.5, 0.5, f"{md.version}: {md.verdict}", ha="center", va="center")
    return axes
