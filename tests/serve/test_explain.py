"""Explained answers over HTTP (TestClient and a real server), and the service switching model families."""

from __future__ import annotations

import json
import math
import shutil

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from churn_lib import Home, registry, scoring
from churn_lib.learn.train import TrainParams, train
from serve.app import create_app
from serve.schemas import schemas_for

from .. import lab_contract as schema
from .conftest import running_server

GOOD = {"tenure_months": 6, "num_complaints": 3, "avg_session_minutes": 12.5, "plan_type": "basic", "region": "AF"}


def _adds_up(answer: dict) -> float:
    e = answer["explanation"]
    z = e["base"] + sum(c["contribution"] for c in e["contributions"]) + e["other"]
    return abs(1.0 / (1.0 + math.exp(-z)) - answer["probability"])


@pytest.fixture(scope="module")
def _families_template(_trained_template, tmp_path_factory):
    """The lab's v1 (logreg, current) plus v2: LightGBM, registered, not current."""
    root = tmp_path_factory.mktemp("families") / "home"
    shutil.copytree(_trained_template, root)
    r = train(home=root, version="v2", params=TrainParams(family="lightgbm", min_f1=0.0,
                                                           regression_tolerance=1.0))
    if r.promoted:
        registry.rollback(home=root)
    assert registry.current_entry(home=root)["version"] == "v1"
    return root


@pytest.fixture
def families_home(_families_template, home) -> Home:
    shutil.rmtree(home.root)
    shutil.copytree(_families_template, home.root)
    return home


def test_predict_explain_adds_the_top_reasons_that_add_up_and_logs_them(client, trained_home):
    r = client.post("/predict?explain=2", json=GOOD | {"request_id": "why-1"})
    assert r.status_code == 200
    body = r.json()
    assert body["probability"] == 0.907065  # the lab's answer, unchanged by explaining it
    assert list(body)[-3:] == ["version", "explanation", "logged"]
    e = body["explanation"]
    assert [c["feature"] for c in e["contributions"]] == ["tenure_months", "num_complaints"]
    assert [c["value"] for c in e["contributions"]] == [6, 3]
    assert _adds_up(body) < 1e-6
    schemas_for(schema.LAB).predict_response.model_validate(body)
    line = json.loads(trained_home.predictions_log.read_text().splitlines()[-1])
    assert line["request_id"] == "why-1" and line["explanation"] == e
    plain = client.post("/predict", json=GOOD).json()
    assert "explanation" not in plain and plain["probability"] == body["probability"]


def test_batch_explain_explains_every_row(client):
    rows = [GOOD, GOOD | {"region": "EU", "tenure_months": 60}, GOOD | {"plan_type": "premium"}]
    r = client.post("/predict/batch?explain=5", json=rows)
    assert r.status_code == 200
    results = r.json()["results"]
    assert all(len(x["explanation"]["contributions"]) == 5 and x["explanation"]["other"] == 0.0 for x in results)
    assert max(_adds_up(x) for x in results) < 1e-6
    single = [client.post("/predict?explain=5", json=row).json()["explanation"] for row in rows]
    for one, many in zip(single, (x["explanation"] for x in results)):
        assert [c["feature"] for c in one["contributions"]] == [c["feature"] for c in many["contributions"]]
        assert [c["contribution"] for c in one["contributions"]] == pytest.approx(
            [c["contribution"] for c in many["contributions"]], abs=1e-12)


@pytest.mark.parametrize("bad", ["0", "-1", "51", "x", "2.5", "", "1e3"])
def test_explain_outside_1_to_50_is_a_422_saying_what_is_accepted(client, bad):
    for path in ("/predict", "/predict/batch"):
        body = GOOD if path == "/predict" else [GOOD]
        r = client.post(f"{path}?explain={bad}", json=body)
        assert r.status_code == 422, (path, bad, r.text)
        (err,) = r.json()["detail"]
        assert err["field"] == "query.explain" and "explain" in err["msg"]


def test_the_openapi_document_declares_explain_and_the_explanation(client):
    doc = client.get("/openapi.json").json()
    for path in ("/predict", "/predict/batch"):
        (param,) = [p for p in doc["paths"][path]["post"]["parameters"] if p["name"] == "explain"]
        assert param["in"] == "query" and not param.get("required", False)
        schema_text = json.dumps(doc["paths"][path]["post"]["responses"]["200"])
        assert "Explanation" in schema_text or '"contributions"' in schema_text


def test_the_service_switches_families_on_promotion_and_rollback_without_restart(families_home):
    with TestClient(create_app(families_home)) as c:
        first = c.post("/predict?explain=3", json=GOOD).json()
        assert first["version"] == "v1" and c.get("/health").json()["scorer"] == "numpy"
        registry.promote("v2", home=families_home)
        second = c.post("/predict?explain=3", json=GOOD).json()
        assert second["version"] == "v2" and c.get("/health").json()["scorer"] == "booster"
        assert second["probability"] == round(scoring.load("v2", home=families_home).proba_one(GOOD), 6)
        assert _adds_up(second) < 1e-6 and second["explanation"]["base"] != first["explanation"]["base"]
        registry.rollback(home=families_home)
        third = c.post("/predict?explain=3", json=GOOD).json()
        assert third["version"] == "v1" and third["probability"] == first["probability"] == 0.907065


def test_a_real_server_explains_lightgbm_answers(families_home):
    registry.promote("v2", home=families_home)
    with running_server(families_home) as url, httpx.Client(base_url=url, timeout=10) as c:
        assert c.get("/health").json()["scorer"] == "booster"
        answers = [c.post("/predict?explain=2", json=GOOD | {"tenure_months": t}).json() for t in (1, 30, 120)]
        batch = c.post("/predict/batch?explain=2", json=[GOOD | {"tenure_months": t} for t in (1, 30, 120)]).json()
    assert max(_adds_up(a) for a in answers + batch["results"]) < 1e-6
    assert [a["probability"] for a in answers] == [b["probability"] for b in batch["results"]]
    logged = [json.loads(x) for x in families_home.predictions_log.read_text().splitlines()]
    assert len(logged) == 6 and all(x["explanation"]["contributions"] for x in logged)
