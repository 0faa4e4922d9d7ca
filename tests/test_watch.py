"""The watch: churn.yaml's watch section, the decisions of scripted ticks (the drift and performance checks
replaced by results built from their dataclasses), the lock, a real retrain that ends with a challenger, and a
watch killed in the middle of its retrain."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import pytest

from churn_lib import cli, drift, registry, simulate
from churn_lib.drift import performance
from churn_lib.exceptions import InvalidParameter
from churn_lib.logs import monitoring
from churn_lib.loop import compare, policy, watch
from churn_lib.run import runner

from .serve.conftest import _two_versions_template, two_versions_home  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[1]


def run_main(capsys, *args):
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _age_history(home, days=2):
    """Move every registry history line ``days`` back: the registration of the fixture is no recent change."""
    lines = []
    for line in home.history_jsonl.read_text().splitlines():
        rec = json.loads(line)
        when = datetime.fromisoformat(rec["ts"].replace("Z", "+00:00")) - timedelta(days=days)
        rec["ts"] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lines.append(json.dumps(rec))
    home.history_jsonl.write_text("\n".join(lines) + "\n")


def _watch_lines(home):
    return monitoring.records(monitoring.WATCH, home=home)


class Script:
    """Replaces the two checks: each tick gets the next (drift verdict, F1) and records the window it was given."""

    def __init__(self, monkeypatch, home, steps, *, with_outcome=300, predictions=300):
        self.home, self.steps, self.since = home, list(steps), []
        self.with_outcome, self.predictions = with_outcome, predictions
        monkeypatch.setattr(drift, "check", self.drift)
        monkeypatch.setattr(performance, "check", self.performance)
        self.runs = []
        monkeypatch.setattr(runner, "run", self.run)  # a retrain imports the runner when it runs

    def drift(self, *, home, since, model, thresholds, **_):
        verdict, _f1 = self.steps[0]
        e = registry.current_entry(home=home)
        stats = [drift.Statistic("tenure_months", "psi", 0.6, True, effect=0.6),
                 drift.Statistic("region", "category_shift", 0.02, False, effect=0.02)]
        rows = 0 if verdict == drift.INSUFFICIENT else 500
        m = drift.ModelDrift(e["version"], e["model_file"], verdict, rows, "scripted",
                             statistics=stats if verdict == drift.DRIFT else stats[1:])
        return drift.DriftResult(verdict, [m], {"since_ts": since}, {}, {})

    def performance(self, *, home, since, model, floor, min_rows, **_):
        _verdict, f1 = self.steps.pop(0)
        self.since.append(since)
        e = registry.current_entry(home=home)
        floor = e.get("gate_f1") if floor is None else floor
        n_out = self.with_outcome if f1 is not None else 10
        real = {"rows": n_out, "churn_rate": 0.3, "roc_auc": 0.8, "f1": f1, "precision": 0.6, "recall": 0.7,
                "brier": 0.2}
        v = performance.INSUFFICIENT if f1 is None else performance.BELOW_FLOOR if f1 < floor else performance.OK
        m = performance.ModelPerformance(e["version"], e["model_file"], max(self.predictions, n_out), n_out, None,
                                         None, real, None, None, None, floor, v, "scripted")
        return performance.PerformanceResult(v, [m], {"since_ts": since}, {})

    def run(self, **kwargs):
        """A retrain whose model the gate refused: the tick's bookkeeping without a notebook run."""
        self.runs.append(kwargs)
        return {"version": "v9", "seconds": 0.1, "entry": {"passed_gate": False, "gate_reasons": ["F1 too low"]}}


@pytest.fixture
def aged_home(trained_home):
    _age_history(trained_home)
    return trained_home


# --- policy ---------------------------------------------------------------------------------------

def test_no_policy_file_gives_the_documented_watch_defaults(home):
    w = policy.load(home=home).watch
    assert (w.metric, w.floor, w.below_floor_ticks, w.of_last_ticks, w.cooldown, w.window, w.min_rows,
            w.min_positives, w.sample, w.auto_promote) == ("f1", None, 2, 3, "24h", None, 100, 10, 1.0, False)
    assert w.sha256() == policy.WatchPolicy().sha256() != policy.WatchPolicy(sample=0.5).sha256()


@pytest.mark.parametrize("text, key, words", [
    ("watch:\n  cooldown: 1 day\n", "watch.cooldown", "watch.cooldown must be an age such as 30m, 24h or 7d"),
    ("watch:\n  below_floor_ticks: 4\n", "watch.below_floor_ticks", "must be at most of_last_ticks (3), got 4"),
    ("watch:\n  sample: 0\n", "watch.sample", "watch.sample must be a number > 0 and <= 1, got 0"),
    ("watch:\n  metric: roc_auc\n", "watch.floor", "watch.floor must be given with metric roc_auc"),
    ("watch:\n  auto_promote: maybe\n", "watch.auto_promote", "watch.auto_promote must be true or false"),
    ("watch:\n  retrain: true\n", "watch.retrain", "watch.retrain is not a key of watch"),
    ("watch:\n  retrain_params: {n_row: 5}\n", "watch.retrain_params", "unknown parameter(s) n_row"),
    ("watch:\n  window: 0h\n", "watch.window", "watch.window must be an age"),
])
def test_a_bad_watch_policy_is_one_line_naming_its_key(home, capsys, text, key, words):
    home.config_yaml.write_text(text)
    with pytest.raises(InvalidParameter) as err:
        policy.load(home=home)
    assert err.value.name == key and words in str(err.value)
    code, out, errout = run_main(capsys, "watch", "--once")
    assert code == 1 and errout.startswith("churn: error: churn.yaml: " + key) and errout.count("\n") == 1


# --- decisions on scripted ticks ------------------------------------------------------------------

def test_drift_alone_is_investigate_and_the_line_holds_the_evidence(aged_home, monkeypatch, capsys):
    Script(monkeypatch, aged_home, [(drift.DRIFT, 0.80)])
    code, out, _ = run_main(capsys, "watch", "--once", "--json")
    shown = json.loads(out)
    assert code == 4 and shown["decision"] == "investigate"
    assert shown["reasons"] == ["drift", "realized_at_or_above_floor"]
    (line,) = _watch_lines(aged_home)
    assert line["decision"] == "investigate" and line["version"] == "v1" and line["run"] is None
    assert line["evidence"]["drift"]["top"][0] == {"feature": "tenure_months", "name": "psi", "value": 0.6,
                                                   "effect": 0.6, "p_value": None}
    perf = line["evidence"]["performance"]
    assert (perf["kind"], perf["value"], perf["floor"], perf["with_outcome"], perf["positives"]) == \
        ("realized", 0.80, 0.65, 300, 90)
    assert line["policy"]["sha256"] == policy.WatchPolicy().sha256()


def test_a_drop_held_for_2_of_3_ticks_retrains_then_the_cooldown_holds(aged_home, monkeypatch, capsys):
    script = Script(monkeypatch, aged_home, [(drift.NO_DRIFT, 0.50), (drift.NO_DRIFT, 0.80),
                                             (drift.NO_DRIFT, 0.55), (drift.NO_DRIFT, 0.50)])
    first = watch.tick(home=aged_home)
    assert first.decision == "ok" and first.reasons == ["no_drift", "realized_below_floor"]
    assert watch.tick(home=aged_home).decision == "ok"
    code, out, _ = run_main(capsys, "watch", "--once")
    assert code == 4 and out.startswith("watch: RETRAIN - realized f1 0.5500 < floor 0.6500; below the floor in "
                                        "2 of the last 3 tick(s)")
    assert "refused by the gate: not made the challenger" in out
    assert script.runs == [{"home": aged_home, "stages": policy.RETRAIN_STAGES, "params": None, "promote": False}]
    fourth = watch.tick(home=aged_home)
    assert fourth.decision == "cooldown" and "cooldown_after_retrain" in fourth.reasons and len(script.runs) == 1
    lines = _watch_lines(aged_home)
    started, ended = lines[2], lines[3]
    assert started["tick"] == ended["tick"] and started["run"]["status"] == "started"
    assert ended["run"]["status"] == "ok" and ended["run"]["version"] == "v9"
    assert ended["reasons"][-2:] == ["retrain_started", "retrain_refused_by_gate"]
    # each tick reads the window since the last one
    assert script.since[0] == 0.0 and script.since[1] == lines[0]["window"]["until_ts"]


def test_a_drop_in_one_tick_only_is_ok(aged_home, monkeypatch):
    Script(monkeypatch, aged_home, [(drift.NO_DRIFT, 0.50), (drift.NO_DRIFT, 0.80), (drift.NO_DRIFT, 0.80),
                                    (drift.NO_DRIFT, 0.50)])
    decisions = [watch.tick(home=aged_home).decision for _ in range(4)]
    assert decisions == ["ok"] * 4  # the drops of the first and the fourth tick are 3 ticks apart: 1 of 3 each


def test_a_recent_promotion_makes_a_due_retrain_wait(trained_home, monkeypatch):
    script = Script(monkeypatch, trained_home, [(drift.NO_DRIFT, 0.5), (drift.DRIFT, 0.5)])
    trained_home.config_yaml.write_text("watch:\n  below_floor_ticks: 1\n  of_last_ticks: 1\n  cooldown: 1h\n")
    t = watch.tick(home=trained_home)  # v1 was registered (and made current) minutes ago
    assert t.decision == "cooldown" and t.reasons[-1] == "cooldown_after_promotion" and not script.runs
    assert "less than 1h ago" in t.message
    _age_history(trained_home)
    assert watch.tick(home=trained_home).decision == "retrain" and len(script.runs) == 1


def test_too_few_predictions_is_insufficient_data(aged_home, monkeypatch, capsys):
    Script(monkeypatch, aged_home, [(drift.INSUFFICIENT, None)], predictions=10)
    code, out, _ = run_main(capsys, "watch", "--once")
    assert code == 5 and out.startswith("watch: INSUFFICIENT_DATA - 10 prediction(s), 10 with an outcome")
    assert _watch_lines(aged_home)[0]["reasons"] == ["drift_insufficient_data", "performance_insufficient_data"]


def test_too_few_churners_among_the_outcomes_is_not_a_realized_figure(aged_home, monkeypatch):
    aged_home.config_yaml.write_text("watch:\n  min_positives: 100\n")  # 300 outcomes, 90 churners
    Script(monkeypatch, aged_home, [(drift.NO_DRIFT, 0.5)])
    t = watch.tick(home=aged_home)
    assert t.decision == "ok" and t.reasons == ["no_drift", "performance_insufficient_data"]


def test_a_second_watch_says_locked_and_its_line_does_not_count(aged_home, monkeypatch, capsys):
    Script(monkeypatch, aged_home, [(drift.NO_DRIFT, 0.5)])
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
                               "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
                               "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'4242\\n')\n"
                               "print('held', flush=True); time.sleep(60)",
         str(aged_home.reports_dir / watch.LOCK_NAME)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, out, _ = run_main(capsys, "watch", "--once")
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert code == 0 and out.startswith("watch: LOCKED - another watch (pid 4242) holds")
    assert _watch_lines(aged_home)[0]["decision"] == "locked"
    t = watch.tick(home=aged_home)  # the lock is free again; the locked line is not a tick to read from
    assert t.decision == "ok" and t.window["since_ts"] == 0.0


def test_auto_promote_promotes_a_better_challenger_through_the_gate(two_versions_home, monkeypatch):
    home = two_versions_home
    _age_history(home)
    home.config_yaml.write_text("watch:\n  auto_promote: true\n")
    registry.set_challenger("v1", home=home)
    Script(monkeypatch, home, [(drift.NO_DRIFT, 0.8)])
    seen = {}

    def better(*, home, since, **_):
        seen["since"] = since
        return compare.Comparison(
            compare.CHALLENGER_BETTER, "f1", "f1 difference 95 % interval [+0.0100, +0.0500], p = 0.002: above 0",
            "f1", {"champion": {"version": "v2"}, "challenger": {"version": "v1"}}, pairs=900, labelled=600,
            positives=180, agreement=0.9, score_correlation=0.95, psi=0.01, realized=None, estimated=None,
            differences={"f1": {"difference": 0.03, "interval": [0.01, 0.05], "p_value": 0.002}}, mcnemar=None,
            window={"since_ts": since}, read={}, policy={})

    monkeypatch.setattr(watch._compare, "compare", better)
    t = watch.tick(home=home)
    assert t.promotion["promoted"] and t.reasons[-1] == "auto_promoted" and t.decision == "ok"
    assert registry.current_entry(home=home)["version"] == "v1" and registry.read_challenger(home=home) is None
    promoted = [r for r in registry.history(home=home) if r["action"] == "promote"][-1]
    assert "challenger_better" in promoted["reason"] and '"labelled":600' in promoted["reason"]
    assert seen["since"] == pytest.approx(watch._ts(registry.history(home=home)[-3]["ts"]))


def test_without_auto_promote_the_challenger_waits_for_a_person(two_versions_home, monkeypatch):
    _age_history(two_versions_home)
    registry.set_challenger("v1", home=two_versions_home)
    Script(monkeypatch, two_versions_home, [(drift.NO_DRIFT, 0.8)])
    monkeypatch.setattr(watch._compare, "compare", lambda **_: pytest.fail("compare without auto_promote"))
    t = watch.tick(home=two_versions_home)
    assert t.promotion is None and registry.current_entry(home=two_versions_home)["version"] == "v2"


# --- a real retrain, and a watch killed during one -------------------------------------------------

RETRAIN_POLICY = "watch:\n  floor: 0.99\n  below_floor_ticks: 1\n  of_last_ticks: 1\n  min_rows: 50\n"


def test_a_retrain_tick_registers_a_challenger_and_leaves_the_current_model(aged_home, capsys):
    aged_home.config_yaml.write_text(RETRAIN_POLICY)
    simulate.simulate(200, home=aged_home, seed=1)  # logged answers of v1, no outcomes: the estimate decides
    current = aged_home.current_txt.read_bytes()
    code, out, _ = run_main(capsys, "watch", "--once", "--json")
    shown = json.loads(out)
    assert code == 4 and shown["decision"] == "retrain"
    assert shown["evidence"]["performance"]["kind"] == "estimated"
    assert shown["run"]["status"] == "ok" and shown["run"]["version"] == "v2"
    assert shown["run"]["challenger"] == {"version": "v2", "sample": 1.0}
    assert (aged_home.root / shown["run"]["run_json"]).is_file()
    assert aged_home.current_txt.read_bytes() == current
    assert registry.read_challenger(home=aged_home).version == "v2"
    assert registry.check(home=aged_home).ok


def test_a_watch_killed_during_its_retrain_leaves_the_registry_healthy_and_the_next_tick_waits(aged_home, capsys):
    aged_home.config_yaml.write_text(RETRAIN_POLICY)
    simulate.simulate(200, home=aged_home, seed=1)
    before = aged_home.metadata_json.read_bytes()
    env = {**os.environ, "CHURN_HOME": str(aged_home.root), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "churn_lib.cli", "watch", "--once"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kernels = []
    try:
        deadline = time.monotonic() + 60
        while not list(aged_home.reports_dir.glob("v2/01_*.ipynb")):  # the retrain is running its notebooks
            assert proc.poll() is None and time.monotonic() < deadline, "the retrain never started"
            time.sleep(0.05)
        kernels = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in kernels:  # the run's kernel, in a session of its own: it would outlive the watch
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
    (line,) = _watch_lines(aged_home)
    assert line["decision"] == "retrain" and line["run"]["status"] == "started"
    assert aged_home.metadata_json.read_bytes() == before  # nothing half registered
    code, out, _ = run_main(capsys, "registry", "check")
    assert code == 0, out
    code, out, _ = run_main(capsys, "watch", "--once", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["decision"] == "cooldown" and shown["reasons"][-1] == "cooldown_after_retrain"
    assert aged_home.metadata_json.read_bytes() == before



def test_without_once_the_watch_ticks_until_sigterm_ends_it_between_ticks(aged_home):
    env = {**os.environ, "CHURN_HOME": str(aged_home.root), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "churn_lib.cli", "watch", "--interval", "1h"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()  # the first tick is at once; the next would be an hour later
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert first.startswith("watch: INSUFFICIENT_DATA - 0 prediction(s)")  # nothing logged yet
    assert proc.returncode == 5 and out == "" and "Traceback" not in err
    assert [t["decision"] for t in _watch_lines(aged_home)] == ["insufficient_data"]
