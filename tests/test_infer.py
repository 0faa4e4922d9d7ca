"""`churn init`: a contract inferred from a CSV, refusals in one line, a file read in bounded chunks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from churn_lib import DataError, InvalidParameter, cli, contract
from churn_lib.data import infer

from . import datasets


@pytest.fixture
def telecom_csv(tmp_path):
    frame = datasets.telecom(1200, seed=1)
    frame["notes"] = [f"called on day {i}: {'x' * (i % 7)}" for i in range(len(frame))]  # free text
    frame["country"] = "NL"  # constant
    frame["region"] = np.random.default_rng(0).choice(["NA", "EU", "AS"], size=len(frame))  # NA is a value
    return datasets.write(frame, tmp_path / "telecom.csv")


def test_a_telecom_export_gets_the_contract_a_person_would_write(telecom_csv):
    result = infer.infer(telecom_csv, target="Churn")
    c = result.contract
    assert c.id == ("customerID",) and c.target == contract.Target("Churn", ("Yes",), ("No",))
    kinds = {f.name: f.type for f in c.features}
    assert kinds["SeniorCitizen"] == kinds["Partner"] == "boolean" and kinds["tenure"] == "integer"
    assert kinds["MonthlyCharges"] == kinds["TotalCharges"] == "float" and kinds["Contract"] == "categorical"
    total = c.feature("TotalCharges")
    assert total.on_missing == "impute" and total.low == 0 and total.high > 8000  # text with blanks: a number
    assert c.feature("tenure").on_missing == "drop"
    assert set(c.feature("region").values) == {"NA", "EU", "AS"}  # NA is North America, not a gap
    dropped = {d.column: d.reason for d in c.dropped}
    assert "unique key" in dropped["notes"] and "constant" in dropped["country"]
    assert len(c.features) == 20 and c.gate.min_f1 is None and c.gate.baseline_margin == 0.02


def test_the_written_contract_reads_back_and_is_commented_for_review(telecom_csv, tmp_path):
    result = infer.init_home(tmp_path / "home", data=telecom_csv, target="Churn")
    text = open(result.contract_path, encoding="utf-8").read()
    assert contract.load_file(result.contract_path) == result.contract
    assert "# observed 0 .. 72, no missing values" in text and "Review it" in text and "on_missing" in text
    assert yaml.safe_load(text)["features"]["region"]["values"]  # "NA" quoted: a value, not a null
    with pytest.raises(InvalidParameter, match="exists already; pass --force"):
        infer.init_home(tmp_path / "home", data=telecom_csv, target="Churn")
    infer.init_home(tmp_path / "home", data=telecom_csv, target="Churn", force=True)


def test_the_whole_file_counts_not_just_its_head(telecom_csv):
    """A word in the last row makes a column text; blanks late in the file make it imputed."""
    lines = telecom_csv.read_text().splitlines()
    head = lines[0].split(",")
    last = lines[-1].split(",")
    last[head.index("MonthlyCharges")] = "unknown"
    last[head.index("tenure")] = ""
    telecom_csv.write_text("\n".join(lines[:-1] + [",".join(last)]) + "\n")
    c = infer.infer(telecom_csv, target="Churn", sample_rows=100).contract
    assert "MonthlyCharges" in {d.column for d in c.dropped}  # ~all different text values: not a category
    assert c.feature("tenure").on_missing == "impute" and c.feature("tenure").type == "integer"


def test_tokens_like_NA_are_missing_only_in_a_numeric_column(tmp_path):
    rows = ["amount,region,left"] + [f"{i}.5,NA,{'yes' if i % 3 else 'no'}" for i in range(60)] + ["NA,EU,no", "?,EU,yes"]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(rows) + "\n")
    c = infer.infer(path, target="left").contract
    assert c.feature("amount").type == "float" and set(c.feature("amount").missing) == {"", "?", "NA"}
    assert c.feature("region").values == ("NA", "EU")
    assert c.target.positive == ("yes",)


def _write(tmp_path, text, name="x.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize("content, args, message", [
    ("a,b,churn\n1,2,x\n3,4,y\n5,6,z\n", ["--target", "churn"], "has 3 labels (x, y, z): a churn target must be binary"),
    ("a,b,churn\n1,2,x\n3,4,x\n", ["--target", "churn"], "has only 1 label"),
    ("a,b,churn\n1,2,stay\n3,4,go\n", ["--target", "churn"], "cannot tell which label of churn means churned"),
    ("a,b,churn\n1,2,yes\n3,4,no\n", ["--target", "churn", "--positive", "Y"], "positive label 'Y' does not occur"),
    ("a,b,churn\n1,2,yes\n3,4,no\n", ["--target", "left"], "target column 'left' is not in"),
    ("a,b,churn\n1,2,yes\n3,4,no\n", ["--target", "churn", "--id", "cust"], "id column 'cust' is not in"),
    ("", ["--target", "churn"], "is empty or has no header line"),
    ("a,b,churn\n", ["--target", "churn"], "has a header but no rows"),
    ("a;b;churn\n1;2;yes\n", ["--target", "churn", "--sep", ","], "looks separated by semicolons, not by commas "
                                                                   "as expected: its header is 'a;b;churn'"),
    ("a,a,churn\n1,2,yes\n", ["--target", "churn"], "names the column(s) a more than once"),
    (b"a,b,churn\n1,\xff\xfe,yes\n2,3,no\n", ["--target", "churn"], "is not UTF-8 text"),
    ('a,b,churn\n1,"2,yes\n', ["--target", "churn"], "cannot parse"),
])
def test_a_file_init_cannot_use_is_refused_in_one_line(tmp_path, capsys, content, args, message):
    path = _write(tmp_path, content)
    code = cli.main(["init", "--home", str(tmp_path / "home"), "--data", str(path), *args])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("churn: error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "home" / "dataset.yaml").exists()


def test_data_and_target_go_together(tmp_path, capsys):
    assert cli.main(["init", "--home", str(tmp_path / "h"), "--target", "churn"]) == 1
    assert "--data and --target go together" in capsys.readouterr().err


def test_init_prints_what_it_decided(telecom_csv, tmp_path, capsys):
    code = cli.main(["init", "--home", str(tmp_path / "h"), "--data", str(telecom_csv), "--target", "Churn"])
    out = capsys.readouterr().out
    assert code == 0 and "target Churn (churned: Yes), id customerID, 20 features" in out
    assert "customerID" in out and "dropped" in out and "unique key" in out


def test_a_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read|does not exist|No such file"):
        infer.infer(tmp_path / "nothing.csv", target="churn")


def test_init_without_home_makes_the_home_churn_home_names(tmp_path, monkeypatch, capsys):
    target = tmp_path / "from-env"
    monkeypatch.setenv("CHURN_HOME", str(target))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["init"]) == 0
    assert (target / "dataset.yaml").is_file() and not (tmp_path / "dataset.yaml").exists()
    capsys.readouterr()


def _leaky(n: int, seed: int = 3):
    """A churn table with the leaks `churn init` must catch, and one honest many-valued integer."""
    rng = np.random.default_rng(seed)
    left = rng.random(n) < 0.3
    minutes = rng.integers(0, 400, size=n) + np.where(left, -60, 60)  # many values, repeats, overlaps by label
    return pd.DataFrame({
        "rownames": np.arange(1, n + 1),                                  # R's write.csv row numbers
        "customer": [f"C{i:05d}" for i in rng.permutation(n)],            # the id
        "email": [f"user{i}@example.com" for i in rng.permutation(n)],    # a second unique text column
        "account_no": rng.permutation(n) * 7 + 100_000,                   # unique integers, not consecutive
        "shuffled_index": rng.permutation(n),                             # 0..n-1 in any order
        "minutes": minutes.clip(0),
        "plan": rng.choice(["basic", "plus", "pro"], size=n),
        "status_now": np.where(left, "closed", "open"),                   # recorded after the churn
        "refund": np.where(left, rng.uniform(10, 90, size=n), rng.uniform(0, 9.5, size=n)).round(2),
        "churned": np.where(left, "yes", "no"),
    })


@pytest.mark.parametrize("n", [120, 1500])  # values listed (few rows) and counted by DuckDB alone (many)
def test_row_numbers_keys_and_target_leaks_are_dropped_with_the_reason(tmp_path, n):
    path = datasets.write(_leaky(n), tmp_path / "leaky.csv")
    c = infer.infer(path, target="churned", ids=["customer"]).contract
    dropped = {d.column: d.reason for d in c.dropped}
    assert dropped["rownames"] == f"row number: the integers 1 to {n}, each once"
    assert dropped["shuffled_index"] == f"row number: the integers 0 to {n - 1}, each once"
    assert dropped["email"].startswith("unique key") and dropped["account_no"].startswith("unique key")
    assert dropped["status_now"] == "leaks the target: each value has one label of churned"
    assert dropped["refund"].startswith("leaks the target: every value up to 9.")
    assert "is no, every value from 1" in dropped["refund"] and dropped["refund"].endswith("is yes")
    assert c.feature_names == ("minutes", "plan") and c.feature("minutes").type == "integer"


def test_init_prints_the_leaks_and_writes_them_under_dropped(tmp_path, capsys):
    path = datasets.write(_leaky(300), tmp_path / "leaky.csv")
    code = cli.main(["init", "--home", str(tmp_path / "h"), "--data", str(path), "--target", "churned"])
    out = capsys.readouterr().out
    table = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert code == 0 and "id customer," in out  # the first all-different text column; rownames is no id
    assert "dropped" in table["rownames"] and "row number: the integers 1 to 300" in table["rownames"]
    assert "unique key" in table["email"] and "leaks the target" in table["status_now"]
    assert "feature" in table["minutes"]
    written = yaml.safe_load((tmp_path / "h" / "dataset.yaml").read_text())
    reasons = {d["column"]: d["reason"] for d in written["dropped"]}
    assert reasons["rownames"].startswith("row number") and reasons["refund"].startswith("leaks the target")


def test_keep_overrides_a_leak_and_the_table_still_says_why(tmp_path, capsys):
    path = datasets.write(_leaky(300), tmp_path / "leaky.csv")
    code = cli.main(["init", "--home", str(tmp_path / "h"), "--data", str(path), "--target", "churned",
                     "--keep", "rownames", "--keep", "refund"])
    out = capsys.readouterr().out
    c = contract.load(tmp_path / "h")
    assert code == 0 and c.feature("rownames").type == "integer" and c.feature("refund").type == "float"
    assert "rownames" not in {d.column for d in c.dropped} and "status_now" in {d.column for d in c.dropped}
    assert "kept with --keep (row number: the integers 1 to 300" in out
    assert "kept with --keep (leaks the target: every value up to" in out
    text = (tmp_path / "h" / "dataset.yaml").read_text()
    assert "# kept with --keep (row number: the integers 1 to 300, each once); observed 1 .. 300, no missing" in text


@pytest.mark.parametrize("args, message", [
    (["--keep", "nothing"], "keep column 'nothing' is not in"),
    (["--keep", "churned"], "--keep churned: that column is the target"),
    (["--keep", "email"], "--keep email: init cannot make email a feature (near-unique text"),
])
def test_keep_names_a_column_that_can_be_a_feature(tmp_path, capsys, args, message):
    path = datasets.write(_leaky(300), tmp_path / "leaky.csv")
    code = cli.main(["init", "--home", str(tmp_path / "h"), "--data", str(path), "--target", "churned", *args])
    err = capsys.readouterr().err
    assert code == 1 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "h" / "dataset.yaml").exists()


def test_a_small_table_is_not_judged_for_leaks(tmp_path):
    """Below LEAK_MIN_ROWS rows a column is all different, or splits the labels, by chance."""
    path = datasets.write(_leaky(40), tmp_path / "small.csv")
    c = infer.infer(path, target="churned", ids=["customer"]).contract
    assert {"rownames", "account_no", "refund", "minutes"} <= set(c.feature_names)
