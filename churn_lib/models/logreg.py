"""The logistic regression family: the lab's pipeline, compiled to a linear scorer with exact contributions.

* :func:`build` - imputers where the contract asks for them, scaled numbers
  (booleans 0/1), one-hot categories -> ``LogisticRegression``: on the lab's
  contract the lab's pipeline, step for step;
* :func:`compile` - the fitted pipeline as ``sigmoid(bias + w.x + table[category])``
  (:class:`LinearScorer`): the same arithmetic as scikit-learn in plain Python,
  about a microsecond a row instead of milliseconds;
* contributions - exact, per original feature (a category's one-hot columns
  summed), in log-odds, measured from the training means
  (:meth:`LinearScorer.contributions`);
* :func:`importance` - the coefficients, as data (the train report draws them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .. import contract as _contract
from ..exceptions import DataError
from .._params import Range, param
from .base import Engine

NAME = "logreg"
ENGINE = Engine(compiled="numpy", compiled_note="compiled numpy scorer", itself="sklearn",
                itself_note="scikit-learn pipeline")
LIBRARIES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Params:
    """This family's hyperparameters (train parameters), declared once."""

    C: float = param(1.0, "inverse regularisation strength", range=Range(0, open_low=True))


def build(contract: _contract.Contract, *, seed: int = 42, params: Params | None = None):
    """The pipeline for a contract: scaled numbers + one-hot categories -> logistic regression.

    A feature with ``on_missing: impute`` adds an imputer before its kind's
    transformer: the median for numbers, the category ``(missing)`` for
    categories. Unseen categories score as "no category" (``handle_unknown="ignore"``).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    if contract.numeric:
        scale = StandardScaler()
        if any(f.imputed for f in contract.numeric):
            scale = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", scale)])
        parts.append(("num", scale, [f.name for f in contract.numeric]))
    if contract.categorical:
        onehot = OneHotEncoder(handle_unknown="ignore")
        if any(f.imputed for f in contract.categorical):
            onehot = Pipeline([("impute", SimpleImputer(strategy="constant", fill_value=_contract.MISSING_CATEGORY)),
                               ("onehot", onehot)])
        parts.append(("cat", onehot, [f.name for f in contract.categorical]))
    return Pipeline([("pre", ColumnTransformer(parts)),
                     ("clf", LogisticRegression(max_iter=200, random_state=seed, C=(params or Params()).C))])


def owns(model: Any) -> bool:
    """A scikit-learn pipeline is this family's (the lab's model is one)."""
    return type(model).__module__.startswith("sklearn.")


def importance(model: Any) -> pd.DataFrame:
    """The coefficient of each (scaled or one-hot) feature of the fitted pipeline: positive, more churn."""
    names = [n.split("__", 1)[-1] for n in model[:-1].get_feature_names_out()]
    frame = pd.DataFrame({"coefficient": np.asarray(model[-1].coef_, dtype=np.float64).ravel()},
                         index=pd.Index(names, name="feature"))
    frame.attrs["title"] = "coefficients (positive: more churn)"
    return frame


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
    means : dict
        The scaler's centre per number (the training means): contributions are measured from them.
    numeric : tuple of (name, weight, fill)
        Per-numeric-feature weights with the scaler's scale folded in; ``fill``
        replaces a missing value (None: the pipeline cannot take one).
    categorical : tuple of (name, {value: weight}, missing_weight)
        Per-categorical-feature lookup of the one-hot weights, and the weight of a missing value.
    """

    bias: float
    numeric: tuple[tuple[str, float, float | None], ...]
    categorical: tuple[tuple[str, dict[str, float], float], ...]
    means: dict[str, float] = field(default_factory=dict)  # training means of the numbers (contributions' origin)

    @property
    def base(self) -> float:
        """The log-odds at the training means with no category: where contributions are measured from."""
        return self.bias + sum(w * self.means.get(n, 0.0) for n, w, _ in self.numeric)

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(n for n, _, _ in self.numeric) + tuple(n for n, _, _ in self.categorical)

    @property
    def known_categories(self) -> dict[str, list[str]]:
        """The categories the model learned, per categorical feature (verification rows use them)."""
        return {name: list(table) for name, table, _ in self.categorical}

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

    # --- contributions: z = base + sum of one term per original feature, exactly -------------------

    def contributions_one(self, row: Mapping[str, Any]) -> tuple[float, list[float]]:
        """``(base, [contribution per feature, in self.features order])`` of one row, in log-odds.

        ``base`` is the log-odds of a customer at the training means with no
        category; a number's contribution is its weight times its distance to
        the training mean, a category's the weight of its value (its one-hot
        columns summed). ``base + sum(contributions)`` is the row's log-odds.
        """
        out = []
        for name, weight, fill in self.numeric:
            x = row[name]
            x = fill if x is None else x
            out.append(weight * (x - self.means[name]))
        for name, table, missing in self.categorical:
            value = row[name]
            out.append(missing if value is None else table.get(value, 0.0))
        return self.base, out

    def contributions(self, data: pd.DataFrame | Mapping[str, Any]) -> tuple[float, np.ndarray]:
        """``(base, matrix)`` of a batch: one column per feature (``self.features``), in log-odds."""
        first = self.features[0]
        n = len(data[first])
        out = np.empty((n, len(self.features)), dtype=np.float64)
        k = 0
        for name, weight, fill in self.numeric:
            column = np.asarray(data[name], dtype=np.float64)
            if fill is not None:
                column = np.where(np.isnan(column), fill, column)
            out[:, k] = weight * (column - self.means[name])
            k += 1
        for name, table, missing in self.categorical:
            values = list(table)
            weights = np.array([table[v] for v in values] + [0.0, missing])
            out[:, k] = weights[_codes(data[name], values)]
            k += 1
        return self.base, out


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


def compile(pipeline: Any, contract: _contract.Contract | None = None) -> LinearScorer:
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

    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise ValueError("not a two-step Pipeline")
    pre, clf = pipeline.steps[0][1], pipeline.steps[1][1]
    if not isinstance(pre, ColumnTransformer) or not isinstance(clf, LogisticRegression):
        raise ValueError("not ColumnTransformer -> LogisticRegression")
    if pre.transformer_weights:
        raise ValueError("transformer weights are not supported")
    if [int(c) for c in clf.classes_] != [0, 1] or clf.coef_.shape[0] != 1:
        raise ValueError(f"not a binary 0/1 classifier (classes {list(clf.classes_)})")
    terms = _Terms(np.asarray(clf.coef_[0], dtype=np.float64), float(clf.intercept_[0]))
    for name, trans, columns in pre.transformers_:
        terms.add(name, trans, columns)
    if terms.k != terms.coef.shape[0]:
        raise ValueError(f"the transformers give {terms.k} features, the classifier expects {terms.coef.shape[0]}")
    if not terms.numeric and not terms.categorical:
        raise ValueError("the pipeline uses no features")
    return LinearScorer(bias=terms.bias, numeric=tuple(terms.numeric), categorical=tuple(terms.categorical),
                        means=terms.means)


@dataclass
class _Terms:
    """The linear terms of a pipeline, gathered transformer by transformer (:func:`compile`): ``k`` is the
    position in the transformed feature vector, ``coef`` the classifier's weights over it."""

    coef: np.ndarray
    bias: float
    numeric: list[tuple[str, float, float | None]] = field(default_factory=list)
    categorical: list[tuple[str, dict[str, float], float]] = field(default_factory=list)
    means: dict[str, float] = field(default_factory=dict)
    k: int = 0

    def add(self, name: str, trans: Any, columns: Any) -> None:
        """The terms of one transformer of the ColumnTransformer (ValueError when it is not supported)."""
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        if isinstance(trans, str) and trans == "drop":
            return
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
                self.numeric.append((col, float(self.coef[self.k]), None if fills[j] is None else float(fills[j])))
                self.k += 1
        elif isinstance(trans, StandardScaler):
            self._scaled(trans, columns, fills)
        elif isinstance(trans, OneHotEncoder):
            self._one_hot(trans, columns, fills)
        else:
            raise ValueError(f"transformer {name!r} ({type(trans).__name__}) is not supported")

    def _scaled(self, trans: Any, columns: Any, fills: list[Any]) -> None:
        """A StandardScaler's columns: the weight over the scale, the mean moved into the bias."""
        mean = trans.mean_ if trans.with_mean else np.zeros(len(columns))
        scale = trans.scale_ if trans.with_std else np.ones(len(columns))
        for j, col in enumerate(columns):
            w = float(self.coef[self.k]) / float(scale[j])
            self.numeric.append((col, w, None if fills[j] is None else float(fills[j])))
            self.bias -= w * float(mean[j])
            self.means[col] = float(mean[j])
            self.k += 1

    def _one_hot(self, trans: Any, columns: Any, fills: list[Any]) -> None:
        """A OneHotEncoder's columns: a weight per category (an unknown one weighs nothing)."""
        if (trans.handle_unknown != "ignore" or trans.drop_idx_ is not None
                or getattr(trans, "_infrequent_enabled", False)):
            raise ValueError("OneHotEncoder must ignore unknown categories and drop none")
        for j, (col, cats) in enumerate(zip(columns, trans.categories_)):
            table = {}
            for cat in cats:
                if not isinstance(cat, str):
                    raise ValueError(f"category {cat!r} of {col} is not a string")
                table[cat] = float(self.coef[self.k])
                self.k += 1
            missing = table.get(fills[j], 0.0) if isinstance(fills[j], str) else 0.0
            if fills[j] is not None and not isinstance(fills[j], str):
                raise ValueError(f"the imputer of {col} fills in a non-text value")
            self.categorical.append((col, table, missing))


