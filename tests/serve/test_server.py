"""The real thing: `churn serve` (uvicorn) on 127.0.0.1 and a free port, stopped by each test."""

import json
import threading
import time

import httpx2 as httpx

from churn_lib.logs import predictions as predlog
from churn_lib import registry, scoring

from ..conftest import LAB_REQUESTS
from .conftest import running_server

ROW = {"tenure_months": 30, "num_complaints": 1, "avg_session_minutes": 35.0, "plan_type": "premium",
       "region": "NA"}


def _log(home):
    return [json.loads(line) for line in home.predictions_log.read_bytes().splitlines()]


def test_the_labs_three_requests_get_the_labs_probabilities(trained_home):
    with running_server(trained_home) as url, httpx.Client(base_url=url, timeout=10) as c:
        health = c.get("/health").json()
        assert (health["status"], health["version"]) == ("ok", "v1")
        for body, probability, prediction in LAB_REQUESTS:
            r = c.post("/predict", json=body)
            assert r.status_code == 200
            assert (r.json()["probability"], r.json()["prediction"]) == (probability, prediction)
            assert list(r.json()) == [*predlog.KEYS, "logged"]
    assert [line["probability"] for line in _log(trained_home)] == [p for _, p, _ in LAB_REQUESTS]


def test_a_rollback_under_load_fails_no_request_and_each_answer_matches_its_log_line(two_versions_home):
    home = two_versions_home
    expected = {v: round(scoring.load(v, home=home).proba_one(ROW), 6) for v in ("v1", "v2")}
    assert expected["v1"] != expected["v2"]
    answers, failures = [], []
    stop = threading.Event()

    def client(k: int, url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as c:
            for i in range(3000):  # bounded: about 10 s at most on this machine
                if stop.is_set():
                    return
                try:
                    r = c.post("/predict", json=ROW | {"request_id": f"c{k}-{i}"})
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")
                else:
                    answers.append(r.json())

    def wait_for(version: str, n: int = 100, timeout: float = 20.0) -> None:
        """Until ``n`` more answers came from ``version`` (the switch happens under load)."""
        start = len(answers)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(a["version"] == version for a in answers[start:]) >= n:
                return
            time.sleep(0.01)
        raise AssertionError(f"{version} was not served {n} times within {timeout} s")

    with running_server(home) as url:
        threads = [threading.Thread(target=client, args=(k, url)) for k in range(4)]
        for t in threads:
            t.start()
        try:
            wait_for("v2")
            registry.rollback(home=home)  # v2 -> v1 while four clients keep asking
            wait_for("v1")
            registry.promote("v2", home=home)  # and forward again
            wait_for("v2")
        finally:
            stop.set()
            for t in threads:
                t.join(30)
    assert failures == []
    versions = [a["version"] for a in answers]
    assert versions.count("v1") >= 100 and versions.count("v2") >= 200
    logged = {line["request_id"]: line for line in _log(home)}
    assert len(logged) == len(answers)
    files = {v: registry.get(v, home=home)["model_file"] for v in ("v1", "v2")}
    for a in answers:
        line = logged[a["request_id"]]
        assert {k: a[k] for k in predlog.KEYS} == line
        assert a["probability"] == expected[a["version"]] and a["model_version"] == files[a["version"]]


def test_two_workers_write_the_log_concurrently_without_tearing_a_line(trained_home):
    batches, singles, threads_n = 3, 30, 4
    rid = "x" * 100  # long ids: long lines, a batch is one write of ~300 KB
    failures = []

    def client(k: int, url: str) -> None:
        # no keep-alive: every request is a new connection, so both workers get some
        try:
            with httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as c:
                for b in range(batches):
                    rows = [ROW | {"request_id": f"{rid}-{k}-{b}-{i}"} for i in range(1000)]
                    r = c.post("/predict/batch", json=rows)
                    if r.status_code != 200:
                        failures.append(r.status_code)
                    for i in range(singles // batches):
                        r = c.post("/predict", json=ROW | {"request_id": f"{rid}-{k}-{b}-s{i}"})
                        if r.status_code != 200:
                            failures.append(r.status_code)
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(repr(exc))

    with running_server(trained_home, workers=2) as url:
        threads = [threading.Thread(target=client, args=(k, url)) for k in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        pids = set()
        with httpx.Client(base_url=url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as c:
            for _ in range(200):
                pids.add(c.get("/health").json()["pid"])
                if len(pids) == 2:
                    break
            metrics = c.get("/metrics").text
    assert failures == []
    assert len(pids) == 2, "both workers answer"
    raw = trained_home.predictions_log.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    records = [json.loads(line) for line in lines]  # a torn or interleaved line would not parse
    assert all(list(r) == list(predlog.KEYS) for r in records)
    ids = [r["request_id"] for r in records]
    assert len(ids) == len(set(ids)) == threads_n * (batches * 1000 + singles)
    # the workers' metrics are summed: every prediction of both is counted once, by both workers
    total = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                if line.startswith("churn_predictions_total{"))
    assert total == len(ids)
    served = [line for line in metrics.splitlines() if line.startswith("churn_model_info{")]
    assert len(served) == 1 and served[0].endswith(" 2.0")  # v1, on 2 workers
