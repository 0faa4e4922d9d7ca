"""The `churn` command as a user runs it: exit codes, one-line errors, --json."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from churn_lib import InvalidParameter, cli, models, registry
from churn_lib.cli import parser as parser_mod
from churn_lib.run import stages


def churn(*args, home=None):
    argv = [*args] + (["--home", str(home.root)] if home is not None else [])
    return subprocess.run([sys.executable, "-m", "churn_lib.cli", *argv], capture_output=True, text=True,
                          timeout=120)


def run_main(capsys, *args):
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


COMMANDS = [["generate"], ["prepare"], ["train"], ["evaluate"], ["registry", "list"], ["registry", "show"],
            ["promote"], ["rollback"], ["history"], ["run"], ["export"]]


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
    code, out, _ = run_main(capsys, "train", "--min-f1", "0.95")
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
    assert result.returncode == 2
    assert result.stderr.endswith("churn generate: error: argument --missing: must be a number between 0 and 1, "
                                  "got 2.0\n")
    assert churn("no-such-command").returncode == 2


def test_a_refused_flag_value_is_a_usage_error_before_anything_runs(home):
    """The issue's case: `churn drift --min-rows 1` passed the parser, then failed as an error (exit 1)."""
    result = churn("drift", "--min-window-rows", "1", home=home)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == ("churn drift: error: argument --min-window-rows: must be an integer "
                                              ">= 2, got 1")
    assert "Traceback" not in result.stderr


# --- every declared constraint, checked the same way by the parser and the library ----------------

STAGE_COMMANDS = {"generate": ["generate"], "prepare": ["prepare"], "train": ["train"], "monitor_drift": ["drift"]}


def _outside(param):
    """Values just outside ``param``'s declared range or choices (one per end of the range)."""
    if param.choices is not None:
        return ["no-such-choice"]
    r, out = param.range, []
    if r.low is not None:
        out.append(r.low if r.open_low else r.low - (1 if param.kind is int else 0.5))
    if r.high is not None:
        out.append(r.high if r.open_high else r.high + 1)
    return [param.kind(v) for v in out if v not in r.also]


def _constrained():
    cases = []
    for stage, command in STAGE_COMMANDS.items():
        for p in stages.TABLE[stage].user_params.values():
            if p.range is not None or p.choices is not None:
                cases += [(command, p, bad) for bad in _outside(p)]
    return cases


def _flag(param):
    return "--" + param.name.replace("_", "-")


def test_the_constraints_checked_include_the_thresholds():
    names = {(command[0], p.name) for command, p, _ in _constrained()}
    assert {("generate", "n_rows"), ("generate", "seed"), ("generate", "missing"), ("prepare", "min_clean_rows"),
            ("prepare", "max_missing_rate"), ("drift", "alpha"), ("drift", "min_window_rows"),
            ("drift", "last")} <= names


@pytest.mark.parametrize("command,param,bad", _constrained(), ids=lambda v: getattr(v, "name", str(v)))
def test_every_declared_constraint_fails_the_same_way_in_the_parser_and_the_library(capsys, command, param, bad):
    why = param.refusal(bad)
    assert why is not None and why.startswith("must be ")
    family = models.owner_of(param.name)  # a family's hyperparameter: its family's Params checks the value
    with pytest.raises(InvalidParameter) as info:  # the library: the dataclass the parameter is declared in
        param.owner(**{param.name: bad}, **({"family": family} if family else {}))
    expected = f"{param.name} {why.replace(' or None', '') if family else why}"  # a Params field takes no None
    assert str(info.value) == expected and info.value.name == param.name
    with pytest.raises(SystemExit) as exit_info:  # the parser: the same words, a usage error
        cli.main([*command, f"{_flag(param)}={bad}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (f"churn {command[0]}: error: argument {_flag(param)}: "
                                    f"{why.replace(' or None', '')}")


OWN_FLAGS = [(["serve"], parser_mod.PORT), (["serve"], parser_mod.SERVE_WORKERS),
             (["sweep", "spec.yaml"], parser_mod.WORKERS), (["score", "in.csv", "out.csv"], parser_mod.WORKERS),
             (["score", "in.csv", "out.csv"], parser_mod.EXPLAIN), (["performance"], parser_mod.PERFORMANCE_LAST),
             (["performance"], parser_mod.FLOOR), (["performance"], parser_mod.PERFORMANCE_MIN_ROWS),
             (["simulate"], parser_mod.SIMULATE_ROWS)]


@pytest.mark.parametrize("command,param", OWN_FLAGS, ids=lambda v: v.name if hasattr(v, "name") else " ".join(v))
def test_the_clis_own_flags_are_checked_by_their_declaration(capsys, command, param):
    for bad in _outside(param):
        with pytest.raises(SystemExit) as info:
            cli.main([*command, f"{_flag(param)}={bad}"])
        assert info.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"churn {command[0]}: error: argument {_flag(param)}: {param.refusal(bad, none=False)}")
    with pytest.raises(SystemExit):
        cli.main([*command, f"{_flag(param)}=many"])
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"churn {command[0]}: error: argument {_flag(param)}: must be {param.describe(none=False)}, got 'many'")


def test_chunk_sizes_are_read_in_mebibytes(capsys):
    args = cli.build_parser().parse_args(["score", "a.csv", "b.csv", "--chunk-mb", "0.5"])
    assert args.chunk_mb == 1 << 19
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["score", "a.csv", "b.csv", "--partition-mb", "5000"])
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "argument --partition-mb: must be a number between 0.001 and 4096, got 5000.0")


# --- renamed flags and parameters: the old spelling works for one release, with a message -----------

@pytest.mark.parametrize("argv,dest,value", [
    (["drift", "--model", "v3"], "version", "v3"), (["performance", "--model", "all"], "version", "all"),
    (["simulate", "--model", "v2"], "version", "v2"), (["score", "a.csv", "b.csv", "--model", "v1"], "version", "v1"),
])
def test_model_is_a_deprecated_alias_of_version(capsys, argv, dest, value):
    args = cli.build_parser().parse_args(argv)
    assert getattr(args, dest) == value and not hasattr(args, "model")
    assert capsys.readouterr().err == ("churn: warning: --model is deprecated and will be removed in the next "
                                       "release; use --version\n")
    args = cli.build_parser().parse_args([argv[0], *argv[1:-2], "--version", value])
    assert getattr(args, dest) == value and capsys.readouterr().err == ""


def test_version_flag_defaults():
    parse = cli.build_parser().parse_args
    assert parse(["drift"]).version == "current" and parse(["performance"]).version == "current"
    assert parse(["simulate"]).version == "current" and parse(["score", "a.csv", "b.csv"]).version is None


@pytest.mark.parametrize("command,new", [("prepare", "min_clean_rows"), ("drift", "min_window_rows")])
def test_min_rows_flag_is_a_deprecated_alias(capsys, command, new):
    args = cli.build_parser().parse_args([command, "--min-rows", "50"])
    assert getattr(args, new) == 50 and not hasattr(args, "min_rows")
    flag = "--" + new.replace("_", "-")
    assert capsys.readouterr().err == (f"churn: warning: --min-rows is deprecated and will be removed in the next "
                                       f"release; use {flag}\n")
    assert getattr(cli.build_parser().parse_args([command]), new) == 100


def test_min_rows_parameter_says_which_thresholds_it_sets(caplog):
    with caplog.at_level(logging.WARNING, logger="churn_lib.run.stages"):
        per_stage = stages.check(("prepare", "monitor_drift"), {"min_rows": 50})
    assert per_stage == {"prepare": {"min_clean_rows": 50}, "monitor_drift": {"min_window_rows": 50}}
    assert caplog.messages == ["parameter min_rows is deprecated and will be removed in the next release: here it "
                               "sets min_clean_rows (02_prepare_data) and min_window_rows (05_monitor_drift); use "
                               "the new name(s)"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="churn_lib.run.stages"):
        per_stage = stages.check(("prepare",), {"min_rows": 50, "min_clean_rows": 60})
    assert per_stage == {"prepare": {"min_clean_rows": 60}}  # the new name wins
    assert "sets min_clean_rows (02_prepare_data); use" in caplog.text
    with pytest.raises(InvalidParameter, match=r"unknown parameter\(s\) min_rows for the selected stages \(min_rows "
                                               r"is now min_clean_rows \(02_prepare_data\) and min_window_rows "
                                               r"\(05_monitor_drift\)\)"):
        stages.check(("generate",), {"min_rows": 50})
    with pytest.raises(InvalidParameter, match="^min_clean_rows must be an integer >= 2, got 1$"):
        stages.check(("prepare",), {"min_rows": 1})


def test_no_cli_function_is_over_60_lines():
    import ast
    import inspect

    import churn_lib.cli
    from churn_lib import quality

    folder = Path(churn_lib.cli.__file__).parent
    long = []
    for path in [*sorted(folder.glob("*.py")), Path(inspect.getfile(quality))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.end_lineno - node.lineno + 1 > 60:
                    long.append(f"{path.name}:{node.name}")
    assert long == []


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


def test_a_reader_that_goes_away_ends_the_command_quietly(trained_home, tmp_path):
    """`churn history --json | head -1`: the pipe closes before the output is written."""
    env = {**os.environ, "CHURN_HOME": str(trained_home.root)}
    proc = subprocess.Popen([sys.executable, "-m", "churn_lib.cli", "history", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # the reader is gone before the command writes
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
