"""Scoring: load a registered model (integrity-checked) and score one row or a batch fast.

A :class:`Scorer` wraps a fitted pipeline with its registry entry and
decision threshold, so every caller predicts at the threshold that was stored
with the model, never at an implicit 0.5.

Why a compiled scorer: calling scikit-learn (or LightGBM's scikit-learn
wrapper) for one row costs milliseconds (a DataFrame, column dispatch, input
validation). At load time :func:`build` asks the model's family to compile it
(:func:`churn_lib.models.logreg.compile`: the logistic regression as plain
arithmetic, about a microsecond a row; :func:`churn_lib.models.lightgbm.compile`:
the booster fed float vectors; the family names the engine, ``ENGINE``), then checks the compiled scorer against the
model on sample rows covering every category (max absolute difference at most
:data:`VERIFY_TOLERANCE`) and checks that its contributions add up to its
log-odds. Only a verified compilation is used; a model it cannot reproduce is
scored by the model itself, and :attr:`Scorer.engine` / :attr:`Scorer.engine_note`
say which and why.

Explanations (:meth:`Scorer.explain_one`, :meth:`Scorer.explain`): per-feature
contributions in log-odds, exact for every family, so that
``sigmoid(base + sum(contributions)) == probability``; after calibration they are
mapped into the calibrated log-odds (:mod:`churn_lib.models.calibration`).

Examples
--------
A home on the lab's contract (the row's keys are the served contract's features):

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
from . import models, registry
from .exceptions import DataError, InvalidParameter, NoCurrentModel
from .home import Home
from .models.calibration import Calibrated
from .models.logreg import LinearScorer  # re-exported: the compiled logistic regression (scoring's face)

__all__ = ["LinearScorer", "Scorer", "build", "compile_pipeline", "from_entry", "load", "model_frame",
           "sample_rows", "verify"]

log = logging.getLogger(__name__)

#: Largest absolute difference from the scikit-learn pipeline a compiled scorer may show.
VERIFY_TOLERANCE = 1e-9

#: Most reasons an explanation may list (``explain=N``): beyond a few, a reader learns nothing more.
MAX_EXPLAIN = 50


def check_explain(n: Any) -> int:
    """``n`` as the number of reasons to give, or :class:`InvalidParameter` saying what is accepted."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_EXPLAIN:
        raise InvalidParameter(f"explain={n!r}: must be an integer from 1 to {MAX_EXPLAIN} (the number of "
                               "reasons to give)", name="explain")
    return n

#: A category value no model was trained on: verification checks that it scores as "no category",
#: like ``OneHotEncoder(handle_unknown="ignore")``.
_UNSEEN = "\x00unseen"


# --- compilation and its verification ------------------------------------------------

def compile_pipeline(model: Any, contract: _contract.Contract | None = None) -> Any:
    """The family's compiled scorer of a fitted model (ValueError when it has another shape)."""
    name = models.family_of(model)
    return models.family(name).compile(model, contract or _contract.lab())


def sample_rows(contract: _contract.Contract | None = None, known_categories: Mapping[str, Any] | None = None, *,
                n_numeric: int = 4, seed: int = 0) -> pd.DataFrame:
    """Rows for verification: every category (plus an unseen value, plus missing where the contract
    fills it in) and numbers spanning the contract's ranges, their bounds included.

    ``known_categories``: the categories the model learned (``compiled.known_categories``), tried
    beside the contract's. When the category combinations are few (the lab's 3 x 5) every
    combination is tried; otherwise each category appears in at least ``n_numeric`` rows, which
    covers every weight of an additive model.
    """
    c = contract or _contract.lab()
    known = known_categories or {}
    rng = np.random.default_rng(seed)
    cat_values = []
    for f in c.categorical:
        values = sorted(set(known.get(f.name, ())) | set(f.values)) + [_UNSEEN]
        if f.imputed:
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
            for f in c.numeric:
                low = f.low if f.low is not None else -100.0
                high = f.high if f.high is not None else 100.0
                if f.type == _contract.BOOLEAN:
                    low, high = 0.0, 1.0
                x: Any = low if j == 0 else high if j == 1 else float(rng.uniform(low, high))
                if f.type in (_contract.INTEGER, _contract.BOOLEAN):
                    x = int(round(x))
                if j == 3 and f.imputed:
                    x = None
                row[f.name] = x
            row.update({f.name: v for f, v in zip(c.categorical, combo)})
            rows.append(row)
    return pd.DataFrame(rows, columns=list(c.feature_names))


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


def _records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else v) for k, v in r.items()}
            for r in rows.to_dict(orient="records")]


def verify(compiled: Any, model: Any, rows: pd.DataFrame | None = None,
           contract: _contract.Contract | None = None) -> float:
    """Largest absolute difference between the compiled scorer and the (uncalibrated) model on ``rows``.

    Both paths are checked: one row at a time (``proba_one``) and vectorised
    (``proba``); and the contributions must add up to the log-odds (one row
    and batch), or the difference is infinite.
    """
    contract = contract or _contract.lab()
    rows = sample_rows(contract, compiled.known_categories) if rows is None else rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "unknown categories ... encoded as all zeros": on purpose
        expected = model.predict_proba(model_frame(rows, contract))[:, 1]
    batch = compiled.proba(rows)
    records = _records(rows)
    one = np.array([compiled.proba_one(r) for r in records])
    diff = float(max(np.max(np.abs(batch - expected)), np.max(np.abs(one - expected))))
    base, matrix = compiled.contributions(rows)
    z = compiled.logit(rows)
    adds = np.max(np.abs(np.asarray(base) + matrix.sum(axis=1) - z))
    first = compiled.contributions_one(records[0])
    adds_one = abs(first[0] + sum(first[1]) - compiled.logit_one(records[0]))
    if not max(adds, adds_one) <= 1e-9:
        return math.inf
    return diff


# --- the scorer callers use --------------------------------------------------

def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass
class Scorer:
    """A loaded model, its registry entry, its dataset contract, its decision threshold and how it is scored.

    Build with :func:`build` or :func:`load` (they compile and verify the fast
    path); ``Scorer(entry, model)`` alone scores with the model.
    ``pipeline`` is the registered artifact (a :class:`~churn_lib.models.calibration.Calibrated`
    wrapper when calibrated); ``compiled`` scores the uncalibrated log-odds and
    the calibration is applied on top.
    """

    entry: dict[str, Any]
    pipeline: Any = field(repr=False)
    compiled: Any = field(default=None, repr=False)
    engine_note: str = "not compiled"
    contract: _contract.Contract = field(default_factory=_contract.lab, repr=False)

    def __post_init__(self) -> None:
        calibrated = isinstance(self.pipeline, Calibrated)
        self.model = self.pipeline.model if calibrated else self.pipeline  # the family's own estimator
        self.calibration = self.pipeline.calibration if calibrated else None
        self.family = models.family_of(self.pipeline)
        self._engine = models.family(self.family).ENGINE

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
        """What scores, as the family names it: its compiled scorer (``"numpy"``, the compiled logistic
        regression; ``"booster"``, LightGBM fed float vectors) or the model itself (``"sklearn"``, ``"lightgbm"``)."""
        return self._engine.compiled if self.compiled is not None else self._engine.itself

    @property
    def features(self) -> tuple[str, ...]:
        return self.contract.feature_names

    @property
    def explains(self) -> bool:
        """Whether this model can explain its answers (a compiled scorer, or the model's own ``contributions``)."""
        return self.compiled is not None or hasattr(self.model, "contributions")

    def _calibrated(self, z: Any) -> Any:
        return self.calibration.proba(z)

    def proba_one(self, row: Mapping[str, Any]) -> float:
        """Churn probability of one row of normalised features (None where a value is missing)."""
        if self.compiled is not None:
            if self.calibration is None:
                return self.compiled.proba_one(row)
            return self.calibration.proba_one(self.compiled.logit_one(row))
        frame = model_frame({name: [row[name]] for name in self.features}, self.contract)
        return float(self.pipeline.predict_proba(frame)[0, 1])

    def predict_one(self, row: Mapping[str, Any]) -> tuple[float, int]:
        """``(probability, prediction)`` of one row, predicted at the stored threshold."""
        proba = self.proba_one(row)
        return proba, int(proba >= self.threshold)

    def _columns(self, rows: Any) -> Any:
        if isinstance(rows, Sequence) and not isinstance(rows, (str, bytes)):
            return {name: [r[name] for r in rows] for name in self.features}
        return rows

    def predict_proba(self, rows: pd.DataFrame | Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Churn probability per row.

        ``rows``: a DataFrame, a mapping of feature -> column (arrays), or a
        sequence of row mappings; all holding normalised features.
        """
        rows = self._columns(rows)
        if self.compiled is not None:
            if self.calibration is None:
                return self.compiled.proba(rows)
            return self.calibration.proba(self.compiled.logit(rows))
        return self.pipeline.predict_proba(model_frame(rows, self.contract))[:, 1]

    def predict(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """``(probability, prediction)`` per row, predictions at the stored threshold."""
        proba = self.predict_proba(rows)
        return proba, (proba >= self.threshold).astype(int)

    # --- explanations ---------------------------------------------------------------------

    def _require_explains(self) -> None:
        if not self.explains:
            raise InvalidParameter(f"explain: model {self.version} cannot explain its answers ({self.engine_note})",
                                   name="explain")

    def contributions(self, rows: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(probability, base, matrix)`` per row: the contributions (columns in :attr:`features` order)
        in the log-odds of the returned probability, ``sigmoid(base + matrix.sum(1)) == probability``."""
        self._require_explains()
        rows = self._columns(rows)
        if self.compiled is not None:
            base, matrix = self.compiled.contributions(rows)
            if self.compiled.features != self.features:
                matrix = matrix[:, [self.compiled.features.index(n) for n in self.features]]
        else:
            base, matrix = self.model.contributions(model_frame(rows, self.contract))
        base = np.broadcast_to(np.asarray(base, dtype=np.float64), (matrix.shape[0],))
        z = base + matrix.sum(axis=1)
        if self.calibration is None:
            from scipy.special import expit

            return expit(z), base, matrix
        base, matrix = self.calibration.contributions(base, matrix, z)
        return self._calibrated(z), np.broadcast_to(base, (matrix.shape[0],)), matrix

    def explain(self, rows: Any, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The top ``n`` reasons per row, vectorised: ``(probability, base, top, values, other)``.

        ``top`` holds feature indices (into :attr:`features`), most influential
        first (by |contribution|); ``values`` their contributions; ``other``
        the sum of every other feature's.
        """
        proba, base, matrix = self.contributions(rows)
        n = min(n, matrix.shape[1])
        order = _top(np.abs(matrix), n)
        values = np.take_along_axis(matrix, order, axis=1)
        other = matrix.sum(axis=1) - values.sum(axis=1)
        return proba, base, order, values, other

    def explain_one(self, row: Mapping[str, Any], n: int) -> tuple[float, dict[str, Any]]:
        """``(probability, explanation)`` of one row: ``{"base", "contributions": [{"feature", "value",
        "contribution"}, ...], "other"}`` with the top ``n`` features by |contribution|."""
        self._require_explains()
        if self.compiled is not None:
            base, contrib = self.compiled.contributions_one(row)
            names = self.compiled.features
            z = base + math.fsum(contrib)
            if self.calibration is None:
                proba = _sigmoid(z)
            else:
                proba = self.calibration.proba_one(z)
                cb, cm = self.calibration.contributions(np.array([base]), np.array([contrib]), np.array([z]))
                base, contrib = float(cb[0]), cm[0].tolist()
        else:
            p, b, m = self.contributions({name: [row[name]] for name in self.features})
            proba, base, contrib, names = float(p[0]), float(b[0]), m[0].tolist(), self.features
        ranked = sorted(range(len(contrib)), key=lambda k: -abs(contrib[k]))
        top = ranked[:n]
        other = math.fsum(contrib[k] for k in ranked[n:])
        return proba, {"base": float(base),
                       "contributions": [{"feature": names[k], "value": row[names[k]],
                                          "contribution": float(contrib[k])} for k in top],
                       "other": float(other)}


#: Up to this many reasons, :func:`_top` picks them one maximum at a time (cheaper than sorting every row).
_PICK_TOP = 8


def _top(size: np.ndarray, n: int) -> np.ndarray:
    """Column indices of each row's ``n`` largest ``size`` (non-negative), largest first, ties to the lower
    index: the first ``n`` of a stable argsort of ``-size``."""
    if n > _PICK_TOP or not np.isfinite(size).all():
        return np.argsort(-size, axis=1, kind="stable")[:, :n]
    size = size.copy()
    rows = np.arange(len(size))
    order = np.empty((len(size), n), dtype=np.intp)
    for k in range(n):
        order[:, k] = np.argmax(size, axis=1)  # the first of equal maxima
        size[rows, order[:, k]] = -1.0
    return order


def build(entry: dict[str, Any], pipeline: Any, *, contract: _contract.Contract | None = None, fast: bool = True,
          tolerance: float = VERIFY_TOLERANCE) -> Scorer:
    """A :class:`Scorer` for a loaded model, with the compiled fast path when it verifies.

    Parameters
    ----------
    entry : dict
        The model's registry entry (version, file, threshold).
    pipeline : fitted estimator
        The registered artifact (a family's model, possibly :class:`~churn_lib.models.calibration.Calibrated`).
    contract : Contract, optional
        The dataset contract the model was trained on (default the lab's).
    fast : bool, default=True
        False skips compilation (always score with the model).
    tolerance : float, default=VERIFY_TOLERANCE
        Largest absolute difference from the model accepted on the sample rows.

    Returns
    -------
    Scorer
        ``engine`` says what scores; ``engine_note`` says why.
    """
    version = entry.get("version")
    contract = contract or _contract.lab()
    base = pipeline.model if isinstance(pipeline, Calibrated) else pipeline
    engine = models.family(models.family_of(pipeline)).ENGINE
    itself = engine.itself_note
    if not fast:
        return Scorer(entry, pipeline, None, f"{itself} (compilation disabled)", contract)
    try:
        compiled = compile_pipeline(base, contract)
        if set(compiled.features) != set(contract.feature_names):
            raise ValueError("the model's features are not the contract's")
        rows = sample_rows(contract, compiled.known_categories)
        diff = verify(compiled, base, rows, contract)
    except Exception as exc:  # any surprise in a foreign model means: use the model itself
        log.warning("model %s is scored by the %s: cannot compile it (%s)", version, itself, exc)
        return Scorer(entry, pipeline, None, f"{itself} (not compilable: {exc})", contract)
    if not diff <= tolerance:
        log.warning("model %s is scored by the %s: compiled scorer differs by %.3g > %.3g",
                    version, itself, diff, tolerance)
        return Scorer(entry, pipeline, None,
                      f"{itself} (compiled scorer differed by {diff:.3g} > {tolerance:.0e})", contract)
    kind = engine.compiled_note
    log.info("model %s is scored by the %s (max |diff| %.3g)", version, kind, diff)
    return Scorer(entry, pipeline, compiled, f"{kind} (verified on {len(rows)} rows, max |diff| {diff:.2g})",
                  contract)


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
