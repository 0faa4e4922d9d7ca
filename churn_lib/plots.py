"""Plots for the stage notebooks and reports (matplotlib).

Each function takes data (a frame, a metrics dict, a gains result, a drift
result, a comparison of champion and challenger) and an optional ``ax`` (or ``axes``), draws, and returns what it drew
on, in the manner of scikit-learn's display objects. It draws the data it is
given and computes no domain result: importance comes from the model's family
(:func:`churn_lib.models.importance`), gains from :mod:`churn_lib.learn`, churn
rates from :func:`churn_lib.data.churn_rates`; results are read by their
attributes (no import of the packages that make them). Plots of large data
are drawn from aggregates (histograms, rates), so a million rows plot as fast
as a thousand.

Figures are laid out with fixed margins in inches (:func:`_grid`), not with a
layout engine: matplotlib's constrained layout measured every label again and
cost nearly half of each figure's time, and a report's figures are most of a
notebook run's own time (docs/architecture.md).
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import contract as _contract


def _grid(rows: int, cols: int, *, width: float, height: float, left: float = 0.6, right: float = 0.25,
          bottom: float = 0.55, top: float = 0.4, wspace: float = 0.7, hspace: float = 0.9):
    """A figure of ``rows x cols`` axes, each ``width x height`` inches, with margins and gaps in inches."""
    fig_w = left + right + cols * width + (cols - 1) * wspace
    fig_h = bottom + top + rows * height + (rows - 1) * hspace
    fig, axes = plt.subplots(rows, cols, figsize=(fig_w, fig_h), squeeze=False)
    fig.subplots_adjust(left=left / fig_w, right=1 - right / fig_w, bottom=bottom / fig_h, top=1 - top / fig_h,
                        wspace=wspace / width, hspace=hspace / height)
    return fig, axes


def _axes(n: int, axes: Sequence[Any] | None, *, width: float = 3.6, height: float = 2.6, **margins):
    if axes is not None:
        return list(np.ravel(axes))
    _, new = _grid(1, n, width=width, height=height, **margins)
    return list(np.ravel(new))


def _ticks(ax, nbins: int = 5) -> None:
    """Fewer ticks on numeric axes: enough to read a small chart, and each tick costs drawing time."""
    for axis in ("x", "y"):
        locator = (ax.xaxis if axis == "x" else ax.yaxis).get_major_locator()
        if hasattr(locator, "set_params") and type(locator).__name__ in ("MaxNLocator", "AutoLocator"):
            ax.locator_params(axis=axis, nbins=nbins)


def feature_distributions(df: pd.DataFrame, contract: _contract.Contract | None = None, axes: Sequence[Any] | None = None,
                          *, max_plots: int = 24):
    """A histogram per numeric feature and a bar chart per categorical or boolean one (the first ``max_plots``)."""
    c = contract or _contract.lab()
    features = list(c.features)[:max_plots]
    if axes is None:
        cols = min(len(features), 5)
        rows = -(-len(features) // cols)
        _, grid = _grid(rows, cols, width=2.6, height=2.0, bottom=0.9, hspace=1.3, wspace=0.6)
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
            _ticks(ax, 4)
        else:
            counts = df[f.name].value_counts(dropna=False).head(15)  # counted in C, then labelled
            labels = ["(missing)" if pd.isna(i) else str(i)[:12] for i in counts.index]
            ax.bar(labels, counts.to_numpy(), alpha=0.7)
            ax.tick_params(axis="x", labelrotation=45 if len(counts) > 4 else 0, labelsize=8)
        ax.set_title(f.name, fontsize=10)
    return axes


def churn_rate_by(rates: dict[str, pd.DataFrame], axes=None):
    """Churn rate per category of each column, with the overall rate as a line.

    ``rates``: per column, a frame of ``rows`` and ``churn_rate`` per value
    (:func:`churn_lib.data.churn_rates`); the 15 most frequent values are drawn.
    """
    columns = list(rates)
    if not columns:
        return []
    if axes is None:
        cols = min(len(columns), 4)
        fig, grid = _grid(-(-len(columns) // cols), cols, width=3.0, height=2.2, bottom=0.9, hspace=1.3)
        axes = list(np.ravel(grid))
        for ax in axes[len(columns):]:
            ax.set_axis_off()
    else:
        axes = list(np.ravel(axes))
    for ax, col in zip(axes, columns):
        table = rates[col]
        overall = float((table["churn_rate"] * table["rows"]).sum() / table["rows"].sum())
        table = table.sort_values("rows", ascending=False).head(15)
        ax.bar([str(i)[:12] for i in table.index], table["churn_rate"].to_numpy(), alpha=0.7)
        ax.axhline(overall, color="k", lw=1, ls="--", label=f"overall {overall:.1%}")
        ax.set_ylim(0, 1)
        _ticks(ax, 4)
        ax.set_title(f"churn rate by {col}", fontsize=10)
        ax.tick_params(axis="x", labelrotation=45 if len(table) > 4 else 0, labelsize=8)
        ax.legend(loc="upper right", fontsize=8)
    return axes


def confusion_matrix(metrics: dict[str, Any], ax=None):
    """The confusion matrix stored in a metrics dict (rows: truth, columns: prediction)."""
    ax = ax or _axes(1, None, width=2.6, height=2.6, left=0.8)[0]
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

    ax_roc, ax_pr = _axes(2, axes, width=3.4, height=2.8, left=0.7)
    fpr, tpr, thr = roc_curve(y, proba)
    ax_roc.plot(*_thin(fpr, tpr))
    ax_roc.plot([0, 1], [0, 1], "k--", lw=1)
    i = int(np.argmin(np.abs(thr - threshold)))
    ax_roc.plot(fpr[i], tpr[i], "o", color="C3", label=f"threshold {threshold:.2f}")
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    _ticks(ax_roc)
    ax_roc.legend(loc="lower right")
    prec, rec, thr = precision_recall_curve(y, proba)
    ax_pr.plot(*_thin(rec, prec))
    ax_pr.axhline(float(np.mean(y)), color="k", ls="--", lw=1, label="prevalence")
    j = int(np.argmin(np.abs(thr - threshold)))
    ax_pr.plot(rec[j], prec[j], "o", color="C3", label=f"threshold {threshold:.2f}")
    ax_pr.set(xlabel="recall", ylabel="precision", title="precision-recall")
    _ticks(ax_pr)
    ax_pr.legend(loc="lower left")
    return [ax_roc, ax_pr]


def _thin(x: np.ndarray, y: np.ndarray, points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``points`` vertices of a curve, ends kept: a test split of 250,000 rows gives
    curves of 250,000 points, which draw slowly and look the same thinned."""
    if len(x) <= points:
        return x, y
    keep = np.unique(np.concatenate([np.linspace(0, len(x) - 1, points).astype(int), [len(x) - 1]]))
    return x[keep], y[keep]


def threshold_curve(curve: pd.DataFrame, threshold: float, ax=None, *, title: str | None = None):
    """F1, precision and recall against the threshold, the chosen one marked."""
    ax = ax or _axes(1, None, width=5.5, height=2.8)[0]
    for col in ("f1", "precision", "recall"):
        ax.plot(curve["threshold"], curve[col], label=col)
    ax.axvline(threshold, color="C3", ls="--", label=f"chosen {threshold:.2f}")
    ax.set(xlabel="threshold", ylim=(0, 1.02), title=title or "F1 against threshold")
    _ticks(ax)
    ax.legend(loc="lower left")
    return ax


def importance(values: pd.DataFrame | dict[str, float], ax=None, *, top: int = 20, title: str | None = None,
               xlabel: str | None = None):
    """Horizontal bars of a per-feature value, the ``top`` largest by size.

    ``values``: ``{feature: value}``, or a frame indexed by feature whose first
    column holds the values and whose ``attrs["title"]`` names them (what
    :func:`churn_lib.models.importance` returns: coefficients, gain shares ...).
    Signed values are drawn in order, positive red, negative blue, with the zero line.
    """
    if isinstance(values, pd.DataFrame):
        title = title or values.attrs.get("title") or str(values.columns[0])
        values = dict(zip(values.index.astype(str), values.iloc[:, 0].astype(float)))
    names = np.array(list(values))
    v = np.array([float(values[n]) for n in names])
    keep = np.argsort(-np.abs(v), kind="stable")[:top][::-1]
    signed = bool((v < 0).any())
    if signed:
        keep = keep[np.argsort(v[keep], kind="stable")]
    if ax is None:
        longest = max((len(n) for n in names[keep]), default=4)
        ax = _axes(1, None, width=4.5, height=max(1.6, 0.22 * len(keep)), left=min(0.3 + 0.075 * longest, 3.5))[0]
    ax.barh(names[keep], v[keep], color=["C3" if x > 0 else "C0" for x in v[keep]] if signed else "C0")
    if signed:
        ax.axvline(0, color="k", lw=1)
    _ticks(ax)
    shown = "" if len(keep) == len(v) else f", the {len(keep)} largest of {len(v)}"
    ax.set_title(f"{title or 'feature importance'}{shown}", fontsize=10)
    if xlabel:
        ax.set_xlabel(xlabel)
    return ax


def profit_curve(curve: pd.DataFrame, threshold: float, ax=None, *, title: str | None = None):
    """Expected profit per 1,000 customers against the threshold, the chosen one marked."""
    ax = ax or _axes(1, None, width=5.5, height=2.8, left=0.9)[0]
    ax.plot(curve["threshold"], curve["profit_per_1000"], label="profit per 1,000")
    ax.axhline(0, color="k", lw=1)
    i = int(np.argmin(np.abs(curve["threshold"].to_numpy() - threshold)))
    ax.axvline(threshold, color="C3", ls="--",
               label=f"chosen {threshold:.3g}: {curve['profit_per_1000'].iloc[i]:,.0f}")
    ax.set(xlabel="threshold", title=title or "expected profit against threshold")
    _ticks(ax)
    ax.legend(loc="upper right", fontsize=8)
    return ax


def gains_and_lift(gains: Any, axes=None):
    """Cumulative gains (share of churners reached) and lift by riskiest share of customers.

    ``gains``: a :class:`churn_lib.learn.metrics.Gains` (``curve``, ``deciles``,
    ``threshold``, ``contacted``), e.g. ``result.gains()`` or ``ev.gains()``.
    """
    ax_g, ax_l = _axes(2, axes, width=3.4, height=2.8, left=0.7)
    curve, deciles = gains.curve, gains.deciles
    ax_g.plot(np.r_[0, curve["share"]], np.r_[0, curve["gain"]], label="model")
    ax_g.plot([0, 1], [0, 1], "k--", lw=1, label="random")
    ax_l.bar(deciles["share"] * 100, deciles["lift"], width=8, color="C0")
    ax_l.axhline(1, color="k", lw=1, ls="--")
    if gains.threshold is not None:
        ax_g.axvline(gains.contacted, color="C3", ls="--",
                     label=f"threshold {gains.threshold:.3g}: top {gains.contacted:.0%}")
    ax_g.set(xlabel="share of customers contacted (riskiest first)", ylabel="share of churners", title="gains")
    ax_l.set(xlabel="riskiest decile (%)", ylabel="lift", title=f"lift (top decile {deciles['lift'].iloc[0]:.2f})")
    _ticks(ax_g)
    _ticks(ax_l)
    ax_g.legend(loc="lower right", fontsize=8)
    return [ax_g, ax_l]


def reliability(y: np.ndarray, proba: np.ndarray, ax=None, *, bins: int = 10):
    """Reliability diagram: the observed churn rate per bin of predicted probability, and the Brier score."""
    y = np.asarray(y, dtype=float)
    proba = np.asarray(proba, dtype=float)
    ax = ax or _axes(1, None, width=3.4, height=3.0, left=0.7)[0]
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.searchsorted(edges, proba, side="right") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    mean_p = np.bincount(which, weights=proba, minlength=bins) / np.maximum(count, 1)
    rate = np.bincount(which, weights=y, minlength=bins) / np.maximum(count, 1)
    used = count > 0
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfectly calibrated")
    ax.plot(mean_p[used], rate[used], "o-", label="model")
    brier = float(np.mean((proba - y) ** 2)) if len(y) else float("nan")
    ax.set(xlabel="mean predicted probability", ylabel="observed churn rate", xlim=(0, 1), ylim=(0, 1),
           title=f"reliability (Brier {brier:.4f})")
    _ticks(ax)
    ax.legend(loc="upper left", fontsize=8)
    return ax


def version_comparison(table: pd.DataFrame, ax=None, *, metrics: Sequence[str] = ("f1", "roc_auc", "accuracy")):
    """Bars of each version's metrics on the same test split; the current one hatched."""
    ax = ax or _axes(1, None, width=max(4.5, 1.1 * len(table)), height=2.8)[0]
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
    _ticks(ax)
    ax.legend(loc="lower right", fontsize=8)
    return ax


#: The name drift statistics give the predicted probability (``churn_lib.drift.stats.PREDICTION``).
_PREDICTION = "prediction"


def _model_drift(result: Any, version: str | None) -> Any:
    """One model's drift: ``result`` itself (a ``ModelDrift``: it has ``features``), else ``result.model(version)``."""
    return result if hasattr(result, "features") else result.model(version)


def drift_feature(result: Any, feature: str, *, version: str | None = None, ax=None):
    """Reference against production proportions of one feature on the reference bins; returns ``ax``.

    ``result`` is a :class:`~churn_lib.drift.DriftResult` (``version`` picks the model) or a ``ModelDrift``.
    """
    md = _model_drift(result, version)
    fd = md.feature(feature)
    if ax is None:
        ax = _axes(1, None, width=5.0, height=2.6, bottom=1.0, left=0.8)[0]
    x = np.arange(len(fd.bins))
    ax.bar(x - 0.2, fd.reference, 0.4, label=f"reference (n={fd.n_reference})", color="#9aa7b8")
    ax.bar(x + 0.2, fd.production, 0.4, label=f"production (n={fd.n_production})", color="#d9822b")
    ax.set_xticks(x, fd.bins, rotation=45 if len(fd.bins) > 5 else 0, ha="right" if len(fd.bins) > 5 else "center",
                  fontsize=8)
    ax.set_ylabel("share of rows")
    _ticks(ax, 4)
    key = _PREDICTION if fd.kind == "probability" else fd.feature
    alerts = [s.name for s in md.statistics if s.feature == key and s.alert]
    state = (f"DRIFT ({', '.join(alerts)})" if alerts else "no alert") if md.statistics else md.verdict
    ax.set_title(f"{md.version} · {fd.feature}: {state}", fontsize=10)
    ax.legend(fontsize=8)
    return ax


def drift_features(result: Any, *, version: str | None = None, axes=None):
    """:func:`drift_feature` for every feature and the probability, on a grid; returns the axes array."""
    md = _model_drift(result, version)
    if axes is None:
        n = max(len(md.features), 1)
        _, axes = _grid((n + 2) // 3, 3, width=4.0, height=2.4, left=0.8, bottom=1.0, hspace=1.6, wspace=0.9)
    flat = np.asarray(axes).ravel()
    for ax, fd in zip(flat, md.features):
        drift_feature(md, fd.feature, ax=ax)
    for ax in flat[len(md.features):]:
        ax.set_axis_off()
    if not md.features:
        flat[0].text(0.5, 0.5, f"{md.version}: {md.verdict}", ha="center", va="center")
    return axes


def monitoring_trends(history: pd.DataFrame, axes=None, *, watch: Sequence[dict[str, Any]] | None = None):
    """Every check so far, per version: drift (largest PSI), F1 and the volume; with ``watch``, its decisions.

    ``history`` is :func:`churn_lib.logs.monitoring.history`: realized F1 (-) and
    estimated F1 (--) of the performance checks, and each role's realized F1 in
    the comparisons (x). ``watch`` is the watch's lines
    (:func:`churn_lib.logs.monitoring.records` of kind ``watch``): each tick's
    decision over time, on a fourth axes. Returns the axes.
    """
    if axes is None:
        if watch is None:
            _, axes = _grid(1, 3, width=4.0, height=2.6, left=0.8, bottom=1.0, wspace=0.8)
        else:
            _, axes = _grid(2, 2, width=4.6, height=2.6, left=1.2, bottom=1.0, wspace=0.8, hspace=1.3)
    flat = np.asarray(axes).ravel()
    ax_drift, ax_f1, ax_rows = flat[:3]
    if watch is not None:
        _watch_decisions(watch, flat[3])
    if history is None or not len(history):
        for ax in (ax_drift, ax_f1, ax_rows):
            ax.text(0.5, 0.5, "no check recorded yet", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return axes
    for version, rows in history.sort_values("checked_at").groupby("version", sort=True):
        d = rows[rows["kind"] == "drift"]
        if len(d) and "max_psi" in d:
            ax_drift.plot(d["checked_at"], d["max_psi"], marker="o", label=str(version))
        p = rows[rows["kind"] == "performance"]
        for column, style in (("realized_f1", "-"), ("estimated_f1", "--")):
            if len(p) and column in p and p[column].notna().any():
                ax_f1.plot(p["checked_at"], p[column], style, marker="o",
                           label=f"{version} {column.split('_')[0]}")
        c = rows[rows["kind"] == "compare"]
        if len(c) and "realized_f1" in c and c["realized_f1"].notna().any():
            roles = sorted(set(c["role"].dropna())) if "role" in c else []
            ax_f1.plot(c["checked_at"], c["realized_f1"], "x", markersize=7,
                       label=f"{version} compared ({', '.join(map(str, roles))})")
        ax_rows.plot(rows["checked_at"], rows["rows"], marker=".", linestyle="", label=str(version))
    for ax, title in ((ax_drift, "drift: largest PSI"),
                      (ax_f1, "F1: realized (-), estimated (--), compared (x)"), (ax_rows, "rows per check")):
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return axes


def _watch_decisions(lines: Sequence[dict[str, Any]], ax) -> None:
    """Each watch tick's decision at its time, one row per decision (in the order they first appear)."""
    ticks = pd.DataFrame([{"at": line.get("checked_at_utc"), "decision": line.get("decision")}
                          for line in lines if isinstance(line, dict)], columns=["at", "decision"])
    ticks["at"] = pd.to_datetime(ticks["at"], utc=True, errors="coerce", format="ISO8601")
    ticks = ticks.dropna()
    ax.set_title("watch: decision per tick", fontsize=9)
    if not len(ticks):
        ax.text(0.5, 0.5, "no watch tick yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    decisions = list(dict.fromkeys(ticks["decision"].astype(str)))
    for k, decision in enumerate(decisions):
        at = ticks.loc[ticks["decision"].astype(str) == decision, "at"]
        ax.plot(at, np.full(len(at), k), "o", label=decision)
    ax.set_yticks(range(len(decisions)), decisions, fontsize=8)
    ax.set_ylim(-0.5, len(decisions) - 0.5)
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)


#: The paired differences drawn on the first axes of :func:`champion_challenger` (rates and scores, on one
#: scale); profit per 1,000 customers, in money, has its own axes.
_SHARED_SCALE = ("roc_auc", "f1", "brier")
_PROFIT = "profit_per_1000"


def champion_challenger(comparison: Any, axes=None):
    """A comparison of champion and challenger on the same customers; returns the axes it drew on.

    ``comparison`` is what :func:`churn_lib.loop.compare.compare_if_any` returns
    (read by its ``frame()``, ``verdict``, ``decided_by``, ``scores`` and
    ``summary()``). Drawn: the paired differences (challenger - champion) with
    their intervals, ROC AUC, F1 and Brier on the first axes, the deciding
    metric in red; the two models' score distributions on the second; profit
    per 1,000 customers, in money, on a third when costs were known (and
    ``axes``, when given, has a third). Nothing compared: no figure (None), or
    the one-line summary on the first of the ``axes`` given.
    """
    frame = comparison.frame()
    frame = frame[frame["interval_low"].notna()] if len(frame) else frame
    scores = getattr(comparison, "scores", None)
    if not len(frame) and not scores:  # nothing compared: one line
        if axes is None:  # no figure: the summary, printed beside it, says it all
            return None
        ax = np.asarray(axes).ravel()[0]
        ax.text(0.0, 0.5, comparison.summary(), ha="left", va="center", transform=ax.transAxes, fontsize=10)
        ax.set_axis_off()
        return axes
    if axes is None:
        _, axes = _grid(1, 3 if _PROFIT in frame.index else 2, width=3.6, height=2.6, left=1.6, bottom=0.9,
                        top=0.8, wspace=1.6)
    flat = np.asarray(axes).ravel()
    decided = getattr(comparison, "decided_by", None)
    _differences(frame, _SHARED_SCALE, decided, flat[0], "challenger - champion",
                 f"no interval: {comparison.verdict}")
    if len(flat) > 2:
        _differences(frame, (_PROFIT,), decided, flat[2], "profit per 1,000: challenger - champion",
                     "no costs: profit not compared")
    ax = flat[1]
    if scores:
        for role, color in (("champion", "#9aa7b8"), ("challenger", "#d9822b")):
            counts = np.asarray(scores[role], dtype=float)
            ax.stairs(counts / max(counts.sum(), 1.0), scores["edges"], label=role, color=color, linewidth=1.5)
        ax.set(xlabel="probability of churn", ylabel="share of pairs")
        ax.set_title("scores on the same customers", fontsize=9)
        ax.legend(fontsize=8)
        _ticks(ax, 4)
    else:
        ax.set_axis_off()
    flat[0].figure.suptitle(f"{comparison.verdict} (decided by {decided or 'no metric'})", fontsize=10)
    return axes


def _differences(frame: pd.DataFrame, keys: Sequence[str], decided: str | None, ax, title: str, empty: str) -> None:
    """The rows ``keys`` of a comparison's frame: each difference and its interval, 0 dashed, the decider red."""
    rows = frame.loc[[k for k in keys if k in frame.index]]
    if not len(rows):
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes, fontsize=8)
        ax.set_axis_off()
        return
    y = np.arange(len(rows))
    colors = ["#b3261e" if k == decided else "#3a6ea5" for k in rows.index]
    ax.hlines(y, rows["interval_low"].to_numpy(float), rows["interval_high"].to_numpy(float), colors=colors,
              linewidth=3)
    ax.scatter(rows["difference"].to_numpy(float), y, color=colors, zorder=3)
    ax.axvline(0, color="#777", linewidth=1, linestyle="--")
    ax.set_yticks(y, [f"{k}{' (lower is better)' if k == 'brier' else ''}" for k in rows.index], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_title(title, fontsize=9)
    _ticks(ax, 4)
