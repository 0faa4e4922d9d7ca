"""Batch scoring of CSV files: correctness against the pipeline, order, rejects, chunking, Dask."""

import csv
import json
import os
import stat

import numpy as np
import pandas as pd
import psutil
import pytest

from churn_lib import DataError, IntegrityError, InvalidParameter, ModelNotFound, NoCurrentModel, cli, registry
from churn_lib.scale import batch
from churn_lib.scale.batch import parts
from churn_lib import data
from . import lab_contract as schema

HEADER = "customer_id,tenure_months,num_complaints,avg_session_minutes,plan_type,region,churn"


def write_customers(path, n=3000, seed=3, newline="\n"):
    """Generated rows with an id column first and category spellings the lab's normalisation accepts."""
    df = data.generate(n, seed=seed)
    df.insert(0, "customer_id", [f"c{i:06d}" for i in range(n)])
    df["plan_type"] = df["plan_type"].astype(str)
    df["region"] = df["region"].astype(str)
    df.loc[::7, "region"] = df.loc[::7, "region"].str.lower().radd(" ")  # " na", " eu": normalised, not rejected
    df.loc[::11, "plan_type"] = df.loc[::11, "plan_type"].str.title()
    df.to_csv(path, index=False, lineterminator=newline)
    return df


def pipeline_scores(home, frame):
    entry = registry.current_entry(home=home)
    pipe = registry.load_model(entry, home=home)
    X = frame[list(schema.FEATURES)].copy()
    for col in schema.CATEGORICAL:
        X[col] = [schema.normalise_category(col, v) for v in X[col]]
    proba = pipe.predict_proba(X)[:, 1]
    return proba, (proba >= entry["threshold"]).astype(int), entry


def test_scores_equal_the_sklearn_pipeline_and_rows_keep_their_order_and_bytes(trained_home, tmp_path):
    src, out = tmp_path / "customers.csv", tmp_path / "scores.csv"
    df = write_customers(src)
    result = batch.score_file(src, out, home=trained_home, chunk_bytes=4096)  # ~40 blocks
    assert (result.rows_in, result.rows_scored, result.rows_rejected) == (3000, 3000, 0)
    assert result.engine == "numpy" and result.version == "v1"
    proba, pred, entry = pipeline_scores(trained_home, df)
    scored = pd.read_csv(out, keep_default_na=False, na_values=[""], dtype={"customer_id": str})
    assert list(scored.columns) == [*HEADER.split(","), "probability", "prediction", "version"]
    assert scored["customer_id"].tolist() == df["customer_id"].tolist()
    np.testing.assert_allclose(scored["probability"], proba, atol=5e-7)  # 6 decimals, like the API
    assert (scored["prediction"].to_numpy() == pred).all()  # at the stored threshold, not 0.5
    assert set(scored["version"]) == {"v1"}
    # every input line is carried through byte for byte, the three columns appended
    in_lines = src.read_text().splitlines()
    out_lines = out.read_text().splitlines()
    assert [line.rsplit(",", 3)[0] for line in out_lines] == in_lines
    assert batch.default_rejects(out).read_text() == "line,reason," + HEADER + "\n"


def test_block_size_does_not_change_the_output(trained_home, tmp_path):
    src = tmp_path / "customers.csv"
    write_customers(src, n=2000)
    batch.score_file(src, tmp_path / "a.csv", home=trained_home, chunk_bytes=1024)
    batch.score_file(src, tmp_path / "b.csv", home=trained_home)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_pipelined_blocks_report_progress_in_order_and_keep_reject_line_numbers(trained_home, tmp_path):
    """Blocks are scored two at a time (the model on its own thread): progress comes once a block, in file order,
    and rejected rows in many blocks keep their line numbers, as one big block gives them."""
    src = tmp_path / "customers.csv"
    write_customers(src, n=1500)
    with open(src, "a") as fh:
        for k in range(30):
            fh.write("ok,1,1,1,basic,AF,0\n" * 40 + f"bad{k},1,1,1,gold,AF,0\n")
    seen = []
    small = batch.score_file(src, tmp_path / "a.csv", home=trained_home, chunk_bytes=1024, on_progress=seen.append)
    big = batch.score_file(src, tmp_path / "b.csv", home=trained_home, chunk_bytes=64 << 20)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.rejects.csv").read_bytes() == (tmp_path / "b.rejects.csv").read_bytes()
    assert (small.rows_scored, small.rows_rejected) == (big.rows_scored, big.rows_rejected) == (2700, 30)
    assert len(seen) > 50
    assert [p.rows_scored + p.rows_rejected for p in seen] == sorted({p.rows_scored + p.rows_rejected for p in seen})
    assert (seen[-1].rows_scored, seen[-1].rows_rejected, seen[-1].fraction) == (2700, 30, 1.0)
    lines = [int(r.split(",")[0]) for r in (tmp_path / "a.rejects.csv").read_text().splitlines()[1:]]
    assert lines == [1502 + 41 * k + 40 for k in range(30)]


def test_a_model_failure_late_in_the_file_stops_the_run_and_leaves_no_output(trained_home, tmp_path, monkeypatch):
    """The model scores a block on its own thread while the next is parsed: when it fails many blocks in, the
    error reaches the caller (no hang, no block skipped) and neither output is left half-written."""
    from churn_lib.scale.batch import scorer

    src = tmp_path / "customers.csv"
    write_customers(src, n=1500)
    calls = []
    real = scorer._model_outputs

    def failing(*args):
        calls.append(1)
        if len(calls) == 20:
            raise MemoryError("the model ran out of memory")
        return real(*args)

    monkeypatch.setattr(scorer, "_model_outputs", failing)
    with pytest.raises(MemoryError, match="ran out of memory"):
        batch.score_file(src, tmp_path / "out.csv", home=trained_home, chunk_bytes=1024)
    assert len(calls) in (20, 21)  # the failing block, and at most the next one already submitted
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["customers.csv"]


BAD = """customer_id,tenure_months,num_complaints,avg_session_minutes,plan_type,region,churn
ok1,6,3,12.5,basic,AF,1
ok2,48,0,60, Premium ,na,0
bad1,250,0,1.0,gold,NA,1
bad2,x,0,,basic,,1

bad3,6,3,12.5,basic,AF,1,extra
bad4,6.5,3,12.5,basic,AF,1
"ok3",6,3,12.5,"basic","NA",1
bad5,6,3,-1,basic,LATAM,1
ok4,6,3,inf,basic,AF"""


def test_bad_rows_go_to_the_rejects_file_with_line_and_reason(trained_home, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(BAD)
    result = batch.score_file(src, out, home=trained_home, rejects=tmp_path / "bad.csv")
    scored = out.read_text().splitlines()
    assert [line.split(",")[0] for line in scored[1:]] == ["ok1", "ok2", '"ok3"']
    header, *rejects = csv.reader(open(tmp_path / "bad.csv", newline=""))
    assert header == ["line", "reason", *HEADER.split(",")]
    reasons = {row[2] or "(empty)": row[1] for row in rejects}
    assert reasons == {
        "bad1": "tenure_months=250 is outside 0..200; plan_type='gold' is not one of basic, premium",
        "bad2": "tenure_months='x' is not a number; avg_session_minutes is missing; region is missing",
        "(empty)": "empty line",
        "bad3": "has 8 fields, the header has 7",
        "bad4": "tenure_months=6.5 is not a whole number",
        "bad5": "avg_session_minutes=-1 is outside 0..500; region='LATAM' is not one of NA, EU, AF, AS",
        "ok4": "has 6 fields, the header has 7",
    }
    assert [int(row[0]) for row in rejects] == [4, 5, 6, 7, 8, 10, 11]  # the header is line 1
    assert (result.rows_in, result.rows_scored, result.rows_rejected) == (10, 3, 7)
    assert result.reasons["tenure_months: out of range"] == 1 and result.reasons["line: empty"] == 1
    # rejected rows are kept unchanged after line and reason
    assert "bad3,6,3,12.5,basic,AF,1,extra" in (tmp_path / "bad.csv").read_text()
    assert "rejected 7 rows" in result.summary()


def test_na_is_north_america_and_is_scored_like_the_api(trained_home, tmp_path):
    from churn_lib import scoring

    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("tenure_months,num_complaints,avg_session_minutes,plan_type,region\n6,3,12.5,basic,NA\n"
                   "6,3,12.5,basic,na\n")
    batch.score_file(src, out, home=trained_home)
    rows = out.read_text().splitlines()[1:]
    expected, _ = scoring.load(home=trained_home).predict_one(
        {"tenure_months": 6, "num_complaints": 3, "avg_session_minutes": 12.5, "plan_type": "basic", "region": "NA"})
    assert [r.split(",")[5] for r in rows] == [f"{expected:.6f}"] * 2


def test_windows_line_endings_are_kept(trained_home, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_customers(src, n=50, newline="\r\n")
    batch.score_file(src, out, home=trained_home, chunk_bytes=1024)
    raw = out.read_bytes()
    assert raw.count(b"\r\n") == 51 and raw.count(b"\n") == 51
    assert raw.splitlines()[0].endswith(b",probability,prediction,version")


def test_quoted_fields_with_commas_and_a_header_only_file(trained_home, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text('name,tenure_months,num_complaints,avg_session_minutes,plan_type,region\n'
                   '"Smith, J",6,3,12.5,basic,AF\n')
    assert batch.score_file(src, out, home=trained_home).rows_scored == 1
    assert out.read_text().splitlines()[1].startswith('"Smith, J",6,3,12.5,basic,AF,0.907065,1,v1')
    src.write_text("tenure_months,num_complaints,avg_session_minutes,plan_type,region\n")
    result = batch.score_file(src, out, home=trained_home)
    assert result.rows_in == 0 and out.read_text() == (src.read_text().rstrip("\n")
                                                        + ",probability,prediction,version\n")


def test_model_is_chosen_through_the_registry(trained_home, tmp_path):
    src = tmp_path / "in.csv"
    write_customers(src, n=20)
    assert batch.score_file(src, tmp_path / "o.csv", home=trained_home, model="v1").version == "v1"
    with pytest.raises(ModelNotFound, match="no registered model named 'v9'"):
        batch.score_file(src, tmp_path / "o.csv", home=trained_home, model="v9")
    entry = registry.current_entry(home=trained_home)
    path = registry.model_path(entry, home=trained_home)
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(IntegrityError, match="does not match its registered sha256"):
        batch.score_file(src, tmp_path / "t.csv", home=trained_home)
    assert not (tmp_path / "t.csv").exists() and not list(tmp_path.glob(".t.csv*"))


def test_bad_inputs_are_clear_errors(trained_home, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("tenure_months,num_complaints,plan_type,region\n1,2,basic,AF\n")
    with pytest.raises(DataError, match="lacks the feature column.s. avg_session_minutes"):
        batch.score_file(src, tmp_path / "o.csv", home=trained_home)
    with pytest.raises(DataError, match="does not exist"):
        batch.score_file(tmp_path / "nope.csv", tmp_path / "o.csv", home=trained_home)
    src.write_text("tenure_months,num_complaints,avg_session_minutes,plan_type,region,probability\n")
    with pytest.raises(DataError, match="already has column.s. probability"):
        batch.score_file(src, tmp_path / "o.csv", home=trained_home)
    with pytest.raises(InvalidParameter, match="three different files"):
        batch.score_file(src, src, home=trained_home)
    assert not (tmp_path / "o.csv").exists()


def test_no_current_model(tmp_path):
    from churn_lib import Home

    empty = Home(tmp_path / "empty").ensure()
    src = tmp_path / "in.csv"
    src.write_text("tenure_months,num_complaints,avg_session_minutes,plan_type,region\n1,2,3,basic,AF\n")
    with pytest.raises(NoCurrentModel):
        batch.score_file(src, tmp_path / "o.csv", home=empty)


def test_on_a_local_dask_cluster_partitions_give_the_same_files(trained_home, tmp_path):
    src = tmp_path / "in.csv"
    write_customers(src, n=4000)
    with open(src, "a") as fh:  # rejects in several partitions keep their global line numbers
        fh.write("bad,1,1,1,gold,AF,0\n" + "ok,1,1,1,basic,AF,0\n" * 2000 + "bad,1,1,1,basic,MARS,0\n")
    local = batch.score_file(src, tmp_path / "local.csv", home=trained_home)
    seen = []
    dist = batch.score_file(src, tmp_path / "dask.csv", home=trained_home, scheduler="local", n_workers=2,
                            partition_bytes=32 << 10, chunk_bytes=8 << 10, on_progress=seen.append)
    assert dist.partitions >= 5 and dist.scheduler == "local cluster (2 workers)"
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert (tmp_path / "dask.rejects.csv").read_bytes() == (tmp_path / "local.rejects.csv").read_bytes()
    assert (dist.rows_in, dist.rows_scored, dist.rows_rejected) == (local.rows_in, local.rows_scored, 2)
    lines = [int(r.split(",")[0]) for r in (tmp_path / "dask.rejects.csv").read_text().splitlines()[1:]]
    assert lines == [4002, 6003]
    assert seen[-1].fraction == 1.0 and seen[-1].rows_scored == dist.rows_scored
    assert not list(tmp_path.glob(".dask.csv.parts-*"))  # part files are removed
    left = [p.cmdline() for p in psutil.Process().children(recursive=True)]
    assert not [c for c in left if "resource_tracker" not in " ".join(c)]  # the local cluster is shut down


def test_the_score_command(trained_home, tmp_path, capsys):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(BAD)
    code = cli.main(["score", str(src), str(out), "--home", str(trained_home.root), "--chunk-mb", "0.01"])
    stdout, _ = capsys.readouterr()
    assert code == 0 and "scored 3 of 10 rows with v1" in stdout and "rejected 7 rows" in stdout
    assert str(tmp_path / "out.rejects.csv") in stdout
    code = cli.main(["score", str(src), str(out), "--home", str(trained_home.root), "--json", "--model", "v1"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["rows_rejected"] == 7 and payload["engine"] == "numpy"
    code = cli.main(["score", str(tmp_path / "missing.csv"), str(out), "--home", str(trained_home.root)])
    _, err = capsys.readouterr()
    assert code == 1 and err.startswith("churn: error: input file") and err.count("\n") == 1


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_the_outputs_get_the_mode_of_any_new_file(trained_home, tmp_path, umask, mode):
    """Written through the one atomic-write helper: the umask's mode, not a temporary file's 0600."""
    src = tmp_path / "in.csv"
    src.write_text(BAD)
    old = os.umask(umask)
    try:
        code = cli.main(["score", str(src), str(tmp_path / "out.csv"), "--home", str(trained_home.root)])
    finally:
        os.umask(old)
    assert code == 0
    assert stat.S_IMODE((tmp_path / "out.csv").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "out.rejects.csv").stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


@pytest.mark.parametrize("command", [["score"], ["sweep"]])
def test_the_scale_out_commands_have_help(capsys, command):
    with pytest.raises(SystemExit) as info:
        cli.main([*command, "--help"])
    assert info.value.code == 0 and "--scheduler" in capsys.readouterr().out


def test_parts_are_appended_without_copy_file_range_too(tmp_path, monkeypatch):
    part = tmp_path / "part.csv"
    part.write_bytes(b"a,1\nb,2\n" * 1000)

    def unsupported(*args):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(parts.os, "copy_file_range", unsupported)
    with open(tmp_path / "out.csv", "wb") as out:
        out.write(b"head\n")
        parts.append_file(part, out)
        out.write(b"tail\n")
    assert (tmp_path / "out.csv").read_bytes() == b"head\n" + part.read_bytes() + b"tail\n"


def test_rejects_default_to_the_inputs_format_and_a_semicolon_input_keeps_its_dialect(trained_home, tmp_path):
    assert batch.default_rejects("s.parquet", parquet=True).name == "s.rejects.parquet"
    assert batch.default_rejects("s.parquet", parquet=False).name == "s.rejects.csv"
    assert batch.default_rejects("s.csv", parquet=True).name == "s.rejects.parquet"
    src = tmp_path / "in.csv"
    src.write_text(BAD.replace(",", ";"))
    result = batch.score_file(src, tmp_path / "out.csv", home=trained_home, sep=";", chunk_bytes=1024)
    assert (result.rows_scored, result.rows_rejected) == (3, 7)
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == HEADER.replace(",", ";") + ";probability;prediction;version"
    assert all(line.count(";") == 9 for line in lines) and lines[1].endswith(";1;v1")
    rejects = (tmp_path / "out.rejects.csv").read_text().splitlines()
    assert rejects[0].startswith("line;reason;customer_id") and rejects[1].startswith('4;"tenure_months=250')


@pytest.mark.parametrize("spellings", [["Yes", "No"], ["0", "1"], ["0", "1", ""], ["1.0", "0"], ["True", "False"],
                                       ["True", "False", ""], ["true", "1"], ["Y", "1"], ["", "yes"], ["  ", "1"],
                                       ["inf", "0"], ["maybe", "Yes"]])
def test_a_boolean_column_is_checked_as_pandas_types_it(tmp_path, spellings):
    """Batch parsing reads a boolean column pandas would type as text as ``category``: the rows' verdicts,
    reasons and values are those of the column read without a dtype, whatever its spellings (and the first
    line's)."""
    from churn_lib import contract as _contract
    from churn_lib.scale.batch import layout as _layout, reader, scorer
    from tests import datasets

    home = datasets.telecom_home(tmp_path / "home", rows=300, seed=2)
    c = _contract.load(home)
    frame = datasets.telecom(400, seed=5)
    rng = np.random.default_rng(1)
    for name in ("Partner", "SeniorCitizen"):
        frame[name] = rng.choice(spellings, size=len(frame))
    src = datasets.write(frame, tmp_path / "in.csv")
    lay = _layout.read_layout(src, c, 0, c.source.csv)
    block = src.read_bytes()[lay.data_start:]
    lines = reader.locate_lines(block, len(lay.columns), lay.sep)
    fast = batch.validate(scorer._parse(block, lines, lay, c, 2), c)
    plain = batch.validate(data.read_csv(src, c, columns=c.feature_names), c)
    assert fast[1].tolist() == plain[1].tolist() and fast[2].tolist() == plain[2].tolist() and fast[3] == plain[3]
    for name, values in plain[0].items():
        assert np.array_equal(np.asarray(fast[0][name], dtype=object), np.asarray(values, dtype=object)) or \
            np.array_equal(fast[0][name], values, equal_nan=True), name
