"""Damaged registry files, `churn registry check [--repair]`, and processes killed mid-command."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from churn_lib import registry
from churn_lib.cli import main

DAMAGES = {"truncated": lambda b: b[: len(b) // 2], "garbage": lambda b: b"\x00\xff{{ not json \xfe\n"}
FILES = {"metadata.json": "metadata_json", "current_model.txt": "current_txt", "history.jsonl": "history_jsonl"}
# The command of each file that has to read it (so must refuse to go on); `rollback` reads all three.
READERS = {"metadata.json": ["registry", "list"], "current_model.txt": ["drift"], "history.jsonl": ["history"]}
COMMANDS = [["registry", "list"], ["registry", "show", "v1"], ["history"], ["promote", "v1"], ["rollback"],
            ["drift"], ["evaluate"]]


def _churn(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("name", FILES)
def test_every_command_names_a_damaged_registry_file_and_the_repair(trained_home, capsys, name, damage):
    path = getattr(trained_home, FILES[name])
    path.write_bytes(DAMAGES[damage](path.read_bytes()))
    for args in [READERS[name], ["rollback"], ["registry", "check"]]:
        code, out, err = _churn(capsys, *args)
        said = err if args[-1] != "check" else out
        assert code == 1 and name in said and "Traceback" not in err, (args, code, out, err)
        if args[-1] != "check":
            assert err.count("\n") == 1 and err.startswith("churn: error: "), err
            assert "churn promote" in err or "churn registry check" in err or "backup" in err, err
    for args in COMMANDS:  # any other command: works, or stops with one line naming the file
        code, out, err = _churn(capsys, *args)
        assert "Traceback" not in err, (args, err)
        assert code in (0, 1, 4, 5), (args, code, err)
        if code == 1:
            assert name in err or "no earlier" in err or "cannot" in err, (args, err)


def test_check_passes_a_healthy_registry_and_repairs_a_lagging_history_and_leftovers(trained_home, capsys):
    home = trained_home
    assert _churn(capsys, "registry", "check")[0] == 0
    registry.register({"m": 2}, {"passed_gate": False}, home=home)  # v2, not current
    home.current_txt.write_text(registry.get("v2", home=home)["model_file"] + "\n")  # a pointer without history
    leftover = home.models_dir / ".incoming.abc.joblib"
    leftover.write_bytes(b"partial")
    os.utime(leftover, (time.time() - 3600,) * 2)
    code, out, _ = _churn(capsys, "registry", "check")
    assert code == 1 and "history.jsonl" in out and ".incoming.abc.joblib" in out and "--repair" in out
    code, out, _ = _churn(capsys, "registry", "check", "--repair")
    assert code == 0 and out.count("repaired") == 2, out
    assert not leftover.exists() and registry.history(home=home)[-1]["action"] == "reconcile"
    assert _churn(capsys, "registry", "check")[0] == 0


def test_check_names_a_tampered_model_and_keeps_damaged_history_aside(trained_home, capsys):
    home = trained_home
    model = registry.verify(registry.get("v1", home=home), home=home)
    model.write_bytes(model.read_bytes()[:100])
    with open(home.history_jsonl, "ab") as fh:
        fh.write(b"garbage\n")
    code, out, _ = _churn(capsys, "registry", "check", "--repair")
    assert code == 1 and model.name in out and "sha256" in out and "restore" in out
    assert [r["version"] for r in registry.history(home=home)] == ["v1"]  # the good line kept
    assert list(home.registry_dir.glob("history.jsonl.damaged-*"))


_KILLABLE = {
    "train": ["train", "--seed", "{seed}"],
    "promote": ["promote", "{other}", "--force"],
    "rollback": ["rollback", "--to", "{other}"],
}


@pytest.mark.parametrize("command", _KILLABLE)
def test_a_command_killed_at_a_random_point_leaves_a_consistent_registry(trained_home, command):
    """SIGKILL at a random moment (a few bounded tries each); afterwards check --repair is clean and a re-run works."""
    home = trained_home
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")} | {"CHURN_HOME": str(home.root)}
    v1 = registry.get("v1", home=home)
    fields = {k: v for k, v in v1.items() if k not in ("model_file", "version", "trained_at_utc", "model_sha256",
                                                        "profile_file", "profile_sha256", "reports_dir")}
    registry.register(registry.load_model(v1, home=home), fields, home=home)  # v2 current, v1 before it
    rng = random.Random(f"{command}")
    for i in range(4):
        other = registry.current_entry(home=home)["version"]
        other = "v1" if other != "v1" else "v2"
        args = [a.format(seed=i, other=other) for a in _KILLABLE[command]]
        proc = subprocess.Popen([sys.executable, "-m", "churn_lib.cli", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 2.5))  # imports take ~1 s: some kills land before, some during the work
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        report = registry.check(home=home, repair=True, incoming_grace_s=0)
        assert report.ok, report.to_dict()
        entries = registry.load_entries(home=home)
        assert registry.history(home=home)[-1]["to"] == registry.current_file(home=home)
        assert all(registry.verify(e, home=home) for e in entries)
    done = subprocess.run([sys.executable, "-m", "churn_lib.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode in (0, 3), done.stderr
    assert registry.check(home=home).ok
