"""The `churn` command as a user runs it: exit codes, one-line errors, --json."""

import json
import subprocess
import sys

import pytest

from churn_lib import cli, registry


def churn(*args, home=None):
    argv = [*args] + (["--home", str(home.root)] if home is not None else [])
    return subprocess.run([sys.executable, "-m", "churn_lib.cli", *argv], capture_output=True, text=True,
                          timeout=120)


def run_main(capsys, *args):
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


COMMANDS = [["generate"], ["prepare"], ["train"], ["evaluate"], ["registry", "list"], ["registry", "show"],
            ["promote"], ["rollback"], ["history"], ["run"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(capsys, command):
    with pytest.raises(SystemExit) as info:
        cli.main([*command, "--help"])
    assert info.value.code == 0
    assert "usage: churn" in capsys.readouterr().out


def test_the_labs_story_through_the_command(home, capsys):
    code, out, _ = run_main(capsys, "run", "--direct")
    assert code == 0 and "v1" in out and "now current" in out
    code, out, _ = run_main(capsys, "train", "--seed", "7", "--version", "v2")
    assert code == 0
    code, out, _ = run_main(capsys, "registry", "list", "--json")
    listing = json.loads(out)
    assert [e["version"] for e in listing["entries"]] == ["v1", "v2"]
    assert listing["current_model"] == listing["entries"][1]["model_file"]
    code, out, _ = run_main(capsys, "rollback")
    assert code == 0 and "rollback to the previous model" in out
    assert registry.current_entry(home=home)["version"] == "v1"
    code, out, _ = run_main(capsys, "rollback", "--to", "v2", "--json")
    assert json.loads(out)["record"]["version"] == "v2"
    code, out, _ = run_main(capsys, "history", "--json")
    assert [r["action"] for r in json.loads(out)] == ["register", "register", "rollback", "rollback"]
    code, out, _ = run_main(capsys, "evaluate", "--version", "v1")
    assert code == 0 and "v1 against every registered model" in out
    code, out, _ = run_main(capsys, "registry", "show", "v1")
    assert code == 0 and "beats_always_1" in out


def test_gate_refusal_has_its_own_exit_status(trained_home, capsys):
    code, out, _ = run_main(capsys, "train", "--gate-f1", "0.95")
    assert code == cli.EXIT_GATE_REFUSED == 3
    assert "REFUSED by the gate" in out and "min_f1    FAIL" in out


@pytest.mark.parametrize("args, message", [
    (["promote", "v9"], "no registered model named 'v9'"),
    (["rollback", "--to", "../../etc/passwd"], "no registered model named '../../etc/passwd'"),
    (["train", "--version", "../x"], "version label '../x' is not allowed"),
    (["train", "--version", "v1"], "'v1' is already registered"),
    (["prepare"], None),
])
def test_errors_are_one_line_with_exit_1(trained_home, args, message):
    if args == ["prepare"]:
        trained_home.raw_csv.unlink()
        message = "raw.csv does not exist: run the previous stage first"
    result = churn(*args, home=trained_home)
    assert result.returncode == 1
    assert result.stderr.startswith("churn: error: ") and message in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_blocked_quality_check_prints_the_failing_checks(home):
    assert churn("generate", "--missing", "0.2", home=home).returncode == 0
    result = churn("prepare", home=home)
    assert result.returncode == 1
    assert "missing_rate on tenure_months: 240 of 1200 rows (20.0%)" in result.stderr
    assert not home.processed_csv.exists()


def test_bad_usage_exits_2(home):
    result = churn("generate", "--missing", "2", home=home)
    assert result.returncode == 2 and "must be between 0 and 1" in result.stderr
    assert churn("no-such-command").returncode == 2


def test_generate_json_and_default_file(home, capsys):
    code, out, _ = run_main(capsys, "generate", "--n-rows", "300", "--seed", "3", "--json")
    payload = json.loads(out)
    assert code == 0 and payload["rows"] == 300 and payload["path"] == str(home.raw_csv)


def test_home_is_found_from_the_working_directory(tmp_path, monkeypatch, capsys):
    (tmp_path / ".churn-home").touch()
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    code, _, _ = run_main(capsys, "generate", "--n-rows", "200")
    assert code == 0 and (tmp_path / "data" / "raw.csv").exists()
