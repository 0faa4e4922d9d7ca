"""Model families (logreg, lightgbm), their explanations, the profit threshold and calibration."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn_lib import InvalidParameter, contract, models, registry, scoring
from churn_lib.scale import batch
from churn_lib.learn import explain
from churn_lib.run import runner, stages
from churn_lib.data import read_csv
from churn_lib.data.csv import read_options
from churn_lib.models import calibration
from churn_lib.learn.metrics import Costs, pick_threshold, profit_curve
from churn_lib.learn.train import TrainParams, train

from . import datasets
from . import lab_contract as schema


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


@pytest.fixture(scope="module")
def wide_home(tmp_path_factory):
    """The tests' telecom table (19 features, a filled-in column, an id), prepared once: logreg v1, lightgbm v2."""
    root = tmp_path_factory.mktemp("wide") / "home"
    datasets.telecom_home(root, rows=2500, seed=5)
    runner.run_direct(home=root, version="v1", stages=("generate", "prepare", "train"))
    train(home=root, version="v2", params=TrainParams(family="lightgbm"))
    return root


@pytest.fixture(scope="module")
def lab_lgbm_home(tmp_path_factory, _trained_template):
    """The lab's trained home plus a LightGBM v2 and a sigmoid-calibrated LightGBM v3."""
    root = tmp_path_factory.mktemp("lablgbm") / "home"
    shutil.copytree(_trained_template, root)
    train(home=root, version="v2", params=TrainParams(family="lightgbm", min_f1=0.0, regression_tolerance=1.0))
    train(home=root, version="v3", params=TrainParams(family="lightgbm", calibration="sigmoid", min_f1=0.0,
                                                      regression_tolerance=1.0))
    return root


# --- the families on the lab's contract ------------------------------------------------------

def test_the_default_family_is_the_labs_logistic_regression_unchanged(trained_home):
    entry = registry.current_entry(home=trained_home)
    assert entry["model_family"] == "logreg" and entry["model_params"] == {"C": 1.0}
    assert entry["calibration"] is None and entry["threshold"] == 0.26
    s = scoring.load(home=trained_home)
    assert s.family == "logreg" and s.engine == "numpy"


def test_lightgbm_on_the_labs_contract_is_registered_with_its_family_and_compiled(lab_lgbm_home):
    entry = registry.get("v2", home=lab_lgbm_home)
    assert entry["model_family"] == "lightgbm"
    assert entry["model_params"] == models.defaults("lightgbm")
    assert "lightgbm" in entry["libraries"]
    s = scoring.load("v2", home=lab_lgbm_home)
    assert s.family == "lightgbm" and s.engine == "booster" and "verified" in s.engine_note
    data = pd.read_csv(lab_lgbm_home / "data" / "processed.csv", keep_default_na=False)[list(schema.FEATURES)]
    expected = s.model.predict_proba(data)[:, 1]
    assert np.max(np.abs(s.predict_proba(data) - expected)) < 1e-12
    one = [s.proba_one(r) for r in data.head(100).to_dict(orient="records")]
    assert np.max(np.abs(np.array(one) - expected[:100])) < 1e-12


def test_lightgbm_is_deterministic_with_a_seed(trained_home):
    a = train(home=trained_home, version="a", params=TrainParams(family="lightgbm", seed=3, min_f1=0.0))
    b = train(home=trained_home, version="b", params=TrainParams(family="lightgbm", seed=3, min_f1=0.0))
    c = train(home=trained_home, version="c", params=TrainParams(family="lightgbm", seed=4, min_f1=0.0))
    assert np.array_equal(a.proba_test, b.proba_test) and a.entry["threshold"] == b.entry["threshold"]
    assert not np.array_equal(a.proba_test[: len(c.proba_test)], c.proba_test)


def test_early_stopping_keeps_fewer_trees_than_allowed(lab_lgbm_home):
    model = scoring.load("v2", home=lab_lgbm_home).model
    assert 1 <= model.best_iteration_ < model.n_estimators


# --- the families on the tests' own wider contract -------------------------------------------

def test_both_families_train_and_explain_on_a_wide_contract(wide_home):
    c = contract.load(wide_home)
    assert len(c.features) >= 15
    rows = read_csv(wide_home / "data" / "processed.csv", c).head(300)
    for version, family, engine in (("v1", "logreg", "numpy"), ("v2", "lightgbm", "booster")):
        s = scoring.load(version, home=wide_home)
        assert (s.family, s.engine) == (family, engine), s.engine_note
        assert registry.get(version, home=wide_home)["metrics"]["roc_auc"] > 0.7
        proba, base, matrix = s.contributions(rows[list(c.feature_names)])
        assert matrix.shape == (300, len(c.features))
        assert np.max(np.abs(_sigmoid(base + matrix.sum(axis=1)) - proba)) < 1e-9
        assert np.max(np.abs(proba - s.predict_proba(rows[list(c.feature_names)]))) < 1e-12


def test_evaluate_compares_families_side_by_side_and_explains_the_riskiest(wide_home):
    from churn_lib.learn import evaluation

    ev = evaluation.evaluate("v2", home=wide_home)
    assert ev.table.set_index("version")["model"].to_dict() == {"v1": "logreg", "v2": "lightgbm"}
    r = ev.reasons(n=3)
    assert set(r.importance) == set(contract.load(wide_home).feature_names)
    assert r.top_decile["customers"].iloc[0] >= r.top_decile["customers"].iloc[-1]
    assert (r.top_decile["share"] <= 1).all() and "riskiest tenth" in r.summary()


# --- contributions add up: a property over random rows ---------------------------------------

def _row_strategy(c: contract.Contract, known: dict[str, list[str]]):
    parts = {}
    for f in c.features:
        if f.type == contract.CATEGORICAL:
            parts[f.name] = st.sampled_from(sorted(set(known.get(f.name, [])) | set(f.values)) + ["\x00never seen"])
        elif f.type == contract.BOOLEAN:
            parts[f.name] = st.sampled_from([0, 1])
        else:
            low = f.low if f.low is not None else -1e3
            high = f.high if f.high is not None else 1e3
            parts[f.name] = (st.integers(int(math.ceil(low)), int(math.floor(high))) if f.type == contract.INTEGER
                             else st.floats(low, high, allow_nan=False))
        if f.imputed:
            parts[f.name] = st.one_of(st.none(), parts[f.name])
    return st.fixed_dictionaries(parts)


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_explanations_add_up_to_the_probability_on_random_lab_rows(lab_lgbm_home, version):
    s = scoring.load(version, home=lab_lgbm_home)
    known = s.compiled.known_categories

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(row=_row_strategy(s.contract, known), n=st.integers(1, 6))
    def check(row, n):
        proba, e = s.explain_one(row, n)
        assert proba == pytest.approx(s.proba_one(row), abs=1e-12)
        assert len(e["contributions"]) == min(n, len(s.features))
        z = e["base"] + math.fsum(c["contribution"] for c in e["contributions"]) + e["other"]
        assert abs(float(_sigmoid(z)) - proba) < 1e-6
        sizes = [abs(c["contribution"]) for c in e["contributions"]]
        assert sizes == sorted(sizes, reverse=True)
        assert all(c["value"] == row[c["feature"]] for c in e["contributions"])

    check()


def test_explanations_add_up_on_random_rows_of_the_wide_contract(wide_home):
    for version in ("v1", "v2"):
        s = scoring.load(version, home=wide_home)

        @settings(max_examples=40, deadline=None)
        @given(row=_row_strategy(s.contract, s.compiled.known_categories))
        def check(row):
            proba, e = s.explain_one(row, 3)
            z = e["base"] + sum(c["contribution"] for c in e["contributions"]) + e["other"]
            assert abs(float(_sigmoid(z)) - proba) < 1e-6
            batch_p, base, top, values, other = s.explain([row], 3)
            assert batch_p[0] == pytest.approx(proba, abs=1e-9)
            assert [s.features[k] for k in top[0]] == [c["feature"] for c in e["contributions"]]
            assert values[0] == pytest.approx([c["contribution"] for c in e["contributions"]], abs=1e-9)

        check()


def test_logreg_contributions_are_the_weights_times_the_distance_to_the_training_mean(trained_home):
    s = scoring.load(home=trained_home)
    row = {"tenure_months": 6, "num_complaints": 3, "avg_session_minutes": 12.5, "plan_type": "basic",
           "region": "AF"}
    base, contrib = s.compiled.contributions_one(row)
    numeric = {n: w for n, w, _ in s.compiled.numeric}
    assert contrib[0] == pytest.approx(numeric["tenure_months"] * (6 - s.compiled.means["tenure_months"]))
    one_hot = dict(s.compiled.categorical[0][1])
    assert contrib[3] == pytest.approx(one_hot["basic"])  # plan_type's one-hot columns summed: its one weight
    assert base + sum(contrib) == pytest.approx(math.log(0.907065 / (1 - 0.907065)), abs=1e-5)


# --- the profit threshold ---------------------------------------------------------------------

def _scores(seed=0, n=4000):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, n)
    y = (rng.random(n) < _sigmoid(z - 0.5)).astype(int)
    return y, _sigmoid(z - 0.5)


def test_cheap_offers_lower_the_profit_threshold_and_dear_ones_raise_it():
    y, p = _scores()
    chosen = [pick_threshold(y, p, "profit", Costs(100.0, cost))[0] for cost in (1.0, 10.0, 30.0, 60.0)]
    assert chosen == sorted(chosen) and chosen[0] < chosen[-1]
    # calibrated scores: the best threshold is near cost / value (contact when p * value > cost)
    for cost in (10.0, 30.0, 60.0):
        assert pick_threshold(y, p, "profit", Costs(100.0, cost))[0] == pytest.approx(cost / 100, abs=0.08)
    lower_success = pick_threshold(y, p, "profit", Costs(100.0, 30.0, offer_success=0.5))[0]
    assert lower_success > pick_threshold(y, p, "profit", Costs(100.0, 30.0))[0]


def test_the_profit_curve_counts_what_contacting_costs_and_keeps():
    y = np.array([1, 1, 0, 0])
    p = np.array([0.9, 0.4, 0.6, 0.1])
    curve = profit_curve(y, p, Costs(retention_value=100.0, offer_cost=10.0)).set_index("threshold")
    # at 0.5: contact rows 0 and 2; one churner kept (+100 - 10), one offer wasted (-10): 80 per 4 customers
    assert curve.loc[0.5, "profit_per_1000"] == pytest.approx(80 * 1000 / 4)
    assert curve.loc[0.5, "contacted"] == 0.5 and curve.loc[0.5, "recall"] == 0.5


def test_a_profit_run_records_its_costs_and_the_expected_profit(trained_home):
    cheap = train(home=trained_home, version="cheap", params=TrainParams(
        threshold_metric="profit", retention_value=500.0, offer_cost=10.0, min_f1=0.0))
    dear = train(home=trained_home, version="dear", params=TrainParams(
        threshold_metric="profit", retention_value=500.0, offer_cost=200.0, min_f1=0.0))
    assert cheap.entry["threshold"] < dear.entry["threshold"]
    assert cheap.entry["threshold_metric"] == "profit" and "profit-best" in cheap.entry["threshold_source"]
    assert cheap.entry["costs"] == {"retention_value": 500.0, "offer_cost": 10.0, "offer_success": 1.0}
    assert cheap.entry["expected_profit_per_1000"] > 0
    assert cheap.entry["metrics"]["profit_per_1000"] is not None
    assert cheap.profit_curve is not None and "expected profit" in cheap.summary()
    assert registry.get("v1", home=trained_home)["expected_profit_per_1000"] is None


def test_the_top_decile_lift_gate_is_off_by_default_and_refuses_when_set(trained_home):
    r = train(home=trained_home, version="x", params=TrainParams(min_lift_top_decile=5.0))
    lift = [c for c in r.entry["gate"]["criteria"] if c["name"] == "min_lift_top_decile"]
    assert lift and not lift[0]["passed"] and not r.passed_gate
    assert r.entry["metrics"]["lift_top_decile"] > 1.0
    default = registry.get("v1", home=trained_home)
    assert "min_lift_top_decile" not in [c["name"] for c in default["gate"]["criteria"]]


# --- calibration --------------------------------------------------------------------------------

def test_calibration_improves_the_brier_score_of_a_miscalibrated_model():
    rng = np.random.default_rng(1)
    z_true = rng.normal(-0.5, 1.2, 20000)
    y = (rng.random(20000) < _sigmoid(z_true)).astype(int)
    z_model = 3.0 * z_true + 1.0  # overconfident and biased
    fit_part, test_part = slice(0, 10000), slice(10000, None)
    raw = np.mean((_sigmoid(z_model[test_part]) - y[test_part]) ** 2)
    for method in ("sigmoid", "isotonic"):
        cal = calibration.fit(method, z_model[fit_part], y[fit_part])
        brier = np.mean((cal.proba(z_model[test_part]) - y[test_part]) ** 2)
        assert brier < raw - 0.01, (method, brier, raw)
    sig = calibration.fit("sigmoid", z_model, y)
    assert sig.a == pytest.approx(1 / 3, abs=0.03) and sig.c == pytest.approx(-1 / 3, abs=0.05)  # the true map


def test_calibrated_explanations_still_add_up_for_both_methods():
    rng = np.random.default_rng(2)
    base = np.full(50, 0.3)
    contrib = rng.normal(0, 1, (50, 4))
    z = base + contrib.sum(axis=1)
    for method in ("sigmoid", "isotonic"):
        cal = calibration.fit(method, rng.normal(0, 2, 400), (rng.random(400) < 0.4).astype(int))
        new_base, new_contrib = cal.contributions(base, contrib, z)
        p = cal.proba(z)
        inside = (p > 1e-9) & (p < 1 - 1e-9)
        assert np.max(np.abs(_sigmoid(new_base + new_contrib.sum(axis=1)) - p)[inside]) < 1e-9, method


def test_a_calibrated_model_serves_calibrated_probabilities(lab_lgbm_home):
    entry = registry.get("v3", home=lab_lgbm_home)
    assert entry["calibration"]["method"] == "sigmoid"
    s = scoring.load("v3", home=lab_lgbm_home)
    assert s.calibration is not None and s.engine == "booster"
    data = pd.read_csv(lab_lgbm_home / "data" / "processed.csv", keep_default_na=False)[list(schema.FEATURES)]
    expected = s.pipeline.predict_proba(data)[:, 1]
    assert np.max(np.abs(s.predict_proba(data) - expected)) < 1e-12
    uncalibrated = s.model.predict_proba(data)[:, 1]
    assert not np.allclose(expected, uncalibrated)


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("params, message", [
    ({"family": "xgboost"}, "family must be one of logreg, lightgbm, got 'xgboost'"),
    ({"family": "lightgbm", "C": 2.0}, "C is a parameter of family=logreg, not of family=lightgbm; family=lightgbm "
                                        "takes n_estimators, learning_rate, num_leaves, max_depth, min_child_samples"),
    ({"num_leaves": 8}, "num_leaves is a parameter of family=lightgbm"),
    ({"threshold_metric": "profit", "retention_value": 100.0}, "threshold_metric=profit needs offer_cost"),
    ({"threshold_metric": "profit", "retention_value": 100.0, "offer_cost": -1.0},
     "offer_cost must be a number >= 0 or None, got -1.0"),
    ({"threshold_metric": "recall"}, "threshold_metric must be one of f1, profit, got 'recall'"),
    ({"calibration": "platt"}, "calibration must be one of none, sigmoid, isotonic, got 'platt'"),
    ({"family": "lightgbm", "learning_rate": 0.0}, "learning_rate must be a number > 0 and <= 1, got 0.0"),
    ({"offer_success": 0.0}, "offer_success must be a number > 0 and <= 1, got 0.0"),
    ({"family": "lightgbm", "max_depth": 0}, "max_depth must be an integer >= 1 or -1, got 0"),
    ({"family": "lightgbm", "max_depth": 2.5}, "max_depth=2.5 of 03_train must be int or None"),
    ({"C": -1.0}, "C must be a number > 0, got -1.0"),
    ({"cv_folds": 1}, "cv_folds must be an integer >= 2, got 1"),
])
def test_bad_training_parameters_are_refused_before_any_kernel_starts(params, message):
    with pytest.raises(InvalidParameter, match=message):
        stages.check(("train",), params)


def test_a_family_whose_library_cannot_be_imported_names_what_to_install(monkeypatch):
    import builtins
    import sys

    real = builtins.__import__

    def no_lightgbm(name, *args, **kwargs):
        if name == "lightgbm" or name.startswith("lightgbm."):
            raise ImportError("No module named 'lightgbm'")
        return real(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "churn_lib.models.lightgbm", raising=False)
    monkeypatch.delitem(sys.modules, "lightgbm", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_lightgbm)
    with pytest.raises(InvalidParameter, match="pip install lightgbm"):
        models.family("lightgbm").build(contract.lab())


@pytest.mark.parametrize("bad", [0, -1, 51, True, 2.5, "3"])
def test_explain_must_be_a_small_positive_integer(bad):
    with pytest.raises(InvalidParameter, match="explain=.*must be an integer from 1 to 50"):
        scoring.check_explain(bad)


# --- churn score --explain -----------------------------------------------------------------------

@pytest.mark.parametrize("version", ["v1", "v2"])
def test_batch_scoring_adds_the_explanation_as_columns(wide_home, tmp_path, version):
    out = tmp_path / "scores.csv"
    result = batch.score_file(wide_home / "data" / "raw.csv", out, home=wide_home, model=version, explain=2,
                              chunk_bytes=64 << 10)
    frame = pd.read_csv(out, keep_default_na=False)
    assert list(frame.columns[-9:]) == ["probability", "prediction", "version", *batch.explain_columns(2)]
    assert result.rows_scored == len(frame) > 2000
    z = frame["explain_base"] + frame["contribution_1"] + frame["contribution_2"] + frame["explain_other"]
    assert np.max(np.abs(_sigmoid(z) - frame["probability"])) < 2e-6  # 4 numbers of 6 decimals
    s = scoring.load(version, home=wide_home)
    raw = pd.read_csv(wide_home / "data" / "raw.csv", **read_options(s.contract, s.contract.feature_names))
    features, ok, _, _ = batch.validate(raw[list(s.contract.feature_names)], s.contract)
    assert ok.sum() == len(frame)
    proba, _, top, values, _ = s.explain(features, 2)
    assert frame["reason_1"].tolist() == [s.features[k] for k in top[:, 0]]
    assert np.max(np.abs(frame["contribution_2"] - values[:, 1])) <= 5e-7
    assert np.max(np.abs(frame["probability"] - proba)) <= 5e-7


def test_the_number_formatting_of_explained_columns_is_exact():
    from churn_lib.scale.batch.formatter import _decimals

    values = np.array([0.0, -0.0000004, 1.5, -12.3456789, 123456.000001, 0.999999_7])
    matrix, mask = _decimals(values)
    texts = [bytes(m[k]).decode() for m, k in zip(matrix, mask)]
    assert texts == ["0.000000", "0.000000", "1.500000", "-12.345679", "123456.000001", "1.000000"]


# --- explain over many rows -------------------------------------------------------------------------

def test_reasons_count_the_top_reasons_of_the_riskiest_tenth(trained_home):
    s = scoring.load(home=trained_home)
    data = read_csv(trained_home.processed_csv)[list(schema.FEATURES)]
    r = explain.reasons(s, data, n=2)
    assert r.rows == len(data) and set(r.importance) == set(schema.FEATURES)
    assert r.top_decile["customers"].sum() == 2 * math.ceil(len(data) / 10)
    assert r.to_dict()["top_decile"][0]["feature"] == r.top_decile["feature"].iloc[0]


def test_padded_suffixes_go_before_each_line_ending_whatever_the_lines_hold():
    """Any byte in a line (NUL too), either line ending, and lines long enough to split the layout."""
    from churn_lib.scale.batch.formatter import with_padded_suffixes

    rng = np.random.default_rng(1)
    for trial in range(200):
        n = int(rng.integers(1, 40))
        lines, suffixes, expected = [], [], []
        for _ in range(n):
            size = int(rng.integers(0, 3000 if rng.random() < 0.05 else 30))
            content = bytes(rng.integers(0, 256, size, dtype=np.uint8)).replace(b"\n", b"x").replace(b"\r", b"y")
            ending = b"\r\n" if rng.random() < 0.5 else b"\n"
            suffix = bytes(rng.integers(1, 256, int(rng.integers(1, 20)), dtype=np.uint8))
            lines.append(content + ending)
            suffixes.append(suffix)
            expected.append(content + suffix + ending)
        padded = np.zeros((n, max(map(len, suffixes)) + int(rng.integers(0, 5))), dtype=np.uint8)
        for i, suffix in enumerate(suffixes):  # the suffix's bytes in order, zeros between them
            at = np.sort(rng.choice(padded.shape[1], len(suffix), replace=False))
            padded[i, at] = np.frombuffer(suffix, dtype=np.uint8)
        kept = np.frombuffer(b"".join(lines), dtype=np.uint8)
        assert with_padded_suffixes(kept, padded).tobytes() == b"".join(expected), trial


def test_spliced_lines_equal_the_scatter_and_mixed_endings_are_left_to_it():
    """Either line ending (one per block, or mixed: then None), any other byte in a line (never empty: empty
    lines are rejected), rejected lines dropped, fixed and zero-padded suffixes: the same bytes as the
    scatters, with_suffixes / with_padded_suffixes."""
    from churn_lib.scale.batch.formatter import spliced, with_padded_suffixes, with_suffixes

    rng = np.random.default_rng(2)
    for trial in range(300):
        n = int(rng.integers(1, 40))
        mixed = rng.random() < 0.2
        endings = [b"\r\n" if (rng.random() < 0.5 if mixed else trial % 2) else b"\n" for _ in range(n)]
        mixed = len(set(endings)) > 1
        lines = [bytes(rng.integers(0, 256, int(rng.integers(1, 30)), dtype=np.uint8)).replace(b"\n", b"x")
                 .replace(b"\r", b"y") + e for e in endings]
        ok = rng.random(n) < 0.8
        block = b"".join(lines)
        kept = np.frombuffer(b"".join(line for line, keep in zip(lines, ok) if keep), dtype=np.uint8)
        fixed = rng.integers(1, 256, (int(ok.sum()), 5), dtype=np.uint8)
        fixed[fixed == 10] = 11
        fixed[fixed == 13] = 14
        padded = fixed.copy()
        padded[rng.random(padded.shape) < 0.3] = 0
        for suffix, scatter in ((fixed, with_suffixes), (padded, with_padded_suffixes)):
            got = spliced(block, ok, suffix)
            if mixed:
                assert got is None, trial
            elif ok.any():
                assert got == scatter(kept, suffix).tobytes(), trial
            else:
                assert got == b"", trial
    assert spliced(b"a\nb\n", np.array([True, True]), np.array([[44, 10], [44, 49]], dtype=np.uint8)) is None


def test_the_top_reasons_are_a_stable_sorts_first_ones_ties_and_zeros_included():
    from churn_lib.scoring import _top

    rng = np.random.default_rng(3)
    for trial in range(200):
        m = rng.normal(size=(int(rng.integers(0, 40)), int(rng.integers(1, 25))))
        if trial % 2:
            m = np.round(m, 1)  # many ties
        m[rng.random(m.shape) < 0.2] = rng.choice([0.0, -0.0])
        if trial % 9 == 0 and m.size:
            m.flat[0] = np.nan  # not expected, but then the sort decides
        for n in range(1, m.shape[1] + 1):
            expected = np.argsort(-np.abs(m), axis=1, kind="stable")[:, :n]
            assert np.array_equal(_top(np.abs(m), n), expected), (trial, n)
