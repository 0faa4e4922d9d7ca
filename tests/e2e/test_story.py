"""The lab's whole story through the real `churn` commands, on a fresh home (README: "The lab's story")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx2 as httpx

from churn_lib import Home

from ..conftest import LAB_REQUESTS
from ..serve.conftest import running_server

CHURN = [sys.executable, "-m", "churn_lib.cli"]


def churn(home: Home, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")} | {"CHURN_HOME": str(home.root)}
    return subprocess.run([*CHURN, *args], env=env, capture_output=True, text=True, timeout=timeout)


def follows(url: str, version: str, timeout: float = 20.0) -> dict:
    """GET /health until the service serves ``version`` (no restart)."""
    deadline = time.monotonic() + timeout
    while True:
        health = httpx.get(url + "/health", timeout=5).json()
        if health["version"] == version or time.monotonic() > deadline:
            return health
        time.sleep(0.1)


def test_the_labs_story_from_a_fresh_home(home):
    r = churn(home, "run")
    assert r.returncode == 0, r.stderr
    with running_server(home) as url, httpx.Client(base_url=url, timeout=10) as c:
        assert follows(url, "v1")["status"] == "ok"
        threshold = c.get("/health").json()["threshold"]
        for body, probability, _ in LAB_REQUESTS:
            answer = c.post("/predict", json=body).json()
            assert answer["probability"] == probability
            assert answer["prediction"] == int(probability >= threshold) and answer["logged"] is True

        r = churn(home, "simulate", "--n-rows", "300", "--shift", "tenure_months=1", "--url", url)
        assert r.returncode == 0, r.stderr
        r = churn(home, "drift", "--last", "300")
        assert r.returncode == 4, r.stdout + r.stderr

        r = churn(home, "run", "-p", "seed=7")
        assert r.returncode == 0, r.stderr
        assert follows(url, "v2")["version"] == "v2"
        assert c.post("/predict", json=LAB_REQUESTS[0][0]).json()["version"] == "v2"

        r = churn(home, "rollback")
        assert r.returncode == 0, r.stderr
        assert follows(url, "v1")["version"] == "v1"

    r = churn(home, "run", "--stages", "monitor_drift")
    assert r.returncode in (0, 4, 5), r.stderr  # the verdict on v1's traffic; the report is what counts
    history = json.loads(churn(home, "history", "--json").stdout)
    assert [h["version"] for h in history] == ["v1", "v2", "v1"]
    assert churn(home, "registry", "check").returncode == 0
    index = (home.reports_dir / "index.html").read_text()
    for needle in ("v1/", "v2/", "drift", "rollback"):
        assert needle in index, needle
    assert list((home.reports_dir / "v1" / "drift").glob("*.html"))
