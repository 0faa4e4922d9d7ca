"""A challenger in shadow: the registry's second pointer, `churn challenger`, and the service scoring it off
the response path (TestClient and a real uvicorn server)."""

from __future__ import annotations

import dataclasses
import json

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from churn_lib import ModelNotFound, NoCurrentModel, PromotionRefused, cli, registry
from churn_lib import contract as _contract
from churn_lib.logs import predictions as predlog

from .conftest import LAB_REQUESTS
from .serve.conftest import _two_versions_template, running_server, two_versions_home  # noqa: F401 (fixtures)

ROW = {k: v for k, v in LAB_REQUESTS[0][0].items() if k != "request_id"}
LAB = _contract.lab()


def _snapshot(home):
    return {p.name: p.read_bytes() for p in sorted(home.registry_dir.rglob("*")) if p.is_file() and p.name != ".lock"}


def _log(home):
    return [json.loads(line) for line in home.predictions_log.read_bytes().splitlines()] \
        if home.predictions_log.exists() else []


def _file(home, version):
    return registry.get(version, home=home)["model_file"]


def _metrics(client):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(client.get("/metrics").text) for s in fam.samples}


def run_main(capsys, *args):
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --- the registry ----------------------------------------------------------------------------------------------

def test_set_and_clear_write_the_pointer_its_settings_and_a_history_line_each(two_versions_home, capsys):
    home = two_versions_home
    code, out, _ = run_main(capsys, "challenger", "v1", "--sample", "0.25")
    v1 = _file(home, "v1")
    assert code == 0 and f"challenger: none -> {v1}, sample 0.25" in out
    assert (home.registry_dir / "challenger.txt").read_text() == v1 + "\n"
    assert registry.read_challenger(home=home) == registry.Challenger(
        v1, "v1", 0.25, registry.read_challenger(home=home).set_at)
    rec = registry.history(home=home)[-1]
    assert {k: rec[k] for k in ("action", "from", "to", "version", "sample")} == {
        "action": "challenger", "from": None, "to": v1, "version": "v1", "sample": 0.25}
    assert registry.current_file(home=home) == _file(home, "v2")  # the current pointer is untouched
    code, out, _ = run_main(capsys, "challenger")
    assert code == 0 and "challenger: v1" in out and "sample 0.25" in out
    before = _snapshot(home)
    code, out, _ = run_main(capsys, "challenger", "v1", "--sample", "0.25")
    assert code == 0 and "nothing changed" in out and _snapshot(home) == before
    assert registry.set_challenger("v1", sample=1.0, home=home)["sample"] == 1.0  # a new sample is a change
    assert registry.check(home=home).ok
    code, out, _ = run_main(capsys, "challenger", "--clear", "--reason", "experiment over")
    assert code == 0 and f"challenger: {v1} -> none (experiment over)" in out
    assert not (home.registry_dir / "challenger.txt").exists() and registry.read_challenger(home=home) is None
    rec = registry.history(home=home)[-1]
    assert (rec["action"], rec["from"], rec["to"], rec["version"]) == ("challenger_clear", v1, None, "v1")
    assert registry.clear_challenger(home=home) is None
    code, out, _ = run_main(capsys, "history")
    assert code == 0 and "challenger_clear" in out
    report = registry.check(home=home)
    assert report.ok and report.challenger is None


@pytest.mark.parametrize("value", ["0", "-0.5", "1.5", "nan", "half"])
def test_a_sample_outside_0_1_is_a_usage_error(two_versions_home, capsys, value):
    before = _snapshot(two_versions_home)
    with pytest.raises(SystemExit) as exc:
        cli.main(["challenger", "v1", "--sample", value])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--sample" in err and "> 0 and <= 1" in err
    assert _snapshot(two_versions_home) == before


def test_sample_and_clear_together_and_a_sample_without_version_are_usage_errors(two_versions_home, capsys):
    for args in (["challenger", "v1", "--clear"], ["challenger", "--clear", "--sample", "0.5"],
                 ["challenger", "--sample", "0.5"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(args)
        assert exc.value.code == 2, args
    capsys.readouterr()


def _other_contract(**changes):
    """The lab's contract with one feature changed."""
    return dataclasses.replace(LAB, name="other", features=tuple(
        dataclasses.replace(f, **changes[f.name]) if f.name in changes else f for f in LAB.features))


def _register(home, contract, version):
    entry, promoted = registry.register({"model": version}, {"passed_gate": False}, home=home, version=version,
                                        contract=contract)
    assert not promoted
    return entry


def test_each_refusal_says_why_and_changes_nothing(two_versions_home, capsys):
    home = two_versions_home
    renamed = dataclasses.replace(LAB, name="renamed", features=tuple(
        dataclasses.replace(f, name="region_code") if f.name == "region" else f for f in LAB.features))
    _register(home, renamed, "renamed")
    _register(home, _other_contract(tenure_months={"type": _contract.FLOAT}, plan_type={"values": ("basic",)}),
              "fewer-plans")
    _register(home, _other_contract(num_complaints={"type": _contract.CATEGORICAL, "values": ("0", "1")}),
              "retyped")
    v1 = registry.get("v1", home=home)
    before = _snapshot(home)
    cases = [
        ("nope", "no registered model named 'nope'"),
        ("v2", "challenger v2 refused: v2 is the current model"),
        ("renamed", "feature 'region_code' is not in the current model's contract"),
        ("fewer-plans", "feature 'plan_type': value(s) 'premium' of the current model's requests are not in the "
                        "challenger's contract"),
        ("retyped", "feature 'num_complaints' is integer in the current model's requests but categorical"),
    ]
    for target, message in cases:
        code, _, err = run_main(capsys, "challenger", target)
        assert code == 1 and message in err, (target, err)
        assert _snapshot(home) == before, target
    with open(home.models_dir / v1["model_file"], "ab") as fh:  # damaged: the sha256 no longer matches
        fh.write(b"x")
    before = _snapshot(home)
    with pytest.raises(PromotionRefused, match="model file of v1 does not match its registered sha256"):
        registry.set_challenger("v1", home=home)
    (home.models_dir / v1["model_file"]).unlink()
    with pytest.raises(PromotionRefused, match="model file of v1 is missing"):
        registry.set_challenger("v1", home=home)
    with pytest.raises(ModelNotFound):
        registry.set_challenger("v9", home=home)
    assert {k: v for k, v in _snapshot(home).items() if k != v1["model_file"]} == \
        {k: v for k, v in before.items() if k != v1["model_file"]}


def test_a_challenger_needs_a_current_model_to_shadow(home):
    _register(home, LAB, "v1")
    with pytest.raises(NoCurrentModel, match="nothing for a challenger to shadow"):
        registry.set_challenger("v1", home=home)
    assert not (home.registry_dir / "challenger.txt").exists()


def test_what_a_challenger_contract_must_accept():
    assert registry.incompatibility(LAB, LAB) is None
    wider = _other_contract(plan_type={"values": ("basic", "premium", "gold")}, tenure_months={"type": "float"})
    assert registry.incompatibility(LAB, wider) is None  # more categories, an integer read as a float
    fewer = dataclasses.replace(LAB, features=LAB.features[:3])
    assert registry.incompatibility(LAB, fewer) is None  # a subset of the features
    assert "float in the current model's requests but integer" in registry.incompatibility(wider, LAB)
    imputed = _other_contract(region={"on_missing": "impute"})
    assert "may be missing" in registry.incompatibility(imputed, LAB)
    assert registry.incompatibility(LAB, imputed) is None
    ignoring = _other_contract(region={"unseen": "ignore"})
    assert "accepts any category" in registry.incompatibility(ignoring, LAB)
    assert registry.incompatibility(LAB, ignoring) is None


def test_promoting_the_challenger_clears_it_in_the_same_update_and_rollback_ignores_its_lines(two_versions_home):
    home = two_versions_home
    registry.set_challenger("v1", sample=0.5, home=home)
    registry.promote("v1", home=home)
    assert registry.read_challenger(home=home) is None and registry.current_file(home=home) == _file(home, "v1")
    actions = [(r["action"], r["version"]) for r in registry.history(home=home)[-3:]]
    assert actions == [("challenger", "v1"), ("promote", "v1"), ("challenger_clear", "v1")]
    assert "became the current model" in registry.history(home=home)[-1]["reason"]
    registry.set_challenger("v2", home=home)
    registry.rollback(home=home)  # v1 -> v2, the challenger: cleared too
    assert registry.current_file(home=home) == _file(home, "v2") and registry.read_challenger(home=home) is None
    assert registry.check(home=home).ok
    assert [r["version"] for r in registry.pointer_records(registry.history(home=home))] == ["v1", "v2", "v1", "v2"]


def test_a_hand_edited_challenger_pointer_is_reported_and_reconciled(two_versions_home):
    home = two_versions_home
    pointer = home.registry_dir / "challenger.txt"
    pointer.write_text(_file(home, "v1") + "\n")  # no settings, no history line
    found = registry.read_challenger(home=home)
    assert (found.version, found.sample, found.settled) == (None, 1.0, False)
    report = registry.check(home=home)
    problems = {p.problem for p in report.problems}
    assert not report.ok and any("lags the pointer" in p for p in problems)
    assert any("does not hold the settings" in p for p in problems)
    registry.check(home=home, repair=True)
    rec = registry.history(home=home)[-1]
    assert (rec["action"], rec["to"]) == ("challenger_reconcile", _file(home, "v1"))
    pointer.write_text(_file(home, "v2") + "\n")  # the current model as its own challenger
    assert any("names the current model" in p.problem for p in registry.check(home=home).problems)
    registry.reconcile(home=home)
    assert not pointer.exists() and registry.history(home=home)[-1]["action"] == "challenger_clear"
    assert registry.check(home=home).ok


def test_sampling_is_a_hash_of_the_request_id():
    ids = [f"req-{i}" for i in range(4000)]
    half = [registry.sampled(r, 0.5) for r in ids]
    assert half == [registry.sampled(r, 0.5) for r in ids]  # the same answer every time
    assert 0.46 < sum(half) / len(ids) < 0.54
    assert all(registry.sampled(r, 1.0) for r in ids)
    tenth = [registry.sampled(r, 0.1) for r in ids]
    assert all(h for h, t in zip(half, tenth) if t)  # nested: a smaller sample is part of a larger one


# --- the service (TestClient) ------------------------------------------------------------------------------------

@pytest.fixture
def app_home(two_versions_home):
    return two_versions_home


def _app(home):
    from serve.app import create_app

    return TestClient(create_app(home))


def _strip(body):
    return {k: v for k, v in body.items() if k not in ("latency_ms", "ts")}


def test_the_answer_is_the_same_with_and_without_a_challenger(app_home):
    home = app_home
    bodies = [dict(ROW, request_id=f"same-{i}") for i in range(20)]
    with _app(home) as c:
        without = [c.post("/predict", json=b).json() for b in bodies]
        registry.set_challenger("v1", home=home)
        c.get("/health")  # picks the pointer up
        assert c.get("/health").json()["challenger"]["version"] == "v1"
        with_ = [c.post("/predict", json=b).json() for b in bodies]
    assert [_strip(b) for b in with_] == [_strip(b) for b in without]
    assert all("role" not in b and b["version"] == "v2" for b in with_)
    lines = _log(home)
    champion = [r for r in lines if "role" not in r]
    challenger = [r for r in lines if r.get("role") == "challenger"]
    assert len(champion) == 40 and [r["request_id"] for r in challenger] == [b["request_id"] for b in bodies]
    assert all(list(r) == list(predlog.KEYS) for r in champion)  # the lab's line, unchanged


def test_one_challenger_line_per_sampled_champion_line_paired_by_request_id(app_home):
    home = app_home
    registry.set_challenger("v1", sample=0.5, home=home)
    v1 = registry.get("v1", home=home)
    with _app(home) as c:
        for i in range(200):
            assert c.post("/predict", json=dict(ROW, request_id=f"half-{i}")).status_code == 200
        rows = [dict(ROW, request_id=f"batch-{i}") for i in range(100)]
        assert c.post("/predict/batch", json=rows).status_code == 200
        c.app.state.service.shadow.stop()  # what is queued is scored and logged
        health = c.get("/health").json()["challenger"]
    lines = _log(home)
    champion = {r["request_id"]: r for r in lines if "role" not in r}
    challenger = [r for r in lines if r.get("role") == "challenger"]
    sampled = {rid for rid in champion if registry.sampled(rid, 0.5)}
    assert sorted(r["request_id"] for r in challenger) == sorted(sampled)  # exactly one each, none other
    assert 0.35 < len(sampled) / len(champion) < 0.65
    assert (health["status"], health["sample"], health["predictions"], health["failures"]) == (
        "ok", 0.5, len(challenger), 0)
    expected = round(__import__("churn_lib").scoring.load("v1", home=home).proba_one(ROW), 6)
    for r in challenger:
        c = champion[r["request_id"]]
        assert list(r) == [*predlog.KEYS, "role"]
        assert (r["model_version"], r["version"], r["threshold"]) == (v1["model_file"], "v1", v1["threshold"])
        assert r["probability"] == expected and r["prediction"] == int(expected >= v1["threshold"])
        assert r["features"] == c["features"] and r["ts"] == c["ts"]


def test_a_failing_challenger_is_counted_and_dropped_and_the_client_gets_200(app_home):
    home = app_home
    registry.set_challenger("v1", home=home)
    with _app(home) as c:
        service = c.app.state.service
        c.get("/health")
        scorer = service.challenger.scorer

        def broken(row):
            raise RuntimeError("boom")

        scorer.proba_one = broken
        answers = [c.post("/predict", json=dict(ROW, request_id=f"fail-{i}")) for i in range(5)]
        service.shadow.stop()  # score what is queued
        health = c.get("/health").json()
        m = _metrics(c)
    assert [a.status_code for a in answers] == [200] * 5 and all(a.json()["version"] == "v2" for a in answers)
    ch = health["challenger"]
    assert ch["status"] == "degraded" and "RuntimeError: boom" in ch["reason"] and ch["failures"] >= 1
    assert health["status"] == "degraded" and "challenger" in health["reason"] and health["version"] == "v2"
    assert m[("churn_role_failures_total", (("role", "challenger"),))] == ch["failures"]
    assert m[("churn_role_predictions_total", (("role", "champion"),))] == 5
    assert not [r for r in _log(home) if r.get("role")]


def test_a_challenger_damaged_while_served_is_dropped(app_home):
    home = app_home
    registry.set_challenger("v1", home=home)
    with _app(home) as c:
        assert c.post("/predict", json=dict(ROW, request_id="before")).status_code == 200
        c.app.state.service.shadow.stop()
        with open(home.models_dir / _file(home, "v1"), "ab") as fh:
            fh.write(b"tampered")
        assert c.post("/predict", json=dict(ROW, request_id="after")).status_code == 200
        c.app.state.service.shadow.stop()
        health = c.get("/health").json()
    assert health["challenger"]["status"] == "degraded" and "altered while served" in health["challenger"]["reason"]
    assert [r["request_id"] for r in _log(home) if r.get("role")] == ["before"]


def test_health_and_metrics_count_the_challenger(app_home):
    home = app_home
    with _app(home) as c:
        assert c.get("/health").json()["challenger"] == {
            "status": "none", "reason": None, "pointer": None, "model_file": None, "version": None,
            "threshold": None, "sample": None, "loaded_at": None, "predictions": 0, "failures": 0,
            "last_error": None}
        registry.set_challenger("v1", sample=1.0, home=home)
        for i in range(3):
            c.post("/predict", json=dict(ROW, request_id=f"m-{i}"))
        c.app.state.service.shadow.stop()
        m = _metrics(c)
        from serve.models import HealthResponse

        health = HealthResponse.model_validate(c.get("/health").json())
        registry.clear_challenger(home=home)
        assert c.get("/health").json()["challenger"]["status"] == "none"
    assert m[("churn_role_predictions_total", (("role", "challenger"),))] == 3
    assert m[("churn_role_predictions_total", (("role", "champion"),))] == 3
    assert m[("churn_predictions_total", (("prediction", "1"), ("version", "v2")))] == 3  # the champion's only
    assert (health.challenger.version, health.challenger.predictions, health.status) == ("v1", 3, "ok")


def test_drift_of_the_current_model_reads_only_its_own_lines(app_home):
    from churn_lib import drift

    home = app_home
    registry.set_challenger("v1", home=home)
    with _app(home) as c:
        for i in range(30):
            c.post("/predict", json=dict(ROW, request_id=f"d-{i}"))
    current = drift.check(home=home, last=1000, record=False)
    assert [(m.version, m.n_rows) for m in current.models] == [("v2", 30)]
    both = drift.check(home=home, last=1000, model="all", record=False)
    assert sorted((m.version, m.n_rows) for m in both.models) == [("v1", 30), ("v2", 30)]


# --- a real server -------------------------------------------------------------------------------------------------

def test_a_running_server_follows_the_challenger_pointer_without_a_restart(two_versions_home):
    home = two_versions_home

    def ask(c, prefix, n=20):
        for i in range(n):
            r = c.post("/predict", json=dict(ROW, request_id=f"{prefix}-{i}"))
            assert r.status_code == 200 and r.json()["version"] == "v2" and "role" not in r.json()

    with running_server(home) as url, httpx.Client(base_url=url, timeout=10) as c:
        ask(c, "none")
        registry.set_challenger("v1", home=home)
        c.get("/health")
        ask(c, "set")
        health = c.get("/health").json()["challenger"]
        registry.clear_challenger(home=home)
        c.get("/health")
        ask(c, "cleared")
        cleared = c.get("/health").json()["challenger"]
    assert (health["status"], health["version"], health["sample"]) == ("ok", "v1", 1.0)
    assert cleared["status"] == "none"
    shadow = sorted(r["request_id"] for r in _log(home) if r.get("role") == "challenger")
    assert shadow == sorted(f"set-{i}" for i in range(20))
