"""How well each model really predicts: realized metrics where outcomes came back, estimated ones where not.

Predictions in a window (``--since`` / ``--last``, like drift) are joined to
their outcomes (:func:`churn_lib.logs.query.outcomes`); the predictions are
the lines drift reads, judged by the record rule of the contract of the model
that served them. Per model version:

* **realized**, on the predictions that have an outcome: count, churn rate,
  ROC AUC, F1 / precision / recall at the threshold the prediction was served
  at, Brier score, and the profit per 1,000 customers when the model was
  trained with costs; a bootstrap 95 % interval when fewer than
  :data:`INTERVAL_MAX_ROWS` rows carry them;
* **estimated**, on those that do not (yet): confidence-based performance
  estimation (as NannyML's CBPE): under the assumption that the served
  probabilities are calibrated, the expected confusion matrix is the sum of
  the probabilities, so F1, precision, recall, ROC AUC and Brier have an
  expected value, and outcomes drawn from the probabilities give its 95 %
  interval (where the counts are small). Read the reliability diagram of the
  version before trusting it.

Fewer than ``min_rows`` rows of a kind give "insufficient data" for it. The
verdict is ``below floor`` when the realized F1 (else the estimated one) is
under the floor (the version's gate F1 unless one is given).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a table is built or names are hashed: the metrics need none
    import pandas as pd

from ..logs import judged as logjudged, outcomes, query as logquery, monitoring, predictions as predlog
from .. import registry
from .._io import iso, utc_now
from .monitor import _by_name, _contract_groups, parse_since
from ..exceptions import InvalidParameter, NoCurrentModel
from ..home import Home

log = logging.getLogger(__name__)

OK, BELOW_FLOOR, INSUFFICIENT = "ok", "below floor", "insufficient data"
#: Rows of a kind below which its metrics are "insufficient data".
MIN_ROWS = 100
#: Intervals are computed (bootstrap / simulated outcomes) up to this many rows; above, they are negligible.
INTERVAL_MAX_ROWS = 20_000
#: Draws for an interval.
DRAWS = 200


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    """ROC AUC as Mann-Whitney's U over the two classes' pairs (a tie counts one half), or None with one class only.

    Each class's scores are sorted (a plain sort, faster than the argsort of a rank-sum) and every positive counts
    the negatives below it and those tied with it: integer counts, so U and the AUC are exactly the rank-sum's.
    """
    pos = y == 1
    n1 = int(np.count_nonzero(pos))
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return None
    neg, sp = np.sort(s[~pos]), np.sort(s[pos])  # positives sorted too: the searches walk the negatives in order
    u2 = int(np.searchsorted(neg, sp, side="left").sum()) + int(np.searchsorted(neg, sp, side="right").sum())
    return float((u2 / 2) / (n1 * n0))


def _rates(tp: float, fp: float, fn: float) -> dict[str, float | None]:
    precision = tp / (tp + fp) if tp + fp > 0 else None
    recall = tp / (tp + fn) if tp + fn > 0 else None
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn > 0 else None
    return {"f1": f1, "precision": precision, "recall": recall}


def _profit(tp: float, fp: float, n: int, costs: dict[str, Any] | None) -> float | None:
    if not costs or costs.get("retention_value") is None or costs.get("offer_cost") is None:
        return None
    value = tp * (costs.get("offer_success", 1.0) * costs["retention_value"] - costs["offer_cost"]) \
        - fp * costs["offer_cost"]
    return float(value / n * 1000) if n else None


def realized(y: np.ndarray, p: np.ndarray, t: np.ndarray, costs: dict[str, Any] | None = None, *,
             pred: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics of outcomes ``y`` (0/1) against probabilities ``p`` served at thresholds ``t``.

    ``pred``: the decisions served, where known (the log records them from the unrounded probability);
    default ``p >= t``.
    """
    pred = p >= t if pred is None else pred
    tp = float(np.count_nonzero(pred & (y == 1)))
    fp = float(np.count_nonzero(pred & (y == 0)))
    fn = float(np.count_nonzero(~pred & (y == 1)))
    out = {"rows": int(len(y)), "churn_rate": float(y.mean()) if len(y) else None, "roc_auc": _auc(y, p),
           **_rates(tp, fp, fn), "brier": float(np.mean((p - y) ** 2)) if len(y) else None,
           "profit_per_1000": _profit(tp, fp, len(y), costs)}
    return out


def estimated(p: np.ndarray, t: np.ndarray, costs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The expected metrics if outcomes were drawn from the (calibrated) probabilities ``p`` (CBPE)."""
    pred = p >= t
    tp, fp, fn = float(p[pred].sum()), float((1 - p[pred]).sum()), float(p[~pred].sum())
    n = len(p)
    auc = None
    if n:
        order = np.argsort(p, kind="stable")
        ps = p[order]
        below = np.concatenate(([0.0], np.cumsum(1 - ps)[:-1]))  # sum of (1 - p_j) over lower scores
        # ties: pairs of equal scores count one half
        _, start, counts = np.unique(ps, return_index=True, return_counts=True)
        tie_neg = np.repeat(np.add.reduceat(1 - ps, start), counts)
        tie_below = below - np.repeat(below[start], counts)  # lower ones within the tie group
        numerator = float(np.sum(ps * (below - tie_below + (tie_neg - (1 - ps)) / 2)))
        denominator = float(ps.sum() * (1 - ps).sum() - np.sum(ps * (1 - ps)))
        auc = numerator / denominator if denominator > 0 else None
    return {"rows": n, "churn_rate": float(p.mean()) if n else None, "roc_auc": auc, **_rates(tp, fp, fn),
            "brier": float(np.mean(p * (1 - p))) if n else None, "profit_per_1000": _profit(tp, fp, n, costs)}


def _interval(draws: list[dict[str, Any]]) -> dict[str, list[float] | None]:
    out = {}
    for key in ("roc_auc", "f1", "precision", "recall", "brier"):
        values = np.array([d[key] for d in draws if d.get(key) is not None], dtype=float)
        out[key] = [float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))] \
            if len(values) >= DRAWS // 2 else None
    return out


def realized_interval(y: np.ndarray, p: np.ndarray, t: np.ndarray, seed: int = 0, *,
                      pred: np.ndarray | None = None) -> dict[str, Any]:
    """Bootstrap 95 % intervals of :func:`realized` (rows resampled with replacement)."""
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(DRAWS):
        i = rng.integers(0, len(y), len(y))
        draws.append(realized(y[i], p[i], t[i], pred=None if pred is None else pred[i]))
    return _interval(draws)


def estimated_interval(p: np.ndarray, t: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """95 % intervals of the realized metrics if outcomes were drawn from ``p``: where CBPE's estimate may land."""
    rng = np.random.default_rng(seed)
    return _interval([realized((rng.random(len(p)) < p).astype(np.int8), p, t) for _ in range(DRAWS)])


@dataclass
class ModelPerformance:
    version: str
    model_file: str
    predictions: int
    with_outcome: int
    first_ts: float | None
    last_ts: float | None
    realized: dict[str, Any] | None
    realized_interval: dict[str, Any] | None
    estimated: dict[str, Any] | None
    estimated_interval: dict[str, Any] | None
    floor: float | None
    verdict: str
    reason: str


@dataclass
class PerformanceResult:
    verdict: str
    models: list[ModelPerformance]
    window: dict[str, Any]
    read: dict[str, Any]
    unknown_models: dict[str, int] = field(default_factory=dict)
    checked_at_utc: str = ""

    def frame(self) -> pd.DataFrame:
        """One row per version and metric: realized and estimated side by side (intervals where computed)."""
        import pandas as pd

        rows = []
        for m in self.models:
            for key in ("rows", "churn_rate", "roc_auc", "f1", "precision", "recall", "brier", "profit_per_1000"):
                row = {"version": m.version, "metric": key}
                for part, interval in (("realized", m.realized_interval), ("estimated", m.estimated_interval)):
                    figures = getattr(m, part) or {}
                    row[part] = figures.get(key)
                    iv = (interval or {}).get(key)
                    row[f"{part} 95%"] = None if not iv else f"[{iv[0]:.3f}, {iv[1]:.3f}]"
                rows.append(row)
        return pd.DataFrame(rows)

    def summary(self) -> str:
        return "; ".join(f"{m.version}: {m.verdict} ({m.reason})" for m in self.models) or self.verdict

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "checked_at_utc": self.checked_at_utc, "window": self.window,
                "read": self.read, "unknown_models": self.unknown_models, "models": [asdict(m) for m in self.models]}


def _verdict(entry: dict[str, Any], mine: logquery.Joined, floor: float | None, min_rows: int,
             costs: dict[str, Any] | None) -> ModelPerformance:
    t = np.where(np.isnan(mine.threshold), float(entry.get("threshold", 0.5)), mine.threshold)
    served = np.where(np.isnan(mine.prediction), mine.probability >= t, mine.prediction == 1)
    has = ~np.isnan(mine.outcome)
    n_out, n_open = int(has.sum()), int((~has).sum())
    real = real_iv = est = est_iv = None
    if n_out:
        y = mine.outcome[has].astype(np.int8)
        real = realized(y, mine.probability[has], t[has], costs, pred=served[has])
        if min_rows <= n_out <= INTERVAL_MAX_ROWS:
            real_iv = realized_interval(y, mine.probability[has], t[has], pred=served[has])
    if n_open:
        est = estimated(mine.probability[~has], t[~has], costs)
        if min_rows <= n_open <= INTERVAL_MAX_ROWS:
            est_iv = estimated_interval(mine.probability[~has], t[~has])
    floor = floor if floor is not None else entry.get("gate_f1")
    if n_out >= min_rows and real["f1"] is not None:
        value, kind = real["f1"], "realized"
    elif n_open >= min_rows and est["f1"] is not None:
        value, kind = est["f1"], "estimated"
    else:
        value, kind = None, None
    if value is None:
        verdict, reason = INSUFFICIENT, (f"{n_out} prediction(s) with an outcome and {n_open} without: fewer than "
                                         f"{min_rows} of either")
    elif floor is not None and value < floor:
        verdict, reason = BELOW_FLOOR, f"{kind} F1 {value:.4f} < floor {floor:.4f}"
    else:
        verdict, reason = OK, (f"{kind} F1 {value:.4f}" + (f" >= floor {floor:.4f}" if floor is not None
                                                            else " (no floor: the version's gate has no F1 floor)"))
    ts = mine.ts
    return ModelPerformance(entry["version"], entry["model_file"], len(mine), n_out,
                            float(ts.min()) if len(ts) else None, float(ts.max()) if len(ts) else None,
                            real, real_iv, est, est_iv, floor, verdict, reason)


def check(*, home: Home | str | None = None, last: int | None = None, since: Any = None,
          model: str | None = "current", floor: float | None = None, min_rows: int = MIN_ROWS,
          record: bool = True) -> PerformanceResult:
    """Realized and estimated performance per model version over a window of predictions.

    Parameters
    ----------
    last, since :
        The window, as for :func:`churn_lib.drift.check` (default: every prediction).
    model : str, default="current"
        ``current``, ``all`` or a version label / model file.
    floor : float, optional
        The F1 below which the verdict is ``below floor`` (default: each version's gate F1, if any).
    min_rows : int, default=100
    record : bool, default=True
        Append the result to the monitoring history (``reports/monitoring.jsonl``).
    """
    home = Home.resolve(home)
    _check_arguments(last, floor, min_rows)
    since_ts = parse_since(since) if since is not None else None
    entries = registry.load_entries(home=home)
    target = _target(model, entries, home)
    targets = [target] if target is not None else entries
    joined = _join(home, target, entries, since_ts, last)
    masks, unknown = _by_model(joined, entries)
    models = []
    for e in targets:
        mine = joined.take(masks.get(e["model_file"], np.zeros(len(joined), dtype=bool)))
        if model == "all" and not len(mine):
            continue
        models.append(_verdict(e, mine, floor, min_rows, e.get("costs")))
    verdicts = {m.verdict for m in models}
    verdict = BELOW_FLOOR if BELOW_FLOOR in verdicts else OK if OK in verdicts else INSUFFICIENT
    window = {"last": last, "since": iso(since_ts), "since_ts": since_ts, "model": model}
    result = PerformanceResult(verdict, models, window, joined.read, unknown, utc_now())
    if record:
        monitoring.append(monitoring.PERFORMANCE, result.to_dict(), home=home)
    log.info("performance check: %s", verdict)
    return result


def _check_arguments(last: Any, floor: Any, min_rows: Any) -> None:
    if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last < 1):
        raise InvalidParameter(f"last={last!r} must be a positive integer", name="last")
    if floor is not None and not (isinstance(floor, (int, float)) and not isinstance(floor, bool) and 0 <= floor <= 1):
        raise InvalidParameter(f"floor={floor!r} must be an F1 between 0 and 1", name="floor")
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise InvalidParameter(f"min_rows={min_rows!r} must be a positive integer", name="min_rows")


def _target(model: str | None, entries: list[dict[str, Any]], home: Home) -> dict[str, Any] | None:
    """The entry of the model asked for; None for ``all``."""
    if model == "all":
        return None
    if model in (None, "current"):
        target = registry.current_entry(home=home)
        if target is None:
            raise NoCurrentModel("no model is current: use --model VERSION or --model all")
        return target
    return registry.find(model, entries)


def _join(home: Home, target: dict[str, Any] | None, entries: list[dict[str, Any]], since_ts: float | None,
          last: int | None) -> logquery.Joined:
    """The window's predictions with their outcomes, each line judged by the rule of the contract of the model
    that served it: the lines drift reads (:func:`churn_lib.drift.monitor._contract_groups`), through the home's
    judged-line cache (:mod:`churn_lib.logs.judged`)."""
    parts = []
    for c, models in _contract_groups(target, entries, home):
        parts.append(logquery.outcomes(predlog.log_files(home=home), outcomes.log_files(home=home), c,
                                       id_column=c.id[0] if len(c.id) == 1 else None, since_ts=since_ts,
                                       last=last, models=models, cache=home.logs_dir / logjudged.FOLDER))
    return parts[0] if len(parts) == 1 else logquery.Joined.concat(parts)


def _by_model(joined: logquery.Joined, entries: list[dict[str, Any]]) -> tuple[dict[str, np.ndarray],
                                                                                   dict[str, int]]:
    """The rows of each registered model (by model file) as masks, and the counts of unregistered ones."""
    import pandas as pd

    names = _by_name(entries)
    masks: dict[str, np.ndarray] = {}
    unknown: dict[str, int] = {}
    if not len(joined):
        return masks, unknown
    inverse, keys = pd.factorize(joined.model)  # hashing: a few names over many rows
    for k, key in enumerate(map(str, keys)):
        entry = names.get(key)
        if entry is None:
            unknown[key] = int(np.count_nonzero(inverse == k))
            continue
        masks.setdefault(entry["model_file"], np.zeros(len(joined), dtype=bool))
        masks[entry["model_file"]] |= inverse == k
    return masks, unknown
