"""A new user's story on their own churn table, through the real commands and a real server:
init -> churn run -> serve -> predict (an extra field, a missing one) -> schemathesis --checks all
-> score -> simulate -> drift -> sweep; on two shapes the tests build themselves (tests/datasets.py)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import httpx2 as httpx
import pytest

from churn_lib import Home, contract, registry

from .. import datasets
from ..serve.conftest import running_server
from .test_story import churn, follows

SHAPES = {
    # name: (builder, rows, target, expected types, a numeric feature to shift, a feature the model fills in)
    "telecom": (datasets.telecom, 2500, "Churn",
                {"SeniorCitizen": "boolean", "Partner": "boolean", "tenure": "integer", "Contract": "categorical",
                 "MonthlyCharges": "float", "TotalCharges": "float"}, "tenure", "TotalCharges"),
    "flags_and_floats": (datasets.flags_and_floats, 1500, "status",
                         {"is_active": "boolean", "has_discount": "boolean", "usage_hours": "float",
                          "monthly_spend": "float"}, "usage_hours", "monthly_spend"),
}


def _schemathesis(url: str) -> subprocess.CompletedProcess:
    exe = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    return subprocess.run([exe, "run", f"{url}/openapi.json", "--checks", "all", "--max-examples", "25",
                           "--workers", "1", "--seed", "1"], capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if not k.startswith("CHURN_")})


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_story_on_your_own_data(tmp_path, shape):
    builder, n, target, types, numeric, imputed = SHAPES[shape]
    source = datasets.write(builder(n, seed=3), tmp_path / "export" / f"{shape}.csv")
    home = Home(tmp_path / "home")

    r = churn(home, "init", "--home", str(home.root), "--data", str(source), "--target", target)
    assert r.returncode == 0, r.stderr
    assert "Review the file, then `churn run`" in r.stdout and "feature" in r.stdout
    c = contract.load(home)
    assert {name: c.feature(name).type for name in types} == types
    assert c.feature(imputed).on_missing == "impute"
    assert c.source.path == str(source) and not contract.is_lab(c)

    r = churn(home, "run")
    assert r.returncode == 0, r.stdout + r.stderr
    entry = registry.current_entry(home=home)
    assert entry["version"] == "v1" and entry["passed_gate"] and entry["contract_name"] == c.name
    assert registry.load_contract(entry, home=home) == c
    reports = "".join(p.read_text() for p in (home.reports_dir / "v1").glob("*.html"))
    assert "tenure_months" not in reports and imputed in reports  # no lab column outside the lab's contract

    example = c.example()
    with running_server(home) as url, httpx.Client(base_url=url, timeout=10) as client:
        health = follows(url, "v1")
        assert health["status"] == "ok" and health["contract"] == c.name and health["scorer"] == "numpy"
        answer = client.post("/predict", json=example | {"note": "vip", "request_id": "r1"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["ignored_fields"] == ["note"] and list(body["features"]) == list(c.feature_names)
        filled = client.post("/predict", json={k: v for k, v in example.items() if k != imputed})
        assert filled.status_code == 200 and filled.json()["features"][imputed] is None
        required = next(f.name for f in c.features if not f.imputed)
        refused = client.post("/predict", json={k: v for k, v in example.items() if k != required})
        assert refused.status_code == 422 and refused.json()["detail"][0]["field"] == required
        assert "required; allowed:" in refused.json()["detail"][0]["msg"]
        if c.id:
            echoed = client.post("/predict", json=example | {c.id[0]: "cust-42"}).json()
            assert echoed["id"] == {c.id[0]: "cust-42"}
        fuzz = _schemathesis(url)
        assert fuzz.returncode == 0, fuzz.stdout[-3000:]
        r = churn(home, "simulate", "--n-rows", "120", "--url", url)
        assert r.returncode == 0 and "sent 120 of 120" in r.stdout, r.stdout + r.stderr

    scores = tmp_path / "scores.csv"
    r = churn(home, "score", str(source), str(scores))
    assert r.returncode == 0, r.stderr
    with open(source, newline="") as fh, open(scores, newline="") as out:
        rows, scored = list(csv.DictReader(fh)), list(csv.DictReader(out))
    rejected = list(csv.DictReader(open(tmp_path / "scores.rejects.csv", newline="")))
    assert len(scored) + len(rejected) == len(rows) and len(scored) > 0.95 * len(rows)
    assert {"probability", "prediction", "version"} <= set(scored[0])

    r = churn(home, "simulate", "--n-rows", "400", "--seed", "5")
    assert r.returncode == 0, r.stderr
    r = churn(home, "drift", "--last", "400")
    assert r.returncode == 0, r.stdout  # traffic like the training split: no drift
    r = churn(home, "simulate", "--n-rows", "300", "--shift", f"{numeric}=1", "--seed", "6")
    assert r.returncode == 0, r.stderr
    r = churn(home, "drift", "--last", "300", "--json")
    assert r.returncode == 4, r.stdout
    alerts = {s["feature"] for m in json.loads(r.stdout)["models"] for s in m["statistics"] if s["alert"]}
    assert numeric in alerts

    spec = tmp_path / "sweep.yaml"
    spec.write_text("name: regularisation\ngrid: {C: [0.1, 1.0]}\nselect: {metric: roc_auc}\n")
    r = churn(home, "sweep", str(spec), "--workers", "2", timeout=600)
    assert r.returncode in (0, 3), r.stdout + r.stderr
    record = json.loads(next((home.reports_dir / "_sweeps").glob("*/sweep.json")).read_text())
    assert "of the data set held out" in record["holdout"]["description"]
    assert all(run["status"] == "ok" and run["holdout"]["roc_auc"] > 0.6 for run in record["runs"])
    assert all("source" not in run["params"] for run in record["runs"])
    assert churn(home, "registry", "check").returncode == 0
