"""`churn serve`: flags, and a refusal that says what to do (the server itself: test_server.py)."""

import socket

import pytest

from churn_lib import cli


def test_serve_has_help_with_its_defaults(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert "--host" in out and "127.0.0.1" in out and "--port" in out and "8000" in out and "--workers" in out


@pytest.mark.parametrize("flags", [["--port", "0"], ["--port", "70000"], ["--port", "x"], ["--workers", "0"]])
def test_bad_flags_are_usage_errors(capsys, flags):
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", *flags])
    assert info.value.code == 2 and "churn serve: error: argument" in capsys.readouterr().err


def test_a_taken_port_is_one_line_and_exit_1(capsys, trained_home):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code = cli.main(["serve", "--home", str(trained_home.root), "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"churn: error: cannot listen on 127.0.0.1:{port}") and err.count("\n") == 1
