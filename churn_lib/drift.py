"""Drift: a reference profile saved with each model version at training time,
and drift statistics on a window of logged predictions against the profile
of the model that served them.

The profile (:class:`Profile`, a JSON sidecar beside the model file, its
sha256 in the registry entry) holds, from the training split, per numeric
feature the mean, std, min, max, decile bins with their proportions and the
CDF on a grid of up to 100 points; per categorical feature the counts; and,
from the test split, the probability distribution and the predicted-positive
rate at the model's stored threshold.

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
prediction = 19 hypothesis tests of one model form one family; each is run at
alpha/m (Bonferroni), so the chance that a window drawn from the training
distribution raises any test alarm is at most ``alpha`` (5 %). PSI and the
lab's z are not tests; PSI alarms only when its chi-square is also
significant, and the lab's z (a 2.5-std shift of a mean) cannot be reached by
sampling noise once the window has ``min_rows`` (100) rows. A smaller window
gets the verdict "insufficient data", never an alarm. The effect-size floors
keep a very large window from alarming on a shift too small to matter.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from . import predlog, registry, schema
from ._files import atomic_write_json, sha256_file
from .exceptions import IntegrityError, InvalidParameter, NoCurrentModel, RegistryError
from .home import Home

log = logging.getLogger(__name__)

PROFILE_FORMAT = 1
#: PSI bins: deciles of the reference (fewer where values tie).
N_BINS = 10
#: Points where the reference CDF is kept for the KS test (all values when fewer).
GRID_POINTS = 100
#: The default window: the last this many predictions of the model.
DEFAULT_LAST = 1000

NO_DRIFT = "no drift"
DRIFT = "drift"
INSUFFICIENT = "insufficient data"
NO_PROFILE = "no profile"
#: Feature name under which prediction statistics are reported.
PREDICTION = "prediction"

_PROFILE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.profile\.json$")
_PSI_FLOOR = 1e-4  # proportions below this count as this, so an empty bin gives a finite PSI


# --- reference profile ---------------------------------------------------------

@dataclass(frozen=True)
class NumericReference:
    """Reference distribution of one numeric variable.

    Bins are right-closed: bin 0 is ``x <= edges[0]``, bin i is
    ``edges[i-1] < x <= edges[i]``, the last ``x > edges[-1]``.
    """

    n: int
    mean: float
    std: float
    min: float
    max: float
    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    grid: tuple[float, ...]
    cdf: tuple[float, ...]

    @classmethod
    def from_values(cls, values: Any, *, n_bins: int = N_BINS, grid_points: int = GRID_POINTS) -> "NumericReference":
        x = np.asarray(values, dtype=float)
        x = np.sort(x[np.isfinite(x)])
        n = len(x)
        if n < 2:
            raise InvalidParameter(f"a reference needs at least 2 values, got {n}", name="values")
        std = float(x.std(ddof=1))
        # quantiles that are values of the sample, so the bin edges are also points of the grid
        edges = np.unique(np.quantile(x, np.arange(1, n_bins) / n_bins, method="inverted_cdf"))
        counts = np.bincount(np.searchsorted(edges, x, side="left"), minlength=len(edges) + 1)
        uniq = np.unique(x)
        grid = uniq if len(uniq) <= grid_points else np.unique(
            np.quantile(x, np.arange(1, grid_points) / grid_points, method="inverted_cdf"))
        cdf = np.searchsorted(x, grid, side="right") / n
        return cls(n=n, mean=float(x.mean()), std=std if std > 0 else 1.0, min=float(x[0]), max=float(x[-1]),
                   edges=tuple(map(float, edges)), proportions=tuple(map(float, counts / n)),
                   grid=tuple(map(float, grid)), cdf=tuple(map(float, cdf)))

    def bin_labels(self) -> list[str]:
        e = [f"{v:.4g}" for v in self.edges]
        if not e:
            return ["all"]
        return [f"≤{e[0]}"] + [f"{a}–{b}" for a, b in zip(e, e[1:])] + [f">{e[-1]}"]


@dataclass(frozen=True)
class CategoricalReference:
    """Reference counts of one categorical feature (normalised values)."""

    n: int
    counts: dict[str, int]

    @property
    def frequencies(self) -> dict[str, float]:
        return {k: v / self.n for k, v in self.counts.items()}


@dataclass(frozen=True)
class Profile:
    """The reference a model version's logged traffic is compared with."""

    numeric: dict[str, NumericReference]
    categorical: dict[str, CategoricalReference]
    probability: NumericReference
    positive_rate: float
    threshold: float
    n_train: int
    n_test: int
    created_at_utc: str = ""
    format: int = PROFILE_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Profile":
        if d.get("format") != PROFILE_FORMAT:
            raise ValueError(f"unknown profile format {d.get('format')!r}")

        def num(v: Mapping[str, Any]) -> NumericReference:
            return NumericReference(**{k: tuple(v[k]) if isinstance(v[k], list) else v[k]
                                       for k in NumericReference.__dataclass_fields__})

        return cls(numeric={k: num(v) for k, v in d["numeric"].items()},
                   categorical={k: CategoricalReference(int(v["n"]), dict(v["counts"]))
                                for k, v in d["categorical"].items()},
                   probability=num(d["probability"]), positive_rate=float(d["positive_rate"]),
                   threshold=float(d["threshold"]), n_train=int(d["n_train"]), n_test=int(d["n_test"]),
                   created_at_utc=d.get("created_at_utc", ""), format=d["format"])

    def frame(self) -> pd.DataFrame:
        """One row per numeric feature (and the test-split probability): n, mean, std, min, max."""
        rows = {**self.numeric, "probability (test split)": self.probability}
        return pd.DataFrame({k: {"n": r.n, "mean": r.mean, "std": r.std, "min": r.min, "max": r.max}
                             for k, r in rows.items()}).T


def build_profile(X_train: pd.DataFrame, proba_test: Any, *, threshold: float) -> Profile:
    """The reference profile of a model from its training split and test-split scores.

    Parameters
    ----------
    X_train : pandas.DataFrame
        The training split's features (``schema.FEATURES``).
    proba_test : array-like
        The model's churn probabilities on the test split.
    threshold : float
        The model's stored decision threshold.

    Returns
    -------
    Profile

    Examples
    --------
    >>> from churn_lib import data
    >>> df = data.generate(50, seed=1)
    >>> build_profile(df, np.linspace(0, 1, 20), threshold=0.5).positive_rate
    0.5
    """
    proba = np.asarray(proba_test, dtype=float)
    categorical = {}
    for c in schema.CATEGORICAL:
        values = [schema.normalise_category(c, v) for v in X_train[c].astype(str).tolist()]
        categorical[c] = CategoricalReference(len(values), dict(sorted(Counter(values).items())))
    return Profile(
        numeric={n: NumericReference.from_values(X_train[n].to_numpy(dtype=float)) for n in schema.NUMERIC},
        categorical=categorical,
        probability=NumericReference.from_values(proba),
        positive_rate=float(np.mean(proba >= threshold)),
        threshold=float(threshold),
        n_train=int(len(X_train)),
        n_test=int(len(proba)),
        created_at_utc=registry.utc_now(),
    )


def load_profile(entry: Mapping[str, Any], *, home: Home | str | None = None) -> Profile:
    """The reference profile of a registry entry, after its sha256 matched.

    Raises
    ------
    RegistryError
        The entry has no profile (registered before drift monitoring): retrain.
    IntegrityError
        The profile file is missing, altered or unreadable.
    """
    home = Home.resolve(home)
    version = entry.get("version")
    name = entry.get("profile_file")
    if not name:
        raise RegistryError(f"{version} has no reference profile (it was registered before drift monitoring): "
                            "retrain to get a reference profile (`churn train`)", version=version)
    if not isinstance(name, str) or not _PROFILE_FILE.fullmatch(name) or ".." in name:
        raise IntegrityError(f"registry entry {version!r} names an unsafe profile file {name!r}", version=version)
    path = home.models_dir / name
    if not path.is_file():
        raise IntegrityError(f"reference profile of {version} is missing: {path}", version=version, path=str(path))
    if sha256_file(path) != entry.get("profile_sha256"):
        raise IntegrityError(f"reference profile of {version} does not match its registered sha256: {path}",
                             version=version, path=str(path))
    try:
        return Profile.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"reference profile of {version} cannot be read ({exc}): {path}",
                             version=version, path=str(path)) from None


# --- thresholds and results ------------------------------------------------------

@dataclass(frozen=True)
class Thresholds:
    """Alert rules (CLI flags and notebook parameters share these names)."""

    alpha: float = 0.05                   #: family-wise false-alarm rate of one model's tests
    min_rows: int = 100                   #: fewer rows in the window: "insufficient data"
    lab_z: float = 2.5                    #: the lab's z alert level
    psi: float = 0.25                     #: PSI alert level (0.1-0.25 is "moderate")
    min_mean_shift: float = 0.1           #: smallest mean shift that alarms, in reference std
    min_ks: float = 0.05                  #: smallest KS distance that alarms
    min_category_shift: float = 0.05      #: smallest total-variation distance of a category mix
    max_unseen_share: float = 0.01        #: unseen categories alarm from this share
    max_out_of_range_share: float = 0.01  #: out-of-range values alarm from this share
    min_rate_shift: float = 0.05          #: smallest change of the predicted-positive rate

    def __post_init__(self) -> None:
        ok = {
            "alpha": 0 < self.alpha < 1,
            "min_rows": isinstance(self.min_rows, int) and not isinstance(self.min_rows, bool) and self.min_rows >= 2,
        }
        ok.update({k: getattr(self, k) >= 0 for k in ("lab_z", "psi", "min_mean_shift", "min_ks",
                                                       "min_category_shift", "max_unseen_share",
                                                       "max_out_of_range_share", "min_rate_shift")})
        for name, good in ok.items():
            if not good:
                raise InvalidParameter(f"{name}={getattr(self, name)!r} is out of range", name=name)


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
        cols = ["feature", "name", "value", "effect", "p_value", "alert", "rule"]
        return pd.DataFrame([asdict(s) for s in self.statistics], columns=cols)


@dataclass
class DriftResult:
    """The outcome of a drift check: an overall verdict and one :class:`ModelDrift` per model.

    ``verdict`` is "drift" when any model drifted, else "no drift" when at
    least one model had enough rows, else "insufficient data".
    """

    verdict: str
    models: list[ModelDrift]
    window: dict[str, Any]
    read: dict[str, Any]
    thresholds: dict[str, Any]
    unknown_models: dict[str, int] = field(default_factory=dict)
    checked_at_utc: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def model(self, version: str | None = None) -> ModelDrift:
        """The result of ``version`` (label or model file; default the first model with a verdict)."""
        if version is None:
            for m in self.models:
                if m.verdict in (DRIFT, NO_DRIFT):
                    return m
            if self.models:
                return self.models[0]
            raise InvalidParameter("the drift result holds no model", name="version")
        for m in self.models:
            if version in (m.version, m.model_file):
                return m
        raise InvalidParameter(f"no model {version!r} in the drift result "
                               f"(models: {', '.join(m.version for m in self.models) or 'none'})", name="version")

    def summary_frame(self) -> pd.DataFrame:
        """One row per model: verdict, rows, time span, alerting statistics."""
        rows = [{"version": m.version, "verdict": m.verdict, "n_rows": m.n_rows,
                 "first": _iso(m.first_ts), "last": _iso(m.last_ts),
                 "alerts": ", ".join(f"{s.feature}.{s.name}" for s in m.alerts), "model_file": m.model_file}
                for m in self.models]
        return pd.DataFrame(rows, columns=["version", "verdict", "n_rows", "first", "last", "alerts", "model_file"])

    def statistics_frame(self) -> pd.DataFrame:
        """Every statistic of every model, one row each (``version`` first)."""
        frames = [m.frame().assign(version=m.version) for m in self.models if m.statistics]
        if not frames:
            return pd.DataFrame(columns=["version", "feature", "name", "value", "effect", "p_value", "alert", "rule"])
        out = pd.concat(frames, ignore_index=True)
        return out[["version"] + [c for c in out.columns if c != "version"]]

    def summary(self) -> str:
        """A few lines for people: the verdict per model, the window and what was read."""
        w = self.window
        span = " ".join(filter(None, [f"last {w['last']}" if w.get("last") else "",
                                      "predictions", f"since {w['since']}" if w.get("since") else ""]))
        lines = [f"drift check: {self.verdict.upper()} ({span}, model {w.get('model') or 'current'})"]
        for m in self.models:
            lines.append(f"  {m.version} ({m.model_file}): {m.verdict}; {m.message}")
        if self.unknown_models:
            lines.append("  rows of models that are not registered: "
                         + ", ".join(f"{k} ({v})" for k, v in self.unknown_models.items()))
        read = self.read
        skipped = ", ".join(f"{k} {v}" for k, v in read.get("skipped", {}).items())
        lines.append(f"  read {read.get('lines', 0)} lines from {len(read.get('files', []))} file(s): "
                     f"{read.get('records', 0)} records"
                     + (f", {read.get('skipped_total')} skipped ({skipped})" if skipped else ", none skipped"))
        return "\n".join(lines)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- accumulation (bounded memory: sufficient statistics, not rows) ------------

class _NumericAcc:
    """Counts on the reference bins and grid, shifted sums, range counts."""

    def __init__(self, ref: NumericReference) -> None:
        self.ref = ref
        self.edges = np.asarray(ref.edges)
        self.grid = np.asarray(ref.grid)
        self._bins = np.zeros(len(self.edges) + 1, dtype=np.int64)
        self.grid_counts = np.zeros(len(self.grid) + 1, dtype=np.int64)
        pos = np.searchsorted(self.grid, self.edges)
        # bin counts follow from the grid counts when every edge is a grid point (one pass, not two)
        self._edge_pos = pos if len(self.grid) and np.all(pos < len(self.grid)) and np.array_equal(
            self.grid[np.minimum(pos, len(self.grid) - 1)], self.edges) else None
        self.n = 0
        self.sum = 0.0    # of x - ref.mean (no cancellation in the variance)
        self.sumsq = 0.0
        self.outside = 0

    def add(self, x: np.ndarray) -> None:
        if not len(x):
            return
        d = x - self.ref.mean
        self.n += len(x)
        self.sum += float(d.sum())
        self.sumsq += float(d @ d)
        self.grid_counts += np.bincount(np.searchsorted(self.grid, x, side="left"), minlength=len(self.grid_counts))
        if self._edge_pos is None:
            self._bins += np.bincount(np.searchsorted(self.edges, x, side="left"), minlength=len(self._bins))
        self.outside += int(np.count_nonzero((x < self.ref.min) | (x > self.ref.max)))

    @property
    def bins(self) -> np.ndarray:
        """Counts per reference bin."""
        if self._edge_pos is None:
            return self._bins
        at_edges = np.cumsum(self.grid_counts)[self._edge_pos]  # rows <= each edge
        return np.diff(np.concatenate([[0], at_edges, [self.n]]))

    @property
    def mean(self) -> float:
        return self.ref.mean + self.sum / self.n

    @property
    def var(self) -> float:
        return max((self.sumsq - self.sum ** 2 / self.n) / (self.n - 1), 0.0) if self.n > 1 else 0.0


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
            counter.update(batch.categorical[k].tolist())
        self.probability.add(batch.probability)
        self.positives += int(np.count_nonzero(batch.probability >= self.profile.threshold))


# --- statistics ------------------------------------------------------------------

def _psi(ref: np.ndarray, prod: np.ndarray) -> float:
    q = np.maximum(ref, _PSI_FLOOR)
    p = np.maximum(prod, _PSI_FLOOR)
    return float(np.sum((p - q) * np.log(p / q)))


def _chi2_two_sample(ref_counts: np.ndarray, prod_counts: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity of two count vectors over the same bins."""
    from scipy.stats import chi2_contingency

    table = np.vstack([ref_counts, prod_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or table[1].sum() == 0 or table[0].sum() == 0:
        return 0.0, 1.0
    res = chi2_contingency(table, correction=False)
    return float(res.statistic), float(res.pvalue)


def _binomial_excess(k: int, n: int, p0: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p0): how surprising k rare events are."""
    from scipy.stats import binom

    return 1.0 if k <= 0 else float(binom.sf(k - 1, n, p0))


def _numeric_stats(name: str, ref: NumericReference, acc: _NumericAcc, th: Thresholds, a: float,
                   *, with_mean: bool = True) -> tuple[list[Statistic], FeatureDrift]:
    from scipy.stats import kstwo, t as t_dist

    n = acc.n
    out: list[Statistic] = []
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
            p = float(2 * t_dist.sf(abs(t), df))
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
    p_ks = float(kstwo.sf(d, max(int(round(n_eff)), 1)))
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
    merged: Counter = Counter()
    for value, k in counts.items():
        merged[schema.normalise_category(name, value)] += k
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
    from scipy.stats import norm

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
    p = float(2 * norm.sf(abs(rate - rate_ref) / se)) if se > 0 else (1.0 if rate == rate_ref else 0.0)
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
    if acc.n < th.min_rows:
        return ModelDrift(version, model_file, INSUFFICIENT, acc.n,
                          f"{acc.n} rows in the window; at least {th.min_rows} are needed for a verdict (min_rows)",
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
    th = thresholds or Thresholds()
    missing = [c for c in (*schema.FEATURES, "probability") if c not in frame.columns]
    if missing:
        raise InvalidParameter(f"frame lacks columns {missing}", name="frame")
    n = len(frame)
    batch = predlog.Batch(
        model=np.full(n, model_file or version, dtype=object),
        ts=np.zeros(n),
        probability=frame["probability"].to_numpy(dtype=float),
        numeric={k: frame[k].to_numpy(dtype=float) for k in schema.NUMERIC},
        categorical={k: frame[k].astype(str).to_numpy(dtype=object) for k in schema.CATEGORICAL},
    )
    acc = _ModelAcc(profile)
    acc.add(batch)
    md = _model_drift({"version": version, "model_file": model_file}, acc, th)
    md.first_ts = md.last_ts = None
    return md


# --- window and check ------------------------------------------------------------

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_AGE_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str | float | int | datetime | date, *, now: float | None = None) -> float:
    """Unix seconds for ``--since``: an age (``30m``, ``24h``, ``7d``), Unix seconds, or an ISO date/time.

    An ISO time without an offset is UTC.

    Examples
    --------
    >>> parse_since("2025-01-01")
    1735689600.0
    >>> parse_since("1h", now=7200.0)
    3600.0
    """
    if isinstance(value, bool):
        raise InvalidParameter(f"since={value!r} is not a time", name="since")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp()
    text = str(value).strip()
    if m := _AGE.match(text):
        return (time.time() if now is None else now) - float(m.group(1)) * _AGE_SECONDS[m.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter(f"since={text!r} is not a time: use an age (30m, 24h, 7d), Unix seconds or an "
                               "ISO date/time such as 2025-01-31T08:00", name="since") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def _target(model: str | None, entries: list[dict[str, Any]], home: Home) -> dict[str, Any] | None:
    if model == "all":
        return None
    if model is None or model == "current":
        entry = registry.current_entry(home=home)
        if entry is None:
            raise NoCurrentModel("no model is current: use --model VERSION or --model all, "
                                 "or train one that passes the gate")
        return entry
    return registry.find(model, entries)


def _rows_of(entry: Mapping[str, Any]):
    names = (entry["model_file"], entry["version"])

    def select(batch: predlog.Batch) -> np.ndarray:
        return (batch.model == names[0]) | (batch.model == names[1])

    return select


def check(*, home: Home | str | None = None, last: int | None = None, since: Any = None,
          model: str | None = "current", thresholds: Thresholds | None = None) -> DriftResult:
    """Compare a window of logged predictions with the profile of the model that served them.

    Parameters
    ----------
    home : Home or path, optional
    last : int, optional
        The last ``last`` predictions (of the selected model, or of all with
        ``model="all"``). Default :data:`DEFAULT_LAST` when ``since`` is not given.
    since : str, float or datetime, optional
        Predictions logged since then (see :func:`parse_since`). With ``last``
        too: the last ``last`` of those.
    model : str, default="current"
        ``current`` (or None), ``all`` (each model against its own profile), or
        a version label / model file.
    thresholds : Thresholds, optional

    Returns
    -------
    DriftResult
        Thin data gives the verdict "insufficient data", never an error.

    Raises
    ------
    InvalidParameter
        Bad window or model argument.
    RegistryError
        The selected model has no profile (or is not registered, or nothing is current).
    """
    home = Home.resolve(home)
    th = thresholds or Thresholds()
    if last is None and since is None:
        last = DEFAULT_LAST
    if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last < 1):
        raise InvalidParameter(f"last={last!r} must be a positive integer", name="last")
    if model is not None and (not isinstance(model, str) or not model):
        raise InvalidParameter(f"model={model!r} must be current, all, or a version label", name="model")
    since_ts = parse_since(since) if since is not None else None
    entries = registry.load_entries(home=home)
    target = _target(model, entries, home)
    profiles: dict[str, Profile | None] = {}
    if target is not None:
        profiles[target["model_file"]] = load_profile(target, home=home)
    by_name: dict[str, dict[str, Any]] = {}
    for e in entries:
        by_name.setdefault(e["version"], e)
        by_name[e["model_file"]] = e
    accs: dict[str, _ModelAcc] = {}
    unknown: Counter = Counter()

    def acc_for(entry: dict[str, Any]) -> _ModelAcc:
        key = entry["model_file"]
        if key not in accs:
            if key not in profiles:
                try:
                    profiles[key] = load_profile(entry, home=home)
                except RegistryError as exc:  # a model without profile in --model all: listed, not fatal
                    log.warning("%s", exc)
                    profiles[key] = None
            accs[key] = _ModelAcc(profiles[key])
        return accs[key]

    def route(batch: predlog.Batch) -> None:
        if not len(batch):
            return
        keys = batch.model
        groups = [keys[0]] if (keys == keys[0]).all() else sorted(set(keys.tolist()))
        for key in groups:
            part = batch if len(groups) == 1 else batch.take(keys == key)
            entry = by_name.get(key)
            if entry is None:
                unknown[key] += len(part)
            else:
                acc_for(entry).add(part)

    paths = predlog.log_files(home=home)
    stats = predlog.ReadStats()
    select = _rows_of(target) if target is not None else None
    if since_ts is None:  # read only the end of the files
        route(predlog.read_tail(paths, last, select=select, stats=stats))
    else:
        # a file last changed before the window holds none of its rows
        live = [p for p in paths if p.stat().st_mtime >= since_ts - 1.0]

        def window() -> Any:
            for batch in predlog.iter_batches(live, stats=stats):
                keep = batch.ts >= since_ts
                if select is not None:
                    keep &= select(batch)
                yield batch if keep.all() else batch.take(keep)

        if last is None:
            for batch in window():
                route(batch)
        else:
            route(predlog.latest(window(), last))
    if target is not None:
        acc_for(target)
    models = [_model_drift(e, accs[e["model_file"]], th) for e in entries if e["model_file"] in accs]
    if target is None and models and all(m.verdict == NO_PROFILE for m in models):
        raise RegistryError("no model in the window has a reference profile (registered before drift "
                            "monitoring): retrain to get a reference profile")
    verdicts = {m.verdict for m in models}
    verdict = DRIFT if DRIFT in verdicts else NO_DRIFT if NO_DRIFT in verdicts else INSUFFICIENT
    window = {"last": last, "since": _iso(since_ts), "since_ts": since_ts, "model": model}
    result = DriftResult(verdict, models, window, stats.to_dict(), asdict(th), dict(unknown), registry.utc_now())
    log.info("drift check: %s (%s)", verdict, stats.summary())
    return result


def write_result(result: DriftResult, *, home: Home | str | None = None) -> list[Path]:
    """Write each model's part of ``result`` to ``reports/<version>/drift/drift.json``; return the paths."""
    home = Home.resolve(home)
    paths = []
    for m in result.models:
        registry.validate_label(m.version)
        path = home.reports_dir / m.version / "drift" / "drift.json"
        atomic_write_json(path, {**result.to_dict(), "models": [asdict(m)]})
        paths.append(path)
    return paths
