"""Who scores the challenger, and when: after the response, in batches, with the service's thread as the backstop
(churn_lib.serving.Shadow, serve.routes.shadow_task)."""

from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient

from churn_lib import registry
from churn_lib.serving import SHADOW_BATCH, Service

from ..conftest import LAB_REQUESTS

ROW = {k: v for k, v in LAB_REQUESTS[0][0].items() if k != "request_id"}


def _challenger_ids(home):
    if not home.predictions_log.exists():
        return []
    return [r["request_id"] for r in map(json.loads, home.predictions_log.read_bytes().splitlines())
            if r.get("role") == "challenger"]


def test_the_prediction_routes_score_the_queued_jobs_after_their_answer_a_batch_at_a_time(two_versions_home):
    from serve.app import create_app

    home = two_versions_home
    registry.set_challenger("v1", home=home)
    with TestClient(create_app(home)) as c:
        shadow = c.app.state.service.shadow
        shadow.interval = 3600.0  # the thread never drains: what is logged, the responses' tasks logged
        ids = [f"b-{i}" for i in range(SHADOW_BATCH - 1)]
        for rid in ids:
            assert c.post("/predict", json=dict(ROW, request_id=rid)).status_code == 200
        assert shadow.pending == SHADOW_BATCH - 1 and _challenger_ids(home) == []  # not due yet: one write for many
        assert c.post("/predict/batch", json=[dict(ROW, request_id="batch-0"), dict(ROW, request_id="batch-1")]
                      ).status_code == 200
        assert shadow.pending == 0 and _challenger_ids(home) == [*ids, "batch-0", "batch-1"]  # in request order
        assert c.post("/predict", json=dict(ROW, request_id="last")).status_code == 200
        assert shadow.pending == 1
        assert c.app.state.service.challenger_health()["predictions"] == SHADOW_BATCH + 1
    assert _challenger_ids(home)[-1] == "last"  # the shutdown drained the rest


def test_a_job_waiting_half_an_interval_is_drained_by_the_next_response(two_versions_home):
    from serve.app import create_app

    home = two_versions_home
    registry.set_challenger("v1", home=home)
    with TestClient(create_app(home)) as c:
        shadow = c.app.state.service.shadow
        shadow.interval = 4.0
        shadow.stop()  # the next job starts the thread, whose first look is 4 s later
        c.post("/predict", json=dict(ROW, request_id="old"))
        time.sleep(2.1)  # past half an interval
        assert shadow.pending == 1 and _challenger_ids(home) == []
        c.post("/predict", json=dict(ROW, request_id="new"))
        assert _challenger_ids(home) == ["old", "new"] and shadow.pending == 0


def test_without_an_http_layer_the_services_thread_scores_the_jobs(two_versions_home):
    home = two_versions_home
    registry.set_challenger("v1", home=home)
    service = Service(home)
    service.start()
    service.shadow.interval = 0.02
    for i in range(3):
        service.predict(ROW, request_id=f"t-{i}")
    deadline = time.monotonic() + 10
    while len(_challenger_ids(home)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _challenger_ids(home) == ["t-0", "t-1", "t-2"] and service.shadow.pending == 0
    service.predict(ROW, request_id="t-3")
    service.stop()  # whatever is queued at shutdown is logged
    assert _challenger_ids(home) == ["t-0", "t-1", "t-2", "t-3"]
    assert service.challenger_health()["predictions"] == 4


def test_a_queue_too_far_behind_counts_every_row_and_answers_every_request(two_versions_home, caplog):
    from serve.app import create_app

    home = two_versions_home
    registry.set_challenger("v1", home=home)
    with TestClient(create_app(home)) as c:
        service = c.app.state.service
        service.shadow.interval = 3600.0
        service.shadow.max_backlog = 2
        answers = [c.post("/predict", json=dict(ROW, request_id=f"q-{i}")).status_code for i in range(6)]
    health = service.challenger_health()
    assert answers == [200] * 6
    assert (health["failures"], health["predictions"]) == (4, 2) and "2 jobs behind" in health["last_error"]
    assert caplog.text.count("2 jobs behind") == 1  # counted per row, logged once a second
    assert _challenger_ids(home) == ["q-0", "q-1"]
