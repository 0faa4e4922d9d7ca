import shutil

from churn_lib._io import atomic_write_json

import numpy as np
import pytest

from churn_lib import ModelNotFound, contract, registry
from churn_lib.data import read_csv
from churn_lib.learn.evaluation import evaluate
from churn_lib.learn.train import TrainParams, train


def test_every_registered_model_is_scored_on_the_same_rows(trained_home):
    train(home=trained_home, params=TrainParams(seed=7))
    ev = evaluate("v1", home=trained_home)
    assert list(ev.table["version"]) == ["v1", "v2"] and len(ev.y_test) == 300
    v1, v2 = ev.table.to_dict(orient="records")
    assert v1["evaluated"] and v1["same_split"] and not v2["same_split"]  # v2 saw some of these rows
    assert v1["f1"] == pytest.approx(registry.get("v1", home=trained_home)["metrics"]["f1"])
    assert ev.current_version == "v2" and ev.data_matches
    assert "current model: v2" in ev.summary()


def test_evaluation_reads_only_the_columns_training_reads(trained_home, monkeypatch):
    """The test split is rebuilt from the features and the target alone, as training read them: an id column
    (10 million distinct texts at scale) is never loaded, and the split's rows and metrics are training's."""
    from churn_lib.learn import evaluation

    asked = []
    real = evaluation.read_csv
    monkeypatch.setattr(evaluation, "read_csv", lambda *a, **k: asked.append(k.get("columns")) or real(*a, **k))
    c = registry.load_contract(registry.get("v1", home=trained_home), home=trained_home)
    ev = evaluate("v1", home=trained_home)
    assert asked == [(*c.feature_names, c.target.column)]
    assert ev.table.to_dict(orient="records")[0]["f1"] == pytest.approx(
        registry.get("v1", home=trained_home)["metrics"]["f1"])


def test_a_staged_candidate_is_evaluated_by_its_label(trained_home):
    train(home=trained_home, version="v2", register=False)
    ev = evaluate("v2", home=trained_home)
    assert ev.version == "v2" and list(ev.table["version"]) == ["v1", "v2"]
    assert registry.load_entries(home=trained_home)[-1]["version"] == "v1"  # still not registered


def test_a_version_is_evaluated_on_the_data_it_was_trained_on(trained_home):
    entry = registry.get("v1", home=trained_home)
    kept = trained_home.root / "data" / "v1-processed.csv"
    shutil.copy(trained_home.processed_csv, kept)
    trained_home.processed_csv.write_text(trained_home.processed_csv.read_text().replace(",1\n", ",0\n"))
    assert not evaluate("v1", home=trained_home).data_matches  # the home's data changed since v1
    entries = registry.load_entries(home=trained_home)
    entries[0]["data_file"] = "data/v1-processed.csv"
    atomic_write_json(trained_home.metadata_json, entries)
    assert evaluate("v1", home=trained_home).data_matches
    entries[0]["data_file"] = "../../etc/passwd"  # never read outside the home
    atomic_write_json(trained_home.metadata_json, entries)
    assert not evaluate("v1", home=trained_home).data_matches
    assert entry["data_file"] == "data/processed.csv"


def test_nothing_registered(home):
    with pytest.raises(ModelNotFound, match="run `churn train` first"):
        evaluate(home=home)


def test_plots_draw_the_data_that_learn_data_and_the_families_give(trained_home):
    from churn_lib import data, models, plots, scoring

    ev = evaluate(home=trained_home)
    g = ev.gains()
    assert g.threshold == ev.threshold and g.contacted == np.mean(ev.proba[ev.version] >= ev.threshold)
    assert len(g.deciles) == 10 and g.curve["gain"].iloc[-1] == 1.0
    assert len(plots.gains_and_lift(g)[1].patches) == 10
    learned = models.importance(scoring.load(home=trained_home).pipeline)
    assert learned.columns.tolist() == ["coefficient"] and "tenure_months" in learned.index
    assert learned.attrs["title"] == "coefficients (positive: more churn)"
    assert len(plots.importance(learned).patches) == len(learned)
    rates = data.churn_rates(read_csv(trained_home.processed_csv), contract.lab())
    assert list(rates) == ["plan_type", "region"] and len(plots.churn_rate_by(rates)) == 2
