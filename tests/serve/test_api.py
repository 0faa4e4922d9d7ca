"""The HTTP contract through FastAPI's TestClient: shapes, codes, messages, the log, bad input."""

import json
import math
import uuid

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from churn_lib.contract import records
from churn_lib.logs import predictions as predlog
from churn_lib import registry
from .. import lab_contract as schema
from serve.app import create_app
from serve.models import MAX_BATCH_ROWS, HealthResponse
from serve.schemas import schemas_for

LAB_SCHEMAS = schemas_for(schema.LAB)
PredictResponse, BatchResponse = LAB_SCHEMAS.predict_response, LAB_SCHEMAS.batch_response

from ..conftest import LAB_REQUESTS

GOOD = {"tenure_months": 6, "num_complaints": 3, "avg_session_minutes": 12.5, "plan_type": "basic", "region": "AF"}
RESPONSE_KEYS = [*predlog.KEYS, "logged"]


def _log(home):
    return [json.loads(line) for line in home.predictions_log.read_text().splitlines()]


def _metrics(client):
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


# --- the contract ----------------------------------------------------------------

def test_health_names_the_served_model_in_the_labs_shape(client, trained_home):
    r = client.get("/health")
    entry = registry.current_entry(home=trained_home)
    body = r.json()
    assert r.status_code == 200 and list(body)[:4] == ["status", "current_model", "version", "threshold"]
    assert (body["status"], body["current_model"], body["version"], body["threshold"]) == \
        ("ok", entry["model_file"], "v1", 0.26)
    assert body["scorer"] == "numpy" and body["reason"] is None
    HealthResponse.model_validate(body)


@pytest.mark.parametrize("request_body,probability,prediction", LAB_REQUESTS, ids=["req-001", "req-safe", "drift"])
def test_lab_requests_get_the_labs_answers_in_the_labs_order(client, trained_home, request_body, probability,
                                                               prediction):
    r = client.post("/predict", json=request_body)
    body = r.json()
    assert r.status_code == 200 and list(body) == RESPONSE_KEYS
    assert (body["probability"], body["prediction"]) == (probability, prediction)
    assert body["model_version"] == registry.current_file(home=trained_home)
    assert (body["threshold"], body["version"], body["logged"]) == (0.26, "v1", True)
    assert body["features"] == {k: v for k, v in request_body.items() if k != "request_id"}
    assert list(body["features"]) == list(schema.FEATURES)
    if "request_id" in request_body:
        assert body["request_id"] == request_body["request_id"]
    else:
        assert uuid.UUID(body["request_id"]).version == 4
    assert 0 <= body["latency_ms"] and body["ts"] == pytest.approx(__import__("time").time(), abs=60)
    PredictResponse.model_validate(body)
    line = _log(trained_home)[-1]
    assert list(line) == list(predlog.KEYS) and line == {k: body[k] for k in predlog.KEYS}


def test_categories_are_normalised_the_labs_way(client):
    body = client.post("/predict", json=GOOD | {"plan_type": "  Basic ", "region": "af"}).json()
    assert body["features"]["plan_type"] == "basic" and body["features"]["region"] == "AF"
    assert body["probability"] == LAB_REQUESTS[0][1]
    assert client.post("/predict", json=GOOD | {"region": "na"}).json()["features"]["region"] == "NA"


def test_the_prediction_uses_the_stored_threshold(client):
    body = client.post("/predict", json={"tenure_months": 40, "num_complaints": 0, "avg_session_minutes": 35.0,
                                         "plan_type": "basic", "region": "EU"}).json()
    assert body["threshold"] == 0.26 and 0.26 <= body["probability"] < 0.5 and body["prediction"] == 1


def test_batch_of_1000_rows_answers_each_row_in_order_and_logs_each(client, trained_home):
    rows = [dict(LAB_REQUESTS[i % 3][0], request_id=f"row-{i}") for i in range(MAX_BATCH_ROWS)]
    rows[2].pop("request_id")
    r = client.post("/predict/batch", json=rows)
    body = r.json()
    assert r.status_code == 200 and body["count"] == MAX_BATCH_ROWS and body["logged"] is True
    assert list(body)[:3] == ["model_version", "version", "threshold"]
    BatchResponse.model_validate(body)
    results = body["results"]
    assert [x["probability"] for x in results[:3]] == [p for _, p, _ in LAB_REQUESTS]
    assert results[5]["request_id"] == "row-5" and uuid.UUID(results[2]["request_id"])
    assert all(list(x) == list(predlog.KEYS) and x["version"] == "v1" for x in results)
    assert _log(trained_home) == results


def test_model_shows_the_served_registry_entry(client, trained_home):
    body = client.get("/model").json()
    entry = registry.get("v1", home=trained_home)
    assert body == json.loads(json.dumps(entry))
    assert body["passed_gate"] is True and body["threshold"] == 0.26 and "f1" in body["metrics"]


def test_metrics_count_requests_errors_latency_predictions_and_the_served_version(client, trained_home):
    for req, _, _ in LAB_REQUESTS:
        client.post("/predict", json=req)
    client.post("/predict", json=GOOD | {"region": "XX"})
    client.post("/predict/batch", json=[GOOD, GOOD])
    m = _metrics(client)
    model_file = registry.current_file(home=trained_home)
    assert m[("churn_http_requests_total", (("endpoint", "/predict"), ("method", "POST"), ("status", "200")))] == 3
    assert m[("churn_http_errors_total", (("endpoint", "/predict"), ("status", "422")))] == 1
    assert m[("churn_http_request_duration_seconds_count", (("endpoint", "/predict"),))] == 4
    assert m[("churn_predictions_total", (("prediction", "1"), ("version", "v1")))] == 4
    assert m[("churn_predictions_total", (("prediction", "0"), ("version", "v1")))] == 1
    assert m[("churn_model_info", (("model_file", model_file), ("scorer", "numpy"), ("version", "v1")))] == 1


def test_reports_are_served_with_their_index(client, trained_home):
    (trained_home.reports_dir / "v1").mkdir(parents=True, exist_ok=True)
    (trained_home.reports_dir / "index.html").write_text("<h1>churn reports</h1>")
    (trained_home.reports_dir / "v1" / "train.html").write_text("<h1>v1 train</h1>")
    assert "churn reports" in client.get("/reports").text  # redirected to /reports/
    assert client.get("/reports/").status_code == 200
    assert "v1 train" in client.get("/reports/v1/train.html").text
    assert client.get("/reports/nothing.html").status_code == 404
    assert client.get("/reports/../registry/metadata.json").status_code == 404


def test_no_reports_folder_is_a_404_not_a_500(trained_home):
    import shutil

    shutil.rmtree(trained_home.reports_dir, ignore_errors=True)
    with TestClient(create_app(trained_home)) as c:
        assert c.get("/reports/").status_code == 404


def test_docs_show_the_labs_requests_as_examples(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    examples = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert [e["value"] for e in examples.values()] == list(schema.LAB_EXAMPLES)
    assert {"/health", "/predict", "/predict/batch", "/model", "/metrics"} <= set(spec["paths"])


# --- following the registry -----------------------------------------------------------

def test_a_rollback_is_served_without_restart(two_versions_home):
    with TestClient(create_app(two_versions_home)) as c:
        assert c.post("/predict", json=GOOD).json()["version"] == "v2"
        registry.rollback(home=two_versions_home)
        assert c.post("/predict", json=GOOD).json()["version"] == "v1"
        assert c.get("/health").json()["version"] == "v1"
        assert c.get("/model").json()["version"] == "v1"


def test_a_broken_pointer_degrades_but_keeps_serving(trained_home):
    with TestClient(create_app(trained_home)) as c:
        trained_home.current_txt.write_text("churn_model_v9_20990101_000000.joblib\n")
        health = c.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert "no registered model named 'churn_model_v9" in health.json()["reason"]
        assert c.post("/predict", json=GOOD).json()["version"] == "v1"
        assert _metrics(c)[("churn_model_load_failures_total", ())] >= 1


def test_no_model_is_503_with_the_reason_but_metrics_and_docs_answer(home):
    with TestClient(create_app(home)) as c:
        health = c.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        assert "no model is current" in health.json()["reason"]
        for method, path, body in (("post", "/predict", GOOD), ("post", "/predict/batch", [GOOD]),
                                   ("get", "/model", None)):
            r = getattr(c, method)(path, **({"json": body} if body is not None else {}))
            assert r.status_code == 503 and "no model can be served" in r.json()["detail"]
        assert c.get("/metrics").status_code == 200 and c.get("/docs").status_code == 200
        assert not home.predictions_log.exists() or home.predictions_log.read_text() == ""


def test_a_log_that_cannot_be_written_shows_in_the_response_and_health(client, trained_home):
    trained_home.predictions_log.mkdir()
    r = client.post("/predict", json=GOOD)
    assert r.status_code == 200 and r.json()["logged"] is False and "cannot write" in r.json()["log_error"]
    assert list(r.json()) == [*RESPONSE_KEYS, "log_error"]
    PredictResponse.model_validate(r.json())
    batch = client.post("/predict/batch", json=[GOOD]).json()
    assert batch["logged"] is False and "log_error" in batch
    health = client.get("/health").json()
    assert health["status"] == "degraded" and "not being logged" in health["reason"]
    assert _metrics(client)[("churn_prediction_log_failures_total", ())] == 2
    trained_home.predictions_log.rmdir()
    assert client.post("/predict", json=GOOD).json()["logged"] is True
    assert client.get("/health").json()["status"] == "ok"


def test_a_request_id_of_the_key_limit_is_served_logged_and_read_back(client, trained_home):
    key = "k" * records.MAX_KEY_LENGTH
    r = client.post("/predict", json=dict(GOOD, request_id=key))
    assert r.status_code == 200 and r.json()["request_id"] == key and r.json()["logged"] is True
    stats = predlog.ReadStats()
    assert [x["request_id"] for x in predlog.iter_records([trained_home.predictions_log], stats)] == [key]
    too_long = client.post("/predict", json=dict(GOOD, request_id=key + "k"))
    assert too_long.status_code == 422 and f"1 to {records.MAX_KEY_LENGTH} characters" in too_long.text


# --- bad input: 422 (or 413) naming the field and what is allowed, never a 500 ------------

BAD_FIELDS = [
    ("tenure_months", 201, "a JSON integer from 0 to 200"),
    ("tenure_months", -1, "a JSON integer from 0 to 200"),
    ("tenure_months", 6.5, "a JSON integer from 0 to 200"),
    ("tenure_months", "6", "a JSON integer from 0 to 200"),
    ("tenure_months", True, "a JSON integer from 0 to 200"),
    ("tenure_months", None, "a JSON integer from 0 to 200"),
    ("tenure_months", [6], "a JSON integer from 0 to 200"),
    ("tenure_months", 10 ** 30, "a JSON integer from 0 to 200"),
    ("num_complaints", 51, "a JSON integer from 0 to 50"),
    ("avg_session_minutes", 500.01, "a finite JSON number from 0 to 500"),
    ("avg_session_minutes", "12.5", "a finite JSON number from 0 to 500"),
    ("avg_session_minutes", {"v": 1}, "a finite JSON number from 0 to 500"),
    ("plan_type", "gold", "one of basic, premium"),
    ("plan_type", "", "one of basic, premium"),
    ("plan_type", 1, "one of basic, premium"),
    ("plan_type", "b" * 1000, "one of basic, premium"),
    ("region", "North America", "one of NA, EU, AF, AS"),
    ("region", None, "one of NA, EU, AF, AS"),
    ("request_id", "r" * 129, "1 to 128 characters"),
    ("request_id", "", "1 to 128 characters"),
    ("request_id", 17, "1 to 128 characters"),
]


@pytest.mark.parametrize("field,value,allowed", BAD_FIELDS,
                         ids=[f"{f}={str(v)[:12]}" for f, v, _ in BAD_FIELDS])
def test_a_bad_field_is_422_naming_the_field_and_what_is_allowed(client, trained_home, field, value, allowed):
    r = client.post("/predict", json=GOOD | {field: value})
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["field"] == field and err["loc"] == ["body", field]
    assert err["msg"].startswith(f"{field}: ") and allowed in err["msg"]
    assert len(err["msg"]) < 400  # an oversized value is not echoed back
    assert not trained_home.predictions_log.exists()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_are_refused(client, literal):
    body = json.dumps(GOOD).replace("12.5", literal)
    r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "avg_session_minutes" and "finite" in r.json()["detail"][0]["msg"]


def test_a_missing_field_is_named_with_what_it_accepts(client):
    body = {k: v for k, v in GOOD.items() if k != "region"} | {"tenure_month": 6}
    errors = {e["field"]: e["msg"] for e in client.post("/predict", json=body).json()["detail"]}
    assert list(errors) == ["region"]  # the unknown field is not an error
    assert errors["region"].startswith("region: required; allowed: one of NA, EU, AF, AS")


def test_unknown_fields_are_accepted_ignored_and_named(client, trained_home):
    """The lab accepted extra fields and its clients send them: they are ignored, and the answer says which."""
    r = client.post("/predict", json=GOOD | {"customer_note": "vip", "tenure_month": 6, "request_id": "x1"})
    body = r.json()
    assert r.status_code == 200 and body["ignored_fields"] == ["customer_note", "tenure_month"]
    assert list(body) == [*RESPONSE_KEYS, "ignored_fields"] and body["probability"] == LAB_REQUESTS[0][1]
    PredictResponse.model_validate(body)
    line = _log(trained_home)[-1]
    assert list(line) == list(predlog.KEYS) and "customer_note" not in json.dumps(line)
    batch = client.post("/predict/batch", json=[GOOD | {"a": 1}, GOOD | {"b": 2}]).json()
    assert batch["ignored_fields"] == ["a", "b"] and batch["count"] == 2
    assert "ignored_fields" not in client.post("/predict", json=GOOD).json()


def test_an_integer_takes_a_json_number_without_a_fraction(client, trained_home):
    """JSON Schema's integer: 6.0 is one (the OpenAPI document says integer, so 6.0 must be accepted)."""
    r = client.post("/predict", json=GOOD | {"tenure_months": 6.0, "num_complaints": 3.0})
    assert r.status_code == 200 and r.json()["probability"] == LAB_REQUESTS[0][1]
    assert r.json()["features"]["tenure_months"] == 6 and '"tenure_months":6,' in r.text
    batch = client.post("/predict/batch", json=[GOOD | {"tenure_months": 6.0}])
    assert batch.status_code == 200 and batch.json()["results"][0]["features"]["tenure_months"] == 6


BAD_BODIES = [
    (b"", "application/json"),
    (b"{", "application/json"),
    (b"not json", "application/json"),
    (b"[]", "application/json"),
    (b"[1, 2]", "application/json"),
    (b"null", "application/json"),
    (b"42", "application/json"),
    (b'"text"', "application/json"),
    (b"\xff\xfe\x00{", "application/json"),
    (b"[" * 5000 + b"]" * 5000, "application/json"),
    (json.dumps(GOOD).encode(), "text/plain"),
    (json.dumps(GOOD).encode(), None),
]


@pytest.mark.parametrize("content,ctype", BAD_BODIES, ids=[f"{c[:10]!r}-{t}" for c, t in BAD_BODIES])
def test_a_body_that_is_not_a_request_is_422_naming_the_body(client, content, ctype):
    headers = {"content-type": ctype} if ctype else {}
    r = client.post("/predict", content=content, headers=headers)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "body"
    assert "tenure_months" in r.json()["detail"][0]["msg"]  # it says what a request looks like


def test_an_oversized_body_is_413_declared_or_streamed(client):
    r = client.post("/predict", content=b" " * 20_000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "larger than 16384 bytes" in r.json()["detail"]
    streamed = client.post("/predict", content=iter([b" " * 8192] * 4), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and "16384" in streamed.json()["detail"]
    big = client.post("/predict/batch", content=b" " * 2_000_000, headers={"content-type": "application/json"})
    assert big.status_code == 413 and "1048576" in big.json()["detail"]


def test_batch_bounds_and_row_errors(client, trained_home):
    r = client.post("/predict/batch", json=[GOOD] * (MAX_BATCH_ROWS + 1))
    assert r.status_code == 422 and "at most 1000 rows" in r.json()["detail"][0]["msg"]
    r = client.post("/predict/batch", json=[])
    assert r.status_code == 422 and "at least 1 row" in r.json()["detail"][0]["msg"]
    r = client.post("/predict/batch", json=GOOD)
    assert r.status_code == 422 and "JSON array" in r.json()["detail"][0]["msg"]
    r = client.post("/predict/batch", json=[GOOD, GOOD | {"region": "ZZ"}])
    (err,) = r.json()["detail"]
    assert r.status_code == 422 and (err["row"], err["field"]) == (1, "region")
    assert err["msg"].startswith("row 1: region: 'ZZ' is not allowed; allowed: one of NA")
    assert not trained_home.predictions_log.exists()  # nothing of a refused batch is scored or logged


def test_no_input_gives_a_500(client):
    """A sweep of odd inputs on every route: anything but a 5xx."""
    odd = [None, 0, -0.0, 1e308, -1, "", " ", "\u0000", "NA", "é" * 64, [], {}, [GOOD], math.pi]
    statuses = set()
    for field in (*schema.FEATURES, "request_id", "extra"):
        for value in odd:
            statuses.add(client.post("/predict", json=GOOD | {field: value}).status_code)
            statuses.add(client.post("/predict/batch", json=[GOOD | {field: value}]).status_code)
    for method in ("get", "put", "delete", "patch"):
        statuses.add(client.request(method.upper(), "/predict").status_code)
    statuses.add(client.get("/nowhere").status_code)
    statuses.add(client.get("/health?x=" + "y" * 5000).status_code)
    assert statuses <= {200, 404, 405, 422}


def test_the_service_is_a_dependency_tests_can_replace(trained_home):
    """Routes take the service from a dependency: an override reaches every route."""
    from churn_lib.serving import Service
    from serve.routes import get_service

    app = create_app(trained_home)
    empty = Service(trained_home.root / "elsewhere")
    empty.start()
    app.dependency_overrides[get_service] = lambda: empty
    with TestClient(app) as c:
        assert c.get("/health").status_code == 503
        assert c.post("/predict", json=GOOD).status_code == 503
    app.dependency_overrides.clear()
    with TestClient(app) as c:
        assert c.post("/predict", json=GOOD).status_code == 200
