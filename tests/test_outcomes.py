"""Outcomes in (churn feedback, POST /feedback), joined to predictions, realized and estimated performance,
the monitoring history."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.metrics import brier_score_loss, f1_score, precision_score, recall_score, roc_auc_score

from churn_lib import DataError, InvalidParameter, cli, contract, drift, registry, simulate
from churn_lib.logs import outcomes, query as logquery, monitoring, predictions as predlog
from churn_lib.contract import records
from churn_lib.drift import performance

FEATURES = {"tenure_months": 6, "num_complaints": 3, "avg_session_minutes": 12.5, "plan_type": "basic",
            "region": "NA"}


def _predictions(home, p, *, prefix="r", threshold=0.4, ids=None, t0=1_800_000_000.0):
    """Log one prediction per probability, by the current model (its file and version)."""
    entry = registry.current_entry(home=home)
    home.logs_dir.mkdir(parents=True, exist_ok=True)
    records = [predlog.record(request_id=f"{prefix}{i}", model_file=entry["model_file"], version=entry["version"],
                              threshold=threshold, probability=float(q), features=FEATURES, latency_ms=1.0,
                              ts=t0 + i, ids=None if ids is None else {ids: f"c{i}"})
               for i, q in enumerate(p)]
    predlog.append_many(records, path=home.predictions_log)
    return entry


def _csv(path, rows, columns):
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    return path


# --- churn feedback ----------------------------------------------------------------------------------

def test_a_file_of_outcomes_is_appended_and_its_bad_rows_counted(trained_home, tmp_path, capsys):
    _predictions(trained_home, [0.9, 0.2, 0.7])
    src = _csv(tmp_path / "october.csv", [["r0", "1", "2026-10-31T10:00:00Z", "x"], ["r1", "0", "", "y"],
                                          ["", "1", "", ""], ["r2", "maybe", "", ""], ["r9", "1", "", ""],
                                          ["r2", "1", "yesterday", ""], ["r0", "0", "1790000000", ""]],
               ["request_id", "outcome", "time", "note"])
    code = cli.main(["feedback", str(src), "--home", str(trained_home.root), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["rows"] == 7 and out["accepted"] == 4 and out["rejected"] == {"no key": 1, "not an outcome": 1,
                                                                             "bad time": 1}
    assert out["repeated"] == 1 and out["ignored_columns"] == ["note"]
    assert out["matched"] == 2 and out["unmatched"] == 1  # r0, r1 were predicted; r9 was not
    assert [e["line"] for e in out["examples"]] == [4, 5, 7]  # file lines, the header is line 1
    lines = [json.loads(x) for x in trained_home.feedback_log.read_text().splitlines()]
    assert [(x["request_id"], x["outcome"]) for x in lines] == [("r0", 1), ("r1", 0), ("r9", 1), ("r0", 0)]
    assert lines[0]["ts"] == pd.Timestamp("2026-10-31T10:00:00Z").timestamp()
    assert all(a["received"] < b["received"] for a, b in zip(lines, lines[1:]))
    assert lines[0]["source"] == "file:october.csv"


def test_a_key_of_the_apis_limit_is_accepted_and_one_character_more_refused(trained_home, tmp_path, capsys):
    longest = "k" * (records.MAX_KEY_LENGTH - 1) + "0"  # the longest request id the API accepts and logs
    _predictions(trained_home, [0.9], prefix=longest[:-1])  # request id: prefix + "0"
    src = _csv(tmp_path / "edge.csv", [[longest, "1"], [longest + "k", "0"]], ["request_id", "outcome"])
    code = cli.main(["feedback", str(src), "--home", str(trained_home.root), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["accepted"] == 1 and out["matched"] == 1
    assert out["rejected"] == {"key too long": 1}
    assert out["examples"] == [{"line": 3, "reason": f"a request_id over {records.MAX_KEY_LENGTH} characters",
                                "value": ""}]
    assert [json.loads(x)["request_id"] for x in trained_home.feedback_log.read_text().splitlines()] == [longest]


def test_the_targets_labels_and_its_column_name_are_accepted(trained_home, tmp_path):
    src = _csv(tmp_path / "o.csv", [["r0", "1"], ["r1", "0"], ["r2", "true"], ["r3", "No"]], ["request_id", "churn"])
    r = outcomes.ingest_file(src, home=trained_home, match=False)
    assert r.accepted == 3 and r.rejected == {"not an outcome": 1}
    t = contract.Target("Churn", ("Yes",), ("No",))
    assert [t.outcome(v) for v in ["Yes", " yes", "No", "1", "0", True, "maybe", None]] == [1, 1, 0, 1, 0, 1, None,
                                                                                            None]


@pytest.mark.parametrize("text, message", [
    ("customer,outcome\na,1\n", r"lacks a key column \(request_id\); its header has customer, outcome"),
    ("request_id,result\na,1\n", r"lacks an outcome column \(outcome or churn\)"),
    ("request_id,outcome,outcome\na,1,1\n", "names the column.s. outcome more than once"),
    ("", "cannot read"),
])
def test_an_outcome_file_with_the_wrong_columns_is_refused_and_nothing_written(trained_home, tmp_path, text, message):
    src = tmp_path / "bad.csv"
    src.write_text(text)
    with pytest.raises(DataError, match=message):
        outcomes.ingest_file(src, home=trained_home)
    assert not trained_home.feedback_log.exists()
    with pytest.raises(DataError, match="does not exist"):
        outcomes.ingest_file(tmp_path / "missing.csv", home=trained_home)


def test_a_header_only_file_accepts_nothing(trained_home, tmp_path):
    src = tmp_path / "empty.csv"
    src.write_text("request_id,outcome\n")
    r = outcomes.ingest_file(src, home=trained_home)
    assert r.rows == r.accepted == 0 and "accepted 0 of 0" in r.summary()


def test_sigkill_during_churn_feedback_loses_no_accepted_line(trained_home, tmp_path):
    """Killed mid-file: the lines on disk are a prefix of the input (a last one may be cut off: skipped and
    counted); running the command again stores everything, each outcome counted once."""
    n = 300_000
    src = tmp_path / "many.csv"
    src.write_text("request_id,outcome\n" + "".join(f"k{i},{i % 2}\n" for i in range(n)))
    cmd = [sys.executable, "-m", "churn_lib.cli", "feedback", str(src), "--home", str(trained_home.root)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while not (trained_home.feedback_log.exists() and trained_home.feedback_log.stat().st_size) \
            and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    data = trained_home.feedback_log.read_bytes()
    whole = data.split(b"\n")[:-1]  # the lines that have their newline
    keys = [json.loads(x)["request_id"] for x in whole]
    assert 0 < len(keys) <= n and keys == [f"k{i}" for i in range(len(keys))]  # a prefix, in order, once
    assert subprocess.run(cmd, capture_output=True, env=env, timeout=300).returncode == 0
    _predictions(trained_home, [0.5], prefix="k")  # one prediction, k0, so that the outcomes are joined
    read = logquery.outcomes([trained_home.predictions_log], [trained_home.feedback_log]).read
    lines = trained_home.feedback_log.read_bytes().split(b"\n")[:-1]
    parsed = []
    for x in lines:
        try:
            parsed.append(json.loads(x)["request_id"])
        except ValueError:
            parsed.append(None)
    tail = data.rsplit(b"\n", 1)[-1]  # what the kill left after the last whole line
    try:
        json.loads(tail) if tail else None
        cut = False  # nothing after the last newline, or a whole record that only lacked its newline
    except ValueError:
        cut = True
    assert parsed.count(None) == int(cut)  # a cut line is ended and skipped (a kill right before "\n" cuts none)
    assert set(parsed) - {None} == {f"k{i}" for i in range(n)}
    assert read["outcomes"] == n and read["with_outcome"] == 1
    assert read["repeated_outcomes"] == len(keys) + (1 if tail and not cut else 0)  # the first run's lines, again
    assert read["feedback_lines_skipped"] == parsed.count(None)


# --- the join and realized metrics ---------------------------------------------------------------------

def test_realized_metrics_equal_scikit_learns_on_the_same_joined_rows(trained_home):
    rng = np.random.default_rng(3)
    p = rng.random(400)
    _predictions(trained_home, p, threshold=0.4)
    y = (rng.random(400) < p).astype(int)
    given = {f"r{i}": int(y[i]) for i in range(0, 400, 2)}  # half come back
    wrong_first = [{"request_id": k, "outcome": 1 - v} for k, v in given.items()][:50]
    outcomes.ingest_records(wrong_first, home=trained_home)  # later corrected: the last one counts
    outcomes.ingest_records([{"request_id": k, "outcome": v} for k, v in given.items()]
                            + [{"request_id": "nobody", "outcome": 1}], home=trained_home)
    result = performance.check(home=trained_home)
    (m,) = result.models
    idx = np.arange(0, 400, 2)
    yy, pp = y[idx], np.round(p[idx], 6)  # as logged
    assert m.with_outcome == 200 and m.predictions == 400
    r = m.realized
    assert r["roc_auc"] == pytest.approx(roc_auc_score(yy, pp), abs=1e-12)
    assert r["f1"] == pytest.approx(f1_score(yy, pp >= 0.4), abs=1e-12)
    assert r["precision"] == pytest.approx(precision_score(yy, pp >= 0.4), abs=1e-12)
    assert r["recall"] == pytest.approx(recall_score(yy, pp >= 0.4), abs=1e-12)
    assert r["brier"] == pytest.approx(brier_score_loss(yy, pp), abs=1e-12)
    assert result.read["repeated_outcomes"] == 50 and result.read["outcomes"] == 201
    assert m.realized_interval["f1"][0] <= r["f1"] <= m.realized_interval["f1"][1]
    assert m.estimated["rows"] == 200 and m.verdict in (performance.OK, performance.BELOW_FLOOR)


def test_outcomes_join_on_the_contracts_id_too(tmp_path):
    from churn_lib import Home

    home = Home(tmp_path / "h")
    home.logs_dir.mkdir(parents=True)
    with_id = dataclasses.replace(contract.lab(), id=("customerID",), examples=())
    recs = [predlog.record(request_id=f"r{i}", model_file="m.joblib", version="v1", threshold=0.5,
                           probability=0.8, features=FEATURES, latency_ms=1, ts=1.0 + i, ids={"customerID": f"c{i}"})
            for i in range(4)]
    predlog.append_many(recs, path=home.predictions_log)
    home.feedback_log.write_text('{"id":"c1","outcome":1,"ts":5,"received":5}\n'
                                 '{"request_id":"r2","outcome":0,"ts":5,"received":6}\n'
                                 '{"id":"c3","outcome":"maybe","ts":5,"received":7}\nnot json\n')
    j = logquery.outcomes([home.predictions_log], [home.feedback_log], with_id, id_column="customerID")
    by_ts = dict(zip(j.ts.tolist(), j.outcome.tolist()))
    assert by_ts[2.0] == 1 and by_ts[3.0] == 0 and np.isnan(by_ts[1.0]) and np.isnan(by_ts[4.0])
    assert j.read["feedback_lines"] == 4 and j.read["feedback_lines_skipped"] == 2
    assert logquery.count_matching([home.predictions_log], ["c0", "c9"], id_column="customerID") == 1
    assert logquery.count_matching([home.predictions_log], ["r0", "r1", "x"]) == 2


# --- estimated performance (CBPE) ------------------------------------------------------------------------

def test_the_estimated_auc_is_the_expected_auc_under_calibration():
    rng = np.random.default_rng(0)
    p = np.round(rng.random(60), 1)  # many ties
    num = den = 0.0
    for i in range(60):
        for j in range(60):
            if i != j:
                w = p[i] * (1 - p[j])
                den += w
                num += w * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    assert performance.estimated(p, np.full(60, 0.5))["roc_auc"] == pytest.approx(num / den, abs=1e-12)


def test_cbpe_lands_within_its_interval_of_the_realized_value_on_calibrated_outcomes():
    rng = np.random.default_rng(1)
    p = rng.beta(2, 3, 3000)
    t = np.full(len(p), 0.45)
    y = (rng.random(len(p)) < p).astype(int)  # calibrated by construction
    real, est = performance.realized(y, p, t), performance.estimated(p, t)
    iv = performance.estimated_interval(p, t, seed=1)
    for key in ("f1", "roc_auc", "precision", "recall", "brier"):
        assert iv[key][0] <= real[key] <= iv[key][1], key
        assert abs(est[key] - real[key]) < 0.05, key


def test_the_estimated_interval_covers_the_realized_value_about_95_times_in_100():
    rng = np.random.default_rng(7)
    hits = {"f1": 0, "roc_auc": 0}
    trials = 60
    for k in range(trials):
        p = rng.beta(2, 3, 400)
        t = np.full(len(p), 0.4)
        real = performance.realized((rng.random(len(p)) < p).astype(int), p, t)
        iv = performance.estimated_interval(p, t, seed=k)
        for key in hits:
            hits[key] += iv[key][0] <= real[key] <= iv[key][1]
    for key, n in hits.items():
        assert 0.85 * trials <= n <= trials, (key, n)


def test_a_miscalibrated_model_is_caught_by_its_realized_figures(trained_home):
    p = np.full(300, 0.9)
    _predictions(trained_home, p, threshold=0.5)
    outcomes.ingest_records([{"request_id": f"r{i}", "outcome": 0} for i in range(300)], home=trained_home)
    result = performance.check(home=trained_home, floor=0.5)
    (m,) = result.models
    assert m.verdict == performance.BELOW_FLOOR and "realized F1 0.0000 < floor 0.5000" in m.reason
    assert m.realized["brier"] == pytest.approx(0.81)


# --- the command, its exit codes, bad input -------------------------------------------------------------

def test_churn_performance_exit_codes(trained_home, capsys):
    code = cli.main(["performance", "--home", str(trained_home.root)])
    assert code == cli.EXIT_INSUFFICIENT_DATA == 5 and "insufficient data" in capsys.readouterr().out
    rng = np.random.default_rng(5)
    p = rng.random(500)
    _predictions(trained_home, p, threshold=0.5)
    code = cli.main(["performance", "--home", str(trained_home.root), "--floor", "0.0"])
    out = capsys.readouterr().out
    assert code == 0 and "estimated (CBPE)" in out and "estimated F1" in out
    outcomes.ingest_records([{"request_id": f"r{i}", "outcome": int(rng.random() < q)} for i, q in enumerate(p)],
                            home=trained_home)
    code = cli.main(["performance", "--home", str(trained_home.root), "--floor", "0.99", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 4 and payload["verdict"] == "below floor" and payload["models"][0]["with_outcome"] == 500
    code = cli.main(["performance", "--home", str(trained_home.root), "--last", "100", "--json"])
    assert json.loads(capsys.readouterr().out)["models"][0]["predictions"] == 100


@pytest.mark.parametrize("kwargs, message", [({"last": 0}, "last=0"), ({"floor": 1.5}, "floor=1.5"),
                                              ({"min_rows": 0}, "min_rows=0"), ({"since": "soon"}, "not a time")])
def test_bad_performance_arguments_are_refused(trained_home, kwargs, message):
    with pytest.raises(InvalidParameter, match=message):
        performance.check(home=trained_home, **kwargs)


# --- POST /feedback -------------------------------------------------------------------------------------

def test_post_feedback_stores_outcomes_and_counts_the_rest(trained_home):
    from serve.app import create_app

    with TestClient(create_app(trained_home)) as c:
        r = c.post("/predict", json={**FEATURES, "request_id": "req-001"})
        assert r.status_code == 200
        r = c.post("/feedback", json=[{"request_id": "req-001", "outcome": 1}, {"request_id": "req-002"},
                                      {"request_id": "req-003", "outcome": "0", "time": 1_790_000_000}])
        assert r.status_code == 200
        body = r.json()
        assert body["accepted"] == 2 and body["rejected"] == {"not an outcome": 1}
        assert body["examples"][0]["line"] == 1
        for bad in ('{"request_id": "x"}', "[1, 2]", "not json", "[]", "\xff\xfe"):
            r = c.post("/feedback", content=bad.encode("utf-8", "surrogateescape"),
                       headers={"content-type": "application/json"})
            assert r.status_code == 422, bad
            assert r.json()["detail"][0]["field"] == "body" or r.json()["detail"][0]["field"].startswith("0")
        big = [{"request_id": "x" * 150, "outcome": 1}] * 8000
        assert c.post("/feedback", json=big).status_code == 413
        assert c.post("/feedback", json=[{"request_id": "a", "outcome": 1}] * 10_001).status_code in (413, 422)
    lines = trained_home.feedback_log.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["source"] == "api"
    assert performance.check(home=trained_home).models[0].with_outcome == 1


# --- the monitoring history ----------------------------------------------------------------------------

def test_every_check_appends_to_the_monitoring_history(trained_home):
    simulate.simulate(200, home=trained_home, seed=4)
    drift.check(home=trained_home)
    performance.check(home=trained_home)
    drift.check(home=trained_home, record=False)
    h = monitoring.history(home=trained_home)
    assert h["kind"].tolist() == ["drift", "performance"]
    assert set(h["version"]) == {"v1"} and h.loc[0, "rows"] == 200 and "max_psi" in h
    assert monitoring.history(home=trained_home, kind="drift").shape[0] == 1
    with open(trained_home.monitoring_log, "a") as fh:
        fh.write("{torn\n")
    assert len(monitoring.history(home=trained_home)) == 2


def test_received_times_strictly_increase_over_many_records(trained_home):
    for _ in range(3):
        outcomes.ingest_records([{"request_id": f"k{i}", "outcome": i % 2} for i in range(5000)], home=trained_home)
    received = [json.loads(x)["received"] for x in trained_home.feedback_log.read_text().splitlines()]
    assert len(received) == 15_000 and all(a < b for a, b in zip(received, received[1:]))


def test_rotated_feedback_files_are_read_with_the_current_one(trained_home):
    _predictions(trained_home, [0.9, 0.8, 0.1])
    trained_home.logs_dir.joinpath("feedback.log.2").write_text('{"request_id":"r0","outcome":0,"received":1}\n')
    trained_home.logs_dir.joinpath("feedback.log.1").write_text('{"request_id":"r0","outcome":1,"received":2}\n')
    outcomes.ingest_records([{"request_id": "r1", "outcome": 1}], home=trained_home)
    trained_home.logs_dir.joinpath("feedback.log.bak").write_text('{"request_id":"r2","outcome":1,"received":3}\n')
    files = outcomes.log_files(home=trained_home)
    assert [p.name for p in files] == ["feedback.log.2", "feedback.log.1", "feedback.log"]
    j = logquery.outcomes(predlog.log_files(home=trained_home), files)
    assert dict(zip(j.ts.tolist(), j.outcome.tolist()))[1_800_000_000.0] == 1  # the later, rotated one wins
    assert j.read["with_outcome"] == 2 and j.read["repeated_outcomes"] == 1


# --- drift and performance read the same predictions ------------------------------------------------------

def _hostile_log(home):
    """A log of the current model: 40 records, and lines the rule skips for each reason (outcomes given for
    them too), a record of a model that is not registered, and two files whose last lines are being written.
    Returns the request ids of the records."""
    entry = _predictions(home, np.linspace(0.05, 0.95, 40))  # r0 .. r39
    base = predlog.record(request_id="x", model_file=entry["model_file"], version=entry["version"], threshold=0.4,
                          probability=0.5, features=FEATURES, latency_ms=1.0, ts=1_800_000_100.0)

    def line(**changes):
        rec = {**base, **changes}
        if "features" in changes:
            rec["features"] = {**FEATURES, **changes["features"]}
        return json.dumps(rec, separators=(",", ":")).encode()

    bad = [line(request_id="b0", features={"tenure_months": "six"}),         # bad feature value
           line(request_id="b1", features={"plan_type": 3}),                 # bad feature value
           line(request_id="b2", probability=1.5),                            # bad probability
           line(request_id="b3", probability="0.5"),                          # bad probability
           line(request_id=""),                                              # bad key
           line(request_id="b5", ts="yesterday"),                             # no timestamp
           line(request_id="b6", model_version=None, version=None),           # no model
           line(request_id="b7").replace(b'"latency_ms":1.0', b'"latency_ms":NaN'),  # malformed
           b'{"request_id":"b8","features":', b"[1, 2]", b"\xff\xfe"]
    other = line(request_id="o0", model_version="someone_else.joblib", version="v99")  # kept, not registered
    with open(home.predictions_log, "ab") as fh:
        fh.write(b"\n".join(bad + [other]) + b"\n")
        fh.write(line(request_id="b9"))  # a whole record still being written: no newline yet
    home.logs_dir.joinpath("predictions-w1.log").write_bytes(line(request_id="r40") + b"\n"
                                                            + line(request_id="b10")[:50])  # torn
    given = [f"r{i}" for i in range(0, 41, 2)] + [f"b{i}" for i in range(11)] + ["", "o0"]
    outcomes.ingest_records([{"request_id": k or "b4", "outcome": 1} for k in given], home=home)
    return [f"r{i}" for i in range(41)]


@pytest.mark.parametrize("window", [[], ["--since", "0"], ["--last", "30"], ["--last", "5"]])
def test_a_hostile_log_gives_drift_and_performance_the_same_predictions(trained_home, capsys, window):
    kept = _hostile_log(trained_home)
    home = ["--home", str(trained_home.root), "--json"]
    assert cli.main(["drift", *home, *window]) in (0, 4, 5)
    seen = json.loads(capsys.readouterr().out)
    assert cli.main(["performance", *home, *window]) in (0, 4, 5)
    judged = json.loads(capsys.readouterr().out)
    (d,), (p,) = seen["models"], judged["models"]
    last = int(window[1]) if window[:1] == ["--last"] else len(kept)  # --last 5: drift reads the tail of the files
    assert d["n_rows"] == p["predictions"] == last
    assert (p["realized"] or {}).get("rows", 0) + (p["estimated"] or {}).get("rows", 0) == last
    assert p["with_outcome"] == len([k for k in kept[-last:] if int(k[1:]) % 2 == 0])  # none of the skipped lines
    read = judged["read"]
    if window != ["--last", "5"]:  # drift reads every line (with --last 5, only the end of the files)
        assert (read["prediction_lines"], read["prediction_records"], read["prediction_skipped"]) \
            == (seen["read"]["lines"], seen["read"]["records"], seen["read"]["skipped"])
    assert read["prediction_records"] == len(kept) + 1  # and the unregistered model's line
    assert read["prediction_skipped"] == {"bad feature value": 2, "bad key": 1, "bad probability": 2,
                                          "malformed": 3, "no model": 1, "no timestamp": 1, "not an object": 1,
                                          "truncated": 2}
    assert judged["unknown_models"] == {} and seen["unknown_models"] == {}
