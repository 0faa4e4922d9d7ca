import hashlib

import numpy as np
import pandas as pd
import pytest

from churn_lib import InvalidParameter
from . import lab_contract as schema
from churn_lib.data import Faults, generate, read_csv, write_csv, write_raw

LAB_SHA256 = "9478779040f25ef083d1ffcf665b7afe457c70436d1034a082bfabdc41f9f690"


def test_default_generation_is_byte_identical_to_the_lab(home):
    path = write_raw(generate(), home=home)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == LAB_SHA256
    assert path == home.raw_csv


def test_lab_counts_and_columns(home):
    df = read_csv(write_raw(generate(), home=home))
    assert list(df.columns) == list(schema.COLUMNS)
    assert int(df.churn.sum()) == 638
    assert df.plan_type.value_counts().to_dict() == {"basic": 906, "premium": 294}
    assert df.region.value_counts().to_dict() == {"EU": 354, "NA": 307, "AF": 304, "AS": 235}


def test_na_region_survives_a_csv_round_trip(tmp_path):
    df = generate(300, seed=5)
    back = read_csv(write_csv(df, tmp_path / "x.csv"))
    assert back.region.isna().sum() == 0
    assert (back.region == "NA").sum() == (df.region == "NA").sum() > 0


def test_read_csv_of_some_columns_reads_only_those_and_leaves_out_unknown_ones(tmp_path):
    df = generate(300, seed=5)
    path = write_csv(df, tmp_path / "x.csv")
    some = read_csv(path, columns=["churn", "region", "no_such_column"])
    assert list(some.columns) == ["region", "churn"]  # the file's order; the unknown name is the caller's to report
    pd.testing.assert_frame_equal(some, read_csv(path)[["region", "churn"]])
    assert (some.region == "NA").sum() == (df.region == "NA").sum() > 0


def test_a_number_column_blank_as_one_space_reads_as_numbers_and_checks_as_before(tmp_path):
    """A blank exported as one space (the telecom data's TotalCharges) is read as missing by pandas itself, so the
    column comes back as floats, not text: the same values, the same missing rows and the same verdicts as the
    text path (two spaces, or a word, keep the column text)."""
    from churn_lib.contract import check_frame, lab

    df = generate(200, seed=3)
    path = write_csv(df, tmp_path / "x.csv")
    lines = path.read_text().splitlines()
    col = lines[0].split(",").index("avg_session_minutes")
    for k in (2, 7):
        cells = lines[k].split(",")
        cells[col] = " "
        lines[k] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    spaced = read_csv(path)
    assert spaced["avg_session_minutes"].dtype == np.float64
    cells = lines[9].split(",")
    cells[col] = "  "  # two spaces: the column stays text, parsed value by value
    (tmp_path / "y.csv").write_text("\n".join(lines[:9] + [",".join(cells)] + lines[10:]) + "\n")
    as_text = read_csv(tmp_path / "y.csv")
    assert as_text["avg_session_minutes"].dtype != np.float64
    a, b = (check_frame(f, lab(), target=False) for f in (spaced, as_text))
    va, vb = a.columns["avg_session_minutes"].values, b.columns["avg_session_minutes"].values
    assert np.isnan(va[[1, 6]]).all() and np.isnan(vb[[1, 6, 8]]).all()
    keep = np.ones(len(va), dtype=bool)
    keep[8] = False
    np.testing.assert_array_equal(va[keep], vb[keep])
    assert a.columns["avg_session_minutes"].missing[[1, 6]].all() and b.columns["avg_session_minutes"].missing[8]


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = generate(100, seed=1), generate(100, seed=1), generate(100, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_faults_do_not_change_the_clean_draws():
    clean = generate(500, seed=3)
    faulty = generate(500, seed=3, faults=Faults(missing=0.02))
    untouched = faulty.notna().all(axis=1)
    assert untouched.sum() < 500
    for col in ("tenure_months", "churn"):
        assert (faulty.loc[untouched, col].astype(int) == clean.loc[untouched, col]).all()


@pytest.mark.parametrize("faults, check", [
    (Faults(negative_session=0.02), lambda d: (pd.to_numeric(d.avg_session_minutes) < 0).sum() == 20),
    (Faults(category_variants=0.05), lambda d: (~d.plan_type.isin(schema.CATEGORIES["plan_type"])
                                                | ~d.region.isin(schema.CATEGORIES["region"])).sum() == 50),
    (Faults(unknown_categories=0.01), lambda d: d.plan_type.isin(["gold", "enterprise"]).sum()
     + d.region.isin(["LATAM", "OC"]).sum() == 10),
    (Faults(duplicates=0.03), lambda d: d.duplicated().sum() >= 25),
    (Faults(out_of_range=0.01), lambda d: (d.tenure_months.astype(float) > 200).sum()
     + (d.num_complaints.astype(float) > 50).sum() + (d.avg_session_minutes > 500).sum() == 10),
    (Faults(bad_target=0.01), lambda d: (~d.churn.isin([0, 1])).sum() == 10),
    (Faults(missing_columns={"region": 0.04}), lambda d: d.region.isna().sum() == 40
     and d.plan_type.isna().sum() == 0),
])
def test_each_fault_is_injected_at_its_rate(tmp_path, faults, check):
    df = read_csv(write_csv(generate(1000, seed=9, faults=faults), tmp_path / "f.csv"))
    assert check(df)


def test_missing_integers_are_written_as_integers(tmp_path):
    path = write_csv(generate(200, seed=1, faults=Faults(missing=0.05)), tmp_path / "m.csv")
    assert ".0," not in path.read_text().split("\n", 2)[1][:3]
    assert ",," in path.read_text()


@pytest.mark.parametrize("bad", [-0.1, 1.5, "x"])
def test_fault_rates_are_validated(bad):
    with pytest.raises(InvalidParameter, match="between 0 and 1"):
        Faults(missing=bad)


def test_n_rows_is_validated():
    with pytest.raises(InvalidParameter, match="n_rows"):
        generate(0)


def test_memory_grows_in_proportion_to_rows():
    small, big = generate(100_000, seed=1), generate(400_000, seed=1)
    ratio = big.memory_usage(deep=True).sum() / small.memory_usage(deep=True).sum()
    assert 3.5 < ratio < 4.5
    assert big.memory_usage(deep=True).sum() / len(big) < 64  # bytes per row: no per-row strings
