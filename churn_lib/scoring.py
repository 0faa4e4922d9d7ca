"""Scoring: load a registered model (integrity-checked) and score one row or a batch fast.

A :class:`Scorer` wraps a fitted pipeline with its registry entry and
decision threshold, so every caller predicts at the threshold that was stored
with the model, never at an implicit 0.5.

Why a compiled scorer: the fitted pipeline (StandardScaler + OneHotEncoder ->
LogisticRegression) is a linear function of the features followed by a
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
from scipy.special import expit

from . import registry, schema
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
    :func:`churn_lib.schema.normalise_category`); validate them first: like the
    pipeline's ``handle_unknown="ignore"``, an unknown category adds nothing.

    Attributes
    ----------
    bias : float
        Intercept with the scaler's centring folded in.
    numeric : tuple of (name, weight)
        Per-numeric-feature weights with the scaler's scale folded in.
    categorical : tuple of (name, {value: weight})
        Per-categorical-feature lookup of the one-hot weights.
    """

    bias: float
    numeric: tuple[tuple[str, float], ...]
    categorical: tuple[tuple[str, dict[str, float]], ...]

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.numeric) + tuple(n for n, _ in self.categorical)

    def logit_one(self, row: Mapping[str, Any]) -> float:
        z = self.bias
        for name, weight in self.numeric:
            z += weight * row[name]
        for name, table in self.categorical:
            z += table.get(row[name], 0.0)
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
        first = self.numeric[0][0] if self.numeric else self.categorical[0][0]
        n = len(data[first])
        z = np.full(n, self.bias, dtype=np.float64)
        for name, weight in self.numeric:
            try:
                column = np.asarray(data[name], dtype=np.float64)
            except (TypeError, ValueError):
                raise DataError(f"{name} holds values that are not numbers; validate rows before scoring them",
                                column=name) from None
            bad = ~np.isfinite(column)
            if bad.any():
                raise DataError(f"{name} has {int(bad.sum())} missing or infinite values; "
                                "validate rows before scoring them", column=name)
            z += weight * column
        for name, table in self.categorical:
            values = list(table)
            # code -1 (unknown or missing) picks the trailing 0.0: "no category", as the pipeline does
            weights = np.array([table[v] for v in values] + [0.0])
            z += weights[_codes(data[name], values)]
        return z

    def proba(self, data: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """Churn probability per row of a batch (vectorised; the same sigmoid as scikit-learn)."""
        return expit(self.logit(data))


def _codes(column: Any, values: list[str]) -> np.ndarray:
    """Position of each entry in ``values`` (-1 when absent or missing); a categorical column
    is mapped through its categories, so 10M rows cost one lookup per distinct value."""
    index = pd.Index(values)
    if isinstance(getattr(column, "dtype", None), pd.CategoricalDtype):
        categorical = column.array if isinstance(column, pd.Series) else column  # -> pd.Categorical
        per_category = index.get_indexer(categorical.categories)
        codes = np.asarray(categorical.codes)
        return np.where(codes >= 0, per_category[codes], -1)
    return index.get_indexer(column)


def compile_pipeline(pipeline: Any) -> LinearScorer:
    """Compile a fitted ``ColumnTransformer -> LogisticRegression`` pipeline.

    Supported: a two-step :class:`~sklearn.pipeline.Pipeline` whose first step
    is a :class:`~sklearn.compose.ColumnTransformer` of ``StandardScaler``,
    ``"passthrough"`` or ``"drop"`` on numeric columns and
    ``OneHotEncoder(handle_unknown="ignore")`` (no dropped or infrequent
    categories) on categorical columns, and whose last step is a binary
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
    numeric: list[tuple[str, float]] = []
    categorical: list[tuple[str, dict[str, float]]] = []
    k = 0  # position in the transformed feature vector
    for name, trans, columns in pre.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        if not isinstance(columns, (list, tuple)) or not all(isinstance(c, str) for c in columns):
            raise ValueError(f"transformer {name!r} selects columns by something other than names")
        if isinstance(trans, str) and trans == "passthrough":
            for col in columns:
                numeric.append((col, float(coef[k])))
                k += 1
        elif isinstance(trans, StandardScaler):
            mean = trans.mean_ if trans.with_mean else np.zeros(len(columns))
            scale = trans.scale_ if trans.with_std else np.ones(len(columns))
            for j, col in enumerate(columns):
                w = float(coef[k]) / float(scale[j])
                numeric.append((col, w))
                bias -= w * float(mean[j])
                k += 1
        elif isinstance(trans, OneHotEncoder):
            if (trans.handle_unknown != "ignore" or trans.drop_idx_ is not None
                    or getattr(trans, "_infrequent_enabled", False)):
                raise ValueError("OneHotEncoder must ignore unknown categories and drop none")
            for col, cats in zip(columns, trans.categories_):
                table = {}
                for cat in cats:
                    if not isinstance(cat, str):
                        raise ValueError(f"category {cat!r} of {col} is not a string")
                    table[cat] = float(coef[k])
                    k += 1
                categorical.append((col, table))
        else:
            raise ValueError(f"transformer {name!r} ({type(trans).__name__}) is not supported")
    if k != coef.shape[0]:
        raise ValueError(f"the transformers give {k} features, the classifier expects {coef.shape[0]}")
    if not numeric and not categorical:
        raise ValueError("the pipeline uses no features")
    return LinearScorer(bias=bias, numeric=tuple(numeric), categorical=tuple(categorical))


def sample_rows(compiled: LinearScorer, *, n_numeric: int = 4, seed: int = 0) -> pd.DataFrame:
    """Rows for verification: every category combination (plus an unseen value) x spread numbers.

    Numbers span the schema's ranges, their bounds included, so the check
    covers every weight and the sigmoid's both tails.
    """
    rng = np.random.default_rng(seed)
    cat_values = []
    for name, table in compiled.categorical:
        cat_values.append(sorted(set(table) | set(schema.CATEGORIES.get(name, ()))) + [_UNSEEN])
    combos: list[tuple[str, ...]] = [()]
    for values in cat_values:
        combos = [c + (v,) for c in combos for v in values]
    rows = []
    for combo in combos:
        for j in range(n_numeric):
            row: dict[str, Any] = {}
            for name, _ in compiled.numeric:
                rng_ = schema.RANGES.get(name, schema.Range(-100.0, 100.0))
                row[name] = (rng_.low if j == 0 else rng_.high if j == 1
                             else float(rng.uniform(rng_.low, rng_.high)))
                if name in schema.INTEGER:
                    row[name] = int(round(row[name]))
            row.update({name: v for (name, _), v in zip(compiled.categorical, combo)})
            rows.append(row)
    return pd.DataFrame(rows, columns=list(compiled.features))


def verify(compiled: LinearScorer, pipeline: Any, rows: pd.DataFrame | None = None) -> float:
    """Largest absolute difference between the compiled scorer and the pipeline on ``rows``.

    Both paths are checked: one row at a time (:meth:`LinearScorer.proba_one`)
    and vectorised (:meth:`LinearScorer.proba`).
    """
    rows = sample_rows(compiled) if rows is None else rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "unknown categories ... encoded as all zeros": on purpose
        expected = pipeline.predict_proba(rows)[:, 1]
    batch = compiled.proba(rows)
    one = np.array([compiled.proba_one(r) for r in rows.to_dict(orient="records")])
    return float(max(np.max(np.abs(batch - expected)), np.max(np.abs(one - expected))))


# --- the scorer callers use --------------------------------------------------

@dataclass
class Scorer:
    """A loaded model, its registry entry, its decision threshold and how it is scored.

    Build with :func:`build` or :func:`load` (they compile and verify the fast
    path); ``Scorer(entry, pipeline)`` alone scores with the pipeline.
    """

    entry: dict[str, Any]
    pipeline: Any = field(repr=False)
    compiled: LinearScorer | None = field(default=None, repr=False)
    engine_note: str = "not compiled"

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

    def proba_one(self, row: Mapping[str, Any]) -> float:
        """Churn probability of one row of normalised features."""
        if self.compiled is not None:
            return self.compiled.proba_one(row)
        frame = pd.DataFrame([{name: row[name] for name in schema.FEATURES}])
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
            rows = {name: [r[name] for r in rows] for name in schema.FEATURES}
        if self.compiled is not None:
            return self.compiled.proba(rows)
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(dict(rows))
        return self.pipeline.predict_proba(frame[list(schema.FEATURES)])[:, 1]

    def predict(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """``(probability, prediction)`` per row, predictions at the stored threshold."""
        proba = self.predict_proba(rows)
        return proba, (proba >= self.threshold).astype(int)


def build(entry: dict[str, Any], pipeline: Any, *, fast: bool = True,
          tolerance: float = VERIFY_TOLERANCE) -> Scorer:
    """A :class:`Scorer` for a loaded pipeline, with the compiled fast path when it verifies.

    Parameters
    ----------
    entry : dict
        The model's registry entry (version, file, threshold).
    pipeline : fitted estimator
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
    if not fast:
        return Scorer(entry, pipeline, None, "scikit-learn pipeline (compilation disabled)")
    try:
        compiled = compile_pipeline(pipeline)
        rows = sample_rows(compiled)
        diff = verify(compiled, pipeline, rows)
    except Exception as exc:  # any surprise in a foreign pipeline means: use the pipeline itself
        log.warning("model %s is scored by scikit-learn: cannot compile it (%s)", version, exc)
        return Scorer(entry, pipeline, None, f"scikit-learn pipeline (not compilable: {exc})")
    if not diff <= tolerance:
        log.warning("model %s is scored by scikit-learn: compiled scorer differs by %.3g > %.3g",
                    version, diff, tolerance)
        return Scorer(entry, pipeline, None,
                      f"scikit-learn pipeline (compiled scorer differed by {diff:.3g} > {tolerance:.0e})")
    log.info("model %s is scored by the compiled numpy scorer (max |diff| %.3g)", version, diff)
    return Scorer(entry, pipeline, compiled,
                  f"compiled numpy scorer (verified on {len(rows)} rows, max |diff| {diff:.2g})")


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
    return build(entry, registry.load_model(entry, home=home), fast=fast)
