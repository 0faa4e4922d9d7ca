"""churn_lib.serving: following the current pointer, degraded service, the prediction log."""

import json
import multiprocessing
import os
import re

import pytest

from churn_lib import NoCurrentModel, registry, serving
from churn_lib.logs import predictions as predlog

from ..conftest import LAB_REQUESTS

ROW = {k: v for k, v in LAB_REQUESTS[0][0].items() if k != "request_id"}


def _service(home, **kw):
    service = serving.Service(home, **kw)
    service.start()
    return service


def _bump(path):
    """Make sure a rewrite is visible to stat() even on coarse-grained file systems."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_the_model_is_loaded_once_not_per_request(trained_home, monkeypatch):
    calls = []
    real = registry.load_model
    monkeypatch.setattr(registry, "load_model", lambda e, **kw: calls.append(e["version"]) or real(e, **kw))
    service = _service(trained_home)
    for _ in range(50):
        assert not service.holder.needs_refresh()
        service.predict(ROW)
    assert calls == ["v1"]
    assert service.health()["status"] == "ok"


def test_a_promotion_is_followed_without_restart(two_versions_home):
    service = _service(two_versions_home)
    assert service.predict(ROW).record["version"] == "v2"
    registry.rollback(home=two_versions_home)
    assert service.holder.needs_refresh()
    assert service.holder.refresh() is True
    out = service.predict(ROW).record
    assert (out["version"], out["model_version"]) == ("v1", registry.get("v1", home=two_versions_home)["model_file"])
    assert not service.holder.needs_refresh()


def test_a_broken_target_keeps_the_last_good_model_and_says_why(two_versions_home):
    home = two_versions_home
    service = _service(home, retry_interval=0.0)
    v2 = registry.get("v2", home=home)
    with open(home.models_dir / v2["model_file"], "ab") as fh:  # the artifact no longer matches its sha256
        fh.write(b"tampered")
    registry.rollback(home=home)  # v1 current
    service.holder.refresh()
    home.current_txt.write_text(v2["model_file"] + "\n")  # a hand edit back to the broken v2
    _bump(home.current_txt)
    service.holder.refresh()
    health = service.health()
    assert health["status"] == "degraded" and health["version"] == "v1"
    assert "does not match its registered sha256" in health["reason"] and "still serving" in health["reason"]
    assert health["pointer"] == v2["model_file"]
    assert service.predict(ROW).record["version"] == "v1"
    home.current_txt.write_text("churn_model_v9_20990101_000000.joblib\n")
    _bump(home.current_txt)
    service.holder.refresh()
    assert "no registered model named" in service.health()["reason"]
    registry.promote("v1", home=home)  # repaired
    service.holder.refresh()
    assert service.health()["status"] == "ok" and service.health()["reason"] is None


def test_with_no_model_at_all_the_service_is_unavailable_with_the_reason(home):
    service = _service(home)
    health = service.health()
    assert health["status"] == "unavailable" and health["current_model"] is None
    assert "no model is current" in health["reason"]
    with pytest.raises(NoCurrentModel, match="no model can be served"):
        service.predict(ROW)


def test_a_failed_log_write_is_reported_not_lost(trained_home):
    service = _service(trained_home)
    trained_home.predictions_log.mkdir()  # a folder where the file should be: every open fails
    out = service.predict(ROW)
    assert out.logged is False and "cannot write" in out.log_error
    assert out.to_dict()["log_error"] == out.log_error and out.line.endswith(b"\n")
    health = service.health()
    assert health["status"] == "degraded" and "not being logged" in health["reason"]
    assert health["prediction_log"]["failures"] == 1
    trained_home.predictions_log.rmdir()
    assert service.predict(ROW).logged is True
    assert service.health()["status"] == "ok" and service.health()["prediction_log"]["failures"] == 1


def test_batch_records_match_their_log_lines_in_order(trained_home):
    service = _service(trained_home)
    rows = [ROW] * 3
    result = service.predict_batch(rows, ["a", None, "c"])
    lines = trained_home.predictions_log.read_bytes().splitlines(keepends=True)
    assert lines == result.lines and [json.loads(x) for x in lines] == result.records
    assert [r["request_id"] for r in result.records][::2] == ["a", "c"]
    assert list(result.records[0]) == list(predlog.KEYS)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        result.records[1]["request_id"])


def _hammer(path, worker, n_batches, rows):
    for b in range(n_batches):
        records = [{"request_id": f"w{worker}-b{b}-r{r}-" + "x" * 100, "features": ROW, "ts": 1.0,
                    "pad": "y" * 200} for r in range(rows)]
        predlog.append_many(records, path=path)
        predlog.append(records[0] | {"request_id": f"w{worker}-b{b}-single"}, path=path)


def test_two_processes_appending_at_once_never_tear_a_line(tmp_path):
    path = tmp_path / "predictions.log"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hammer, args=(path, w, 40, 300)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    ids = [json.loads(line)["request_id"] for line in lines[:-1]]
    assert len(ids) == len(set(ids)) == 2 * 40 * 301
    # each batch landed whole: its rows are consecutive
    first = ids.index("w0-b7-r0-" + "x" * 100)
    assert ids[first:first + 300] == [f"w0-b7-r{r}-" + "x" * 100 for r in range(300)]


def test_check_port_refuses_a_taken_port_and_bad_values():
    import socket

    from churn_lib import ChurnError, InvalidParameter
    from serve.run import check_port

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(ChurnError, match="cannot listen on 127.0.0.1:"):
            check_port("127.0.0.1", s.getsockname()[1])
    with pytest.raises(InvalidParameter, match="--port"):
        check_port("127.0.0.1", 70000)


def test_a_pointer_that_is_not_text_is_a_reason_not_a_crash(trained_home):
    service = _service(trained_home, retry_interval=0.0)
    trained_home.current_txt.write_bytes(b"\xff\xfe\x00garbage")
    _bump(trained_home.current_txt)
    service.holder.refresh()
    health = service.health()
    assert health["status"] == "degraded" and "cannot read" in health["reason"]
    assert service.predict(ROW).record["version"] == "v1"
