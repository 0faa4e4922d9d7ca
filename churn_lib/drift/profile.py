"""Drift references: the profile saved with each model version at training time.

The profile (:class:`Profile`, a JSON sidecar beside the model file, its
sha256 in the registry entry) holds, from the training split, per numeric
feature (booleans as 0/1) the mean, std, min, max, decile bins with their
proportions and the CDF on a grid of up to 100 points; per categorical
feature the counts (a missing value counted as ``(missing)``); and, from the
test split, the probability distribution and the predicted-positive rate at
the model's stored threshold.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a table is built: a drift check needs none
    import pandas as pd

from .. import contract as _contract
from .. import registry
from .._io import utc_now
from ..exceptions import IntegrityError, InvalidParameter, RegistryError
from ..home import Home

PROFILE_FORMAT = 1
#: PSI bins: deciles of the reference (fewer where values tie).
N_BINS = 10
#: Points where the reference CDF is kept for the KS test (all values when fewer).
GRID_POINTS = 100


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
        import pandas as pd
        rows = {**self.numeric, "probability (test split)": self.probability}
        return pd.DataFrame({k: {"n": r.n, "mean": r.mean, "std": r.std, "min": r.min, "max": r.max}
                             for k, r in rows.items()}).T


def build_profile(X_train: pd.DataFrame, proba_test: Any, *, threshold: float,
                  contract: _contract.Contract | None = None) -> Profile:
    """The reference profile of a model from its training split and test-split scores.

    Parameters
    ----------
    X_train : pandas.DataFrame
        The training split's features (the contract's).
    proba_test : array-like
        The model's churn probabilities on the test split.
    threshold : float
        The model's stored decision threshold.
    contract : Contract, optional
        Which features are numbers (booleans as 0/1) and which categories (default the lab's).

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
    import pandas as pd
    c = contract or _contract.lab()
    proba = np.asarray(proba_test, dtype=float)
    categorical = {}
    for f in c.categorical:
        column = X_train[f.name]
        values = [_contract.MISSING_CATEGORY if m else v
                  for v, m in zip(column.astype(object).tolist(), column.isna().tolist())]
        categorical[f.name] = CategoricalReference(len(values), dict(sorted(Counter(values).items())))
    return Profile(
        numeric={f.name: NumericReference.from_values(pd.to_numeric(X_train[f.name]).to_numpy(dtype=float))
                 for f in c.numeric},
        categorical=categorical,
        probability=NumericReference.from_values(proba),
        positive_rate=float(np.mean(proba >= threshold)),
        threshold=float(threshold),
        n_train=int(len(X_train)),
        n_test=int(len(proba)),
        created_at_utc=utc_now(),
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
    version = entry.get("version")
    text = registry.read_sidecar(dict(entry), "profile", home=home)
    if text is None:
        raise RegistryError(f"{version} has no reference profile (it was registered before drift monitoring): "
                            "retrain to get a reference profile (`churn train`)", version=version)
    path = registry.sidecar_path(dict(entry), "profile", home=home)
    try:
        return Profile.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"reference profile of {version} cannot be read ({exc}): {path}",
                             version=version, path=str(path)) from None
