"""Hostile input: path-like targets, the API's OpenAPI spec fuzzed, the default bind address."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                 status_code_conformance)

from churn_lib import registry
from churn_lib.cli import build_parser, main
from serve.app import create_app

HOSTILE = ["../../etc/passwd", "/etc/passwd", "..", ".", "registry/../../x", "v1/../v1", "v1\\..\\x",
           "v1\x00", "v1\n", "\x1b[31mv1", "~root", "models/churn_model_v1.joblib", "C:\\Windows", "v1 ", ""]


def _snapshot(root):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("args", [["promote", "{}"], ["promote", "{}", "--force"], ["rollback", "--to", "{}"],
                                  ["registry", "show", "{}"], ["evaluate", "--version", "{}"],
                                  ["drift", "--model", "{}"], ["train", "--version", "{}"]])
def test_path_like_targets_are_refused_and_nothing_outside_the_home_is_touched(trained_home, capsys, args,
                                                                             tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("secret")
    before, home_before = _snapshot(tmp_path.parent), _snapshot(trained_home.registry_dir)
    for target in [*HOSTILE, str(outside / "passwd"), "../outside/passwd"]:
        code = main([a.format(target) for a in args])
        err = capsys.readouterr().err
        assert code in (1, 2) and "Traceback" not in err, (target, err)
    assert registry.current_entry(home=trained_home)["version"] == "v1"
    assert _snapshot(trained_home.registry_dir) == home_before
    after = _snapshot(tmp_path.parent)
    assert {p: v for p, v in after.items() if trained_home.root not in p.parents} == \
        {p: v for p, v in before.items() if trained_home.root not in p.parents}


def test_the_service_listens_on_loopback_unless_told_otherwise():
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)


OPERATIONS = ["GET /health", "POST /predict", "POST /predict/batch", "GET /model", "GET /metrics", "POST /feedback"]


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_api_never_answers_500_and_always_matches_its_spec(trained_home, mode):
    """Schemathesis on the in-process app: valid and invalid requests, a bounded number per operation."""
    from schemathesis.generation.modes import GenerationMode

    app = create_app(trained_home)
    with TestClient(app):  # startup: the model is loaded
        api = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = {op.label: op for op in (r.ok() for r in api.get_all_operations())}
        assert sorted(operations) == sorted(OPERATIONS)
        for label, op in operations.items():
            if mode == "negative" and not label.startswith("POST"):
                continue  # nothing to make invalid in a GET without parameters
            @given(case=op.as_strategy(generation_mode=GenerationMode(mode)))
            @settings(max_examples=40 if mode == "positive" else 30, deadline=None, derandomize=True,
                      database=None, suppress_health_check=list(HealthCheck))
            def fuzz(case):
                case.call_and_validate(checks=[not_a_server_error, status_code_conformance,
                                               content_type_conformance, response_schema_conformance])

            fuzz()


def test_schemathesis_checks_all_finds_nothing_on_the_labs_service(trained_home):
    """The CLI as the issue runs it: `schemathesis run URL/openapi.json --checks all` against `churn serve`."""
    from ..e2e.test_own_data import _schemathesis
    from ..serve.conftest import running_server

    with running_server(trained_home) as url:
        result = _schemathesis(url)
    assert result.returncode == 0, result.stdout[-3000:]
