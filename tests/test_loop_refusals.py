"""The loop when it cannot act: a better challenger the gate refuses (`churn compare --promote`, the watch's
`auto_promote`), and a watch-launched retrain that fails."""

from __future__ import annotations

import json

import numpy as np
import pytest

from churn_lib import cli, contract, drift, registry, simulate
from churn_lib.learn import train as training
from churn_lib.logs import monitoring, predictions
from churn_lib.loop import compare, watch

from .test_watch import Script, _age_history


def run_main(capsys, *args):
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def shown_text(home, capsys):
    """The last tick as `churn watch` prints it, from its monitoring line."""
    line = monitoring.records(monitoring.WATCH, home=home)[-1]
    return watch.Tick(**{k: line.get(k) for k in monitoring.WATCH_FIELDS}).summary()


def _registry_files(home):
    return {p.name: p.read_bytes() for p in sorted(home.registry_dir.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture
def refused_challenger(trained_home):
    """v1 current; v2 registered but refused by its gate (min_f1 0.99), set as the challenger."""
    result = training.train(home=trained_home, params=training.TrainParams(seed=7, min_f1=0.99))
    assert (result.entry["version"], result.entry["passed_gate"], result.promoted) == ("v2", False, False)
    registry.set_challenger("v2", home=trained_home)  # a challenger need not have passed its gate
    return trained_home


def _paired_logs(home, n=3000, labelled=2500, seed=0):
    """Champion (v1) lines with noisy scores, challenger (v2) lines with the true probability, outcomes drawn from it."""
    r = np.random.default_rng(seed)
    truth = r.beta(1, 3, n)
    noisy = np.clip(truth + r.normal(0, 0.15, n), 0, 1)
    y = (r.random(n) < truth).astype(int)
    features = contract.lab().example()
    lines = []
    for i in range(n):
        for role, p in (("champion", noisy[i]), ("challenger", truth[i])):
            v = "v1" if role == "champion" else "v2"
            rec = predictions.record(request_id=f"r{i}", model_file=registry.get(v, home=home)["model_file"],
                                     version=v, threshold=0.5 if v == "v1" else 0.4, probability=float(p),
                                     features=features, latency_ms=1.0, ts=1000.0 + i)
            if role == "challenger":
                rec["role"] = "challenger"
            lines.append(predictions.format_line(rec))
    home.predictions_log.parent.mkdir(parents=True, exist_ok=True)
    home.predictions_log.write_bytes(b"".join(lines))
    home.feedback_log.write_text("".join(json.dumps({"request_id": f"r{i}", "outcome": int(y[i]), "received": 1})
                                         + "\n" for i in range(labelled)))


def test_compare_promote_of_a_better_challenger_the_gate_refuses_promotes_nothing_and_exits_3(refused_challenger,
                                                                                                capsys):
    home = refused_challenger
    _paired_logs(home)
    before = _registry_files(home)
    code, out, err = run_main(capsys, "compare", "--promote")
    assert code == 3 and err == ""
    assert out.startswith("challenger_better: challenger v2 vs champion v1")
    assert "not promoted: promotion of v2 refused: v2 failed the gate (" in out and "use --force" in out
    assert _registry_files(home) == before  # no promotion, no history line, the challenger still set
    assert registry.current_entry(home=home)["version"] == "v1" and registry.read_challenger(home=home).version == "v2"
    code, out, _ = run_main(capsys, "compare", "--promote", "--json")
    shown = json.loads(out)
    assert code == 3 and shown["verdict"] == "challenger_better"
    assert shown["promotion"]["promoted"] is False and "failed the gate" in shown["promotion"]["why"]
    assert shown["promotion"]["comparison"]["labelled"] == 2500
    assert _registry_files(home) == before
    assert monitoring.history(home=home, kind="compare")["verdict"].tolist() == ["challenger_better"] * 4
    # the refusal is on disk too: each compare line says what its promotion did
    lines = monitoring.records(monitoring.COMPARE, home=home)
    assert [ln["promotion"]["promoted"] for ln in lines] == [False, False]
    assert all(ln["promotion"]["version"] == "v2" and "failed the gate" in ln["promotion"]["why"] for ln in lines)


def test_auto_promote_of_a_better_challenger_the_gate_refuses_records_the_refusal_in_the_tick(refused_challenger,
                                                                                                monkeypatch, capsys):
    home = refused_challenger
    _age_history(home)
    home.config_yaml.write_text("watch:\n  auto_promote: true\n")
    Script(monkeypatch, home, [(drift.NO_DRIFT, 0.8)])
    _paired_logs(home)
    found = compare.compare(home=home)  # the real comparison of the logs
    assert found.verdict == compare.CHALLENGER_BETTER
    monkeypatch.setattr(watch._compare, "compare", lambda **_: found)
    before = _registry_files(home)
    code, out, _ = run_main(capsys, "watch", "--once")
    assert code == 0 and out.startswith("watch: OK - ")  # the decision is the checks'; the refusal is a reason
    assert "not promoted: promotion of v2 refused: v2 failed the gate" in out
    (line,) = monitoring.records(monitoring.WATCH, home=home)
    assert line["decision"] == "ok" and line["reasons"][-1] == "auto_promote_refused"
    p = line["promotion"]
    assert (p["version"], p["promoted"], p["verdict"]) == ("v2", False, "challenger_better")
    assert "failed the gate" in p["why"] and p["comparison"]["pairs"] == 3000
    assert _registry_files(home) == before
    Script(monkeypatch, home, [(drift.NO_DRIFT, 0.8)])
    t = watch.tick(home=home)  # the next tick tries again, and is refused again
    assert t.reasons[-1] == "auto_promote_refused" and registry.current_entry(home=home)["version"] == "v1"


FAILING_RETRAIN = ("watch:\n  floor: 0.99\n  below_floor_ticks: 1\n  of_last_ticks: 1\n  min_rows: 50\n"
                   "  retrain_params: {n_rows: 30}\n")


def test_a_failed_retrain_is_recorded_with_its_reason_changes_nothing_and_starts_the_cooldown(trained_home, capsys):
    home = trained_home
    _age_history(home)
    home.config_yaml.write_text(FAILING_RETRAIN)
    simulate.simulate(200, home=home, seed=1)
    before = _registry_files(home)
    code, out, err = run_main(capsys, "watch", "--once", "--json")
    shown = json.loads(out)
    assert code == 4 and err == "" and shown["decision"] == "retrain"  # the evidence still says retrain
    run = shown["run"]
    assert run["status"] == "failed" and shown["reasons"][-2:] == ["retrain_started", "retrain_failed"]
    assert run["error"].startswith("stage prepare of v2 failed (QualityError: quality check failed: min_rows")
    assert "retrain failed: v2 (stage prepare of v2 failed" in shown_text(home, capsys)
    assert "challenger" not in run
    lines = monitoring.records(monitoring.WATCH, home=home)
    assert [ln["run"]["status"] for ln in lines] == ["started", "failed"] and lines[0]["tick"] == lines[1]["tick"]
    assert _registry_files(home) == before  # no version registered, no challenger set, no history line
    assert registry.check(home=home).ok
    code, out, _ = run_main(capsys, "watch", "--once")
    assert code == 0 and out.startswith("watch: COOLDOWN - ") and "a retrain at" in out
    assert monitoring.records(monitoring.WATCH, home=home)[-1]["reasons"][-1] == "cooldown_after_retrain"
    assert _registry_files(home) == before
