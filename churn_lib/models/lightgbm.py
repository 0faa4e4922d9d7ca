"""The gradient-boosting family: LightGBM with native categories, early stopping, exact tree contributions.

* :class:`LightGBMChurn` - a scikit-learn estimator (so cross-validation and
  ``clone`` work) around ``lightgbm.LGBMClassifier``: categories go in as
  pandas categories of the values seen in training (unseen and missing values
  take LightGBM's missing branch), booleans as 0/1, numbers as they are
  (missing values are native too); it stops adding trees when the log loss on
  an inner, stratified tenth of its training rows has not improved for 30
  rounds, and it is seeded and deterministic;
* :func:`compile` - a row scorer on the booster itself (:class:`BoosterScorer`):
  a row becomes a float vector (categories as their codes), so one prediction
  skips pandas; a batch's log-odds come from the contribution tables when they
  equal ``predict``'s bit for bit (checked at compile time), else from ``predict``;
* contributions - exact per-feature tree contributions (TreeSHAP values) in
  log-odds: for a batch from tables made once per model (:mod:`.treeshap`,
  checked at compile time against LightGBM's own ``pred_contrib`` to 1e-9 on
  rows reaching every split's every side, LightGBM's otherwise), for one row
  LightGBM's single-row ``pred_contrib``;
* :func:`importance` - each feature's share of the total gain, as data (the train report draws it).

The estimator's class subclasses scikit-learn's ``BaseEstimator``, whose import
costs about a second; the stage table reads :class:`Params` whenever ``churn``
starts, so the class is made on first use (module ``__getattr__``), with the
name and module its pickles have always had.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .. import contract as _contract
from ..exceptions import InvalidParameter
from .._params import Range, param
from .base import Engine

NAME = "lightgbm"
ENGINE = Engine(compiled="booster", compiled_note="LightGBM booster on float rows", itself="lightgbm",
                itself_note="LightGBM model")
LIBRARIES: tuple[str, ...] = ("lightgbm",)


@dataclass(frozen=True)
class Params:
    """This family's hyperparameters (train parameters), declared once."""

    n_estimators: int = param(400, "most trees (early stopping picks fewer)", range=Range(1))
    learning_rate: float = param(0.05, "shrinkage per tree", range=Range(0, 1, open_low=True))
    num_leaves: int = param(15, "most leaves per tree", range=Range(2))
    max_depth: int = param(4, "deepest split level, -1 for no limit", range=Range(1, also=(-1,)))
    min_child_samples: int = param(20, "fewest rows in a leaf", range=Range(1))


#: Share of the training rows held out inside each fit for early stopping, and its patience.
VALIDATION_FRACTION = 0.1
EARLY_STOPPING_ROUNDS = 30


def _lightgbm():
    try:
        import lightgbm
    except ImportError:  # pragma: no cover - a declared dependency; a broken environment says so
        raise InvalidParameter("family=lightgbm needs the lightgbm package, which churn-mlops depends on: "
                               "reinstall the project (make install, or pip install lightgbm)",
                               name="family") from None
    except OSError as exc:  # pragma: no cover - the wheel links libgomp
        raise InvalidParameter(f"family=lightgbm: the lightgbm library cannot load ({exc}); install the OpenMP "
                               "runtime (Debian: apt-get install libgomp1, or make system-deps)",
                               name="family") from None
    return lightgbm


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover
        return max(1, os.cpu_count() or 1)


class _Methods:
    """The methods of :class:`LightGBMChurn` (made on first use, see the module docstring)."""

    # scikit-learn reads an estimator's parameters from its __init__'s signature: the defaults are Params'
    def __init__(self, contract: _contract.Contract | None = None, n_estimators: int = Params.n_estimators,
                 learning_rate: float = Params.learning_rate, num_leaves: int = Params.num_leaves,
                 max_depth: int = Params.max_depth, min_child_samples: int = Params.min_child_samples,
                 seed: int = 42) -> None:
        self.contract = contract
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.seed = seed

    @property
    def features(self) -> tuple[str, ...]:
        return self.contract.feature_names

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model's input: categories as pandas categories of the training values, the rest floats."""
        data = {}
        for f in self.contract.features:
            column = X[f.name]
            if f.type == _contract.CATEGORICAL:
                known = self.categories_[f.name]
                values = column.astype(object)
                values = values.where(values.notna() & values.isin(known), None)  # unseen -> missing branch
                data[f.name] = pd.Categorical(values, categories=known)
            else:
                data[f.name] = pd.to_numeric(column, errors="coerce").astype("float64")
        return pd.DataFrame(data, index=X.index)

    def fit(self, X: pd.DataFrame, y: Any) -> "LightGBMChurn":
        lgb = _lightgbm()
        from sklearn.model_selection import train_test_split

        y = np.asarray(y).astype(int)
        self.categories_ = {}
        for f in self.contract.categorical:
            seen = X[f.name].dropna().astype(str).unique().tolist()
            self.categories_[f.name] = sorted(set(seen) | set(f.values))
        frame = self._frame(X)
        inner, held, y_inner, y_held = train_test_split(frame, y, test_size=VALIDATION_FRACTION, stratify=y,
                                                        random_state=self.seed)
        self.model_ = lgb.LGBMClassifier(
            n_estimators=self.n_estimators, learning_rate=self.learning_rate, num_leaves=self.num_leaves,
            max_depth=self.max_depth, min_child_samples=self.min_child_samples, random_state=self.seed, deterministic=True,
            force_row_wise=True, n_jobs=_threads(), verbose=-1)
        self.model_.fit(inner, y_inner, eval_X=(held,), eval_y=(y_held,), eval_metric="binary_logloss",
                        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)])
        self.best_iteration_ = int(self.model_.best_iteration_ or self.n_estimators)
        self.classes_ = np.array([0, 1])
        return self

    def raw(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds per row."""
        return self.model_.predict(self._frame(X), raw_score=True, num_iteration=self.best_iteration_)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.raw(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def contributions(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(base per row, matrix)``: LightGBM's exact tree contributions in log-odds (TreeSHAP)."""
        out = self.model_.predict(self._frame(X), pred_contrib=True, num_iteration=self.best_iteration_)
        return out[:, -1], out[:, :-1]


_CLASS_LOCK = threading.Lock()


def _estimator_class() -> type:
    """:class:`LightGBMChurn`, made once: ``_Methods`` on scikit-learn's classifier bases."""
    with _CLASS_LOCK:
        cls = globals().get("LightGBMChurn")
        if cls is None:
            from sklearn.base import BaseEstimator, ClassifierMixin

            cls = type("LightGBMChurn", (_Methods, ClassifierMixin, BaseEstimator),
                       {"__module__": __name__, "__qualname__": "LightGBMChurn",
                        "__doc__": "A binary LightGBM classifier over a contract's features (scikit-learn's "
                                   "estimator API). Parameters are stored as given; ``fit`` does the work."})
            globals()["LightGBMChurn"] = cls
    return cls


def __getattr__(name: str) -> Any:
    if name == "LightGBMChurn":
        return _estimator_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: LightGBM C API constants (include/LightGBM/c_api.h).
_C_API_DTYPE_FLOAT64 = 1
_C_API_PREDICT_RAW_SCORE = 1
_C_API_PREDICT_CONTRIB = 3


class _RowPredictor:
    """LightGBM's single-row fast path for one thread: ``LGBM_BoosterPredictForMatSingleRowFast``.

    ``Booster.predict`` on one row sets up a predictor, checks shapes and
    converts its input on every call (about 100 us; 450 us for contributions);
    the C API's ``FastInit`` does the setup once and ``Fast`` then scores a
    row from a float64 buffer. A fast config is not safe to share between
    threads (it keeps its buffers), so :class:`BoosterScorer` keeps one per
    thread; the booster itself is.
    """

    def __init__(self, booster: Any, kind: int, iterations: int, ncol: int) -> None:
        import ctypes

        from lightgbm import basic

        self._ctypes, self._basic = ctypes, basic
        self._lib = basic._LIB
        self.handle = ctypes.c_void_p()
        basic._safe_call(self._lib.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle, ctypes.c_int(kind), ctypes.c_int(0), ctypes.c_int(iterations),
            ctypes.c_int(_C_API_DTYPE_FLOAT64), ctypes.c_int32(ncol), basic._c_str("num_threads=1"),
            ctypes.byref(self.handle)))
        self._booster = booster  # the config points into it: keep it alive
        self.row = np.empty(ncol, dtype=np.float64)
        self.out = np.empty(ncol + 1 if kind == _C_API_PREDICT_CONTRIB else 1, dtype=np.float64)
        self._row_ptr = self.row.ctypes.data_as(ctypes.c_void_p)
        self._out_ptr = self.out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_len = ctypes.c_int64()

    def __call__(self) -> np.ndarray:
        """Score :attr:`row` (filled by the caller); the result is :attr:`out` (overwritten by the next call)."""
        self._basic._safe_call(self._lib.LGBM_BoosterPredictForMatSingleRowFast(
            self.handle, self._row_ptr, self._ctypes.byref(self._out_len), self._out_ptr))
        return self.out

    def __del__(self) -> None:
        handle = getattr(self, "handle", None)
        if handle is not None and handle.value:
            try:
                self._lib.LGBM_FastConfigFree(handle)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass


#: Fewest rows whose log-odds the tables compute (the same floats as ``predict``): below, ``predict``'s
#: fixed cost is the smaller (about 50 us a call against 350 us for the tables' 200 groups).
RAW_TABLES_MIN_ROWS = 256


class BoosterScorer:
    """One row or a batch scored by the booster from float vectors (categories as their codes).

    One row goes through LightGBM's single-row fast path (:class:`_RowPredictor`,
    one per thread); a batch through ``Booster.predict`` on a float matrix, or
    through :attr:`tables` when :attr:`raw_tables` is set and it has at least
    :data:`RAW_TABLES_MIN_ROWS` rows (their :meth:`~.treeshap.Tables.raw`,
    checked equal to ``predict``'s log-odds bit for bit, in about a third of its
    CPU); a batch's contributions through :attr:`tables` when set (exact
    TreeSHAP tables verified against ``pred_contrib``; :attr:`contributions_note`
    says which computes them and why).
    Pickles without its per-thread predictors (they are rebuilt where it lands).
    """

    def __init__(self, features: tuple[str, ...], codes: tuple[dict[str, int] | None, ...], booster: Any,
                 iterations: int, tables: Any = None, contributions_note: str = "LightGBM pred_contrib",
                 raw_tables: bool = False) -> None:
        self.features = features
        self.codes = codes
        self.booster = booster
        self.iterations = iterations
        self.tables = tables
        self.contributions_note = contributions_note
        self.raw_tables = raw_tables
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    @property
    def known_categories(self) -> dict[str, list[str]]:
        return {n: list(c) for n, c in zip(self.features, self.codes) if c is not None}

    def _predictor(self, kind: int) -> _RowPredictor:
        found = getattr(self._local, "p%d" % kind, None)
        if found is None:
            found = _RowPredictor(self.booster, kind, self.iterations, len(self.features))
            setattr(self._local, "p%d" % kind, found)
        return found

    def _fill(self, out: np.ndarray, row: Mapping[str, Any]) -> np.ndarray:
        for k, (name, codes) in enumerate(zip(self.features, self.codes)):
            value = row[name]
            if value is None:
                out[k] = math.nan
            elif codes is not None:
                out[k] = codes.get(value, math.nan)
            else:
                out[k] = value
        return out

    def _matrix(self, data: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        first = self.features[0]
        n = len(data[first])
        out = np.empty((n, len(self.features)), dtype=np.float64)
        for k, (name, codes) in enumerate(zip(self.features, self.codes)):
            column = data[name]
            if codes is not None:
                index = pd.Index(list(codes))
                s = pd.Series(column, dtype=object) if not isinstance(getattr(column, "dtype", None),
                                                                       pd.CategoricalDtype) else column
                if isinstance(getattr(s, "dtype", None), pd.CategoricalDtype):
                    cat = s.array if isinstance(s, pd.Series) else s
                    per = index.get_indexer(cat.categories).astype(np.float64)
                    per[per < 0] = np.nan
                    raw = np.asarray(cat.codes)
                    out[:, k] = np.where(raw >= 0, per[np.maximum(raw, 0)], np.nan)
                else:
                    got = index.get_indexer(s).astype(np.float64)
                    got[got < 0] = np.nan
                    out[:, k] = got
            else:
                out[:, k] = np.asarray(column, dtype=np.float64)
        return out

    def logit_one(self, row: Mapping[str, Any]) -> float:
        p = self._predictor(_C_API_PREDICT_RAW_SCORE)
        self._fill(p.row, row)
        return float(p()[0])

    def proba_one(self, row: Mapping[str, Any]) -> float:
        z = self.logit_one(row)
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def logit(self, data: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        matrix = self._matrix(data)
        if self.raw_tables and len(matrix) >= RAW_TABLES_MIN_ROWS:
            return self.tables.raw(matrix, threads=_threads())
        return self.booster_logit(matrix)

    def booster_logit(self, matrix: np.ndarray) -> np.ndarray:
        """Log-odds from LightGBM's own ``predict`` on float rows (what :attr:`tables`' must equal)."""
        return self.booster.predict(matrix, raw_score=True, num_iteration=self.iterations)

    def proba(self, data: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        from scipy.special import expit

        return expit(self.logit(data))

    def contributions_one(self, row: Mapping[str, Any]) -> tuple[float, list[float]]:
        p = self._predictor(_C_API_PREDICT_CONTRIB)
        self._fill(p.row, row)
        out = p()
        return float(out[-1]), out[:-1].tolist()

    def contributions(self, data: pd.DataFrame | Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        if self.tables is not None:
            return self.tables.contributions(self._matrix(data), threads=_threads())
        return self.booster_contributions(self._matrix(data))

    def booster_contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(base, matrix)`` from LightGBM's own ``pred_contrib`` on float rows (what :attr:`tables` must match)."""
        out = self.booster.predict(matrix, pred_contrib=True, num_iteration=self.iterations)
        return out[:, -1], out[:, :-1]


def build(contract: _contract.Contract, *, seed: int = 42, params: Params | None = None) -> Any:
    """An unfitted :class:`LightGBMChurn` for ``params`` (default :class:`Params`)."""
    _lightgbm()  # a missing library says so before any fit
    return _estimator_class()(contract, seed=seed, **asdict(params or Params()))


def owns(model: Any) -> bool:
    """Whether ``model`` is a :class:`LightGBMChurn` (told without importing scikit-learn)."""
    return type(model).__module__ == __name__ and type(model).__name__ == "LightGBMChurn"


def compile(model: Any, contract: _contract.Contract | None = None) -> BoosterScorer:
    """The booster's row scorer (raises ValueError for anything but a fitted :class:`LightGBMChurn`)."""
    if not owns(model) or not hasattr(model, "model_"):
        raise ValueError("not a fitted LightGBMChurn")
    codes = tuple({v: i for i, v in enumerate(model.categories_[f.name])} if f.type == _contract.CATEGORICAL
                  else None for f in model.contract.features)
    scorer = BoosterScorer(model.features, codes, model.model_.booster_, model.best_iteration_)
    scorer.tables, scorer.contributions_note = exact_tables(scorer)
    scorer.raw_tables = scorer.tables is not None and exact_raw(scorer)
    return scorer


#: Largest difference from LightGBM's ``pred_contrib`` the contribution tables may show on the probe rows.
TABLES_TOLERANCE = 1e-9


def exact_tables(scorer: BoosterScorer, *, tolerance: float = TABLES_TOLERANCE) -> tuple[Any, str]:
    """``(tables, note)``: :mod:`.treeshap`'s tables of the scorer's trees when they match LightGBM's
    ``pred_contrib`` on :func:`.treeshap.probe_rows` to ``tolerance``, else ``(None, why)``."""
    import logging
    import time

    from . import treeshap

    log = logging.getLogger(__name__)  # here, not at the top: the module's import block is shared work
    started = time.perf_counter()
    try:
        tables = treeshap.tables(scorer.booster.dump_model(num_iteration=scorer.iterations))
        if tables.n_features != len(scorer.features):
            raise treeshap.Unsupported(f"{tables.n_features} columns, the scorer has {len(scorer.features)}")
    except treeshap.Unsupported as exc:
        log.info("contributions by LightGBM's pred_contrib: the tables do not support this model (%s)", exc)
        return None, f"LightGBM pred_contrib (tables: {exc})"
    made = time.perf_counter() - started
    rows = treeshap.probe_rows(tables)
    base, matrix = tables.contributions(rows, threads=1)
    ref_base, ref = scorer.booster_contributions(rows)
    diff = float(max(np.max(np.abs(matrix - ref)), np.max(np.abs(base - ref_base))))
    if not diff <= tolerance:
        log.warning("contributions by LightGBM's pred_contrib: the tables differ by %.3g > %.0e", diff, tolerance)
        return None, f"LightGBM pred_contrib (tables differed by {diff:.3g} > {tolerance:.0e})"
    return tables, (f"TreeSHAP tables ({tables.n_trees} trees, {tables.n_groups} groups, "
                    f"{tables.nbytes / 2**20:.1f} MiB, made in {made:.2f} s; verified on {len(rows)} rows, "
                    f"max |diff| {diff:.2g})")


def exact_raw(scorer: BoosterScorer) -> bool:
    """Whether the scorer's tables give ``predict``'s log-odds bit for bit on :func:`.treeshap.probe_rows` (then
    batches are scored by them: the same floats, so the same probabilities to the last digit)."""
    from . import treeshap

    rows = treeshap.probe_rows(scorer.tables)
    return bool(np.array_equal(scorer.tables.raw(rows, threads=1), scorer.booster_logit(rows)))


def importance(model: Any) -> pd.DataFrame:
    """Each feature's share of the fitted model's total split gain."""
    gain = model.model_.booster_.feature_importance(importance_type="gain", iteration=model.best_iteration_)
    frame = pd.DataFrame({"gain share": gain / max(gain.sum(), 1e-12)},
                         index=pd.Index(list(model.features), name="feature"))
    frame.attrs["title"] = f"share of the split gain ({model.best_iteration_} trees)"
    return frame
