"""Parquet and European CSV: `churn init`, stage 01 and `churn score` on either format, and the bad input."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from churn_lib import DataError, InvalidParameter, cli, contract, data
from churn_lib.data import infer, make_raw
from churn_lib.scale import batch

from . import datasets

#: The telecom table's numeric columns, typed in the Parquet file (the rest stay text, as an export has them).
TELECOM_TYPES = {"SeniorCitizen": "BIGINT", "tenure": "BIGINT", "MonthlyCharges": "DOUBLE"}


def to_parquet(csv_path, parquet_path, types=None):
    """A Parquet file written by DuckDB from a CSV the test made (every other column text)."""
    con = duckdb.connect()
    header = pd.read_csv(csv_path, nrows=0).columns
    columns = {c: (types or {}).get(c, "VARCHAR") for c in header}
    con.execute(f"COPY (SELECT * FROM read_csv('{csv_path}', header=true, auto_detect=false, columns=$c)) "
                f"TO '{parquet_path}' (FORMAT parquet)", {"c": columns})
    con.close()
    return parquet_path


def query(sql):
    con = duckdb.connect()
    try:
        return con.execute(sql).df()
    finally:
        con.close()


@pytest.fixture
def telecom(tmp_path):
    csv_path = datasets.write(datasets.telecom(1200, seed=1), tmp_path / "telecom.csv")
    return csv_path, to_parquet(csv_path, tmp_path / "telecom.parquet", TELECOM_TYPES)


def european(frame):
    """The table as a European export: semicolons, decimal commas (numbers stored as text too)."""
    frame = frame.copy()
    frame["TotalCharges"] = frame["TotalCharges"].str.replace(".", ",", regex=False)
    return frame


# --- init and stage 01 --------------------------------------------------------------------

def test_init_from_parquet_infers_the_csvs_contract_and_stage_01_writes_the_same_raw_csv(telecom, tmp_path):
    csv_path, pq_path = telecom
    from_csv = infer.init_home(tmp_path / "csv", data=csv_path, target="Churn")
    from_pq = infer.init_home(tmp_path / "pq", data=pq_path, target="Churn")
    assert from_pq.contract.features == from_csv.contract.features
    assert from_pq.contract.source == contract.Source(generator=None, path=str(pq_path))
    text = (tmp_path / "pq" / "dataset.yaml").read_text()
    assert "a Parquet file or glob" in text and "csv:" not in text
    make_raw(home=tmp_path / "csv")
    raw = make_raw(home=tmp_path / "pq")
    assert raw.rows == 1200 and (tmp_path / "pq" / "data" / "raw.csv").read_bytes() == \
        (tmp_path / "csv" / "data" / "raw.csv").read_bytes()


def test_parquet_types_map_onto_the_contracts_and_dates_are_dropped_with_the_reason(tmp_path):
    con = duckdb.connect()
    path = tmp_path / "typed.parquet"
    con.execute(f"""COPY (SELECT 'c' || range AS id, (range % 7)::INTEGER AS visits, (range % 13) / 4.0 AS spend,
                    range % 3 = 0 AS promo, ['basic', 'gold'][1 + range % 2] AS plan,
                    DATE '2024-01-01' + (range % 300)::INTEGER AS signup,
                    CASE WHEN (range * 7919) % 10 < 3 THEN 'yes' ELSE 'no' END AS churned
                    FROM range(400)) TO '{path}' (FORMAT parquet)""")
    con.close()
    c = infer.infer(path, target="churned").contract
    assert {f.name: f.type for f in c.features} == {"visits": "integer", "spend": "float", "promo": "boolean",
                                                     "plan": "categorical"}
    assert c.feature("promo").true_values == ("true",)
    assert c.id == ("id",) and c.target.positive == ("yes",)
    reason = {d.column: d.reason for d in c.dropped}["signup"]
    assert reason.startswith("a date or time (Parquet DATE)")


def test_a_glob_of_parquet_files_is_one_source(telecom, tmp_path):
    csv_path, _ = telecom
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    parts = tmp_path / "parts"
    parts.mkdir()
    for k, chunk in enumerate((frame.iloc[:500], frame.iloc[500:])):
        chunk.to_csv(tmp_path / f"p{k}.csv", index=False)
        to_parquet(tmp_path / f"p{k}.csv", parts / f"part-{k}.parquet", TELECOM_TYPES)
    result = infer.init_home(tmp_path / "home", data=str(parts / "part-*.parquet"), target="Churn")
    assert result.inferred.rows == 1200 and result.contract.source.path.endswith("part-*.parquet")
    raw = make_raw(home=tmp_path / "home")
    assert raw.rows == 1200 and raw.source.startswith("2 files")


def test_a_european_csv_is_sniffed_shown_for_review_and_converted_on_ingest(telecom, tmp_path):
    csv_path, _ = telecom
    eu = tmp_path / "eu.csv"
    european(datasets.telecom(1200, seed=1)).to_csv(eu, sep=";", decimal=",", index=False)
    assert "29,55" in eu.read_text()
    result = infer.init_home(tmp_path / "eu", data=eu, target="Churn")
    assert result.contract.source.csv == contract.CsvDialect(sep=";", decimal=",")
    text = (tmp_path / "eu" / "dataset.yaml").read_text()
    assert 'csv: {sep: ";", decimal: ","}  # sniffed by churn init (separated by semicolons, decimal comma)' in text
    assert contract.load_file(tmp_path / "eu" / "dataset.yaml") == result.contract
    plain = infer.init_home(tmp_path / "plain", data=csv_path, target="Churn")
    assert result.contract.features == plain.contract.features
    make_raw(home=tmp_path / "eu")
    make_raw(home=tmp_path / "plain")
    assert (tmp_path / "eu" / "data" / "raw.csv").read_bytes() == (tmp_path / "plain" / "data" / "raw.csv").read_bytes()


def test_init_sep_and_decimal_flags_override_the_sniffer(tmp_path, capsys):
    path = tmp_path / "tabs.csv"
    frame = datasets.flags_and_floats(300, seed=1)
    frame.to_csv(path, sep="\t", index=False)
    code = cli.main(["init", "--home", str(tmp_path / "h"), "--data", str(path), "--target", "status",
                     "--sep", "tab", "--decimal", "."])
    assert code == 0, capsys.readouterr().err
    assert contract.load_file(tmp_path / "h" / "dataset.yaml").source.csv == contract.CsvDialect(sep="\t")
    code = cli.main(["init", "--home", str(tmp_path / "h2"), "--data", str(path), "--target", "status",
                     "--sep", ","])
    err = capsys.readouterr().err
    assert code == 1 and "looks separated by tabs, not by commas as expected: its header is 'is_active\\t" in err
    assert err.count("\n") == 1


# --- churn score ------------------------------------------------------------------------------

@pytest.fixture
def lab_inputs(tmp_path):
    df = data.generate(2500, seed=5)
    df["plan_type"] = df["plan_type"].astype(str)
    df.insert(0, "customer_id", [f"c{i:06d}" for i in range(len(df))])
    df.loc[[3, 77], "tenure_months"] = 250  # rejected: out of range
    df.loc[100, "plan_type"] = "gold"
    csv_path = tmp_path / "customers.csv"
    df.to_csv(csv_path, index=False)
    pq = to_parquet(csv_path, tmp_path / "customers.parquet",
                    {"tenure_months": "BIGINT", "num_complaints": "BIGINT", "avg_session_minutes": "DOUBLE",
                     "churn": "BIGINT"})
    return csv_path, pq


@pytest.mark.parametrize("explain", [None, 2])
def test_parquet_on_either_side_scores_as_the_csv_path(trained_home, lab_inputs, tmp_path, explain):
    csv_path, pq = lab_inputs
    base = batch.score_file(csv_path, tmp_path / "a.csv", home=trained_home, explain=explain)
    expected = pd.read_csv(tmp_path / "a.csv", keep_default_na=False, dtype=str)
    pq_csv = batch.score_file(pq, tmp_path / "b.csv", home=trained_home, explain=explain)
    assert (tmp_path / "b.csv").read_bytes() == (tmp_path / "a.csv").read_bytes()
    for src, out in ((pq, "c.parquet"), (csv_path, "d.parquet")):
        result = batch.score_file(src, tmp_path / out, home=trained_home, explain=explain)
        assert (result.rows_in, result.rows_scored, result.rows_rejected) == (2500, 2497, 3)
        got = query(f"SELECT * FROM '{tmp_path / out}'")
        assert list(got.columns) == list(expected.columns)
        assert got["customer_id"].tolist() == expected["customer_id"].tolist()
        assert got["tenure_months"].dtype == np.int64 and got["prediction"].dtype == np.int32
        np.testing.assert_array_equal(got["probability"].to_numpy(), expected["probability"].astype(float))
        if explain:
            np.testing.assert_array_equal(got["contribution_2"].to_numpy(), expected["contribution_2"].astype(float))
            assert got["reason_1"].tolist() == expected["reason_1"].tolist()
    assert (base.rows_rejected, pq_csv.rows_rejected) == (3, 3)


def test_rejects_keep_their_row_number_and_reason_in_the_inputs_format(trained_home, lab_inputs, tmp_path):
    csv_path, pq = lab_inputs
    batch.score_file(pq, tmp_path / "out.csv", home=trained_home)
    rejects = query(f"SELECT * FROM '{tmp_path / 'out.rejects.parquet'}'")
    assert list(rejects.columns[:3]) == ["row", "reason", "customer_id"]
    assert rejects["row"].tolist() == [4, 78, 101]
    assert rejects["reason"].tolist()[0] == "tenure_months=250 is outside 0..200"
    assert rejects["tenure_months"].tolist()[:2] == [250, 250]  # its types kept
    batch.score_file(csv_path, tmp_path / "out.parquet", home=trained_home)
    lines = (tmp_path / "out.rejects.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["line", "5", "79", "102"]
    with pytest.raises(InvalidParameter, match="written in the input's format .Parquet"):
        batch.score_file(pq, tmp_path / "x.csv", home=trained_home, rejects=tmp_path / "bad.csv")


def test_a_european_csv_is_scored_in_its_dialect(trained_home, lab_inputs, tmp_path, capsys):
    csv_path, _ = lab_inputs
    frame = pd.read_csv(csv_path, keep_default_na=False, dtype=str)
    eu = tmp_path / "eu.csv"
    frame.assign(avg_session_minutes=frame["avg_session_minutes"].str.replace(".", ",")).to_csv(eu, sep=";",
                                                                                               index=False)
    code = cli.main(["score", str(eu), str(tmp_path / "eu_scores.csv"), "--sep", ";", "--decimal", ","])
    assert code == 0, capsys.readouterr().err
    batch.score_file(csv_path, tmp_path / "scores.csv", home=trained_home)
    eu_lines = (tmp_path / "eu_scores.csv").read_text().splitlines()
    lines = (tmp_path / "scores.csv").read_text().splitlines()
    assert eu_lines[0] == lines[0].replace(",", ";")
    assert [l.rsplit(";", 3)[1] for l in eu_lines[1:]] == [l.rsplit(",", 3)[1].replace(".", ",") for l in lines[1:]]
    assert (tmp_path / "eu_scores.rejects.csv").read_text().splitlines()[1].startswith('5;"tenure_months=250')
    # the model's contract says commas: a semicolon file is refused, showing the header it saw
    code = cli.main(["score", str(eu), str(tmp_path / "x.csv")])
    err = capsys.readouterr().err
    assert code == 1 and "looks separated by semicolons, not by commas as expected: its header is " \
                         "'customer_id;tenure_months;" in err and "pass --sep" in err
    assert not (tmp_path / "x.csv").exists()


# --- bad input --------------------------------------------------------------------------------

@pytest.fixture
def file_home(tmp_path):
    source = datasets.write(datasets.flags_and_floats(300, seed=2), tmp_path / "in" / "flags.csv")
    pq = to_parquet(source, tmp_path / "in" / "flags.parquet", {"usage_hours": "DOUBLE", "latency_ms": "DOUBLE"})
    root = tmp_path / "home"
    infer.init_home(root, data=pq, target="status")
    return root, pq


def test_a_truncated_parquet_file_is_refused_in_one_line(file_home, tmp_path, capsys):
    root, pq = file_home
    make_raw(home=root)
    before = (root / "data" / "raw.csv").read_bytes()
    blob = pq.read_bytes()
    pq.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"flags.parquet is not a readable Parquet file \(truncated or damaged\?\)"):
        make_raw(home=root)
    assert (root / "data" / "raw.csv").read_bytes() == before
    code = cli.main(["init", "--home", str(tmp_path / "h2"), "--data", str(pq), "--target", "status"])
    err = capsys.readouterr().err
    assert code == 1 and "flags.parquet is not a readable Parquet file" in err and err.count("\n") == 1


@pytest.mark.parametrize("column, kind", [("[1, 2]", "INTEGER[]"), ("{'a': 1}", "STRUCT(a INTEGER)"),
                                          ("MAP {'k': 1}", "MAP(VARCHAR, INTEGER)"), ("'ab'::BLOB", "BLOB")])
def test_a_nested_or_binary_column_is_refused_naming_the_file_and_the_column(tmp_path, capsys, column, kind):
    path = tmp_path / "nested.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT range AS n, {column} AS odd, range % 2 = 0 AS churned FROM range(60)) TO '{path}' "
                "(FORMAT parquet)")
    con.close()
    code = cli.main(["init", "--home", str(tmp_path / "h"), "--data", str(path), "--target", "churned"])
    err = capsys.readouterr().err
    assert code == 1 and f"nested.parquet: column 'odd' has the Parquet type {kind}" in err
    assert err.count("\n") == 1


def test_a_parquet_target_of_the_wrong_type_is_refused(tmp_path, capsys):
    path = tmp_path / "float_target.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT range AS n, (range % 2)::DOUBLE AS churn FROM range(60)) TO '{path}' (FORMAT parquet)")
    con.close()
    code = cli.main(["init", "--home", str(tmp_path / "h"), "--data", str(path), "--target", "churn"])
    err = capsys.readouterr().err
    assert code == 1 and "float_target.parquet: the target column 'churn' has the Parquet type DOUBLE" in err


def test_score_refuses_a_damaged_or_nested_parquet_input(trained_home, lab_inputs, tmp_path, capsys):
    _, pq = lab_inputs
    blob = pq.read_bytes()
    (tmp_path / "cut.parquet").write_bytes(blob[:-100])
    code = cli.main(["score", str(tmp_path / "cut.parquet"), str(tmp_path / "out.parquet")])
    err = capsys.readouterr().err
    assert code == 1 and "cut.parquet is not a readable Parquet file" in err and err.count("\n") == 1
    assert not (tmp_path / "out.parquet").exists() and not list(tmp_path.glob(".out.parquet*"))
    con = duckdb.connect()
    con.execute(f"COPY (SELECT *, [1] AS tags FROM '{pq}') TO '{tmp_path / 'tags.parquet'}' (FORMAT parquet)")
    con.close()
    with pytest.raises(DataError, match=r"tags.parquet: column 'tags' has the Parquet type INTEGER\[\]"):
        batch.score_file(tmp_path / "tags.parquet", tmp_path / "out.csv", home=trained_home)


def test_a_csv_in_another_dialect_than_the_contracts_is_refused_with_its_header(tmp_path):
    source = tmp_path / "eu.csv"
    european(datasets.telecom(300, seed=2)).to_csv(source, sep=";", decimal=",", index=False)
    root = tmp_path / "home"
    infer.init_home(root, data=source, target="Churn")
    make_raw(home=root)
    datasets.telecom(300, seed=2).to_csv(source, index=False)  # re-exported with commas
    with pytest.raises(DataError, match="looks separated by commas, not by semicolons as expected: its header is "
                                        "'customerID,gender,"):
        make_raw(home=root)
    frame = european(datasets.telecom(300, seed=2))
    frame.to_csv(source, sep=";", index=False)  # semicolons, but decimal dots
    with pytest.raises(DataError, match=r"column 'MonthlyCharges' has .* decimal dot \(e.g. '.*'\), but the "
                                        r"contract's csv.decimal is ','"):
        make_raw(home=root)
