"""Bearer-token authentication: the rules endpoint by endpoint, hostile headers, rotation, the launcher's refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from churn_lib import ChurnError
from churn_lib.cli import main
from serve import auth
from serve.app import Settings, create_app

from .conftest import running_server

TOKEN = "t0ken-for-tests-0123456789abcdef"
OTHER = "second-token_for.rotation~42+/=="
GOOD = {"tenure_months": 6, "num_complaints": 3, "avg_session_minutes": 12.5, "plan_type": "basic", "region": "AF"}
#: Every route but /health, as (method, path, body).
PROTECTED = [("POST", "/predict", GOOD), ("POST", "/predict/batch", [GOOD]), ("GET", "/model", None),
             ("GET", "/openapi.json", None), ("GET", "/docs", None), ("GET", "/reports/", None),
             ("GET", "/predict", None), ("GET", "/no-such-path", None)]


def _app(home, env):
    tokens = auth.Tokens.from_env(env)
    return create_app(settings=Settings(home=home, tokens=tokens, open_paths=auth.open_paths(env)))


@pytest.fixture
def secured(trained_home):
    with TestClient(_app(trained_home, {auth.TOKEN_ENV: f"{TOKEN}, {OTHER}"})) as c:
        yield c


def _call(client, method, path, body, headers=None):
    return client.request(method, path, json=body, headers=headers or {})


@pytest.mark.parametrize("method, path, body", PROTECTED)
def test_every_endpoint_but_health_needs_a_token(secured, method, path, body):
    r = _call(secured, method, path, body)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="churn-mlops"'
    assert "Authorization: Bearer" in r.json()["detail"]
    r = _call(secured, method, path, body, {"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code != 401


def test_health_and_metrics_are_open_and_both_tokens_are_accepted(secured, trained_home):
    assert secured.get("/health").json()["status"] == "ok"
    assert secured.get("/metrics").status_code == 200
    for token in (TOKEN, OTHER):
        r = secured.post("/predict", json=GOOD, headers={"Authorization": f"bearer {token}"})  # scheme: any case
        assert r.status_code == 200 and r.json()["logged"]
    log = (trained_home.logs_dir / "predictions.log").read_text()
    assert TOKEN not in log and OTHER not in log


@pytest.mark.parametrize("header", [
    "", " ", "Bearer", "Bearer ", "Bearer    ", f"Basic {TOKEN}", f"Token {TOKEN}", f"{TOKEN}",
    f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"Bearer {TOKEN.upper()}", f"Bearer {TOKEN} {TOKEN}",
    "Bearer " + "a" * 100_000, "Bearer " + TOKEN + "\t", f"Bearer\t{TOKEN}"])
def test_wrong_empty_or_huge_credentials_are_401_and_never_echoed(secured, header):
    r = secured.post("/predict", json=GOOD, headers={"Authorization": header})
    if header == "Bearer " + TOKEN + "\t":  # trailing whitespace is not part of a header value (RFC 9110)
        assert r.status_code == 200
        return
    assert r.status_code == 401, header[:40]
    assert r.headers["www-authenticate"].startswith('Bearer realm="churn-mlops"')
    text = r.text + json.dumps(dict(r.headers))
    assert TOKEN not in text and "aaaa" not in text


def test_a_sent_but_refused_token_is_an_invalid_token_challenge(secured):
    r = secured.get("/model", headers={"Authorization": "Bearer nope-nope-nope-nope"})
    assert r.headers["www-authenticate"] == 'Bearer realm="churn-mlops", error="invalid_token"'


def test_metrics_need_a_token_when_configured(trained_home):
    with TestClient(_app(trained_home, {auth.TOKEN_ENV: TOKEN, auth.METRICS_AUTH_ENV: "1"})) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert c.get("/health").status_code == 200


def test_the_openapi_document_declares_the_scheme_and_the_401s(secured):
    doc = secured.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "Authorization: Bearer <token>; /health, /metrics need none"}
    assert doc["paths"]["/predict"]["post"]["security"] == [{"bearer": []}]
    assert "401" in doc["paths"]["/model"]["get"]["responses"]
    assert "security" not in doc["paths"]["/health"]["get"] and "security" not in doc["paths"]["/metrics"]["get"]


def test_without_a_token_configured_nothing_changes(client):
    assert client.post("/predict", json=GOOD).status_code == 200
    assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})


def test_a_token_file_is_reread_when_it_changes(trained_home, tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# the service's tokens\n{TOKEN}\n\n")
    tokens = auth.Tokens.from_env({auth.TOKEN_FILE_ENV: str(path)})
    tokens.check_every = 0.0
    app = create_app(settings=Settings(home=trained_home, tokens=tokens))
    with TestClient(app) as c:
        ok = {"Authorization": f"Bearer {TOKEN}"}
        assert c.get("/model", headers=ok).status_code == 200
        path.write_text(f"{OTHER}\n")  # rotated: the old token is gone
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10_000_000))
        assert c.get("/model", headers=ok).status_code == 401
        assert c.get("/model", headers={"Authorization": f"Bearer {OTHER}"}).status_code == 200
        path.write_text("")  # a file being rewritten (or emptied): the tokens last read stay
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 20_000_000))
        assert c.get("/model", headers={"Authorization": f"Bearer {OTHER}"}).status_code == 200


@pytest.mark.parametrize("env, message", [
    ({auth.TOKEN_ENV: ""}, "CHURN_API_TOKEN is set but holds no token"),
    ({auth.TOKEN_ENV: "   \t "}, "CHURN_API_TOKEN is set but holds no token"),
    ({auth.TOKEN_ENV: "short"}, "token 1 of CHURN_API_TOKEN is not usable: a token is 16 to"),
    ({auth.TOKEN_ENV: TOKEN + ",naïve-token-0123456789"}, "token 2 of CHURN_API_TOKEN is not usable"),
    ({auth.TOKEN_FILE_ENV: ""}, "CHURN_API_TOKEN_FILE is set but empty"),
    ({auth.TOKEN_FILE_ENV: "/no/such/tokens"}, "cannot read the token file /no/such/tokens"),
    ({auth.METRICS_AUTH_ENV: "maybe"}, "CHURN_METRICS_AUTH='maybe'"),
])
def test_an_unusable_token_configuration_is_refused_not_ignored(env, message):
    with pytest.raises(ChurnError, match=message):
        auth.Tokens.from_env(env)
        auth.open_paths(env)


def test_no_configuration_is_no_authentication():
    assert auth.Tokens.from_env({}) is None


def test_serve_refuses_a_reachable_host_without_a_token(trained_home, capsys, monkeypatch):
    for key in (auth.TOKEN_ENV, auth.TOKEN_FILE_ENV):
        monkeypatch.delenv(key, raising=False)
    code = main(["serve", "--home", str(trained_home.root), "--host", "0.0.0.0", "--port", "1"])
    assert code == 1
    err = capsys.readouterr().err
    assert "reachable from other machines and no token is set" in err and "--insecure" in err
    assert auth.is_loopback("127.0.0.1") and auth.is_loopback("localhost") and not auth.is_loopback("0.0.0.0")
    auth.check_exposure("0.0.0.0", None, insecure=True)
    auth.check_exposure("0.0.0.0", auth.Tokens(fixed=(TOKEN.encode(),)), insecure=False)


def test_serve_names_a_bad_token_before_listening(trained_home, tmp_path):
    bad = tmp_path / "tokens"
    bad.write_text("tiny\n")
    r = subprocess.run([sys.executable, "-m", "churn_lib.cli", "serve", "--home", str(trained_home.root),
                        "--port", "1", "--token-file", str(bad)], capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if not k.startswith("CHURN_")})
    assert r.returncode == 1 and "token 1 of CHURN_API_TOKEN_FILE" in r.stderr and "tiny" not in r.stderr
    assert "Traceback" not in r.stderr


def _schemathesis(url: str, *extra: str) -> subprocess.CompletedProcess:
    exe = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    return subprocess.run([exe, "run", *extra, "--checks", "all", "--max-examples", "8", "--workers", "1",
                           "--seed", "1"], capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if not k.startswith("CHURN_")})


def test_a_real_server_with_two_workers_and_a_token_file_under_schemathesis(trained_home, tmp_path):
    """The token file reaches every worker; schemathesis --checks all (ignored_auth included) passes with the
    token, and without it every protected answer is the documented 401."""
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\n{OTHER}\n")
    with running_server(trained_home, workers=2, args=("--token-file", str(tokens))) as url:
        assert httpx.get(url + "/health").status_code == 200
        assert httpx.post(url + "/predict", json=GOOD).status_code == 401
        for _ in range(6):  # both workers (a new connection each)
            assert httpx.post(url + "/predict", json=GOOD,
                              headers={"Authorization": f"Bearer {OTHER}"}).status_code == 200
        spec = tmp_path / "openapi.json"
        spec.write_text(httpx.get(url + "/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).text)
        with_token = _schemathesis(url, f"{url}/openapi.json", "-H", f"Authorization: Bearer {TOKEN}")
        without = _schemathesis(url, str(spec), "--url", url)
    assert with_token.returncode == 0, with_token.stdout[-3000:]
    assert without.returncode == 0, without.stdout[-3000:]
    log = (trained_home.root / "logs" / "predictions.log").read_text()
    server_log = "".join(p.read_text() for p in trained_home.root.glob("server-*.log"))
    assert TOKEN not in log + server_log and OTHER not in log + server_log
