import json

import numpy as np
import pandas as pd
import pytest

from churn_lib import DataError, InvalidParameter, QualityError
from . import lab_contract as schema
from churn_lib.data import Faults, generate, read_csv, write_csv, write_raw
from churn_lib.quality import Thresholds, check_and_clean, prepare, train_stats

LAB_STATS = {"tenure_months": (30.245833, 16.972639), "num_complaints": (1.174167, 1.111994),
             "avg_session_minutes": (35.123675, 11.837695)}


def _check(report, name, column=None):
    return next(c for c in report.checks if c.name == name and c.column == column)


def test_default_data_prepares_with_the_lab_stats(home):
    write_raw(generate(), home=home)
    report = prepare(home=home)
    assert report.passed and report.rows_out == 1200
    stats = json.loads(home.train_stats_json.read_text())
    assert set(stats) == set(schema.NUMERIC)
    for col, (mean, std) in LAB_STATS.items():
        assert stats[col] == {"mean": pytest.approx(mean, abs=1e-6), "std": pytest.approx(std, abs=1e-6)}
    processed = read_csv(home.processed_csv)
    assert (processed.region == "NA").sum() == 307  # North America kept, not "missing"
    from .test_data import LAB_SHA256
    import hashlib
    assert hashlib.sha256(home.processed_csv.read_bytes()).hexdigest() == LAB_SHA256  # the lab's clean file, as is
    assert json.loads(home.quality_report_json.read_text())["passed"] is True


def test_cleaning_is_the_labs(tmp_path):
    raw = generate(400, seed=2, faults=Faults(negative_session=0.01, category_variants=0.02))
    clean, report = check_and_clean(read_csv(write_csv(raw, tmp_path / "r.csv")))
    assert report.passed
    assert clean.avg_session_minutes.min() == 0
    assert report.changes["avg_session_minutes clipped to 0"] == 4
    assert set(clean.plan_type) <= set(schema.CATEGORIES["plan_type"])
    assert set(clean.region) <= set(schema.CATEGORIES["region"])
    assert report.changes["plan_type normalised"] + report.changes["region normalised"] == 8


def _frame(overrides):
    """200 clean rows with (column, first_row, last_row, value) edits."""
    df = generate(200, seed=4)
    for col, first, last, value in overrides:
        df[col] = df[col].astype(object)
        df.loc[first:last, col] = value
    return df


@pytest.mark.parametrize("name, column, overrides", [
    ("missing_rate", "region", [("region", 0, 19, np.nan)]),
    ("missing_rate", "tenure_months", [("tenure_months", 0, 19, np.nan)]),
    ("numeric_type", "num_complaints", [("num_complaints", 0, 9, "lots")]),
    ("numeric_type", "tenure_months", [("tenure_months", 0, 9, 3.5)]),
    ("range", "tenure_months", [("tenure_months", 0, 9, 900)]),
    ("allowed_categories", "region", [("region", 0, 9, "LATAM")]),
    ("allowed_categories", "plan_type", [("plan_type", 0, 9, "nan")]),
    ("target_values", "churn", [("churn", 0, 9, 2)]),
])
def test_each_blocking_check_names_column_rule_and_counts(name, column, overrides):
    _, report = check_and_clean(_frame(overrides))
    check = _check(report, name, column)
    assert not report.passed and not check.passed and check.verdict == "FAIL"
    assert f"{name} on {column}" in check.detail and f"of 200 rows" in check.detail
    assert check.count in (10, 20)


def test_a_few_bad_rows_are_dropped_and_recorded():
    _, report = check_and_clean(_frame([("region", 0, 0, "LATAM"), ("churn", 5, 5, 7)]))
    assert report.passed and report.rows_out == 198
    assert _check(report, "allowed_categories", "region").verdict == "WARN"
    assert _check(report, "target_values", "churn").count == 1


def test_missing_rate_is_counted_before_string_conversion():
    # The lab counted after astype(str), where NaN becomes "nan" and passes.
    _, report = check_and_clean(_frame([("plan_type", 0, 19, np.nan)]))
    assert _check(report, "missing_rate", "plan_type").count == 20


def test_numeric_gaps_under_the_threshold_do_not_reach_training():
    clean, report = check_and_clean(_frame([("avg_session_minutes", 0, 4, np.nan)]))
    assert report.passed and clean.avg_session_minutes.notna().all() and len(clean) == 195


def test_schema_check_blocks_missing_columns():
    _, report = check_and_clean(generate(50).drop(columns=["region"]))
    assert not report.passed and "missing required columns ['region']" in report.failures[0].detail


def test_duplicates_are_reported_kept_by_default_dropped_on_request():
    df = pd.concat([generate(200, seed=1)] * 2, ignore_index=True)
    kept, report = check_and_clean(df)
    assert report.passed and len(kept) == 400 and _check(report, "duplicates").count == 200
    dropped, report = check_and_clean(df, Thresholds(drop_duplicates=True))
    assert len(dropped) == 200
    _, report = check_and_clean(df, Thresholds(max_duplicate_rate=0.1))
    assert not report.passed and "duplicates: 200 of 400 rows" in report.summary()


def test_min_rows_and_both_classes():
    _, report = check_and_clean(generate(50, seed=1))
    assert not _check(report, "min_rows").passed
    assert "only 50 clean rows remain; at least 100 are needed (min_clean_rows)" in report.summary()
    _, report = check_and_clean(generate(50, seed=1), Thresholds(min_clean_rows=50))
    assert report.passed and report.to_dict()["thresholds"]["min_clean_rows"] == 50
    one_class = generate(300, seed=1)
    one_class["churn"] = 1
    _, report = check_and_clean(one_class)
    assert not _check(report, "both_classes", "churn").passed


def test_failed_prepare_writes_nothing(home):
    write_raw(generate(500, seed=1, faults=Faults(missing=0.2)), home=home)
    with pytest.raises(QualityError, match="missing_rate on tenure_months: 100 of 500 rows") as info:
        prepare(home=home)
    assert not info.value.report.passed
    assert not home.processed_csv.exists() and not home.train_stats_json.exists()


def test_prepare_without_raw_data_says_what_to_do(home):
    with pytest.raises(DataError) as info:
        prepare(home=home)
    assert type(info.value) is DataError  # not a QualityError: no check ran
    assert str(info.value) == f"{home.raw_csv} does not exist: run the previous stage first"
    assert info.value.path == str(home.raw_csv)


def test_train_stats_std_is_one_when_constant():
    df = generate(10, seed=1)
    df["num_complaints"] = 3
    assert train_stats(df)["num_complaints"] == {"mean": 3.0, "std": 1.0}


def test_thresholds_are_validated():
    with pytest.raises(InvalidParameter, match="^max_missing_rate must be a number between 0 and 1, got 2$"):
        Thresholds(max_missing_rate=2)
    with pytest.raises(InvalidParameter, match="^min_clean_rows must be an integer >= 2, got 1$"):
        Thresholds(min_clean_rows=1)
    with pytest.raises(InvalidParameter, match="^drop_duplicates must be true or false, got 'yes'$"):
        Thresholds(drop_duplicates="yes")


def test_report_renders_as_table_and_json():
    _, report = check_and_clean(generate(200, seed=1))
    frame = report.to_frame()
    assert list(frame.columns) == ["check", "column", "verdict", "count", "rate", "detail"]
    assert json.loads(json.dumps(report.to_dict()))["passed"] is True
