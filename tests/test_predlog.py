"""Reading the prediction log: garbage is skipped and counted, several files are
one stream, the tail is read from the end, memory does not follow the log.

Two readers: :func:`predlog.read_tail` (the end of the files, line by line,
for small windows) and :func:`logquery.windows` (DuckDB, every line, for the
rest); they must give the same rows."""

import json
import os
from collections import Counter

import numpy as np
import pytest

from churn_lib.contract import records
from churn_lib.logs import query as logquery, predictions as predlog

FEATURES = {"tenure_months": 6, "num_complaints": 3, "avg_session_minutes": 12.5, "plan_type": "basic",
            "region": "NA"}


def record(i, *, ts=None, model="churn_model_v1_20250101_000000.joblib", version="v1", **changes):
    rec = {"request_id": f"r{i}", "model_version": model, "prediction": 1, "probability": round(i % 100 / 100, 6),
           "latency_ms": 1.5, "features": {**FEATURES, "tenure_months": i % 60}, "ts": 1_700_000_000.0 + i if ts is None
           else ts, "threshold": 0.5, "version": version}
    rec.update(changes)
    return rec


def write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as fh:
        for line in lines:
            fh.write(line if isinstance(line, bytes) else predlog.format_line(line))


GARBAGE = [
    (b"not json at all\n", "malformed"),
    (b"\n", None),  # a blank line is no line
    (b"   \n", None),
    (b"[1, 2, 3]\n", "not an object"),
    (b'{"hello": "world"}\n', "no features"),
    (predlog.format_line(record(1, features={**FEATURES, "tenure_months": True})), "bad feature value"),
    (predlog.format_line(record(1, features={**FEATURES, "region": 4})), "bad feature value"),
    (predlog.format_line(record(1, ts="yesterday")), "no timestamp"),
    (predlog.format_line(record(1, probability=1.5)), "bad probability"),
    (predlog.format_line(record(1, probability=None)), "bad probability"),
    (predlog.format_line(record(1, model_version=None, version=None)), "no model"),
    (predlog.format_line(record(1, request_id="r" * 129)), "bad key"),
    (predlog.format_line(record(1)).rstrip(b"\n") + b'{"x": 1}\n', "malformed"),  # two objects, one line
    (b'{"features": {"tenure_months": NaN}}\n', "malformed"),  # not JSON (DuckDB's parser takes it)
    (b"\xff\xfe\x00garbage\n", "malformed"),
    (b'{"model_version": "m", "features": {"tenure_months": 1\n', "malformed"),  # torn line
]


def garbage_log(path):
    """20 good records with every kind of garbage between them and a truncated last line."""
    lines = []
    for i, (bad, _) in enumerate(GARBAGE):
        lines += [record(i), bad]
    lines += [record(i) for i in range(100, 105)]
    lines.append(predlog.format_line(record(999))[:40])  # a write in progress: no newline
    write(path, lines)
    expected = {}
    for _, reason in GARBAGE:
        if reason:
            expected[reason] = expected.get(reason, 0) + 1
    expected["truncated"] = 1
    return len(GARBAGE) + 5, expected


@pytest.mark.parametrize("chunk_bytes", [1, 64, 1000, predlog.CHUNK_BYTES])
def test_garbage_lines_are_skipped_counted_and_explained(tmp_path, chunk_bytes):
    path = tmp_path / "predictions.log"
    n_good, expected = garbage_log(path)
    stats = predlog.ReadStats()
    batch = predlog.read_tail([path], 1000, stats=stats, chunk_bytes=chunk_bytes)
    assert len(batch) == n_good == stats.records
    assert stats.skipped == expected
    assert stats.lines == n_good + sum(expected.values())
    assert batch.numeric["tenure_months"].tolist() == [i % 60 for i in range(len(GARBAGE))] + list(range(40, 45))
    assert "skipped" in stats.summary() and stats.to_dict()["skipped_total"] == sum(expected.values())


def test_duckdb_sees_the_same_rows_and_counts_the_same_garbage(tmp_path):
    path = tmp_path / "predictions.log"
    n_good, expected = garbage_log(path)
    stats = predlog.ReadStats()
    batch = logquery.read_window([path], stats=stats, last=1000)
    tail = predlog.read_tail([path], 1000)
    assert len(batch) == n_good == stats.records
    assert stats.skipped == expected
    assert Counter(batch.ts.tolist()) == Counter(tail.ts.tolist())
    assert Counter(batch.categorical["region"].tolist()) == Counter(tail.categorical["region"].tolist())


def test_the_lab_reader_keeps_working_on_the_same_log(tmp_path):
    path = tmp_path / "predictions.log"
    n_good, expected = garbage_log(path)
    stats = predlog.ReadStats()
    records = list(predlog.iter_records([path], stats))
    assert len(records) == n_good and stats.skipped == expected


def test_the_labs_own_lines_are_read(tmp_path):
    """json.dumps defaults (spaces), only the lab's keys, region NA."""
    path = tmp_path / "predictions.log"
    lab = {"request_id": "req-001", "model_version": "churn_model_v1_20240101_000000.joblib", "prediction": 1,
           "probability": 0.907065, "latency_ms": 12.3, "features": FEATURES, "ts": 1_700_000_000}
    path.write_text(json.dumps(lab) + "\n" + json.dumps(lab) + "\n")
    for batch in (predlog.read_tail([path], 10), logquery.read_window([path])):
        assert len(batch) == 2
        assert batch.model.tolist() == [lab["model_version"]] * 2
        assert batch.categorical["region"].tolist() == ["NA", "NA"]
        assert batch.probability.tolist() == [0.907065] * 2


def test_a_line_without_model_file_is_known_by_its_label(tmp_path):
    path = tmp_path / "predictions.log"
    write(path, [record(1, model_version=None, version="v7"), record(2)])
    for batch in (predlog.read_tail([path], 10), logquery.read_window([path], last=10)):
        assert batch.model.tolist() == ["v7", "churn_model_v1_20250101_000000.joblib"]


def test_an_overlong_line_is_skipped_without_holding_it(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "MAX_LINE_BYTES", 1000)
    path = tmp_path / "predictions.log"
    write(path, [record(1), b"x" * 5000 + b"\n", record(2), b"y" * 5000])
    stats = predlog.ReadStats()
    assert len(predlog.read_tail([path], 10, stats=stats, chunk_bytes=64)) == 2
    assert stats.skipped == {"malformed": 1, "truncated": 1}, stats.skipped


def test_both_readers_read_past_a_long_line(tmp_path):
    path = tmp_path / "predictions.log"
    write(path, [record(1), b"x" * (records.MAX_LINE_BYTES + 10) + b"\n", record(2, request_id="y" * 50_000),
                 record(3)])
    for read in (logquery.read_window, lambda paths, stats: predlog.read_tail(paths, 10, stats=stats)):
        stats = predlog.ReadStats()
        assert len(read([path], stats=stats)) == 2
        assert stats.skipped == {"malformed": 1, "bad key": 1}


def test_rotated_and_worker_files_are_one_stream(home):
    logs = home.logs_dir
    write(logs / "predictions.log.2", [record(i) for i in range(0, 10)])
    write(logs / "predictions.log.1", [record(i) for i in range(10, 20)])
    write(logs / "predictions-w1.log", [record(i) for i in range(20, 40, 2)])
    write(logs / "predictions-w2.log", [record(i) for i in range(21, 40, 2)])
    write(logs / "predictions.log", [record(i) for i in range(40, 50)])
    write(logs / "predictions.log.bak", [b"not a log of ours\n"])
    files = predlog.log_files(home=home)
    assert [p.name for p in files] == ["predictions.log.2", "predictions.log.1", "predictions-w1.log",
                                       "predictions-w2.log", "predictions.log"]
    stats = predlog.ReadStats()
    batch = logquery.read_window(files, stats=stats)
    assert sorted(batch.ts - 1_700_000_000) == list(range(50)) and stats.skipped_total == 0
    assert stats.files == [str(p) for p in files]
    # the last 25 by time, across the worker files
    for tail in (predlog.read_tail(files, 25), logquery.read_window(files, last=25)):
        assert (tail.ts - 1_700_000_000).tolist() == list(range(25, 50))
    since = logquery.read_window(files, since_ts=1_700_000_045, models={record(0)["model_version"]})
    assert sorted(since.ts - 1_700_000_000) == list(range(45, 50))
    assert len(logquery.read_window(files, models={"v9"})) == 0


def test_the_tail_reader_leaves_old_files_unopened(home):
    logs = home.logs_dir
    write(logs / "predictions.log.1", [record(i) for i in range(100)])
    write(logs / "predictions.log", [record(i) for i in range(100, 200)])
    os.utime(logs / "predictions.log.1", (1_700_000_099, 1_700_000_099))
    os.utime(logs / "predictions.log", (1_700_000_199, 1_700_000_199))
    stats = predlog.ReadStats()
    tail = predlog.read_tail(predlog.log_files(home=home), 50, stats=stats, chunk_bytes=4096)
    assert len(tail) == 50 and stats.files == [str(logs / "predictions.log")]
    assert stats.lines < 100  # only the end of the current file was read


def test_the_newest_rows_are_kept_in_bounded_memory():
    rng = np.random.default_rng(0)
    batches = []
    for k in range(50):
        ts = rng.permutation(100) + 100.0 * k
        b = predlog.Batch.empty()
        batches.append(predlog.Batch(np.full(100, "m", dtype=object), ts, np.zeros(100),
                                     {n: ts.copy() for n in b.numeric}, {c: np.full(100, "x", dtype=object)
                                                                          for c in b.categorical}))
    dec = predlog.decoder()
    out = logquery._newest(iter(batches), 120, dec)
    assert out.ts.tolist() == list(np.arange(4880.0, 5000.0))
    assert out.numeric["tenure_months"].tolist() == out.ts.tolist()  # rows kept whole
    assert len(logquery._newest(iter([]), 5, dec)) == 0


def test_the_newest_rows_of_a_window_are_chosen_in_duckdb(tmp_path):
    """The newest 120 records by time, whatever their order in the files, each model apart; bad lines counted."""
    order = np.random.default_rng(0).permutation(500)
    rows = [record(int(i), ts=1_700_000_000.0 + float(i), model="b.joblib" if i % 5 == 0 else "a.joblib")
            for i in order]
    write(tmp_path / "predictions.log.1", rows[:250] + [b"not json\n"])
    write(tmp_path / "predictions.log", rows[250:])
    stats = predlog.ReadStats()
    parts = logquery.newest([tmp_path / "predictions.log.1", tmp_path / "predictions.log"], last=120, stats=stats)
    assert (stats.lines, stats.records, stats.skipped) == (501, 500, {"malformed": 1})
    newest = sorted(range(500), key=lambda i: -i)[:120]
    for part, model in zip(parts, ("a.joblib", "b.joblib")):
        mine = [i for i in newest if (i % 5 == 0) == (model == "b.joblib")]
        assert (part.model, part.n, part.first_ts, part.last_ts) == (model, len(mine), 1_700_000_000.0 + min(mine),
                                                                    1_700_000_000.0 + max(mine))
        assert sorted(part.numeric["tenure_months"].tolist()) == sorted(float(i % 60) for i in mine)  # rows whole
        assert sorted(part.probability.tolist()) == sorted(round(i % 100 / 100, 6) for i in mine)
        assert part.categorical["region"] == {"NA": len(mine)}
    assert len(parts) == 2
    assert logquery.newest([tmp_path / "nope.log"], last=5) == []


@pytest.mark.parametrize("last", [305, 390, 100, 400])
def test_the_newest_rows_at_an_edge_of_equal_times_are_counted_once(tmp_path, last):
    """Times in groups of ten: the window's edge falls inside a group, of which only some rows are kept. Whether
    the edge is found among the rows left out (few) or the rows kept, every column of the window holds the same
    ``last`` rows: all those newer than the edge and enough of it."""
    order = np.random.default_rng(1).permutation(400)
    write(tmp_path / "predictions.log", [record(int(i), ts=1_700_000_000.0 + float(i // 10)) for i in order])
    write(tmp_path / "predictions.log", [record(i, ts=1_700_000_050.0, model="other.joblib") for i in range(50)]
          + [record(i, ts=1_600_000_000.0) for i in range(50)])  # another model's rows, and rows before --since
    (part,) = logquery.newest([tmp_path / "predictions.log"], last=last, models=[record(0)["model_version"]],
                              since_ts=1_650_000_000.0)
    edge = 1_700_000_000.0 + float((400 - last) // 10)
    tenure = part.numeric["tenure_months"]
    assert part.n == last == len(tenure) == len(part.probability) == sum(part.categorical["region"].values())
    assert part.first_ts == edge and part.last_ts == 1_700_000_039.0
    newer = sorted(float(i % 60) for i in range(400) if 1_700_000_000.0 + i // 10 > edge)
    assert len(newer) < last <= len(newer) + 10
    taken = sorted(tenure.tolist())
    for value in newer:  # every row newer than the edge is in
        taken.remove(value)
    assert len(taken) == last - len(newer)


def test_a_missing_log_is_an_empty_stream(home):
    assert predlog.log_files(home=home) == []
    assert len(predlog.read_tail([], 10)) == 0
    assert list(logquery.windows([])) == [] and len(logquery.read_window([home.root / "nope.log"])) == 0


@pytest.mark.parametrize("seed", range(5))
def test_both_readers_agree_on_random_logs_and_chunk_sizes(tmp_path, seed, monkeypatch):
    monkeypatch.setattr(records, "MAX_LINE_BYTES", 2000)
    rng = np.random.default_rng(seed)
    lines, good = [], 0
    for i in range(300):
        if rng.random() < 0.8:
            lines.append(predlog.format_line(record(i)))
            good += 1
        elif rng.random() < 0.3:
            lines.append(b"z" * int(rng.integers(2001, 6000)) + b"\n")
        else:
            lines.append(GARBAGE[int(rng.integers(len(GARBAGE)))][0])
    if seed % 2:
        lines.append(b'{"model_version": "m", "proba')
    path = tmp_path / "predictions.log"
    write(path, lines)
    chunk = int(rng.integers(1, 3000))
    duck, back = predlog.ReadStats(), predlog.ReadStats()
    both = logquery.read_window([path], stats=duck)
    tail = predlog.read_tail([path], 10_000, stats=back, chunk_bytes=chunk)
    blank = sum(line.strip() == b"" for line in lines)
    assert back.lines == len(lines) - blank and back.records == len(tail) >= good
    assert duck.to_dict() | {"files": [], "bytes_read": 0} == back.to_dict() | {"files": [], "bytes_read": 0}
    assert Counter(tail.ts.tolist()) == Counter(both.ts.tolist())
