"""A third model family, declared here in the tests: one module's worth of code plus models.register.

A decision stump on one numeric feature: it proves that adding a family needs no
edit of churn_lib, and that train, score and explain work for it.
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from churn_lib import InvalidParameter, models, registry, scoring
from churn_lib.data import read_csv
from churn_lib.learn import explain
from churn_lib.learn.train import TrainParams, train
from churn_lib.models import Engine, Range, param
from churn_lib.run import stages


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


class Stump(ClassifierMixin, BaseEstimator):
    """Split one numeric feature at the threshold with the lowest log loss; each side predicts its churn rate."""

    def __init__(self, features=(), feature="", min_rows=5):
        self.features = features
        self.feature = feature
        self.min_rows = min_rows

    def fit(self, X, y):
        x = X[self.feature].to_numpy(dtype=float)
        y = np.asarray(y, dtype=float)
        self.classes_ = np.array([0, 1])
        self.base_ = _logit((y.sum() + 1) / (len(y) + 2))  # the prior, smoothed: where contributions start
        best = math.inf
        for cut in np.unique(np.quantile(x, np.linspace(0.05, 0.95, 19))):
            left = x <= cut
            if min(left.sum(), (~left).sum()) < self.min_rows:
                continue
            rates = [(y[side].sum() + 1) / (side.sum() + 2) for side in (left, ~left)]
            p = np.where(left, rates[0], rates[1])
            loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
            if loss < best:
                best, self.cut_, self.leaves_ = loss, float(cut), (_logit(rates[0]), _logit(rates[1]))
        return self

    def raw(self, X):
        return np.where(X[self.feature].to_numpy(dtype=float) <= self.cut_, *self.leaves_)

    def predict_proba(self, X):
        p = 1.0 / (1.0 + np.exp(-self.raw(X)))
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def contributions(self, X):
        """``(base, matrix)``: the split feature moves the log-odds from the prior to its leaf; the rest, 0."""
        matrix = np.zeros((len(X), len(self.features)))
        matrix[:, list(self.features).index(self.feature)] = self.raw(X) - self.base_
        return np.full(len(X), self.base_), matrix


@dataclass(frozen=True)
class StumpParams:
    stump_min_rows: int = param(5, "fewest rows on each side of the split", range=Range(1))


def _compile(model, contract):
    raise ValueError("a stump has no compiled scorer: the model scores itself")


def _importance(model):
    frame = pd.DataFrame({"leaf log-odds spread": [abs(model.leaves_[1] - model.leaves_[0])]},
                         index=pd.Index([model.feature], name="feature"))
    frame.attrs["title"] = f"the split on {model.feature} at {model.cut_:g}"
    return frame


stump = types.ModuleType("stump_family")  # what a family module would hold, as one object
stump.NAME = "stump"
stump.Params = StumpParams
stump.ENGINE = Engine(compiled="-", compiled_note="-", itself="stump", itself_note="stump model")
stump.LIBRARIES = ()
stump.build = lambda contract, *, seed=42, params=None: Stump(
    contract.feature_names, contract.numeric[0].name, (params or StumpParams()).stump_min_rows)
stump.owns = lambda model: isinstance(model, Stump)
stump.compile = _compile
stump.importance = _importance


@pytest.fixture
def registered():
    models.register(stump)
    yield stump
    models.unregister("stump")


def test_a_family_registered_from_outside_trains_scores_and_explains(trained_home, registered):
    result = train(home=trained_home, version="s1",
                   params=TrainParams(family="stump", stump_min_rows=10, min_f1=0.0, regression_tolerance=1.0))
    entry = registry.get("s1", home=trained_home)
    assert entry["model_family"] == "stump" and entry["model_params"] == {"stump_min_rows": 10}
    assert entry["params"]["family"] == "stump" and 0.5 < entry["metrics"]["roc_auc"] < 1.0

    s = scoring.load("s1", home=trained_home)
    assert (s.family, s.engine, s.explains) == ("stump", "stump", True) and "stump model" in s.engine_note
    rows = read_csv(trained_home.processed_csv)[list(s.features)]
    proba = s.predict_proba(rows)
    assert np.array_equal(proba, result.model.predict_proba(rows)[:, 1]) and len(np.unique(proba)) == 2

    p, base, matrix = s.contributions(rows)
    assert np.max(np.abs(1 / (1 + np.exp(-(base + matrix.sum(axis=1)))) - proba)) < 1e-12
    assert np.count_nonzero(matrix.any(axis=0)) == 1  # only the split feature moves a customer
    one, e = s.explain_one(rows.iloc[0].to_dict(), 2)
    assert e["contributions"][0]["feature"] == "tenure_months"
    z = e["base"] + sum(c["contribution"] for c in e["contributions"]) + e["other"]
    assert one == pytest.approx(proba[0]) and 1 / (1 + math.exp(-z)) == pytest.approx(one, abs=1e-12)

    reasons = explain.reasons(s, rows)
    assert max(reasons.importance, key=reasons.importance.get) == "tenure_months"
    learned = models.importance(result.model)
    assert list(learned.index) == ["tenure_months"] and "split on tenure_months" in learned.attrs["title"]


def test_a_registered_familys_hyperparameters_are_train_parameters_and_refused_elsewhere(registered):
    params = stages.TABLE["train"].params
    assert params["stump_min_rows"].help == "stump: fewest rows on each side of the split; None: 5"
    assert "stump_min_rows = None" in stages.TABLE["train"].parameters_cell()
    with pytest.raises(InvalidParameter, match="stump_min_rows is a parameter of family=stump, not of "
                                               "family=logreg; family=logreg takes C"):
        stages.check(("train",), {"stump_min_rows": 3})
    with pytest.raises(InvalidParameter, match="stump_min_rows must be an integer >= 1, got 0"):
        TrainParams(family="stump", stump_min_rows=0)
    with pytest.raises(InvalidParameter, match="C is a parameter of family=logreg, not of family=stump"):
        TrainParams(family="stump", C=1.0)


def test_a_family_is_refused_when_incomplete_or_its_names_are_taken(registered):
    with pytest.raises(InvalidParameter, match="family='stump' is already registered"):
        models.register(stump)
    half = types.SimpleNamespace(NAME="half", Params=StumpParams)
    with pytest.raises(InvalidParameter, match="a family needs ENGINE, LIBRARIES, build, owns, compile, importance"):
        models.register(half)
    clash = types.SimpleNamespace(**{**vars(stump), "NAME": "other"})
    with pytest.raises(InvalidParameter, match="stump_min_rows is already a hyperparameter of family=stump"):
        models.register(clash)


def test_without_registering_it_the_family_is_unknown():
    with pytest.raises(InvalidParameter, match="family must be one of logreg, lightgbm, got 'stump'"):
        TrainParams(family="stump")
