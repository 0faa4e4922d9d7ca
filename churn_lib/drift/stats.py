"""Drift statistics: one model's rows of a window against its reference profile.

Statistics per model (defaults in :class:`Thresholds`):

==================  ========================================================  ===============================
statistic           what                                                      alerts when
==================  ========================================================  ===============================
``lab_z``           the lab's |mean - train mean| / train std                 >= 2.5 (the lab's rule)
``mean_shift``      Welch t-test of the mean (power grows with n)             p < alpha/m and >= 0.1 std
``psi``             PSI on the reference deciles / categories                 >= 0.25 and chi-square p < alpha/m
``ks``              two-sample Kolmogorov-Smirnov on the reference CDF grid   p < alpha/m and D >= 0.05
``chi2``            chi-square of the category mix (seen categories)          p < alpha/m and TVD >= 0.05
``unseen``          share of categories absent from training                  binomial p < alpha/m and >= 1 %
``out_of_range``    share of values outside the training [min, max]           binomial p < alpha/m and >= 1 %
``positive_rate``   predicted-positive rate vs the test split (two-prop. z)   p < alpha/m and >= 5 points
``probability``     ``psi`` and ``ks`` of the scores vs the test split        as ``psi`` and ``ks``
==================  ========================================================  ===============================

False alarms: the m = 4 per numeric feature + 2 per categorical + 3 for the
prediction hypothesis tests of one model (19 on the lab's five features) form
one family; each is run at alpha/m (Bonferroni), so the chance that a window
drawn from the training distribution raises any test alarm is at most
``alpha`` (5 %). PSI and the lab's z are not tests; PSI alarms only when its
chi-square is also significant, and the lab's z (a 2.5-std shift of a mean)
cannot be reached by sampling noise once the window has ``min_window_rows`` (100)
rows. A smaller window gets the verdict "insufficient data", never an alarm.
The effect-size floors keep a very large window from alarming on a shift too
small to matter. Missing values (features the model fills in) are left out of
a number's statistics and counted as the category ``(missing)``.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a table is built: a drift check needs none
    import pandas as pd

from .. import contract as _contract
from ..logs import predictions as predlog, query as logquery
from .._params import Range, check_fields, param
from ..exceptions import InvalidParameter
from .profile import CategoricalReference, NumericReference, Profile

NO_DRIFT = "no drift"
DRIFT = "drift"
INSUFFICIENT = "insufficient data"
NO_PROFILE = "no profile"
#: Feature name under which prediction statistics are reported.
PREDICTION = "prediction"
_AT_LEAST_0 = Range(0)
_PSI_FLOOR = 1e-4  # proportions below this count as this, so an empty bin gives a finite PSI


@dataclass(frozen=True)
class Thresholds:
    """Alert rules (CLI flags and notebook parameters share these names)."""

    alpha: float = param(0.05, "family-wise false-alarm rate of the model's tests",
                         range=Range(0, 1, open_low=True, open_high=True))
    min_window_rows: int = param(100, 'fewer rows in the window: "insufficient data"', range=Range(2),
                                 was="min_rows")
    lab_z: float = param(2.5, "the lab's z alert level", range=_AT_LEAST_0, stage=False)
    psi: float = param(0.25, 'PSI alert level (0.1-0.25 is "moderate")', range=_AT_LEAST_0, stage=False)
    min_mean_shift: float = param(0.1, "smallest mean shift that alarms, in reference std", range=_AT_LEAST_0,
                                  stage=False)
    min_ks: float = param(0.05, "smallest KS distance that alarms", range=_AT_LEAST_0, stage=False)
    min_category_shift: float = param(0.05, "smallest total-variation distance of a category mix",
                                      range=_AT_LEAST_0, stage=False)
    max_unseen_share: float = param(0.01, "unseen categories alarm from this share", range=_AT_LEAST_0,
                                    stage=False)
    max_out_of_range_share: float = param(0.01, "out-of-range values alarm from this share", range=_AT_LEAST_0,
                                          stage=False)
    min_rate_shift: float = param(0.05, "smallest change of the predicted-positive rate", range=_AT_LEAST_0,
                                  stage=False)

    def __post_init__(self) -> None:
        check_fields(self)


def _family_size(profile: Profile) -> int:
    """Hypothesis tests in one model's family (the Bonferroni divisor m)."""
    return 4 * len(profile.numeric) + 2 * len(profile.categorical) + 3


@dataclass(frozen=True)
class Statistic:
    """One statistic of one feature: its value, p-value, effect size, verdict and rule."""

    feature: str
    name: str
    value: float
    alert: bool
    p_value: float | None = None
    effect: float | None = None
    rule: str = ""


@dataclass(frozen=True)
class FeatureDrift:
    """Reference and production proportions of one feature on the reference bins (for plots)."""

    feature: str
    kind: str  # numeric | categorical | probability
    bins: list[str]
    reference: list[float]
    production: list[float]
    n_reference: int
    n_production: int


@dataclass
class ModelDrift:
    """The drift verdict of one model version on its rows of the window."""

    version: str
    model_file: str
    verdict: str
    n_rows: int
    message: str
    first_ts: float | None = None
    last_ts: float | None = None
    n_tests: int = 0
    alpha_per_test: float | None = None
    statistics: list[Statistic] = field(default_factory=list)
    features: list[FeatureDrift] = field(default_factory=list)

    @property
    def alerts(self) -> list[Statistic]:
        return [s for s in self.statistics if s.alert]

    def feature(self, name: str) -> FeatureDrift:
        for f in self.features:
            if f.feature == name:
                return f
        raise InvalidParameter(f"no feature {name!r} in the drift result of {self.version} "
                               f"(features: {', '.join(f.feature for f in self.features) or 'none'})",
                               name="feature")

    def frame(self) -> pd.DataFrame:
        """The statistics as a table (one row per feature and statistic)."""
        import pandas as pd
        cols = ["feature", "name", "value", "effect", "p_value", "alert", "rule"]
        return pd.DataFrame([asdict(s) for s in self.statistics], columns=cols)


# --- accumulation (bounded memory: sufficient statistics, not rows) ------------

class ExactSum:
    """A sum of float64 values that does not depend on their order or on how they come in chunks.

    The same rows read from the log, from the judged-line cache's parts or in
    another thread order must give the same statistics to the last digit, and a
    float sum rounds differently in every order. Each value's bits are counted
    per sign and exponent (the 12 high bits), its 52-bit mantissa in two 26-bit
    halves (summed as floats below ``2**53``, hence exactly, then kept as
    int64), and the total is rounded once, when read (Python's integer division
    rounds correctly). It equals ``math.fsum`` of the values.
    """

    _BINS = 4096          # sign and exponent
    _HALF = 26            # a chunk of up to 2**27 values sums its halves exactly in float64
    _MASK = np.uint64((1 << 26) - 1)

    def __init__(self) -> None:
        self._count = np.zeros(self._BINS, dtype=np.int64)
        self._hi = np.zeros(self._BINS, dtype=np.int64)
        self._lo = np.zeros(self._BINS, dtype=np.int64)

    def add(self, x: np.ndarray) -> None:
        """Add finite float64 values (a chunk of at most 2**27)."""
        bits = np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)
        at = (bits >> np.uint64(52)).astype(np.intp)
        self._count += np.bincount(at, minlength=self._BINS)
        self._hi += np.bincount(at, weights=(bits >> np.uint64(self._HALF)) & self._MASK,
                                minlength=self._BINS).astype(np.int64)
        self._lo += np.bincount(at, weights=bits & self._MASK, minlength=self._BINS).astype(np.int64)

    def value(self) -> float:
        """The sum, rounded once to the nearest float64."""
        used = [int(k) for k in np.flatnonzero(self._hi | self._lo | self._count)]
        if not used:
            return 0.0
        # bin k holds values (-1)**(k >> 11) * mantissa * 2**(max(e, 1) - 1075), e = k & 0x7FF (1: subnormals' scale)
        low = min(max(k & 0x7FF, 1) for k in used) - 1075
        total = 0
        for k in used:
            e = k & 0x7FF
            mantissa = ((int(self._count[k]) << 52) if e else 0) + (int(self._hi[k]) << self._HALF) + int(self._lo[k])
            total += (-1 if k >> 11 else 1) * (mantissa << (max(e, 1) - 1075 - low))
        return total / (1 << -low) if low < 0 else float(total << low)


class _NumericAcc:
    """Counts on the reference bins and grid, shifted sums, range counts.

    The bins' edges and the grid are searched as one sorted array of their distinct points (one binary search
    per value, not two): the count of values at or below each point gives both the grid's counts and the bins'.
    """

    def __init__(self, ref: NumericReference) -> None:
        self.ref = ref
        self.edges = np.asarray(ref.edges, dtype=np.float64)
        self.grid = np.asarray(ref.grid, dtype=np.float64)
        self._points = np.unique(np.concatenate([self.grid, self.edges]))
        self._counts = np.zeros(len(self._points) + 1, dtype=np.int64)  # [k]: values with k points below them
        self.n = 0
        self._sum = ExactSum()    # of x - ref.mean (no cancellation in the variance)
        self._sumsq = ExactSum()
        self.outside = 0

    def add(self, x: np.ndarray) -> None:
        x = x[np.isfinite(x)]  # a missing value (filled in by the model) is not part of the distribution
        if not len(x):
            return
        d = x - self.ref.mean
        self.n += len(x)
        self._sum.add(d)
        self._sumsq.add(d * d)
        self._counts += np.bincount(np.searchsorted(self._points, x, side="left"), minlength=len(self._counts))
        self.outside += int(np.count_nonzero((x < self.ref.min) | (x > self.ref.max)))

    def _between(self, points: np.ndarray) -> np.ndarray:
        """Counts of values in (points[k-1], points[k]] for each k, then above the last point: what
        ``bincount(searchsorted(points, x))`` gives over every value added."""
        at_or_below = np.cumsum(self._counts)[np.searchsorted(self._points, points)]
        return np.diff(np.concatenate([[0], at_or_below, [self.n]])).astype(np.int64)

    @property
    def grid_counts(self) -> np.ndarray:
        """Counts per interval of the grid (the empirical distribution function on it)."""
        return self._between(self.grid)

    @property
    def bins(self) -> np.ndarray:
        """Counts per reference bin."""
        return self._between(self.edges)

    @property
    def mean(self) -> float:
        return self.ref.mean + self._sum.value() / self.n

    @property
    def var(self) -> float:
        total = self._sum.value()
        return max((self._sumsq.value() - total ** 2 / self.n) / (self.n - 1), 0.0) if self.n > 1 else 0.0


class _ModelAcc:
    """Everything needed for one model's statistics, updated batch by batch."""

    def __init__(self, profile: Profile | None) -> None:
        self.profile = profile
        self.n = 0
        self.first_ts = math.inf
        self.last_ts = -math.inf
        if profile is not None:
            self.numeric = {k: _NumericAcc(r) for k, r in profile.numeric.items()}
            self.categorical = {k: Counter() for k in profile.categorical}
            self.probability = _NumericAcc(profile.probability)
            self.positives = 0

    def add(self, batch: predlog.Batch) -> None:
        if not len(batch):
            return
        self.n += len(batch)
        self.first_ts = min(self.first_ts, float(batch.ts.min()))
        self.last_ts = max(self.last_ts, float(batch.ts.max()))
        if self.profile is None:
            return
        for k, acc in self.numeric.items():
            acc.add(batch.numeric[k])
        for k, counter in self.categorical.items():
            values = batch.categorical[k]
            if (values == None).any():  # noqa: E711 - elementwise
                values = np.where(values == None, _contract.MISSING_CATEGORY, values)  # noqa: E711
            counter.update(values.tolist())
        self.probability.add(batch.probability)
        self.positives += int(np.count_nonzero(batch.probability >= self.profile.threshold))

    def add_part(self, part: logquery.Part) -> None:
        """Add one model's rows of a window, as :func:`churn_lib.logs.query.newest` gives them."""
        self.n += part.n
        self.first_ts = min(self.first_ts, part.first_ts)
        self.last_ts = max(self.last_ts, part.last_ts)
        if self.profile is None:
            return
        _add_columns([(acc, part.numeric[k]) for k, acc in self.numeric.items()]
                     + [(self.probability, part.probability)])
        for k, counter in self.categorical.items():
            for value, count in part.categorical[k].items():
                counter[_contract.MISSING_CATEGORY if value is None else value] += count
        self.positives += int(np.count_nonzero(part.probability >= self.profile.threshold))


#: Rows of a window from which its numeric columns are accumulated on two threads (numpy's searches, sums and
#: counts release the GIL; each column has its own accumulator, and the sums are exact: the same result).
PARALLEL_ROWS = 100_000


def _add_columns(columns: list[tuple[_NumericAcc, np.ndarray]]) -> None:
    """``acc.add(x)`` for each (accumulator, column), on two threads for a large window."""
    if len(columns) < 2 or len(columns[0][1]) < PARALLEL_ROWS or (os.cpu_count() or 1) < 2:
        for acc, x in columns:
            acc.add(x)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        for _ in pool.map(lambda job: job[0].add(job[1]), columns):
            pass


# --- statistics ------------------------------------------------------------------

def _psi(ref: np.ndarray, prod: np.ndarray) -> float:
    q = np.maximum(ref, _PSI_FLOOR)
    p = np.maximum(prod, _PSI_FLOOR)
    return float(np.sum((p - q) * np.log(p / q)))


# The distributions come from scipy.special (and .kolmogorov), not from scipy.stats, whose import costs a
# drift check about a second; each gives what scipy.stats gives, to the bit (tests/test_startup.py compares).

def _chi2_two_sample(ref_counts: np.ndarray, prod_counts: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity of two count vectors over the same bins (``chi2_contingency``
    without Yates' correction: expected counts from the margins, Pearson's statistic, k - 1 degrees of freedom)."""
    from scipy.special import chdtrc

    table = np.vstack([ref_counts, prod_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or table[1].sum() == 0 or table[0].sum() == 0:
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = ((table - expected) ** 2 / expected).sum()
    return float(statistic), float(chdtrc(table.shape[1] - 1, statistic))


def _binomial_excess(k: int, n: int, p0: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p0): how surprising k rare events are (the regularised incomplete beta
    I_p0(k, n - k + 1), as ``scipy.stats.binom.sf(k - 1, n, p0)`` computes it)."""
    from scipy.special import betainc

    return 1.0 if k <= 0 else float(betainc(k, n - k + 1, p0))


def _numeric_stats(name: str, ref: NumericReference, acc: _NumericAcc, th: Thresholds, a: float,
                   *, with_mean: bool = True) -> tuple[list[Statistic], FeatureDrift]:
    from scipy.special import stdtr

    from . import kolmogorov

    n = acc.n
    out: list[Statistic] = []
    if n < 2:  # every value of the window missing: nothing to compare
        fd = FeatureDrift(name, "numeric" if with_mean else "probability", ref.bin_labels(),
                          list(map(float, ref.proportions)), [0.0] * len(ref.proportions), ref.n, n)
        return out, fd
    if with_mean:
        diff = acc.mean - ref.mean
        z = abs(diff) / ref.std
        out.append(Statistic(name, "lab_z", z, z >= th.lab_z, None, z,
                             f"|mean - train mean| / train std >= {th.lab_z:g} (the lab's rule)"))
        v_ref, v_prod = ref.std ** 2 / ref.n, acc.var / n
        se = math.sqrt(v_ref + v_prod)
        if se > 0:
            t = diff / se
            df = (v_ref + v_prod) ** 2 / (v_ref ** 2 / (ref.n - 1) + (v_prod ** 2 / (n - 1) if n > 1 else 0.0))
            p = float(2 * stdtr(df, -abs(t)))  # Student's t survival function at |t|
        else:
            t, p = 0.0, 1.0
        effect = diff / ref.std
        out.append(Statistic(name, "mean_shift", float(t), p < a and abs(effect) >= th.min_mean_shift, p, effect,
                             f"Welch t-test p < {a:.2g} and |shift| >= {th.min_mean_shift:g} std"))
    prod_prop = acc.bins / n
    ref_prop = np.asarray(ref.proportions)
    psi = _psi(ref_prop, prod_prop)
    _, p_bins = _chi2_two_sample(np.round(ref_prop * ref.n), acc.bins)
    out.append(Statistic(name, "psi", psi, psi >= th.psi and p_bins < a, p_bins, psi,
                         f"PSI >= {th.psi:g} and chi-square on its bins p < {a:.2g}"))
    cdf_prod = np.cumsum(acc.grid_counts)[:-1] / n
    d = float(np.max(np.abs(cdf_prod - np.asarray(ref.cdf)))) if len(ref.cdf) else 0.0
    n_eff = n * ref.n / (n + ref.n)
    p_ks = kolmogorov.sf(d, max(int(round(n_eff)), 1))
    out.append(Statistic(name, "ks", d, p_ks < a and d >= th.min_ks, p_ks, d,
                         f"two-sample KS p < {a:.2g} and D >= {th.min_ks:g}"))
    if with_mean:
        share = acc.outside / n
        p_out = _binomial_excess(acc.outside, n, 2.0 / (ref.n + 1))
        out.append(Statistic(name, "out_of_range", share, p_out < a and share >= th.max_out_of_range_share, p_out,
                             share, f"outside the training [{ref.min:g}, {ref.max:g}]: binomial p < {a:.2g} "
                                    f"and share >= {th.max_out_of_range_share:g}"))
    fd = FeatureDrift(name, "numeric" if with_mean else "probability", ref.bin_labels(),
                      list(map(float, ref_prop)), list(map(float, prod_prop)), ref.n, n)
    return out, fd


def _categorical_stats(name: str, ref: CategoricalReference, counts: Counter, n: int, th: Thresholds,
                       a: float) -> tuple[list[Statistic], FeatureDrift]:
    merged = counts  # logged categories are normalised at the way in
    known = [c for c, k in ref.counts.items() if k > 0]
    ref_counts = np.array([ref.counts[c] for c in known], dtype=float)
    prod_counts = np.array([merged.get(c, 0) for c in known], dtype=float)
    n_known = prod_counts.sum()
    unseen = int(n - n_known)
    ref_prop = ref_counts / ref.n
    prod_prop = prod_counts / n_known if n_known else np.zeros(len(known))
    stat, p = _chi2_two_sample(ref_counts, prod_counts)
    tvd = float(0.5 * np.abs(prod_prop - ref_prop).sum()) if n_known else 0.0
    psi = _psi(ref_prop, prod_prop) if n_known else 0.0
    share = unseen / n
    p_unseen = _binomial_excess(unseen, n, 1.0 / (ref.n + 1))
    out = [
        Statistic(name, "psi", psi, psi >= th.psi and p < a, p, psi,
                  f"PSI >= {th.psi:g} and chi-square p < {a:.2g}"),
        Statistic(name, "chi2", stat, p < a and tvd >= th.min_category_shift, p, tvd,
                  f"chi-square p < {a:.2g} and total variation >= {th.min_category_shift:g}"),
        Statistic(name, "unseen", share, p_unseen < a and share >= th.max_unseen_share, p_unseen, share,
                  f"categories absent from training: binomial p < {a:.2g} and share >= {th.max_unseen_share:g}"),
    ]
    fd = FeatureDrift(name, "categorical", known + ["(unseen)"], list(map(float, ref_prop)) + [0.0],
                      [float(k / n) for k in prod_counts] + [share], ref.n, n)
    return out, fd


def _evaluate(profile: Profile, acc: _ModelAcc, th: Thresholds) -> tuple[list[Statistic], list[FeatureDrift], float]:
    from scipy.special import ndtr

    a = th.alpha / _family_size(profile)
    stats: list[Statistic] = []
    feats: list[FeatureDrift] = []
    for name, ref in profile.numeric.items():
        s, f = _numeric_stats(name, ref, acc.numeric[name], th, a)
        stats += s
        feats.append(f)
    for name, ref in profile.categorical.items():
        s, f = _categorical_stats(name, ref, acc.categorical[name], acc.n, th, a)
        stats += s
        feats.append(f)
    n, n_ref = acc.n, profile.n_test
    rate, rate_ref = acc.positives / n, profile.positive_rate
    pooled = (acc.positives + rate_ref * n_ref) / (n + n_ref)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n_ref))
    p = float(2 * ndtr(-abs(rate - rate_ref) / se)) if se > 0 else (1.0 if rate == rate_ref else 0.0)
    stats.append(Statistic(PREDICTION, "positive_rate", rate, p < a and abs(rate - rate_ref) >= th.min_rate_shift,
                           p, rate - rate_ref, f"rate at threshold {profile.threshold:.2f} vs test split "
                                               f"{rate_ref:.3f}: p < {a:.2g} and change >= {th.min_rate_shift:g}"))
    s, f = _numeric_stats(PREDICTION, profile.probability, acc.probability, th, a, with_mean=False)
    stats += [Statistic(x.feature, f"probability_{x.name}", x.value, x.alert, x.p_value, x.effect, x.rule)
              for x in s]
    feats.append(FeatureDrift("probability", "probability", f.bins, f.reference, f.production,
                              f.n_reference, f.n_production))
    return stats, feats, a


def _model_drift(entry: Mapping[str, Any], acc: _ModelAcc, th: Thresholds) -> ModelDrift:
    version, model_file = entry["version"], entry["model_file"]
    first = acc.first_ts if acc.n else None
    last = acc.last_ts if acc.n else None
    if acc.profile is None:
        return ModelDrift(version, model_file, NO_PROFILE, acc.n,
                          "no reference profile (registered before drift monitoring): retrain to get one",
                          first, last)
    m = _family_size(acc.profile)
    if acc.n < th.min_window_rows:
        return ModelDrift(version, model_file, INSUFFICIENT, acc.n,
                          f"{acc.n} rows in the window; at least {th.min_window_rows} are needed for a verdict (min_window_rows)",
                          first, last, m, th.alpha / m)
    stats, feats, a = _evaluate(acc.profile, acc, th)
    alerts = [s for s in stats if s.alert]
    verdict = DRIFT if alerts else NO_DRIFT
    message = (f"{acc.n} rows; " + (f"{len(alerts)} of {len(stats)} statistics alert: "
                                     + ", ".join(f"{s.feature}.{s.name}" for s in alerts)
                                     if alerts else f"none of {len(stats)} statistics alerts")
               + f" (family-wise false-alarm rate {th.alpha:g} over {m} tests)")
    return ModelDrift(version, model_file, verdict, acc.n, message, first, last, m, a, stats, feats)


def compare(frame: pd.DataFrame, profile: Profile, *, thresholds: Thresholds | None = None,
            version: str = "frame", model_file: str = "") -> ModelDrift:
    """Drift of the rows of ``frame`` (the features and ``probability``) against ``profile``.

    The same statistics as :func:`check`, on rows already in memory (tests,
    simulations, ad-hoc analyses).
    """
    import pandas as pd
    th = thresholds or Thresholds()
    missing = [c for c in (*profile.numeric, *profile.categorical, "probability") if c not in frame.columns]
    if missing:
        raise InvalidParameter(f"frame lacks columns {missing}", name="frame")
    n = len(frame)
    batch = predlog.Batch(
        model=np.full(n, model_file or version, dtype=object),
        ts=np.zeros(n),
        probability=frame["probability"].to_numpy(dtype=float),
        numeric={k: pd.to_numeric(frame[k]).to_numpy(dtype=float) for k in profile.numeric},
        categorical={k: frame[k].astype(object).where(frame[k].notna(), None).to_numpy(dtype=object)
                     for k in profile.categorical},
    )
    acc = _ModelAcc(profile)
    acc.add(batch)
    md = _model_drift({"version": version, "model_file": model_file}, acc, th)
    md.first_ts = md.last_ts = None
    return md


