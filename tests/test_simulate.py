"""The traffic simulator: rows like the training data or shifted as asked,
written with a model's real scores, or sent to a service on this machine."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from churn_lib import cli, drift, registry, scoring, simulate
from churn_lib.logs import predictions as predlog
from . import lab_contract as schema
from churn_lib.exceptions import ChurnError, InvalidParameter, NoCurrentModel


def test_draws_are_valid_requests_and_repeatable():
    rows = simulate.draw(500, seed=3)
    assert list(rows.columns) == list(schema.FEATURES)
    for name in schema.NUMERIC:
        assert rows[name].between(schema.RANGES[name].low, schema.RANGES[name].high).all()
    assert rows["tenure_months"].dtype == np.int64 and rows["num_complaints"].dtype == np.int64
    assert set(rows["region"]) == {"NA", "EU", "AF", "AS"} and set(rows["plan_type"]) == {"basic", "premium"}
    assert rows.equals(simulate.draw(500, seed=3)) and not rows.equals(simulate.draw(500, seed=4))


def test_shifts_move_the_mean_the_spread_and_the_mix():
    base = simulate.draw(4000, seed=1)
    moved = simulate.draw(4000, seed=1, shift=simulate.Shift(mean={"tenure_months": 1.0}))
    std = base["tenure_months"].std()
    assert (moved["tenure_months"].mean() - base["tenure_months"].mean()) / std == pytest.approx(1.0, abs=0.02)
    wide = simulate.draw(4000, seed=1, shift=simulate.Shift(scale={"avg_session_minutes": 0.5}))
    assert wide["avg_session_minutes"].std() == pytest.approx(base["avg_session_minutes"].std() / 2, rel=0.02)
    assert wide["avg_session_minutes"].mean() == pytest.approx(base["avg_session_minutes"].mean(), rel=0.01)
    mixed = simulate.draw(4000, seed=1, shift=simulate.Shift(mix={"region": {"NA": 3, "EU": 1}}))
    assert mixed["region"].value_counts(normalize=True)["NA"] == pytest.approx(0.75, abs=0.03)


@pytest.mark.parametrize("kwargs, match", [
    ({"mean": {"churn": 1.0}}, "not a numeric feature"),
    ({"scale": {"tenure_months": 0}}, "must be positive"),
    ({"mix": {"tenure_months": {"a": 1}}}, "not a categorical or boolean feature"),
    ({"mix": {"region": {"NA": -1}}}, "non-negative shares"),
])
def test_bad_shifts_are_refused(kwargs, match):
    """Shares and factors are refused when built; feature names against the contract, before any draw."""
    with pytest.raises(InvalidParameter, match=match):
        simulate.draw(10, shift=simulate.Shift(**kwargs))


def test_written_rows_carry_the_models_real_scores(trained_home):
    result = simulate.simulate(50, home=trained_home, seed=2)
    assert result.delivered == 50 and result.mode == "log" and result.version == "v1"
    lines = trained_home.predictions_log.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 50 and list(records[0]) == list(predlog.KEYS)
    scorer = scoring.load(home=trained_home)
    proba = scorer.predict_proba([r["features"] for r in records])
    assert [r["probability"] for r in records] == [round(p, 6) for p in proba.tolist()]
    assert all(r["prediction"] == int(r["probability"] >= scorer.threshold) for r in records)
    assert {r["model_version"] for r in records} == {scorer.model_file} and records[0]["version"] == "v1"


def test_the_shift_is_in_training_standard_deviations(trained_home):
    profile = drift.load_profile(registry.current_entry(home=trained_home), home=trained_home)
    simulate.simulate(2000, home=trained_home, seed=3, shift=simulate.Shift(mean={"avg_session_minutes": 2.0}))
    batch = predlog.read_tail(predlog.log_files(home=trained_home), 5000)
    ref = profile.numeric["avg_session_minutes"]
    assert (batch.numeric["avg_session_minutes"].mean() - ref.mean) / ref.std == pytest.approx(2.0, abs=0.1)


def test_writing_needs_a_model(home):
    with pytest.raises(NoCurrentModel, match="--url"):
        simulate.simulate(10, home=home)


class _Service(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.path, body))
        status = 422 if body["region"] not in schema.CATEGORIES["region"] else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def service():
    _Service.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Service)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Service.received
    server.shutdown()
    server.server_close()


def test_requests_are_sent_to_a_local_service(home, service):
    url, received = service
    result = simulate.simulate(20, home=home, seed=4, url=url,
                               shift=simulate.Shift(mix={"region": {"NA": 1, "LATAM": 1}}))
    assert len(received) == 20 and {path for path, _ in received} == {"/predict"}
    assert set(received[0][1]) == set(schema.FEATURES) | {"request_id"}
    assert result.delivered + result.failed == 20 and result.failed == result.statuses.get("422", 0) > 0
    assert not home.predictions_log.exists()  # the service logs, not the simulator


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://example.com", "ftp://127.0.0.1/"])
def test_only_this_machine_is_a_target(home, url):
    with pytest.raises(InvalidParameter, match="only sends to a service on this machine"):
        simulate.simulate(5, home=home, url=url)


def test_an_absent_service_is_one_clear_error(home):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ChurnError, match="cannot reach"):
        simulate.simulate(5, home=home, url=f"http://127.0.0.1:{port}", timeout=2)


def test_the_command_writes_shifted_traffic(trained_home, capsys):
    code = cli.main(["simulate", "--n-rows", "300", "--seed", "5", "--shift", "tenure_months=1",
                     "--mix", "region=NA:0.7,EU:0.1,AF:0.1,AS:0.1"])
    out = capsys.readouterr().out
    assert code == 0 and "wrote 300 of 300" in out
    assert cli.main(["drift"]) == cli.EXIT_DRIFT
    capsys.readouterr()
    for bad in (["--shift", "tenure_months"], ["--mix", "region=NA"], ["--source", "elsewhere"]):
        with pytest.raises(SystemExit) as info:
            cli.main(["simulate", *bad])
        assert info.value.code == 2
    capsys.readouterr()


def test_rows_can_be_resampled_from_the_prepared_data(trained_home):
    rows = simulate.draw(300, seed=6, source="data", home=trained_home)
    assert list(rows.columns) == list(schema.FEATURES) and len(rows) == 300
    assert "NA" in set(rows["region"])  # read with the region NA kept as North America
    with pytest.raises(InvalidParameter, match="source"):
        simulate.draw(5, source="elsewhere")
