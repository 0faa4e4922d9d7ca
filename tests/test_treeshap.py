"""The tree family's contribution tables (churn_lib/models/treeshap.py): LightGBM's own pred_contrib to 1e-9."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from churn_lib import contract, scoring
from churn_lib.learn.train import TrainParams, train
from churn_lib.models import lightgbm as lgbm_family
from churn_lib.models import treeshap
from churn_lib.run import runner

from . import datasets

#: (max_depth, num_leaves) of the models checked: the default, shallow, deeper, unlimited.
SHAPES = [(4, 15), (2, 4), (6, 31), (-1, 15)]


def _random_rows(c: contract.Contract, known: dict[str, list[str]], n: int, seed: int) -> pd.DataFrame:
    """Random rows of a contract: every known category, an unseen one, missing values in every column
    the model may meet them in, numbers across (and beyond) the contract's ranges."""
    rng = np.random.default_rng(seed)
    data = {}
    for f in c.features:
        if f.type == contract.CATEGORICAL:
            values = np.array(sorted(set(known.get(f.name, [])) | set(f.values)) + ["never seen"], dtype=object)
            column = values[rng.integers(0, len(values), n)]
        elif f.type == contract.BOOLEAN:
            column = rng.integers(0, 2, n).astype(object)
        else:
            low = f.low if f.low is not None else -1e3
            high = f.high if f.high is not None else 1e3
            column = rng.uniform(low - 0.1 * (high - low), high + 0.1 * (high - low), n)
            if f.type == contract.INTEGER:
                column = np.round(column)
            column = column.astype(object)
        column[rng.random(n) < 0.08] = None
        data[f.name] = column
    return pd.DataFrame(data)


def _check(s: scoring.Scorer, seed: int, n: int = 3000) -> float:
    compiled = s.compiled
    rows = _random_rows(s.contract, compiled.known_categories, n, seed)
    base, matrix = compiled.contributions(rows)
    ref_base, ref = s.model.contributions(scoring.model_frame(rows, s.contract))  # LightGBM's pred_contrib
    assert matrix.shape == ref.shape == (n, len(s.features))
    diff = float(max(np.max(np.abs(matrix - ref)), np.max(np.abs(base - ref_base))))
    assert diff <= 1e-9
    assert np.max(np.abs(base + matrix.sum(1) - compiled.logit(rows))) <= 1e-9
    return diff


@pytest.fixture(scope="module")
def wide_home(tmp_path_factory):
    """The tests' telecom table (19 features, blanks in TotalCharges), a LightGBM per shape."""
    root = tmp_path_factory.mktemp("wide") / "home"
    datasets.telecom_home(root, rows=2500, seed=11)
    runner.run_direct(home=root, version="v0", stages=("generate", "prepare"))
    for k, (depth, leaves) in enumerate(SHAPES):
        train(home=root, version=f"v{k + 1}", params=TrainParams(family="lightgbm", max_depth=depth,
                                                                 num_leaves=leaves, min_f1=0.0,
                                                                 regression_tolerance=1.0, cv_folds=2))
    return root


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory, _trained_template):
    import shutil

    root = tmp_path_factory.mktemp("lab") / "home"
    shutil.copytree(_trained_template, root)
    for k, (depth, leaves) in enumerate(SHAPES):
        train(home=root, version=f"t{k + 1}", params=TrainParams(family="lightgbm", max_depth=depth,
                                                                 num_leaves=leaves, min_f1=0.0,
                                                                 regression_tolerance=1.0, cv_folds=2))
    return root


@pytest.mark.parametrize("k", range(len(SHAPES)), ids=[f"depth{d}-leaves{l}" for d, l in SHAPES])
def test_the_tables_match_pred_contrib_on_random_wide_rows(wide_home, k):
    s = scoring.load(f"v{k + 1}", home=wide_home)
    assert s.engine == "booster"
    if SHAPES[k][0] == -1 and s.compiled.tables is None:  # an unlimited tree may be refused: then LightGBM's
        assert s.compiled.contributions_note.startswith("LightGBM pred_contrib (tables: ")
    else:
        assert s.compiled.tables is not None, s.compiled.contributions_note
        assert s.compiled.contributions_note.startswith("TreeSHAP tables (")
    for seed in range(3):
        _check(s, seed)


@pytest.mark.parametrize("k", range(len(SHAPES)), ids=[f"depth{d}-leaves{l}" for d, l in SHAPES])
def test_the_tables_match_pred_contrib_on_random_lab_rows(lab_home, k):
    s = scoring.load(f"t{k + 1}", home=lab_home)
    if SHAPES[k][0] != -1:
        assert s.compiled.tables is not None, s.compiled.contributions_note
    for seed in range(3):
        _check(s, seed)


@pytest.mark.parametrize("k", range(len(SHAPES)), ids=[f"depth{d}-leaves{l}" for d, l in SHAPES])
def test_the_tables_log_odds_are_predicts_bit_for_bit(wide_home, k):
    s = scoring.load(f"v{k + 1}", home=wide_home)
    compiled = s.compiled
    if compiled.tables is None:
        assert not compiled.raw_tables
        return
    assert compiled.raw_tables
    for seed in range(3):
        rows = _random_rows(s.contract, compiled.known_categories, 3000, seed)
        matrix = compiled._matrix(rows)
        assert np.array_equal(compiled.logit(rows), compiled.booster_logit(matrix))
        assert np.array_equal(compiled.tables.raw(matrix, threads=2), compiled.tables.raw(matrix, threads=1))
    probe = treeshap.probe_rows(compiled.tables, seed=5)
    assert np.array_equal(compiled.tables.raw(probe), compiled.booster_logit(probe))


def test_tables_whose_log_odds_differ_from_predict_are_not_used_for_them(wide_home, monkeypatch):
    s = scoring.load("v1", home=wide_home)
    real = treeshap.Tables.raw
    monkeypatch.setattr(treeshap.Tables, "raw", lambda self, rows, *, threads=None:
                        np.nextafter(real(self, rows, threads=threads), np.inf))
    assert lgbm_family.exact_raw(s.compiled) is False
    again = lgbm_family.compile(s.model, s.contract)
    assert again.tables is not None and not again.raw_tables
    rows = _random_rows(s.contract, again.known_categories, 300, seed=1)
    assert np.array_equal(again.logit(rows), again.booster_logit(again._matrix(rows)))


def test_explained_batch_scoring_uses_the_tables_and_matches_one_row_at_a_time(wide_home):
    s = scoring.load("v1", home=wide_home)
    rows = _random_rows(s.contract, s.compiled.known_categories, 200, seed=7)
    proba, base, top, values, other = s.explain(rows, 3)
    for i in (0, 57, 199):
        record = {k: (None if v is None else v) for k, v in rows.iloc[i].items()}
        p, e = s.explain_one(record, 3)  # LightGBM's single-row pred_contrib
        assert proba[i] == pytest.approx(p, abs=1e-12)
        assert [s.features[j] for j in top[i]] == [c["feature"] for c in e["contributions"]]
        assert values[i] == pytest.approx([c["contribution"] for c in e["contributions"]], abs=1e-9)
        assert other[i] == pytest.approx(e["other"], abs=1e-9)


def test_the_tables_survive_a_pickle(wide_home):
    s = scoring.load("v1", home=wide_home)
    rows = _random_rows(s.contract, s.compiled.known_categories, 500, seed=3)
    again = pickle.loads(pickle.dumps(s.compiled))
    assert np.array_equal(again.contributions(rows)[1], s.compiled.contributions(rows)[1])


def test_tables_that_disagree_with_pred_contrib_are_not_used(wide_home, monkeypatch):
    s = scoring.load("v1", home=wide_home)
    real = treeshap.Tables.contributions

    def off(self, rows, *, threads=None):
        base, matrix = real(self, rows, threads=threads)
        matrix[:, 0] += 1e-6
        return base, matrix

    monkeypatch.setattr(treeshap.Tables, "contributions", off)
    tables, note = lgbm_family.exact_tables(s.compiled)
    assert tables is None and note.startswith("LightGBM pred_contrib (tables differed by 1e-06 > 1e-09)")


def test_unsupported_models_are_refused_with_the_reason():
    dump = {"num_tree_per_iteration": 3, "max_feature_idx": 1, "tree_info": []}
    with pytest.raises(treeshap.Unsupported, match="more than one tree per iteration"):
        treeshap.tables(dump)
    leaf = {"leaf_value": 0.5, "leaf_count": 10, "leaf_coeff": [1.0], "leaf_features": [0]}
    split = {"split_feature": 0, "threshold": 1.0, "decision_type": "<=", "default_left": True,
             "missing_type": "NaN", "internal_count": 20, "left_child": leaf, "right_child": dict(leaf)}
    with pytest.raises(treeshap.Unsupported, match="linear trees"):
        treeshap.tables({"num_tree_per_iteration": 1, "max_feature_idx": 0,
                         "tree_info": [{"tree_structure": split}]})


def test_zero_as_missing_and_a_tiny_value_follow_lightgbm():
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 4))
    X[rng.random(X.shape) < 0.2] = 0.0
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (X[:, 0] + np.nan_to_num(X[:, 1]) > 0).astype(int)
    for zero_as_missing in (False, True):
        booster = lgb.train({"objective": "binary", "max_depth": 5, "num_leaves": 20, "verbose": -1,
                             "zero_as_missing": zero_as_missing, "num_threads": 1}, lgb.Dataset(X, y), 30)
        t = treeshap.tables(booster.dump_model())
        rows = np.vstack([treeshap.probe_rows(t, seed=1), X[:500]])
        ref = booster.predict(rows, pred_contrib=True)
        base, matrix = t.contributions(rows)
        assert np.max(np.abs(matrix - ref[:, :-1])) <= 1e-9 and np.max(np.abs(base - ref[:, -1])) <= 1e-9
