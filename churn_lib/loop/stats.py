"""Paired statistics of two models' answers to the same customers: McNemar's test, PSI, and the paired bootstrap.

Pure functions on arrays (one row per paired request), so they are checked
against scipy and scikit-learn on the same data and run on simulated outcomes:

* :func:`mcnemar` - whether the two models' decisions are right equally often:
  exact binomial on the discordant pairs when they are few (fewer than
  :data:`MCNEMAR_EXACT_BELOW`), chi-square with continuity correction otherwise
  (from :mod:`math`: the binomial tail summed in integers, the chi-square tail as ``erfc``; scipy takes
  longer to import than the test takes);
* :func:`psi` - population stability index between the two score distributions
  on the champion's deciles;
* :func:`paired_bootstrap` - intervals and p-values of the differences
  (challenger minus champion) of ROC AUC, F1, Brier and profit, the same rows
  drawn for both models. Each draw is a vector of multinomial weights over the
  rows, so every metric of every draw is a weighted sum (ROC AUC: over the rows
  sorted once by score), vectorised with numpy (``einsum``, not a BLAS product:
  a BLAS thread pool busy-waits on a loaded machine, and ``einsum``'s sums do
  not depend on the machine's BLAS kernel). Up to :data:`FULL_BOOTSTRAP_ROWS`
  rows this is the ordinary bootstrap; above, the bag of little bootstraps
  (Kleiner et al., 2014): :data:`BLB_SUBSETS` random subsets of
  ``max(FULL_BOOTSTRAP_ROWS, n ** 0.6)`` rows each carry weights summing to
  ``n``, and the subsets' interval ends and p-values are averaged, which keeps
  the cost independent of ``n``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Discordant pairs below which McNemar's test is the exact binomial test.
MCNEMAR_EXACT_BELOW = 25
#: Rows up to which the bootstrap resamples every row; above, the bag of little bootstraps, each subset of
#: ``max(FULL_BOOTSTRAP_ROWS, n ** 0.6)`` rows (the cost is draws x subset rows, whatever ``n``).
FULL_BOOTSTRAP_ROWS = 5_000
#: Subsets of the bag of little bootstraps.
BLB_SUBSETS = 10
#: Weight matrix cells held at once (draws x rows).
_CELLS = 4_000_000
#: Floor of a bin's share in PSI (an empty bin would make it infinite).
PSI_FLOOR = 1e-4
#: The metrics whose differences are bootstrapped, and whether higher is better.
METRICS = {"roc_auc": True, "f1": True, "brier": False, "profit_per_1000": True}


def mcnemar(champion_right: np.ndarray, challenger_right: np.ndarray) -> dict[str, Any]:
    """McNemar's test of paired correctness: is either model right more often on the same customers?

    Parameters
    ----------
    champion_right, challenger_right : array of bool
        Per labelled pair, whether each model's decision equals the outcome.

    Returns
    -------
    dict
        ``champion_only`` (b: champion right, challenger wrong), ``challenger_only`` (c), ``method``
        (``exact`` or ``chi2_cc``), ``statistic`` (c - b's chi-square, None when exact) and ``p_value`` (two-sided).

    Examples
    --------
    >>> round(mcnemar(np.array([1, 1, 1, 0]), np.array([0, 0, 0, 0]))["p_value"], 3)
    0.25
    """
    a, k = np.asarray(champion_right, dtype=bool), np.asarray(challenger_right, dtype=bool)
    b, c = int(np.count_nonzero(a & ~k)), int(np.count_nonzero(~a & k))
    n = b + c
    if n < MCNEMAR_EXACT_BELOW:  # twice the binomial tail, summed exactly in integers (n < 25: 2 ** n is exact)
        tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
        p = 1.0 if n == 0 else min(1.0, 2.0 * tail / 2 ** n)
        return {"champion_only": b, "challenger_only": c, "method": "exact", "statistic": None, "p_value": p}
    stat = (abs(b - c) - 1.0) ** 2 / n
    # chi-square with one degree of freedom: P(X > stat) = P(|Z| > sqrt(stat)) = erfc(sqrt(stat / 2))
    return {"champion_only": b, "challenger_only": c, "method": "chi2_cc", "statistic": stat,
            "p_value": math.erfc(math.sqrt(stat / 2))}


def psi(champion: np.ndarray, challenger: np.ndarray) -> float | None:
    """PSI of the challenger's scores against the champion's, on the champion's deciles (None: no scores)."""
    x, z = np.asarray(champion, dtype=float), np.asarray(challenger, dtype=float)
    if not len(x) or not len(z):
        return None
    edges = np.unique(np.quantile(x, np.arange(1, 10) / 10, method="inverted_cdf"))
    ref = np.bincount(np.searchsorted(edges, x, side="left"), minlength=len(edges) + 1) / len(x)
    new = np.bincount(np.searchsorted(edges, z, side="left"), minlength=len(edges) + 1) / len(z)
    q, p = np.maximum(ref, PSI_FLOOR), np.maximum(new, PSI_FLOOR)
    return float(np.sum((p - q) * np.log(p / q)))


class _Side:
    """One model's rows, arranged once for weighted metrics: decision cells, squared errors, and for ROC AUC the
    negatives in score order with, per positive, where its score falls among them."""

    def __init__(self, y: np.ndarray, p: np.ndarray, d: np.ndarray) -> None:
        self.tp, self.fp, self.fn = ((d & (y == 1)).astype(float), (d & (y == 0)).astype(float),
                                     (~d & (y == 1)).astype(float))
        self.sq = (p - y) ** 2
        neg = np.flatnonzero(y == 0)
        self.neg = neg[np.argsort(p[neg], kind="stable")]
        self.pos = np.flatnonzero(y == 1)
        scores = p[self.neg]
        self.lo = np.searchsorted(scores, p[self.pos], side="left")   # negatives scored strictly lower
        self.hi = np.searchsorted(scores, p[self.pos], side="right")  # ... or tied (a tie counts one half)

    def metrics(self, w: np.ndarray, n: float, costs: dict[str, Any] | None) -> dict[str, np.ndarray]:
        """Each metric under every row of weights ``w`` (draws x rows, each row summing to ``n``)."""
        tp, fp, fn, sq = (np.einsum("ij,j->i", w, v) for v in (self.tp, self.fp, self.fn, self.sq))
        with np.errstate(invalid="ignore", divide="ignore"):
            out = {"f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan),
                   "brier": sq / n, "roc_auc": self._auc(w)}
        if costs is not None:
            gain = costs.get("offer_success", 1.0) * costs["retention_value"] - costs["offer_cost"]
            out["profit_per_1000"] = (tp * gain - fp * costs["offer_cost"]) / n * 1000
        return out

    def _auc(self, w: np.ndarray) -> np.ndarray:
        """Weighted ROC AUC: per positive, the weight of negatives below it (ties one half), over all pairs."""
        below = np.zeros((len(w), len(self.neg) + 1))
        np.cumsum(w[:, self.neg], axis=1, out=below[:, 1:])
        wp = w[:, self.pos]
        num = np.einsum("ij,ij->i", wp, below[:, self.lo] + below[:, self.hi]) / 2
        den = wp.sum(axis=1) * below[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / den, np.nan)


def _draws(y: np.ndarray, champ: tuple[np.ndarray, np.ndarray], chal: tuple[np.ndarray, np.ndarray],
           costs: dict[str, Any] | None, n: int, draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The differences (challenger - champion) of each metric over ``draws`` weight vectors on these rows,
    each summing to ``n``."""
    sides = [_Side(y, p, d) for p, d in (champ, chal)]
    rows = len(y)
    step = max(1, _CELLS // max(rows, 1))
    parts: dict[str, list[np.ndarray]] = {}
    share = np.full(rows, 1.0 / rows)
    for start in range(0, draws, step):
        w = rng.multinomial(n, share, size=min(step, draws - start)).astype(float)
        a, b = (s.metrics(w, n, costs) for s in sides)
        for key in a:
            parts.setdefault(key, []).append(b[key] - a[key])
    return {k: np.concatenate(v) for k, v in parts.items()}


def _summary(diffs: np.ndarray, alpha: float) -> tuple[float, float, float] | None:
    """(low, high, p-value) of one metric's draws: percentile interval and two-sided bootstrap p-value."""
    d = diffs[np.isfinite(diffs)]
    if len(d) < len(diffs) / 2:
        return None
    low, high = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    p = min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0)))
    return float(low), float(high), float(p)


def paired_bootstrap(y: np.ndarray, champion: tuple[np.ndarray, np.ndarray], challenger: tuple[np.ndarray, np.ndarray],
                     *, costs: dict[str, Any] | None = None, draws: int = 1000, alpha: float = 0.05,
                     seed: int = 0) -> dict[str, dict[str, Any]]:
    """Paired bootstrap intervals of each metric's difference, challenger minus champion.

    Parameters
    ----------
    y : array of 0/1
        The outcomes of the labelled pairs.
    champion, challenger : (probabilities, decisions)
        Each model's probability (float) and served decision (bool) per pair.
    costs : dict, optional
        ``retention_value``, ``offer_cost``, ``offer_success``: adds ``profit_per_1000``.
    draws : int, default=1000
    alpha : float, default=0.05
        The intervals are ``1 - alpha`` percentile intervals.
    seed : int, default=0

    Returns
    -------
    dict
        Per metric, ``interval`` ([low, high]) and ``p_value`` (twice the share of draws on the far side of
        zero), or None where too few draws define the metric; ``method`` (``bootstrap`` or
        ``bag_of_little_bootstraps``).
    """
    rng = np.random.default_rng(seed)
    y = np.asarray(y, dtype=np.int8)
    n = len(y)
    pc, dc = np.asarray(champion[0], dtype=float), np.asarray(champion[1], dtype=bool)
    pk, dk = np.asarray(challenger[0], dtype=float), np.asarray(challenger[1], dtype=bool)
    if n <= FULL_BOOTSTRAP_ROWS:
        subsets = [np.arange(n)]
        method = "bootstrap"
    else:
        size = max(FULL_BOOTSTRAP_ROWS, math.ceil(n ** 0.6))
        if size * BLB_SUBSETS <= n:  # disjoint subsets: one draw of them all
            picked = rng.choice(n, size * BLB_SUBSETS, replace=False).reshape(BLB_SUBSETS, size)
            subsets = [np.sort(rows) for rows in picked]
        else:
            subsets = [np.sort(rng.choice(n, size, replace=False)) for _ in range(BLB_SUBSETS)]
        method = "bag_of_little_bootstraps"
    per = max(1, draws // len(subsets))
    found: dict[str, list[tuple[float, float, float] | None]] = {}
    for rows in subsets:
        diffs = _draws(y[rows], (pc[rows], dc[rows]), (pk[rows], dk[rows]), costs, n, per, rng)
        for key, values in diffs.items():
            found.setdefault(key, []).append(_summary(values, alpha))
    out: dict[str, Any] = {"method": method, "draws": per * len(subsets)}
    for key, results in found.items():
        if any(r is None for r in results):
            out[key] = None
            continue
        low, high, p = (float(np.mean(v)) for v in zip(*results))
        out[key] = {"interval": [low, high], "p_value": p}
    return out
