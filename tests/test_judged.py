"""The judged-line cache (churn_lib.logs.judged): every read through it gives what reading the files gives.

Uncached, cold, warm, warm with lines appended (a torn last line completed
later), a rotated file, a file truncated or replaced, a rule change, a home
where the cache cannot be written, a damaged part: the same window, the same
counts of lines and of skipped lines by reason, and, end to end, the same drift
result.
"""

import json
import os
import random
import threading
from pathlib import Path

import numpy as np
import pytest

from churn_lib import drift
from churn_lib.logs import judged, query as logquery, predictions as predlog
from tests.test_records import CORPORA, GOOD, LAB, OTHER, line

MODEL = "churn_model_v1_20250101_000000.joblib"


def _record(k: int, rng: random.Random, model: str = MODEL) -> bytes:
    return line({"tenure_months": rng.randint(0, 100), "num_complaints": rng.randint(0, 5),
                 "avg_session_minutes": round(rng.random() * 50, 3), "plan_type": rng.choice(["basic", "premium"]),
                 "region": rng.choice(["NA", "EU", "AS"])}, ts=1_700_000_000 + k + rng.random() / 2,
                probability=rng.random(), model_version=model, request_id=f"r{k}")


def _lines(start: int, n: int, seed: int = 0) -> bytes:
    rng = random.Random(seed + start)
    out = []
    for k in range(start, start + n):
        out.append(_record(k, rng, model=MODEL if k % 3 else "churn_model_v2_20250101_000000.joblib"))
        if k % 97 == 0:
            out.append(b'{"features": 1}')
        if k % 89 == 0:
            out.append(b"  ")
    return b"".join(x + b"\n" for x in out)


def _values(column: np.ndarray) -> list:
    """A column's values, sorted, NaN as None (comparable)."""
    return [None if np.isnan(x) else x for x in np.sort(column).tolist()]


def _window(paths, contract=LAB, *, cache=None, last=10 ** 6, since_ts=None):
    """What drift sees of a window: per model its rows (sorted columns), category counts, and the read."""
    stats = predlog.ReadStats()
    parts = logquery.newest(paths, contract, last=last, since_ts=since_ts, stats=stats, cache=cache)
    seen = {p.model: (p.n, p.first_ts, p.last_ts, _values(p.probability),
                      {k: _values(v) for k, v in p.numeric.items()},
                      {k: dict(sorted(v.items(), key=str)) for k, v in p.categorical.items()}) for p in parts}
    return seen, stats.to_dict()


def _streamed(paths, contract=LAB, *, cache=None, since_ts=0.0):
    """The same through the streaming reader (``--since``): the rows' timestamps, and the read."""
    stats = predlog.ReadStats()
    ts = [t for b in logquery.windows(paths, contract, since_ts=since_ts, stats=stats, cache=cache)
          for t in b.ts.tolist()]
    return sorted(ts), stats.to_dict()


def _same(paths, cache, contract=LAB, **kwargs):
    """The window read directly, and through the cache: equal, and not empty of lines."""
    direct = _window(paths, contract, **kwargs)
    cached = _window(paths, contract, cache=cache, **kwargs)
    assert cached == direct
    assert _streamed(paths, contract, cache=cache) == _streamed(paths, contract)
    return cached


def _parts(cache: Path) -> list[dict]:
    return [p for m in sorted(cache.glob("*.json")) for p in json.loads(m.read_text())["parts"]]


@pytest.fixture
def logs(tmp_path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("contract,corpus", CORPORA, ids=["lab", "other"])
def test_the_record_corpus_reads_the_same_cold_warm_and_appended(logs, contract, corpus):
    path, cache = logs / "predictions.log", logs / judged.FOLDER
    body = b"".join(text + b"\n\n  \r\n" for text, _ in corpus)
    path.write_bytes(body[: len(body) // 2] + b"\n" + corpus[0][0][:40])  # a last line being written
    cold = _same([path], cache, contract)
    assert cold[1]["skipped"].get("truncated") == 1
    assert _same([path], cache, contract) == cold  # warm
    with open(path, "ab") as fh:  # the torn line completed, then the rest of the corpus
        fh.write(corpus[0][0][40:] + b"\n" + body[len(body) // 2:])
    after = _same([path], cache, contract)
    assert "truncated" not in after[1]["skipped"]
    assert after[1]["lines"] > cold[1]["lines"]


def test_only_the_appended_bytes_are_judged_and_the_parts_stay_few(logs):
    path, cache = logs / "predictions.log", logs / judged.FOLDER
    path.write_bytes(_lines(0, 2000))
    _same([path], cache, last=500)
    first = _parts(cache)
    assert [(p["start"], p["end"]) for p in first] == [(0, path.stat().st_size)]
    mtimes = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    _same([path], cache, last=500)
    assert {p: p.stat().st_mtime_ns for p in cache.iterdir()} == mtimes  # warm: nothing written
    for k in range(12):  # 1 % more each time: a part each, merged while the newer is as large as the older
        size = path.stat().st_size
        with open(path, "ab") as fh:
            fh.write(_lines(2000 + 20 * k, 20))
        _same([path], cache, last=500)
        parts = _parts(cache)
        assert parts[0]["start"] == 0 and parts[-1]["end"] == path.stat().st_size
        assert any(p["start"] <= size < p["end"] or p["start"] == size for p in parts)
    sizes = [p["end"] - p["start"] for p in _parts(cache)]
    assert len(sizes) <= 5 and sizes == sorted(sizes, reverse=True)
    assert sorted(x.name for x in cache.glob("*.parquet")) == sorted(p["name"] for p in _parts(cache))


def test_a_rotated_file_keeps_its_cache_and_the_new_file_gets_one(logs):
    path, cache = logs / "predictions.log", logs / judged.FOLDER
    path.write_bytes(_lines(0, 600))
    _same([path], cache, last=400)
    manifest = next(cache.glob("*.json"))
    rotated = logs / "predictions.log.1"
    os.rename(path, rotated)  # logrotate's way: the file keeps its inode
    path.write_bytes(_lines(600, 300))
    _same([rotated, path], cache, last=400)
    assert manifest.exists()  # the rotated file's cache, judged once
    assert len(list(cache.glob("*.json"))) == 2
    rotated.unlink()  # rotated out: its cache goes when the cache is next written
    with open(path, "ab") as fh:
        fh.write(_lines(900, 10))
    _same([path], cache, last=400)
    assert not manifest.exists() and len(list(cache.glob("*.json"))) == 1


@pytest.mark.parametrize("how", ["shrunk", "rewritten in place", "replaced"])
def test_a_truncated_or_replaced_file_is_judged_afresh(logs, how):
    path, cache = logs / "predictions.log", logs / judged.FOLDER
    path.write_bytes(_lines(0, 500))
    _same([path], cache, last=300)
    if how == "shrunk":
        with open(path, "r+b") as fh:  # copytruncate, then a few lines
            fh.truncate(0)
            fh.write(_lines(5000, 50, seed=1))
    elif how == "rewritten in place":  # the same inode, longer than before, other bytes from the start
        with open(path, "r+b") as fh:
            fh.truncate(0)
            fh.write(_lines(7000, 700, seed=2))
    else:
        tmp = logs / "new.tmp"
        tmp.write_bytes(_lines(9000, 600, seed=3))
        os.replace(tmp, path)
    seen = _same([path], cache, last=300)
    assert seen[1]["lines"] == sum(1 for x in path.read_bytes().split(b"\n") if x.strip())


def test_a_rule_change_is_another_cache(logs, monkeypatch):
    path, cache = logs / "predictions.log", logs / judged.FOLDER
    path.write_bytes(_lines(0, 300) + GOOD + b"\n")
    lab = _same([path], cache)
    other = _same([path], cache, OTHER)  # another contract: its own cache, its own reasons
    assert lab[1]["records"] != other[1]["records"] and len(list(cache.glob("*.json"))) == 2
    monkeypatch.setattr(judged, "FORMAT", judged.FORMAT + 1)  # a new format (or rule): rebuilt, never reused
    before = {p.name for p in cache.glob("*.json")}
    assert _same([path], cache) == lab
    after = {p.name for p in cache.glob("*.json")}
    assert after - before and not after & before  # the caches of the older format removed, with their parts
    assert sorted(x.name for x in cache.glob("*.parquet")) == sorted(p["name"] for p in _parts(cache))


def test_a_stale_manifest_with_the_same_size_is_not_trusted(logs):
    """The same inode and size, other bytes before the watermark: the fingerprints tell."""
    path, cache = logs / "predictions.log", logs / judged.FOLDER
    path.write_bytes(_lines(0, 200))
    _same([path], cache)
    data = bytearray(path.read_bytes())
    cut = data.rindex(b'"probability":') + len(b'"probability":')
    data[cut:cut + 3] = b"0.9" if data[cut:cut + 3] != b"0.9" else b"0.1"
    with open(path, "r+b") as fh:
        fh.write(bytes(data))
    _same([path], cache)


def test_a_home_where_the_cache_cannot_be_written_reads_the_files(logs, monkeypatch):
    path, cache = logs / "predictions.log", logs / judged.FOLDER
    path.write_bytes(_lines(0, 300))
    cache.write_text("not a folder")  # nothing can be created under it
    _same([path], cache)
    assert cache.read_text() == "not a folder"
    cache.unlink()

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(judged, "atomic_write", full)  # disk full while writing a part
    _same([path], cache)
    assert not list(cache.glob("*.json")) and not list(cache.glob("*.parquet"))
    assert not [p for p in cache.iterdir() if p.name != ".lock"]  # nothing half-written


def test_a_damaged_part_is_detected_and_rebuilt(logs):
    path, cache = logs / "predictions.log", logs / judged.FOLDER
    path.write_bytes(_lines(0, 400))
    good = _same([path], cache)
    part = next(cache.glob("*.parquet"))
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])  # truncated
    assert _same([path], cache) == good
    assert _window([path], cache=cache) == good  # and the part was written again, whole
    assert json.loads(next(cache.glob("*.json")).read_text())["parts"][0]["rows"] == good[1]["lines"]
    next(cache.glob("*.json")).write_text("{not json")
    assert _same([path], cache) == good


def test_two_readers_at_once_on_a_cold_cache_agree(logs):
    path, cache = logs / "predictions.log", logs / judged.FOLDER
    path.write_bytes(_lines(0, 3000))
    direct = _window([path], last=1000)
    seen, errors = [], []

    def read():
        try:
            seen.append(_window([path], cache=cache, last=1000))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and seen == [direct] * 3
    assert len(list(cache.glob("*.json"))) == 1


def test_a_window_since_a_time_and_the_newest_rows_read_alike(logs):
    path, cache = logs / "predictions.log", logs / judged.FOLDER
    path.write_bytes(_lines(0, 1500))
    _same([path], cache, last=200, since_ts=1_700_000_700)
    _same([path], cache, last=5000, since_ts=1_700_001_000)


def test_a_file_of_nothing_but_a_line_being_written(logs):
    path, cache = logs / "predictions.log", logs / judged.FOLDER
    path.write_bytes(GOOD[:30])
    seen = _same([path], cache)
    assert seen == ({}, {**seen[1], "lines": 1, "records": 0, "skipped": {"truncated": 1}})


def test_a_drift_check_reads_the_same_through_the_cache(trained_home, monkeypatch):
    """End to end: the drift verdict, statistics and counts with the cache cold, warm, and appended to equal
    those of a direct read."""
    from churn_lib.simulate import simulate

    simulate(n_rows=400, home=trained_home, seed=3)
    log = trained_home.predictions_log
    with open(log, "ab") as fh:
        fh.write(b'{"features": 1}\n' + GOOD[:20])

    def result(cached: bool) -> dict:
        with monkeypatch.context() as m:
            if not cached:
                m.setattr(judged, "update", lambda *a, **k: (_ for _ in ()).throw(judged.CacheError("off")))
            out = drift.check(home=trained_home, last=10 ** 6, record=False).to_dict()
        out.pop("checked_at_utc")
        return out

    def since(cached: bool) -> dict:
        with monkeypatch.context() as m:
            if not cached:
                m.setattr(judged, "update", lambda *a, **k: (_ for _ in ()).throw(judged.CacheError("off")))
            out = drift.check(home=trained_home, since=0, record=False).to_dict()
        out.pop("checked_at_utc")
        return out

    direct = result(False)
    assert direct["read"]["skipped"] == {"no features": 1, "truncated": 1}
    assert result(True) == direct  # cold
    assert (trained_home.logs_dir / judged.FOLDER).is_dir()
    assert result(True) == direct  # warm
    assert since(True) == since(False)
    simulate(n_rows=100, home=trained_home, seed=4)
    assert result(True) == result(False)


def test_a_performance_check_reads_the_same_through_the_cache(trained_home, monkeypatch):
    """End to end: the realized and estimated figures, verdicts and counts of ``performance.check`` with the
    cache cold, warm, and appended to (a torn last line completed) equal those of a direct read."""
    from churn_lib import registry
    from churn_lib.drift import performance
    from churn_lib.logs import outcomes

    entry = registry.current_entry(home=trained_home)
    rng = random.Random(5)
    log = trained_home.predictions_log

    def lines(start: int, n: int) -> bytes:
        return b"".join(_record(k, rng, model=entry["model_file"]) + b"\n" for k in range(start, start + n))

    log.write_bytes(lines(0, 300) + b'{"features": 1}\n' + b"[1]\n" + GOOD[:25])
    outcomes.ingest_records([{"request_id": f"r{k}", "outcome": k % 3 == 0} for k in range(0, 400, 2)],
                            home=trained_home)

    def result(cached: bool, **window) -> dict:
        with monkeypatch.context() as m:
            if not cached:
                m.setattr(judged, "update", lambda *a, **k: (_ for _ in ()).throw(judged.CacheError("off")))
            out = performance.check(home=trained_home, record=False, **window).to_dict()
        out.pop("checked_at_utc", None)
        return out

    direct = result(False)
    assert direct["read"]["prediction_skipped"] == {"no features": 1, "not an object": 1, "truncated": 1}
    assert direct["models"][0]["with_outcome"] == 150
    assert result(True) == direct  # cold
    assert len(list((trained_home.logs_dir / judged.FOLDER).glob("*.json"))) == 1
    assert result(True) == direct  # warm
    assert result(True, last=120) == result(False, last=120)
    with open(log, "ab") as fh:  # the torn line completed, and more lines
        fh.write(GOOD[25:] + b"\n" + lines(300, 100))
    appended = result(False)
    assert appended["read"]["prediction_skipped"] == {"no features": 1, "not an object": 1}
    assert appended["models"][0]["with_outcome"] == 200
    assert result(True) == appended


def test_drift_performance_and_compare_judge_a_log_once_and_a_watch_tick_warms_compare(trained_home, monkeypatch):
    """One cache per log file and contract, whoever reads: a drift check judges the log, then a comparison and a
    performance check write nothing (they read its parts), with the results of a direct read; lines appended are
    judged by the next watch tick, and a comparison after it again writes nothing."""
    import dataclasses

    from churn_lib import registry
    from churn_lib.drift import performance
    from churn_lib.logs import outcomes
    from churn_lib.loop import compare, watch

    entry = registry.current_entry(home=trained_home)
    log, cache = trained_home.predictions_log, trained_home.logs_dir / judged.FOLDER
    rng = random.Random(11)

    def answers(start: int, n: int) -> bytes:
        out = []
        for k in range(start, start + n):
            champion = json.loads(_record(k, rng, model=entry["model_file"]))
            out += [champion, {**champion, "role": "challenger", "probability": rng.random(), "version": "v2",
                               "model_version": "churn_model_v2_20250101_000000.joblib"}]
        return b"".join(json.dumps(x).encode() + b"\n" for x in out) + b'{"features": 1}\n'

    def written() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in cache.iterdir() if p.name != ".lock"}

    def compared(cached: bool) -> dict:
        with monkeypatch.context() as m:
            if not cached:
                m.setattr(judged, "update", lambda *a, **k: (_ for _ in ()).throw(judged.CacheError("off")))
            out = dataclasses.asdict(compare.compare(home=trained_home, record=False))
        out.pop("checked_at_utc")
        return json.loads(json.dumps(out).replace("NaN", "null"))

    log.write_bytes(answers(0, 400))
    outcomes.ingest_records([{"request_id": f"r{k}", "outcome": k % 3 == 0} for k in range(0, 400, 2)],
                            home=trained_home)
    direct = compared(False)
    assert direct["pairs"] == 400 and not cache.exists()
    drift.check(home=trained_home, last=10 ** 6, record=False)
    once = written()
    assert len([n for n in once if n.endswith(".json")]) == 1 and len(once) == 2  # one manifest, one part
    assert compared(True) == direct
    performance.check(home=trained_home, record=False)
    assert written() == once  # neither compare nor performance judged the log again

    with open(log, "ab") as fh:
        fh.write(answers(400, 100))
    watch.tick(home=trained_home)
    ticked = written()
    assert ticked != once and len([n for n in ticked if n.endswith(".json")]) == 1
    appended = compared(False)
    assert appended["pairs"] == 500
    assert compared(True) == appended
    assert written() == ticked  # warm after the watch tick: compare judged nothing
