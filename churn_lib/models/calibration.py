"""Calibration: honest probabilities for a profit threshold, fitted without the test split.

:func:`fit` learns a map from a model's log-odds to calibrated probabilities on
the out-of-fold predictions of the training split (the same ones the threshold
is chosen on; the test split only reports):

* ``sigmoid`` (Platt): ``p = sigmoid(a * z + c)``, a logistic regression on the log-odds;
* ``isotonic``: ``p = f(sigmoid(z))`` with ``f`` the isotonic (monotone step)
  fit, interpolated between its knots.

:class:`Calibrated` wraps a family's model so that the registered artifact
predicts calibrated probabilities wherever it is loaded.

Contributions after calibration (the explanation contract, ``sigmoid(base +
sum + other) == probability``): with ``sigmoid`` they are the model's own,
scaled by ``a`` (and the base mapped to ``a * base + c``): exact, and in the
calibrated log-odds. ``isotonic`` is not linear: the base becomes the
calibrated log-odds of the base score, and the model's contributions are
rescaled together so that they add up to the rest (their ranking and
proportions are kept; a customer whose calibrated score equals the base's gets
all zeros, the difference, if any, in ``other``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

METHODS = ("none", "sigmoid", "isotonic")
#: Log-odds are kept within this bound (a probability of 1e-12 .. 1 - 1e-12).
_Z_MAX = 27.6


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def logit(p: Any) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.log(p / (1.0 - p))


@dataclass(frozen=True)
class Calibration:
    """A fitted map from log-odds to calibrated probabilities."""

    method: str
    a: float = 1.0
    c: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    def proba(self, z: Any) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        if self.method == "sigmoid":
            return _sigmoid(self.a * z + self.c)
        return np.interp(_sigmoid(z), self.x, self.y)

    def proba_one(self, z: float) -> float:
        """One row's calibrated probability, without building arrays for the sigmoid."""
        if self.method == "sigmoid":
            t = self.a * z + self.c
            return 1.0 / (1.0 + math.exp(-t)) if t >= 0 else math.exp(t) / (1.0 + math.exp(t))
        p = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
        return float(np.interp(p, self.x, self.y))

    def contributions(self, base: Any, contrib: np.ndarray, z: Any) -> tuple[np.ndarray, np.ndarray]:
        """The base and contributions in calibrated log-odds (see the module docstring)."""
        base = np.asarray(base, dtype=np.float64)
        if self.method == "sigmoid":
            return self.a * base + self.c, self.a * contrib
        target = logit(self.proba(z))
        new_base = logit(self.proba(base))
        total = contrib.sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.where(np.abs(total) > 1e-12, (target - new_base) / total, 0.0)
        return new_base, contrib * np.expand_dims(k, -1)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "a": self.a, "c": self.c, "knots": len(self.x)}


def fit(method: str, z: Any, y: Any) -> Calibration | None:
    """Fit ``method`` on log-odds ``z`` and outcomes ``y`` (out-of-fold); None for ``"none"``."""
    if method == "none":
        return None
    z = np.clip(np.asarray(z, dtype=np.float64), -_Z_MAX, _Z_MAX)
    y = np.asarray(y).astype(int)
    if method == "sigmoid":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e6, max_iter=1000).fit(z.reshape(-1, 1), y)
        return Calibration("sigmoid", a=float(lr.coef_[0, 0]), c=float(lr.intercept_[0]))
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(_sigmoid(z), y)
    return Calibration("isotonic", x=tuple(map(float, iso.X_thresholds_)), y=tuple(map(float, iso.y_thresholds_)))


class Calibrated:
    """A family's fitted model and its calibration: ``predict_proba`` is calibrated.

    ``model`` keeps the family's own estimator (its contributions, its compiled scorer).
    """

    def __init__(self, model: Any, calibration: Calibration) -> None:
        self.model = model
        self.calibration = calibration
        self.classes_ = np.array([0, 1])

    def predict_proba(self, X: Any) -> np.ndarray:
        p = self.calibration.proba(logit(self.model.predict_proba(X)[:, 1]))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
