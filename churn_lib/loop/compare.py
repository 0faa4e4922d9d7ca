"""The champion and the challenger compared on the same customers: the paired evidence and a verdict.

:func:`compare` reads the pairs of a window (:mod:`.pairs`: one champion line
and one challenger line per request id) and describes them:

* on every pair: agreement of the decisions (each model at its own threshold),
  the scores' correlation, PSI of the challenger's scores against the
  champion's, each model's positive rate and latency (mean, p50, p95);
* on the pairs whose outcome came back: each model's realized ROC AUC, F1,
  Brier and profit (:func:`churn_lib.drift.performance.realized`), McNemar's
  test on the decisions and the paired bootstrap intervals of the differences
  (:mod:`.stats`);
* on those without: each model's CBPE estimate
  (:func:`churn_lib.drift.performance.estimated`).

The verdict (:func:`judge`) is one of :data:`VERDICTS`, decided on the
challenger's objective (the metric its threshold was tuned for: ``f1``, or
``profit`` per 1,000 customers) with ROC AUC as the threshold-free check:
``insufficient_evidence`` below the policy's minimums (labelled pairs,
positives) or when the objective is undefined; ``champion_better`` when the
objective's interval or ROC AUC's lies below 0; ``challenger_better`` when
the objective's interval lies above 0; else ``no_difference``. Every
comparison is appended to ``reports/monitoring.jsonl`` (kind ``compare``).

:func:`compare_if_any` is the same comparison for notebook 05, which shows a
:class:`NoComparison` (one line: why there is nothing to compare) when no
challenger is set or no pair is in the window, where :func:`compare` raises.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a table is built: a comparison itself needs none
    import pandas as pd

from .. import contract as _contract, registry
from .._io import iso, utc_now
from ..contract import records as _records
from ..drift import parse_since, performance
from ..exceptions import DataError, InvalidParameter, PromotionRefused
from ..home import Home
from ..logs import judged, monitoring, outcomes, predictions
from . import pairs as _pairs, policy as _policy, stats

log = logging.getLogger(__name__)

CHALLENGER_BETTER, CHAMPION_BETTER = "challenger_better", "champion_better"
NO_DIFFERENCE, INSUFFICIENT_EVIDENCE = "no_difference", "insufficient_evidence"
#: The verdicts, a closed set.
VERDICTS = (CHALLENGER_BETTER, CHAMPION_BETTER, NO_DIFFERENCE, INSUFFICIENT_EVIDENCE)
#: The metric deciding for each objective a model's threshold may be tuned for.
OBJECTIVES = {"f1": "f1", "profit": "profit_per_1000"}
#: The threshold-free check.
THRESHOLD_FREE = "roc_auc"
ROLES = ("champion", "challenger")
#: Bins of the two score histograms a comparison keeps (``Comparison.scores``), on [0, 1].
SCORE_BINS = 20
#: The columns of :meth:`Comparison.frame`: per metric, each model's realized and estimated figure, and the
#: paired difference (challenger - champion) with its interval.
FRAME_COLUMNS = ("champion", "challenger", "difference", "interval_low", "interval_high", "p_value", "decides",
                 "estimated_champion", "estimated_challenger")


@dataclass
class Judgement:
    """A verdict, the metric that decided it and why (one line)."""

    verdict: str
    decided_by: str | None
    reason: str


@dataclass
class Comparison:
    """What :func:`compare` found: the pairs described, each model's metrics, the paired tests and the verdict."""

    verdict: str
    decided_by: str | None
    reason: str
    objective: str
    models: dict[str, dict[str, Any]]       # role -> version, model_file, threshold_metric, positive_rate, latency
    pairs: int
    labelled: int
    positives: int
    agreement: float | None
    score_correlation: float | None
    psi: float | None
    realized: dict[str, Any] | None         # role -> performance.realized figures on the labelled pairs
    estimated: dict[str, Any] | None        # role -> CBPE figures on the unlabelled pairs
    differences: dict[str, Any] | None      # paired bootstrap (challenger - champion) per metric
    mcnemar: dict[str, Any] | None
    window: dict[str, Any]
    read: dict[str, Any]
    policy: dict[str, Any]
    checked_at_utc: str = ""
    scores: dict[str, Any] | None = None    # histograms of the scores: edges, and counts per role

    def summary(self) -> str:
        """One line: the verdict, the versions, and the evidence that decided it."""
        c, k = self.models["champion"]["version"], self.models["challenger"]["version"]
        return f"{self.verdict}: challenger {k} vs champion {c} on {self.pairs:,} pair(s) - {self.reason}"

    def frame(self) -> pd.DataFrame:
        """One row per metric: each model's realized figure on the labelled pairs, the paired difference
        (challenger - champion) with its interval and p-value, whether it decided, and the CBPE estimates
        (a metric no model has a figure for, such as profit without costs, has no row).

        Examples
        --------
        >>> list(NoComparison("no challenger is set").frame().columns) == list(FRAME_COLUMNS)
        True
        """
        import pandas as pd

        rows = {}
        for key in stats.METRICS:
            real = {r: ((self.realized or {}).get(r) or {}).get(key) for r in ROLES}
            est = {r: ((self.estimated or {}).get(r) or {}).get(key) for r in ROLES}
            diff = (self.differences or {}).get(key) or {}
            if not diff and all(v is None for v in (*real.values(), *est.values())):
                continue  # profit without costs: nothing to show
            low, high = diff.get("interval") or (None, None)
            rows[key] = {**real, "difference": None if None in real.values() else real["challenger"] - real["champion"],
                         "interval_low": low, "interval_high": high, "p_value": diff.get("p_value"),
                         "decides": key == self.decided_by,
                         "estimated_champion": est["champion"], "estimated_challenger": est["challenger"]}
        frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(FRAME_COLUMNS))
        frame.index.name = "metric"
        return frame

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def record(self) -> dict[str, Any]:
        """The line of the monitoring history: the verdict and its evidence, one row per role in ``models``."""
        rows = []
        for role in ROLES:
            real = (self.realized or {}).get(role) or {}
            rows.append({"version": self.models[role]["version"], "role": role, "verdict": self.verdict,
                         "rows": self.pairs, "with_outcome": self.labelled,
                         **{f"realized_{k}": real.get(k) for k in ("roc_auc", "f1", "brier", "profit_per_1000")}})
        diffs = self.differences or {}
        return {"checked_at_utc": self.checked_at_utc, "verdict": self.verdict, "decided_by": self.decided_by,
                "reason": self.reason, "window": self.window, "pairs": self.pairs, "labelled": self.labelled,
                "positives": self.positives, "agreement": self.agreement, "psi": self.psi,
                "differences": {k: diffs.get(k) for k in stats.METRICS if k in diffs},
                "mcnemar_p_value": (self.mcnemar or {}).get("p_value"), "models": rows}


def judge(y: np.ndarray, champion: tuple[np.ndarray, np.ndarray], challenger: tuple[np.ndarray, np.ndarray], *,
          objective: str = "f1", costs: dict[str, Any] | None = None,
          policy: _policy.ComparePolicy | None = None) -> tuple[Judgement, dict[str, Any] | None]:
    """The verdict on labelled pairs, and the paired bootstrap it rests on.

    Parameters
    ----------
    y : array of 0/1
        The outcomes.
    champion, challenger : (probabilities, decisions)
        Each model's probability and served decision per pair.
    objective : {"f1", "profit"}, default="f1"
        What the challenger's threshold was tuned for; ``profit`` needs ``costs``.
    costs : dict, optional
        ``retention_value``, ``offer_cost``, ``offer_success``.
    policy : ComparePolicy, optional
        The minimums, the level and the draws (default: the documented defaults).

    Returns
    -------
    (Judgement, dict or None)
        The verdict; the differences (None when there was too little evidence to draw them).

    Examples
    --------
    >>> j, _ = judge(np.array([0, 1]), (np.array([.2, .8]), np.array([0, 1])), (np.array([.2, .8]), np.array([0, 1])))
    >>> j.verdict
    'insufficient_evidence'
    """
    policy = policy or _policy.ComparePolicy()
    if objective not in OBJECTIVES:
        raise InvalidParameter(f"objective={objective!r} must be one of {', '.join(OBJECTIVES)}", name="objective")
    y = np.asarray(y, dtype=np.int8)
    n, positives = len(y), int(np.count_nonzero(y))
    if n < policy.min_labelled_pairs or positives < policy.min_positives or positives == n:
        why = (f"{n:,} labelled pair(s) with {positives:,} churner(s): the policy needs "
               f"{policy.min_labelled_pairs:,} and {policy.min_positives:,}" + (", and non-churners" if n and
                                                                                positives == n else ""))
        return Judgement(INSUFFICIENT_EVIDENCE, None, why), None
    metric = OBJECTIVES[objective]
    if metric == "profit_per_1000" and costs is None:
        return Judgement(INSUFFICIENT_EVIDENCE, None, "the challenger was tuned for profit but no costs are known: "
                                                      "set compare.retention_value and compare.offer_cost"), None
    diffs = stats.paired_bootstrap(y, champion, challenger, costs=costs, draws=policy.draws, alpha=policy.alpha,
                                   seed=policy.seed)
    return _decide(diffs, metric, policy.alpha), diffs


def _decide(diffs: dict[str, Any], metric: str, alpha: float) -> Judgement:
    """The verdict from the intervals of the objective's and ROC AUC's differences (challenger - champion)."""
    level = f"{100 * (1 - alpha):g} %"

    def said(key: str) -> str:
        low, high = diffs[key]["interval"]
        p = diffs[key]["p_value"]  # 0 when no draw fell on the far side of 0: below one in the draws made
        return (f"{key} difference {level} interval [{low:+.4f}, {high:+.4f}], "
                + (f"p < {1 / diffs['draws']:.2g}" if p == 0 else f"p = {p:.3g}"))

    if diffs.get(metric) is None or diffs.get(THRESHOLD_FREE) is None:
        missing = metric if diffs.get(metric) is None else THRESHOLD_FREE
        return Judgement(INSUFFICIENT_EVIDENCE, None, f"{missing} is undefined in too many bootstrap draws")
    for key in (metric, THRESHOLD_FREE):
        if diffs[key]["interval"][1] < 0:
            return Judgement(CHAMPION_BETTER, key, f"{said(key)}: below 0")
    if diffs[metric]["interval"][0] > 0:
        return Judgement(CHALLENGER_BETTER, metric, f"{said(metric)}: above 0; {said(THRESHOLD_FREE)}")
    return Judgement(NO_DIFFERENCE, metric, f"{said(metric)}: contains 0")


def _lookup(entries: list[dict[str, Any]], name: str | None) -> dict[str, Any] | None:
    """The registry entry a log names (its model file or version label), or None."""
    return next((e for e in entries if name in (e["model_file"], e["version"])), None)


def _latency(ms: np.ndarray) -> dict[str, float | None]:
    ms = ms[~np.isnan(ms)]
    if not len(ms):
        return {"mean": None, "p50": None, "p95": None}
    p50, p95 = np.percentile(ms, [50, 95])
    return {"mean": float(ms.mean()), "p50": float(p50), "p95": float(p95)}


def _served(got: _pairs.Pairs, entries: dict[str, dict[str, Any] | None]) -> tuple[np.ndarray, np.ndarray]:
    """Per pair and role, the threshold (logged, else the entry's, else 0.5) and the decision (logged, else p >= t)."""
    fallback = np.array([float((entries[r] or {}).get("threshold", 0.5)) for r in ROLES])
    t = np.where(np.isnan(got.threshold), fallback, got.threshold)
    d = np.where(np.isnan(got.decision), got.p >= t, got.decision == 1)
    return t, d


def _describe(got: _pairs.Pairs, t: np.ndarray, d: np.ndarray, entries: dict[str, dict[str, Any] | None],
              costs: dict[str, Any] | None) -> dict[str, Any]:
    """What every pair shows (agreement, correlation, PSI, rates, latency) and each model's metrics."""
    p, y = got.p, got.outcome
    has = ~np.isnan(y)
    models = {}
    for i, role in enumerate(ROLES):
        e = entries[role] or {}
        models[role] = {"version": (got.champion_version, got.challenger_version)[i],
                        "model_file": (got.champion, got.challenger)[i], "registered": bool(e),
                        "threshold_metric": e.get("threshold_metric", "f1"),
                        "positive_rate": float(d[:, i].mean()), "mean_probability": float(p[:, i].mean()),
                        "latency_ms": _latency(got.latency_ms[:, i])}
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = float(np.corrcoef(p[:, 0], p[:, 1])[0, 1]) if len(p) > 1 else float("nan")
    realized = estimated = None
    if has.any():
        yy = y[has].astype(np.int8)
        realized = {r: performance.realized(yy, p[has, i], t[has, i], costs, pred=d[has, i])
                    for i, r in enumerate(ROLES)}
    if (~has).any():
        estimated = {r: performance.estimated(p[~has, i], t[~has, i], costs) for i, r in enumerate(ROLES)}
    edges = np.linspace(0.0, 1.0, SCORE_BINS + 1)
    # equal bins given by number and range: numpy's binning by arithmetic (checked against these very edges), not
    # a sort of the scores
    scores = {"edges": edges.tolist(), **{r: np.histogram(p[:, i], bins=SCORE_BINS, range=(0.0, 1.0))[0].tolist()
                                          for i, r in enumerate(ROLES)}}
    return {"models": models, "agreement": float((d[:, 0] == d[:, 1]).mean()),
            "score_correlation": None if np.isnan(corr) else corr, "psi": stats.psi(p[:, 0], p[:, 1]),
            "realized": realized, "estimated": estimated, "scores": scores}


def _read(home: Home, since_ts: float | None, last: int | None) -> _pairs.Pairs:
    """The pairs of the window (maybe none), read under the current model's contract (the home's when none is
    current), through the home's judged-line cache."""
    current = registry.current_entry(home=home)
    contract = registry.load_contract(current, home=home) if current else _contract.load(home)
    id_column = contract.id[0] if len(contract.id) == 1 else None
    return _pairs.read(predictions.log_files(home=home), outcomes.log_files(home=home), _records.rule(contract),
                       id_column=id_column, since_ts=since_ts, last=last, cache=home.logs_dir / judged.FOLDER)


def _unpaired(got: _pairs.Pairs) -> str:
    """Why a window has no pair: the lines it left out."""
    r = got.read
    return ("no paired champion and challenger answers in the window ("
            f"{r.get('challenger_without_champion', 0):,} challenger line(s) without a champion line, "
            f"{r.get('champion_without_challenger', 0):,} champion line(s) without a challenger line)")


def _window(home: Home, since: Any, last: int | None) -> tuple[_policy.Policy, float | None]:
    """The policy, and the window checked once, at the way in."""
    if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last < 1):
        raise InvalidParameter(f"last={last!r} must be a positive integer", name="last")
    pol = _policy.load(home=home)
    return pol, parse_since(since) if since is not None else None


def compare(*, home: Home | str | None = None, since: Any = None, last: int | None = None,
            record: bool = True) -> Comparison:
    """Compare the challenger with the champion on the requests both answered, and give a verdict.

    Parameters
    ----------
    home : Home or path, optional
    since : str, float or datetime, optional
        Only requests the champion answered since then (an age such as ``24h``, Unix seconds or an ISO time).
    last : int, optional
        Only the ``last`` newest pairs.
    record : bool, default=True
        Append the comparison to ``reports/monitoring.jsonl`` (kind ``compare``).

    Returns
    -------
    Comparison

    Raises
    ------
    DataError
        No pair in the window (no challenger answered, or its lines match no champion line).
    InvalidParameter
        A bad window, or a bad ``churn.yaml``.
    """
    home = Home.resolve(home)
    pol, since_ts = _window(home, since, last)
    got = _read(home, since_ts, last)
    if not len(got):
        raise DataError(_unpaired(got) + ": set a challenger (churn challenger VERSION) and let the service answer "
                        "requests", files=got.read["prediction_files"])
    return _compared(home, pol, got, since_ts=since_ts, last=last, record=record)


def _compared(home: Home, pol: _policy.Policy, got: _pairs.Pairs, *, since_ts: float | None, last: int | None,
              record: bool) -> Comparison:
    """The comparison of the pairs read (at least one), recorded in the monitoring history when ``record``."""
    registered = registry.load_entries(home=home)
    entries = {"champion": _lookup(registered, got.champion), "challenger": _lookup(registered, got.challenger)}
    challenger = entries["challenger"] or {}
    objective = challenger.get("threshold_metric") or "f1"
    costs = challenger.get("costs") or (entries["champion"] or {}).get("costs") or pol.compare.costs()
    t, d = _served(got, entries)
    described = _describe(got, t, d, entries, costs)
    has = ~np.isnan(got.outcome)
    y = got.outcome[has].astype(np.int8)
    judgement, diffs = judge(y, (got.p[has, 0], d[has, 0]), (got.p[has, 1], d[has, 1]), objective=objective,
                             costs=costs, policy=pol.compare)
    test = stats.mcnemar(d[has, 0] == y, d[has, 1] == y) if has.any() else None
    window = {"last": last, "since": iso(since_ts), "since_ts": since_ts}
    result = Comparison(judgement.verdict, judgement.decided_by, judgement.reason, objective,
                        pairs=len(got), labelled=int(has.sum()), positives=int(y.sum()), differences=diffs,
                        mcnemar=test, window=window, read=got.read,
                        policy={**pol.compare.to_dict(), "path": pol.path, "sha256": pol.sha256},
                        checked_at_utc=utc_now(), **described)
    if record:
        write(result, home=home)
    log.info("compare: %s", result.summary())
    return result


def write(found: Comparison, *, home: Home | str | None = None, promotion: dict[str, Any] | None = None) -> None:
    """Append the comparison to ``reports/monitoring.jsonl`` (kind ``compare``), with what a promotion on it did.

    Parameters
    ----------
    found : Comparison
    home : Home or path, optional
    promotion : dict, optional
        What :func:`promote` returned: its ``version``, ``promoted`` and, when nothing was promoted, ``why`` are
        written under ``promotion``, so a refusal is on disk, not only on the screen.
    """
    line = found.record()
    if promotion is not None:
        line["promotion"] = {k: promotion[k] for k in ("version", "promoted", "why") if k in promotion}
    monitoring.append(monitoring.COMPARE, line, home=home)


@dataclass
class NoComparison:
    """Nothing to compare: no challenger is set, or no pair is in the window; ``reason`` says which.

    It reads as an empty :class:`Comparison` (no verdict, no pairs, an empty
    :meth:`frame`), so notebook 05 shows it with the same cells.
    """

    reason: str
    challenger: str | None = None   # the challenger's version when one is set
    verdict: str | None = None
    pairs: int = 0
    differences: dict[str, Any] | None = None
    scores: dict[str, Any] | None = None

    def summary(self) -> str:
        """One line: ``no challenger: <why>``."""
        return f"no challenger: {self.reason}"

    def frame(self) -> pd.DataFrame:
        """The columns of :meth:`Comparison.frame`, no row."""
        import pandas as pd

        frame = pd.DataFrame(columns=list(FRAME_COLUMNS))
        frame.index.name = "metric"
        return frame


def compare_if_any(*, home: Home | str | None = None, since: Any = None, last: int | None = None,
                   record: bool = True) -> Comparison | NoComparison:
    """:func:`compare` when a challenger is set and the window has pairs, else why there is nothing to compare.

    Parameters
    ----------
    home : Home or path, optional
    since : str, float or datetime, optional
        Only requests the champion answered since then (an age such as ``24h``, Unix seconds or an ISO time).
    last : int, optional
        Only the ``last`` newest pairs.
    record : bool, default=True
        Append a comparison to ``reports/monitoring.jsonl`` (nothing is appended when there is none).

    Returns
    -------
    Comparison or NoComparison

    Raises
    ------
    InvalidParameter
        A bad window, or a bad ``churn.yaml``.
    RegistryError
        The challenger pointer is damaged.

    Examples
    --------
    >>> compare_if_any(home=tmp_home).summary()  # doctest: +SKIP
    'no challenger: none is set (churn challenger VERSION sets one)'
    """
    home = Home.resolve(home)
    pol, since_ts = _window(home, since, last)
    shadow = registry.read_challenger(home=home)
    if shadow is None:
        return NoComparison("none is set (churn challenger VERSION sets one)")
    got = _read(home, since_ts, last)
    if not len(got):
        return NoComparison(f"{shadow.version or shadow.model_file} is set, but there are {_unpaired(got)}",
                            challenger=shadow.version)
    return _compared(home, pol, got, since_ts=since_ts, last=last, record=record)


#: What a promotion on evidence writes into the history line's reason: the comparison's window, counts,
#: differences with their intervals, and the p-values.
EVIDENCE_KEYS = ("verdict", "decided_by", "reason", "window", "pairs", "labelled", "positives", "differences",
                 "mcnemar_p_value")


def promote(found: Comparison, *, home: Home | str | None = None, by: str = "churn compare --promote"
            ) -> dict[str, Any]:
    """Promote the compared challenger when the verdict is ``challenger_better`` and the gate passes.

    The comparison (window, counts, differences, intervals, p-values) goes into
    the history line's reason. Any other verdict promotes nothing.

    Parameters
    ----------
    found : Comparison
        What :func:`compare` found.
    home : Home or path, optional
    by : str, default="churn compare --promote"
        Who promotes, for the history line.

    Returns
    -------
    dict
        ``version``, ``promoted`` (bool), ``verdict``, ``comparison`` (the evidence) and, when
        nothing was promoted, ``why``.
    """
    evidence = found.record()
    version = found.models["challenger"]["version"] or found.models["challenger"]["model_file"]
    out: dict[str, Any] = {"version": version, "promoted": False, "verdict": found.verdict,
                           "comparison": {k: evidence.get(k) for k in EVIDENCE_KEYS}}
    if found.verdict != CHALLENGER_BETTER:
        out["why"] = f"compare says {found.verdict}: {found.reason}"
        return out
    reason = (f"{by}: compare says challenger_better; evidence "
              + json.dumps(out["comparison"], separators=(",", ":"), default=str))
    try:
        registry.promote(version, home=home, reason=reason)
    except PromotionRefused as exc:  # the gate (or the artifact's sha256) said no
        out["why"] = str(exc)
        return out
    out["promoted"] = True
    return out
