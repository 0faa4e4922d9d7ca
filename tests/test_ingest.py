"""Stage 01 on a file source: a byte-for-byte copy, checked; bad files refused with the old raw.csv kept."""

from __future__ import annotations

import hashlib

import pytest

from churn_lib import DataError, InvalidParameter, QualityError, contract, quality
from churn_lib.data import infer
from churn_lib.run import runner
from churn_lib.data import DataParams, Faults, make_raw

from . import datasets


@pytest.fixture
def file_home(tmp_path):
    source = datasets.write(datasets.flags_and_floats(400, seed=2), tmp_path / "in" / "part-1.csv")
    root = tmp_path / "home"
    infer.init_home(root, data=source, target="status")
    return root, source


def test_a_file_source_is_copied_byte_for_byte_with_its_sha256(file_home):
    root, source = file_home
    raw = make_raw(home=root)
    assert raw.path.read_bytes() == source.read_bytes() and raw.rows == 400
    assert raw.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert (root / "data" / "raw.csv.sha256").read_text() == f"{raw.sha256}  raw.csv\n"
    assert raw.frame().shape == (400, 6)


def test_a_glob_joins_files_with_the_same_header(file_home):
    root, source = file_home
    second = datasets.write(datasets.flags_and_floats(100, seed=3), source.with_name("part-2.csv"))
    raw = make_raw(home=root, params=DataParams(source=str(source.parent / "part-*.csv")))
    assert raw.rows == 500 and raw.path.read_text().count("is_active") == 1
    second.write_text(second.read_text().replace("latency_ms", "latency"))
    with pytest.raises(DataError, match="has another header than"):
        make_raw(home=root, params=DataParams(source=str(source.parent / "part-*.csv")))


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("usage_hours,", "hours,"), "missing column(s) usage_hours; extra column(s) hours"),
    (lambda t: t.replace("status\n", "status,extra\n", 1), "extra column(s) extra"),
    (lambda t: "", "is empty or has no header line"),
    (lambda t: t.split("\n", 1)[0] + "\n", "has a header but no rows"),
])
def test_a_file_that_differs_from_the_contract_stops_the_stage_and_keeps_raw_csv(file_home, edit, message):
    root, source = file_home
    make_raw(home=root)
    before = (root / "data" / "raw.csv").read_bytes()
    source.write_text(edit(source.read_text()))
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_raw(home=root)
    assert (root / "data" / "raw.csv").read_bytes() == before


def test_a_file_that_is_not_utf8_is_refused_with_where(file_home):
    root, source = file_home
    source.write_bytes(source.read_bytes() + b"true,N,1.0,\xe9t\xe9,3.0,active\n")
    with pytest.raises(DataError, match=r"is not UTF-8 text \(byte b'\\xe9' at offset"):
        make_raw(home=root)


def test_a_sample_is_seeded_and_keeps_file_order(file_home):
    root, source = file_home
    a = make_raw(home=root, params=DataParams(n_rows=50, seed=1)).path.read_text()
    b = make_raw(home=root, params=DataParams(n_rows=50, seed=1)).path.read_text()
    assert a == b and a.count("\n") == 51
    lines = source.read_text().splitlines()
    positions = [lines.index(line) for line in a.splitlines()[1:]]
    assert positions == sorted(positions)
    with pytest.raises(InvalidParameter, match="n_rows=900 is more than the 400 rows"):
        make_raw(home=root, params=DataParams(n_rows=900))


def test_faults_are_for_the_lab_generator_and_refused_before_any_kernel(file_home):
    root, _ = file_home
    with pytest.raises(InvalidParameter, match="fault injection applies to the lab generator only"):
        make_raw(home=root, faults=Faults(missing=0.1))
    with pytest.raises(InvalidParameter, match="fault injection applies to the lab generator only"):
        runner.check_parameters(("generate",), {"missing": 0.1}, contract=contract.load(root))


def test_bad_values_in_your_own_data_are_counted_or_block_with_the_rule(file_home):
    root, source = file_home
    text = source.read_text().splitlines()
    text[1] = text[1].rsplit(",", 1)[0] + ",unknown"  # a third target label: one row dropped and counted
    text[2] = "maybe," + text[2].split(",", 1)[1]      # not a boolean
    source.write_text("\n".join(text) + "\n")
    make_raw(home=root)
    report = quality.prepare(home=root)
    checks = {(c.name, c.column): c for c in report.checks}
    assert checks[("target_values", "status")].count == 1 and "unknown" in checks[("target_values", "status")].detail
    assert checks[("numeric_type", "is_active")].count == 1 and report.rows_out == 398
    words = [line if i == 0 or i > 40 else line.replace(line.split(",")[2], "lots", 1) for i, line in enumerate(text)]
    source.write_text("\n".join(words) + "\n")
    make_raw(home=root)
    with pytest.raises(QualityError, match="numeric_type on usage_hours: 40 of 400 rows"):
        quality.prepare(home=root)


def test_repeated_ids_are_reported_and_dropped_on_request(tmp_path):
    frame = datasets.telecom(600, seed=4)
    frame.loc[10:19, "customerID"] = frame.loc[0, "customerID"]
    source = datasets.write(frame, tmp_path / "t.csv")
    root = tmp_path / "home"
    infer.init_home(root, data=source, target="Churn", ids=["customerID"])
    make_raw(home=root)
    report = quality.prepare(home=root)
    check = next(c for c in report.checks if c.name == "duplicate_ids")
    assert check.count == 10 and check.verdict == "WARN" and report.rows_out == 600
    report = quality.prepare(home=root, thresholds=quality.Thresholds(drop_duplicates=True))
    assert report.rows_out == 590


def test_a_parquet_source_is_written_in_the_labs_format_and_sampled_like_a_csv(file_home, tmp_path):
    import duckdb

    root, source = file_home
    parquet = tmp_path / "in" / "part-1.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_csv('{source}', all_varchar=true)) TO '{parquet}' (FORMAT parquet)")
    con.close()
    from_csv = make_raw(home=root).path.read_bytes()
    raw = make_raw(home=root, params=DataParams(source=str(parquet)))
    assert raw.path.read_bytes() == from_csv  # text columns: the same bytes as the CSV's copy
    assert make_raw(home=root, params=DataParams(source=str(parquet), n_rows=50)).rows == 50
    with pytest.raises(DataError, match="names both Parquet and CSV files"):
        make_raw(home=root, params=DataParams(source=str(tmp_path / "in" / "part-1.*")))
