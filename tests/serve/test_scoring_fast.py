"""The compiled numpy scorer of churn_lib.scoring: equal to the pipeline, or not used."""

import warnings

import numpy as np
import pandas as pd
import pytest

from churn_lib import DataError, registry, scoring
from .. import lab_contract as schema
from churn_lib.data import read_csv

from ..conftest import LAB_REQUESTS


def _features(req):
    return {k: v for k, v in req.items() if k != "request_id"}


@pytest.fixture
def scorer(trained_home):
    return scoring.load(home=trained_home)


def test_the_trained_model_is_compiled_and_verified(scorer):
    assert scorer.engine == "numpy"
    assert "verified on" in scorer.engine_note
    assert scorer.compiled.features == schema.FEATURES


def test_compiled_scorer_equals_the_pipeline_on_every_category_and_the_data(scorer, trained_home):
    rows = scoring.sample_rows(scorer.contract, scorer.compiled.known_categories)
    for name in schema.CATEGORICAL:  # every allowed value, plus one no model has seen
        assert set(schema.CATEGORIES[name]) < set(rows[name])
    assert scoring.verify(scorer.compiled, scorer.pipeline, rows) <= scoring.VERIFY_TOLERANCE
    data = read_csv(trained_home.processed_csv)[list(schema.FEATURES)]
    expected = scorer.pipeline.predict_proba(data)[:, 1]
    assert np.max(np.abs(scorer.predict_proba(data) - expected)) <= 1e-12
    one = [scorer.proba_one(r) for r in data.head(200).to_dict(orient="records")]
    assert np.max(np.abs(np.array(one) - expected[:200])) <= 1e-12


def test_lab_requests_get_the_labs_probabilities_one_row_and_batch(scorer):
    rows = [_features(r) for r, _, _ in LAB_REQUESTS]
    assert [round(scorer.proba_one(r), 6) for r in rows] == [p for _, p, _ in LAB_REQUESTS]
    assert np.round(scorer.predict_proba(rows), 6).tolist() == [p for _, p, _ in LAB_REQUESTS]


def test_every_batch_input_form_gives_the_same_answer(scorer):
    rows = [_features(r) for r, _, _ in LAB_REQUESTS] * 5
    frame = pd.DataFrame(rows)
    as_category = frame.astype({"plan_type": "category", "region": "category"})
    columns = {k: np.asarray(frame[k]) for k in frame}
    raw_categorical = columns | {"region": pd.Categorical(frame["region"])}
    expected = scorer.predict_proba(rows)
    for form in (frame, as_category, columns, raw_categorical):
        assert np.array_equal(scorer.predict_proba(form), expected)
    proba, pred = scorer.predict(frame)
    assert pred.tolist() == (proba >= scorer.threshold).astype(int).tolist()


def test_predictions_use_the_stored_threshold_not_0_5(scorer):
    assert scorer.threshold == 0.26
    row = {"tenure_months": 40, "num_complaints": 0, "avg_session_minutes": 35.0, "plan_type": "basic",
           "region": "EU"}
    proba, prediction = scorer.predict_one(row)
    assert 0.26 <= proba < 0.5 and prediction == 1


def test_an_unknown_category_scores_like_the_pipeline_and_missing_numbers_are_refused(scorer):
    row = {"tenure_months": 6, "num_complaints": 3, "avg_session_minutes": 12.5, "plan_type": "gold",
           "region": "XX"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # some versions warn about unknown categories
        expected = scorer.pipeline.predict_proba(pd.DataFrame([row]))[0, 1]
    assert scorer.proba_one(row) == pytest.approx(expected, abs=1e-12)
    assert scorer.predict_proba([row])[0] == pytest.approx(expected, abs=1e-12)
    bad = pd.DataFrame([row | {"avg_session_minutes": np.nan}])
    with pytest.raises(DataError, match="avg_session_minutes has 1 missing or infinite"):
        scorer.predict_proba(bad)
    with pytest.raises(DataError, match="tenure_months holds values that are not numbers"):
        scorer.predict_proba([row | {"tenure_months": "six"}])


def test_extreme_logits_do_not_overflow():
    compiled = scoring.LinearScorer(bias=0.0, numeric=(("x", 1.0, None),), categorical=())
    assert compiled.proba_one({"x": -1000.0}) == 0.0
    assert compiled.proba_one({"x": 1000.0}) == 1.0
    assert compiled.proba({"x": np.array([-1000.0, 1000.0])}).tolist() == [0.0, 1.0]


def test_a_pipeline_it_cannot_compile_is_scored_by_sklearn(trained_home):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder

    df = read_csv(trained_home.processed_csv)
    pipe = Pipeline([("pre", ColumnTransformer([("num", MinMaxScaler(), list(schema.NUMERIC)),
                                                ("cat", OneHotEncoder(handle_unknown="ignore"),
                                                 list(schema.CATEGORICAL))])),
                     ("clf", LogisticRegression(max_iter=200))]).fit(df[list(schema.FEATURES)], df["churn"])
    entry = {"version": "vx", "model_file": "x.joblib", "threshold": 0.4}
    s = scoring.build(entry, pipe)
    assert s.engine == "sklearn" and "not compilable" in s.engine_note and "MinMaxScaler" in s.engine_note
    row = _features(LAB_REQUESTS[0][0])
    assert s.proba_one(row) == pytest.approx(pipe.predict_proba(pd.DataFrame([row]))[0, 1])
    assert s.predict_proba([row, row]).shape == (2,)


def test_a_compiled_scorer_that_disagrees_is_not_used(trained_home, monkeypatch, caplog):
    entry = registry.current_entry(home=trained_home)
    pipeline = registry.load_model(entry, home=trained_home)
    real = scoring.compile_pipeline

    def off_by_a_little(*args):
        c = real(*args)
        return scoring.LinearScorer(bias=c.bias + 1e-6, numeric=c.numeric, categorical=c.categorical, means=c.means)

    monkeypatch.setattr(scoring, "compile_pipeline", off_by_a_little)
    s = scoring.build(entry, pipeline)
    assert s.engine == "sklearn" and "differed" in s.engine_note
    assert "scored by the scikit-learn pipeline" in caplog.text
    assert scoring.build(entry, pipeline, fast=False).engine == "sklearn"
