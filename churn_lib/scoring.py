"""Scoring: load a registered model (integrity-checked) and score one row or a batch fast.

A :class:`Scorer` wraps a fitted pipeline with its registry entry and
decision threshold, so every caller predicts at the threshold that was stored
with the model, never at an implicit 0.5.

Why a compiled scorer: the fitted pipeline (imputer + StandardScaler, imputer +
OneHotEncoder -> LogisticRegression) is a linear function of the features followed by a
sigmoid. Calling scikit-learn for one row costs milliseconds (a DataFrame,
column dispatch, input validation); the same arithmetic in plain Python costs
about a microsecond. At load time :func:`build` folds the scaler into the
weights, turns the one-hot encoder into a category -> weight lookup
(:class:`LinearScorer`), then checks it against the pipeline on sample rows
covering every category (max absolute difference at most
:data:`VERIFY_TOLERANCE`). Only a verified compilation is used; any pipeline
it cannot reproduce is scored by scikit-learn, and :attr:`Scorer.engine` /
:attr:`Scorer.engine_note` say which and why.

Examples
--------
>>> from churn_lib import scoring                                  # doctest: +SKIP
>>> scorer = scoring.load(home="~/churn")                          # doctest: +SKIP
>>> scorer.predict_one({"tenure_months": 6, "num_complaints": 3,  # doctest: +SKIP
...     "avg_session_minutes": 12.5, "plan_type": "basic", "region": "AF"})
(0.9070646..., 1)
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from . import contract as _contract
from . import registry
from .exceptions import DataError, NoCurrentModel
from .home import Home

log = logging.getLogger(__name__)

#: Largest absolute difference from the scikit-learn pipeline a compiled scorer may show.
VERIFY_TOLERANCE = 1e-9

#: A category value no model was trained on: verification checks that it scores as "no category",
#: like ``OneHotEncoder(handle_unknown="ignore")``.
_UNSEEN = "\x00unseen"


# --- the compiled scorer -----------------------------------------------------

@dataclass(frozen=True)
class LinearScorer:
    """A logistic-regression pipeline compiled to ``sigmoid(bias + w.x + table[category])``.

    Built by :func:`compile_pipeline`. Immutable, so one instance serves any
    number of threads. Rows hold the *normalised* features (see
    :meth:`churn_lib.contract.Feature.normalise`); validate them first: like
    the pipeline's ``handle_unknown="ignore"``, an unknown category adds
    nothing. A missing value (None, NaN) gets what the pipeline's imputer
    gives it: the fill value of a number, the weight of the "missing" category.

    Attributes
    ----------
    bias : float
        Intercept with the scaler's centring folded in.
    numeric : tuple of (name, weight, fill)
        Per-numeric-feature weights with the scaler's scale folded in; ``fill``
        replaces a missing value (None: the pipeline cannot take one).
    categorical : tuple of (name, {value: weight}, missing_weight)
        Per-categorical-feature lookup of the one-hot weights, and the weight of a missing value.
    """

    bias: float
    numeric: tuple[tuple[str, float, float | None], ...]
    categorical: tuple[tuple[str, dict[str, float], float], ...]

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(n for n, _, _ in self.numeric) + tuple(n for n, _, _ in self.categorical)

    def logit_one(self, row: Mapping[str, Any]) -> float:
        z = self.bias
        for name, weight, fill in self.numeric:
            x = row[name]
            if x is None:
                if fill is None:
                    raise DataError(f"{name} is missing and this model cannot fill it in; validate rows first",
                                    column=name)
                x = fill
            z += weight * x
        for name, table, missing in self.categorical:
            value = row[name]
            z += missing if value is None else table.get(value, 0.0)
        return z

    def proba_one(self, row: Mapping[str, Any]) -> float:
        """Churn probability of one row (a mapping of feature -> value); no numpy, no pandas."""
        z = self.logit_one(row)
        if z >= 0:  # two branches so that exp never overflows
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)

    def logit(self, data: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """Decision values of a batch (DataFrame, or mapping of feature -> column)."""
        first = self.features[0]
        n = len(data[first])
        z = np.full(n, self.bias, dtype=np.float64)
        for name, weight, fill in self.numeric:
            try:
                column = np.asarray(data[name], dtype=np.float64)  # None -> NaN, booleans -> 0/1
            except (TypeError, ValueError):
                raise DataError(f"{name} holds values that are not numbers; validate rows before scoring them",
                                column=name) from None
            bad = ~np.isfinite(column)
            if bad.any():
                if fill is None or np.isinf(column).any():
                    raise DataError(f"{name} has {int(bad.sum())} missing or infinite values; "
                                    "validate rows before scoring them", column=name)
                column = np.where(bad, fill, column)
            z += weight * column
        for name, table, missing in self.categorical:
            values = list(table)
            # known values, then "unknown" (no category, as the pipeline does), then "missing"
            weights = np.array([table[v] for v in values] + [0.0, missing])
            z += weights[_codes(data[name], values)]
        return z

    def proba(self, data: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """Churn probability per row of a batch (vectorised; the same sigmoid as scikit-learn)."""
        from scipy.special import expit  # imported here: scipy costs every `churn` command 0.2 s at start

        return expit(self.logit(data))


def _codes(column: Any, values: list[str]) -> np.ndarray:
    """Position of each entry in ``values``; ``len(values)`` when unknown, ``len(values) + 1`` when
    missing. A categorical column is mapped through its categories, so 10M rows cost one lookup per
    distinct value."""
    index = pd.Index(values)
    unknown, missing = len(values), len(values) + 1
    if isinstance(getattr(column, "dtype", None), pd.CategoricalDtype):
        categorical = column.array if isinstance(column, pd.Series) else column  # -> pd.Categorical
        per_category = index.get_indexer(categorical.categories)
        per_category[per_category < 0] = unknown
        codes = np.asarray(categorical.codes)
        return np.where(codes >= 0, per_category[np.maximum(codes, 0)], missing)
    series = pd.Series(column, dtype=object)
    out = index.get_indexer(series)
    out[out < 0] = unknown
    out[series.isna().to_numpy()] = missing
    return out


def _imputer_fills(imputer: Any, n: int) -> list[Any]:
    from sklearn.impute import SimpleImputer

    if not isinstance(imputer, SimpleImputer) or imputer.add_indicator:
        raise ValueError("only a SimpleImputer without indicator is supported")
    stats = list(imputer.statistics_)
    if len(stats) != n:
        raise ValueError("the imputer dropped a column (all values missing at training)")
    return stats


def compile_pipeline(pipeline: Any) -> LinearScorer:
    """Compile a fitted ``ColumnTransformer -> LogisticRegression`` pipeline.

    Supported: a two-step :class:`~sklearn.pipeline.Pipeline` whose first step
    is a :class:`~sklearn.compose.ColumnTransformer` of ``StandardScaler``,
    ``"passthrough"`` or ``"drop"`` on numeric columns (optionally after a
    ``SimpleImputer``) and ``OneHotEncoder(handle_unknown="ignore")`` (no
    dropped or infrequent categories; optionally after a constant
    ``SimpleImputer``) on categorical columns, and whose last step is a binary
    :class:`~sklearn.linear_model.LogisticRegression` with classes ``[0, 1]``.

    Raises
    ------
    ValueError
        When the pipeline has another shape (the caller falls back to the pipeline).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise ValueError("not a two-step Pipeline")
    pre, clf = pipeline.steps[0][1], pipeline.steps[1][1]
    if not isinstance(pre, ColumnTransformer) or not isinstance(clf, LogisticRegression):
        raise ValueError("not ColumnTransformer -> LogisticRegression")
    if pre.transformer_weights:
        raise ValueError("transformer weights are not supported")
    if [int(c) for c in clf.classes_] != [0, 1] or clf.coef_.shape[0] != 1:
        raise ValueError(f"not a binary 0/1 classifier (classes {list(clf.classes_)})")
    coef = np.asarray(clf.coef_[0], dtype=np.float64)
    bias = float(clf.intercept_[0])
    numeric: list[tuple[str, float, float | None]] = []
    categorical: list[tuple[str, dict[str, float], float]] = []
    k = 0  # position in the transformed feature vector
    for name, trans, columns in pre.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        if not isinstance(columns, (list, tuple)) or not all(isinstance(c, str) for c in columns):
            raise ValueError(f"transformer {name!r} selects columns by something other than names")
        fills: list[Any] = [None] * len(columns)
        if isinstance(trans, Pipeline):
            if len(trans.steps) != 2:
                raise ValueError(f"transformer {name!r}: only imputer -> transformer pipelines are supported")
            fills = _imputer_fills(trans.steps[0][1], len(columns))
            trans = trans.steps[1][1]
        if isinstance(trans, str) and trans == "passthrough":
            for j, col in enumerate(columns):
                numeric.append((col, float(coef[k]), None if fills[j] is None else float(fills[j])))
                k += 1
        elif isinstance(trans, StandardScaler):
            mean = trans.mean_ if trans.with_mean else np.zeros(len(columns))
            scale = trans.scale_ if trans.with_std else np.ones(len(columns))
            for j, col in enumerate(columns):
                w = float(coef[k]) / float(scale[j])
                numeric.append((col, w, None if fills[j] is None else float(fills[j])))
                bias -= w * float(mean[j])
                k += 1
        elif isinstance(trans, OneHotEncoder):
            if (trans.handle_unknown != "ignore" or trans.drop_idx_ is not None
                    or getattr(trans, "_infrequent_enabled", False)):
                raise ValueError("OneHotEncoder must ignore unknown categories and drop none")
            for j, (col, cats) in enumerate(zip(columns, trans.categories_)):
                table = {}
                for cat in cats:
                    if not isinstance(cat, str):
                        raise ValueError(f"category {cat!r} of {col} is not a string")
                    table[cat] = float(coef[k])
                    k += 1
                missing = table.get(fills[j], 0.0) if isinstance(fills[j], str) else 0.0
                if fills[j] is not None and not isinstance(fills[j], str):
                    raise ValueError(f"the imputer of {col} fills in a non-text value")
                categorical.append((col, table, missing))
        else:
            raise ValueError(f"transformer {name!r} ({type(trans).__name__}) is not supported")
    if k != coef.shape[0]:
        raise ValueError(f"the transformers give {k} features, the classifier expects {coef.shape[0]}")
    if not numeric and not categorical:
        raise ValueError("the pipeline uses no features")
    return LinearScorer(bias=bias, numeric=tuple(numeric), categorical=tuple(categorical))


def sample_rows(compiled: LinearScorer, contract: _contract.Contract | None = None, *, n_numeric: int = 4,
                seed: int = 0) -> pd.DataFrame:
    """Rows for verification: every category (plus an unseen value, plus missing where the model
    fills it in) and numbers spanning the contract's ranges, their bounds included.

    When the category combinations are few (the lab's 3 x 5) every combination
    is tried; otherwise each category appears in at least ``n_numeric`` rows,
    which covers every weight of an additive model.
    """
    c = contract or _contract.lab()
    rng = np.random.default_rng(seed)
    by_name = {f.name: f for f in c.features}
    cat_values = []
    for name, table, _ in compiled.categorical:
        f = by_name.get(name)
        values = sorted(set(table) | set(f.values if f else ())) + [_UNSEEN]
        if f is not None and f.imputed:
            values.append(None)
        cat_values.append(values)
    n_combos = math.prod(len(v) for v in cat_values) if cat_values else 1
    if n_combos <= 2000:
        combos: list[tuple[Any, ...]] = [()]
        for values in cat_values:
            combos = [cmb + (v,) for cmb in combos for v in values]
    else:
        m = max(len(v) for v in cat_values)
        combos = [tuple(values[(i + j) % len(values)] for j, values in enumerate(cat_values)) for i in range(m)]
    rows = []
    for combo in combos:
        for j in range(n_numeric):
            row: dict[str, Any] = {}
            for name, _, fill in compiled.numeric:
                f = by_name.get(name)
                low = f.low if f is not None and f.low is not None else -100.0
                high = f.high if f is not None and f.high is not None else 100.0
                if f is not None and f.type == _contract.BOOLEAN:
                    low, high = 0.0, 1.0
                x: Any = low if j == 0 else high if j == 1 else float(rng.uniform(low, high))
                if f is not None and f.type in (_contract.INTEGER, _contract.BOOLEAN):
                    x = int(round(x))
                if j == 3 and fill is not None:
                    x = None
                row[name] = x
            row.update({name: v for (name, _, _), v in zip(compiled.categorical, combo)})
            rows.append(row)
    return pd.DataFrame(rows, columns=list(compiled.features))


def model_frame(rows: pd.DataFrame | Mapping[str, Any], contract: _contract.Contract) -> pd.DataFrame:
    """A frame the scikit-learn pipeline takes: the contract's features in order, numbers (and
    booleans) as floats, categories as text; every missing value NaN, as the imputers expect."""
    data = {}
    for f in contract.features:
        column = rows[f.name]
        if f.is_numeric:
            data[f.name] = np.asarray(column, dtype=np.float64) if not isinstance(column, pd.Series) \
                else pd.to_numeric(column.astype(object).where(column.notna(), np.nan)).astype("float64")
        else:
            s = column if isinstance(column, pd.Series) else pd.Series(column, dtype=object)
            data[f.name] = s.astype(object).where(s.notna(), np.nan).to_numpy(dtype=object) \
                if not pd.api.types.is_string_dtype(s.dtype) or s.dtype == object else s
    index = rows.index if isinstance(rows, pd.DataFrame) else None
    return pd.DataFrame(data, index=index)


def verify(compiled: LinearScorer, pipeline: Any, rows: pd.DataFrame | None = None,
           contract: _contract.Contract | None = None) -> float:
    """Largest absolute difference between the compiled scorer and the pipeline on ``rows``.

    Both paths are checked: one row at a time (:meth:`LinearScorer.proba_one`)
    and vectorised (:meth:`LinearScorer.proba`).
    """
    rows = sample_rows(compiled, contract) if rows is None else rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "unknown categories ... encoded as all zeros": on purpose
        expected = pipeline.predict_proba(model_frame(rows, contract or _contract.lab()))[:, 1]
    batch = compiled.proba(rows)
    records = [{k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else v) for k, v in r.items()}
               for r in rows.to_dict(orient="records")]
    one = np.array([compiled.proba_one(r) for r in records])
    return float(max(np.max(np.abs(batch - expected)), np.max(np.abs(one - expected))))


# --- the scorer callers use --------------------------------------------------

@dataclass
class Scorer:
    """A loaded model, its registry entry, its dataset contract, its decision threshold and how it is scored.

    Build with :func:`build` or :func:`load` (they compile and verify the fast
    path); ``Scorer(entry, pipeline)`` alone scores with the pipeline.
    """

    entry: dict[str, Any]
    pipeline: Any = field(repr=False)
    compiled: LinearScorer | None = field(default=None, repr=False)
    engine_note: str = "not compiled"
    contract: _contract.Contract = field(default_factory=_contract.lab, repr=False)

    @property
    def version(self) -> str:
        return self.entry["version"]

    @property
    def model_file(self) -> str:
        return self.entry["model_file"]

    @property
    def threshold(self) -> float:
        return float(self.entry.get("threshold", 0.5))

    @property
    def engine(self) -> str:
        """``"numpy"`` when the verified compiled scorer is used, else ``"sklearn"``."""
        return "numpy" if self.compiled is not None else "sklearn"

    @property
    def features(self) -> tuple[str, ...]:
        return self.contract.feature_names

    def proba_one(self, row: Mapping[str, Any]) -> float:
        """Churn probability of one row of normalised features (None where a value is missing)."""
        if self.compiled is not None:
            return self.compiled.proba_one(row)
        frame = model_frame({name: [row[name]] for name in self.features}, self.contract)
        return float(self.pipeline.predict_proba(frame)[0, 1])

    def predict_one(self, row: Mapping[str, Any]) -> tuple[float, int]:
        """``(probability, prediction)`` of one row, predicted at the stored threshold."""
        proba = self.proba_one(row)
        return proba, int(proba >= self.threshold)

    def predict_proba(self, rows: pd.DataFrame | Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Churn probability per row.

        ``rows``: a DataFrame, a mapping of feature -> column (arrays), or a
        sequence of row mappings; all holding normalised features.
        """
        if isinstance(rows, Sequence) and not isinstance(rows, (str, bytes)):
            rows = {name: [r[name] for r in rows] for name in self.features}
        if self.compiled is not None:
            return self.compiled.proba(rows)
        return self.pipeline.predict_proba(model_frame(rows, self.contract))[:, 1]

    def predict(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """``(probability, prediction)`` per row, predictions at the stored threshold."""
        proba = self.predict_proba(rows)
        return proba, (proba >= self.threshold).astype(int)


def build(entry: dict[str, Any], pipeline: Any, *, contract: _contract.Contract | None = None, fast: bool = True,
          tolerance: float = VERIFY_TOLERANCE) -> Scorer:
    """A :class:`Scorer` for a loaded pipeline, with the compiled fast path when it verifies.

    Parameters
    ----------
    entry : dict
        The model's registry entry (version, file, threshold).
    pipeline : fitted estimator
    contract : Contract, optional
        The dataset contract the model was trained on (default the lab's).
    fast : bool, default=True
        False skips compilation (always score with the pipeline).
    tolerance : float, default=VERIFY_TOLERANCE
        Largest absolute difference from the pipeline accepted on the sample rows.

    Returns
    -------
    Scorer
        ``engine`` is ``"numpy"`` when compiled and verified, else ``"sklearn"``;
        ``engine_note`` says why.
    """
    version = entry.get("version")
    contract = contract or _contract.lab()
    if not fast:
        return Scorer(entry, pipeline, None, "scikit-learn pipeline (compilation disabled)", contract)
    try:
        compiled = compile_pipeline(pipeline)
        if set(compiled.features) != set(contract.feature_names):
            raise ValueError("the pipeline's features are not the contract's")
        rows = sample_rows(compiled, contract)
        diff = verify(compiled, pipeline, rows, contract)
    except Exception as exc:  # any surprise in a foreign pipeline means: use the pipeline itself
        log.warning("model %s is scored by scikit-learn: cannot compile it (%s)", version, exc)
        return Scorer(entry, pipeline, None, f"scikit-learn pipeline (not compilable: {exc})", contract)
    if not diff <= tolerance:
        log.warning("model %s is scored by scikit-learn: compiled scorer differs by %.3g > %.3g",
                    version, diff, tolerance)
        return Scorer(entry, pipeline, None,
                      f"scikit-learn pipeline (compiled scorer differed by {diff:.3g} > {tolerance:.0e})", contract)
    log.info("model %s is scored by the compiled numpy scorer (max |diff| %.3g)", version, diff)
    return Scorer(entry, pipeline, compiled,
                  f"compiled numpy scorer (verified on {len(rows)} rows, max |diff| {diff:.2g})", contract)


def load(target: str | None = None, *, home: Home | str | None = None, fast: bool = True) -> Scorer:
    """A :class:`Scorer` for a registered version (default: the current model).

    The artifact is unpickled only after its sha256 matches the registry
    (:func:`churn_lib.registry.load_model`), then compiled (:func:`build`).

    Raises
    ------
    NoCurrentModel
        ``target`` is None and no model is current.
    ModelNotFound, IntegrityError, RegistryError
        From the registry.
    """
    home = Home.resolve(home)
    if target is None:
        entry = registry.current_entry(home=home)
        if entry is None:
            raise NoCurrentModel("no model is current: train one that passes the gate, or `churn promote VERSION`")
    else:
        entry = registry.get(target, home=home)
    return from_entry(entry, home=home, fast=fast)


def from_entry(entry: dict[str, Any], *, home: Home | str | None = None, fast: bool = True) -> Scorer:
    """A :class:`Scorer` for a registry entry: its artifact and its contract copy, both sha256-checked."""
    return build(entry, registry.load_model(entry, home=home), contract=registry.load_contract(entry, home=home),
                 fast=fast)
