"""The model-quality gauges of /metrics, read from the monitoring history, and the Grafana dashboard built on them."""

import json
import re
from datetime import datetime
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from churn_lib import drift, simulate
from churn_lib.drift import performance
from churn_lib.logs import monitoring, outcomes
from serve.app import create_app
from serve.metrics import WATCH_DECISIONS

from .conftest import running_server

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
GAUGES = ("churn_drift_psi", "churn_drift_alerts", "churn_performance", "churn_monitor_last_check_timestamp_seconds",
          "churn_watch_decision_info")
ROW = {"tenure_months": 30, "num_complaints": 1, "avg_session_minutes": 35.0, "plan_type": "premium",
       "region": "NA"}


def _samples(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _scrape(client):
    r = client.get("/metrics")
    assert r.status_code == 200
    return _samples(r.text)


def _gauges(samples, name=None):
    """The model-quality series: {(name, labels): value}, or {labels: value} of one of them."""
    if name is not None:
        return {dict(labels).get("feature") or labels: v for (n, labels), v in samples.items() if n == name}
    return {k: v for k, v in samples.items() if k[0] in GAUGES}


def _ts(iso):
    return datetime.fromisoformat(iso).timestamp()


def _append(home, *records):
    home.monitoring_log.parent.mkdir(parents=True, exist_ok=True)
    with open(home.monitoring_log, "a", encoding="utf-8") as fh:
        for r in records:
            fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")


def _drift_line(version, psi, alarms=0, at="2026-12-01T10:00:00Z"):
    return {"kind": "drift", "checked_at_utc": at, "verdict": "no drift", "window": {},
            "models": [{"version": version, "verdict": "no drift", "rows": 500, "alarms": alarms,
                        "max_psi": max(psi.values(), default=None), "psi": psi}]}


# --- after real checks ----------------------------------------------------------------------------------------

def test_gauges_show_the_drift_and_performance_checks_of_simulated_traffic(trained_home):
    simulate.simulate(300, home=trained_home, seed=1, shift=simulate.Shift(mean={"tenure_months": 1.0}))
    d = drift.check(home=trained_home)
    logged = [json.loads(line) for line in trained_home.predictions_log.read_text().splitlines()]
    outcomes.ingest_records([{"request_id": r["request_id"], "outcome": r["prediction"]} for r in logged[:150]],
                            home=trained_home)
    p = performance.check(home=trained_home)
    with TestClient(create_app(trained_home)) as c:
        c.post("/predict", json=ROW)
        m = _scrape(c)
    (md,) = d.models
    psi = {s.feature: s.value for s in md.statistics if s.name == "psi"}
    assert md.version == "v1" and len(psi) == 5 and md.alerts  # a 1-std shift of tenure alarms
    assert _gauges(m, "churn_drift_psi") == pytest.approx(psi)
    assert set(k for k in m if k[0] == "churn_drift_psi") == {
        ("churn_drift_psi", (("feature", f), ("version", "v1"))) for f in psi}
    assert m[("churn_drift_alerts", (("version", "v1"),))] == len(md.alerts)
    (mp,) = p.models
    assert mp.with_outcome == 150 and mp.predictions == 300
    for kind, figures in (("realized", mp.realized), ("estimated", mp.estimated)):
        for metric in ("roc_auc", "f1", "brier"):
            key = ("churn_performance", (("kind", kind), ("metric", metric), ("version", "v1")))
            assert m[key] == pytest.approx(figures[metric])
    assert m[("churn_monitor_last_check_timestamp_seconds", (("check", "drift"),))] == _ts(d.checked_at_utc)
    assert m[("churn_monitor_last_check_timestamp_seconds", (("check", "performance"),))] == _ts(p.checked_at_utc)
    assert not [k for k in m if k[0] == "churn_watch_decision_info"]  # no watch has run
    # the request metrics are still there, unchanged
    assert m[("churn_role_predictions_total", (("role", "champion"),))] == 1
    assert sum(v for k, v in m.items() if k[0] == "churn_predictions_total") == 1


def test_the_latest_record_of_each_version_and_check_wins(client, trained_home):
    _append(trained_home, _drift_line("v1", {"tenure_months": 0.5, "region": 0.01}, alarms=3),
            _drift_line("v2", {"tenure_months": 0.02}, at="2026-12-01T11:00:00Z"))
    first = _scrape(client)
    assert first[("churn_drift_psi", (("feature", "tenure_months"), ("version", "v1")))] == 0.5
    assert first[("churn_drift_alerts", (("version", "v1"),))] == 3
    assert first[("churn_monitor_last_check_timestamp_seconds", (("check", "drift"),))] == \
        _ts("2026-12-01T11:00:00Z")
    # a later check of v1 replaces its figures (a feature it no longer reports disappears); v2's stay
    _append(trained_home, _drift_line("v1", {"tenure_months": 0.03}, alarms=0, at="2026-12-02T09:00:00Z"))
    m = _scrape(client)
    psi = {k[1]: v for k, v in m.items() if k[0] == "churn_drift_psi"}
    assert psi == {(("feature", "tenure_months"), ("version", "v1")): 0.03,
                   (("feature", "tenure_months"), ("version", "v2")): 0.02}
    assert m[("churn_drift_alerts", (("version", "v1"),))] == 0
    assert m[("churn_monitor_last_check_timestamp_seconds", (("check", "drift"),))] == \
        _ts("2026-12-02T09:00:00Z")
    # a real check with too few rows: v1 has no PSI and no alarm now
    simulate.simulate(20, home=trained_home, seed=2)
    assert drift.check(home=trained_home).verdict == "insufficient data"
    m = _scrape(client)
    assert {dict(k[1])["version"] for k in m if k[0] == "churn_drift_psi"} == {"v2"}
    assert m[("churn_drift_alerts", (("version", "v1"),))] == 0


def test_watch_and_compare_lines_give_the_decision_and_their_times(client, trained_home):
    _append(trained_home, {"kind": "watch", "checked_at_utc": "2026-12-01T10:00:00Z", "decision": "retrain",
                           "reasons": ["realized_below_floor"]},
            {"kind": "compare", "checked_at_utc": "2026-12-01T10:05:00Z", "verdict": "no_difference",
             "models": [{"version": "v2", "role": "challenger", "realized_f1": 0.1}]},
            {"kind": "watch", "checked_at_utc": "2026-12-01T11:00:00Z", "decision": "cooldown"})
    m = _scrape(client)
    assert {dict(k[1])["decision"]: v for k, v in m.items() if k[0] == "churn_watch_decision_info"} == \
        {d: float(d == "cooldown") for d in WATCH_DECISIONS}
    checks = {dict(k[1])["check"]: v for k, v in m.items() if k[0] == "churn_monitor_last_check_timestamp_seconds"}
    assert checks == {"watch": _ts("2026-12-01T11:00:00Z"), "compare": _ts("2026-12-01T10:05:00Z")}
    assert not [k for k in m if k[0] == "churn_performance"]  # a comparison is not a performance check
    # a decision outside the closed set: no decision is 1, and it gets no series of its own
    _append(trained_home, {"kind": "watch", "checked_at_utc": "2026-12-01T12:00:00Z", "decision": "panic"})
    m = _scrape(client)
    assert {dict(k[1])["decision"]: v for k, v in m.items() if k[0] == "churn_watch_decision_info"} == \
        {d: 0.0 for d in WATCH_DECISIONS}


# --- bad input ------------------------------------------------------------------------------------------------

def test_hostile_and_torn_lines_are_skipped_and_label_values_are_escaped(client, trained_home):
    odd = 'a"b\\c\nd'  # a quote, a backslash and a newline in a feature name and a version
    good = _drift_line(odd, {odd: 0.4, "plain": 0.1}, alarms=2)
    torn = json.dumps(_drift_line("v9", {"x": 9.0}))[:40]
    _append(trained_home,
            "{torn", "[1, 2]", "null", '"a string"', "[" * 100_000, "\x00\xff garbage",
            {"kind": "drift", "models": "not a list"},
            {"kind": "drift", "models": [None, 3, {"version": 7}, {"version": "x" * 1000, "psi": {"f": 1.0}}]},
            '{"kind":"drift","models":[{"version":"v8","alarms":true,"psi":{"nan":NaN,"inf":1e999,"s":"0.3",'
            '"b":true,"ok":0.2}}]}',
            {"kind": "performance", "checked_at_utc": "yesterday",
             "models": [{"version": "v8", "realized_f1": "0.9", "estimated_f1": 0.7, "realized_made_up": 1.0}]},
            {"kind": "mystery", "checked_at_utc": "2026-12-01T10:00:00Z", "models": [{"version": "v7"}]},
            torn + json.dumps(good))  # a torn line glued to the next one: the whole line is read
    with open(trained_home.monitoring_log, "a") as fh:
        fh.write(torn)  # being written (no newline yet): not read
    r = client.get("/metrics")
    assert r.status_code == 200
    m = _samples(r.text)
    assert _gauges(m) == {
        ("churn_drift_psi", (("feature", odd), ("version", odd))): 0.4,
        ("churn_drift_psi", (("feature", "plain"), ("version", odd))): 0.1,
        ("churn_drift_alerts", (("version", odd),)): 2,
        ("churn_drift_psi", (("feature", "ok"), ("version", "v8"))): 0.2,
        ("churn_performance", (("kind", "estimated"), ("metric", "f1"), ("version", "v8"))): 0.7,
        ("churn_monitor_last_check_timestamp_seconds", (("check", "drift"),)): _ts("2026-12-01T10:00:00Z"),
    }
    assert 'version="a\\"b\\\\c\\nd"' in r.text  # escaped as the exposition format says
    with open(trained_home.monitoring_log, "a") as fh:  # the line being written is completed
        fh.write(json.dumps(_drift_line("v9", {"x": 9.0}))[40:] + "\n")
    assert _scrape(client)[("churn_drift_psi", (("feature", "x"), ("version", "v9")))] == 9.0


def test_versions_are_bounded_to_the_most_recently_checked(client, trained_home):
    _append(trained_home, *(_drift_line(f"v{i}", {"f": float(i)}) for i in range(monitoring.MAX_VERSIONS + 50)))
    m = _scrape(client)
    versions = {dict(k[1])["version"] for k in m if k[0] == "churn_drift_psi"}
    assert versions == {f"v{i}" for i in range(50, monitoring.MAX_VERSIONS + 50)}


def test_no_history_no_gauges_and_no_error_until_one_appears(client, trained_home):
    assert not trained_home.monitoring_log.exists()
    r = client.get("/metrics")
    assert r.status_code == 200 and not [name for name in GAUGES if name in r.text]  # not even a HELP line
    assert [v for k, v in _samples(r.text).items() if k[0] == "churn_model_info"] == [1]
    _append(trained_home, _drift_line("v1", {"f": 0.2}))
    assert _gauges(_scrape(client), "churn_drift_psi") == {"f": 0.2}
    trained_home.monitoring_log.unlink()
    assert _gauges(_scrape(client)) == {}


def test_a_scrape_does_not_read_an_unchanged_file_and_reads_only_what_was_appended(client, trained_home,
                                                                                  monkeypatch):
    _append(trained_home, _drift_line("v1", {"f": 0.2}))
    reads = []

    class Spy:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def seek(self, offset):
            reads.append(offset)
            return self.fh.seek(offset)

        def __iter__(self):
            return iter(self.fh)

    monkeypatch.setattr(monitoring, "open", lambda *a, **k: Spy(open(*a, **k)), raising=False)
    _scrape(client)
    size = trained_home.monitoring_log.stat().st_size
    for _ in range(5):
        assert _gauges(_scrape(client), "churn_drift_psi") == {"f": 0.2}
    assert reads == [0]  # read once
    _append(trained_home, _drift_line("v1", {"f": 0.3}))
    assert _gauges(_scrape(client), "churn_drift_psi") == {"f": 0.3}
    assert reads == [0, size]  # only the new line
    trained_home.monitoring_log.write_text(json.dumps(_drift_line("v2", {"g": 0.1})) + "\n")  # replaced: smaller
    assert {dict(k[1])["version"] for k in _scrape(client) if k[0] == "churn_drift_psi"} == {"v2"}
    assert reads == [0, size, 0]


# --- several workers ------------------------------------------------------------------------------------------

def _by_worker(url, workers):
    """{pid: the gauges of its /metrics}: /health and /metrics on one kept-alive connection, so one worker."""
    seen = {}
    for _ in range(400):
        with httpx.Client(base_url=url, timeout=10) as c:
            pid = c.get("/health").json()["pid"]
            if pid not in seen:
                seen[pid] = _gauges(_scrape(c))
        if len(seen) == workers:
            return seen
    raise AssertionError(f"only {len(seen)} of {workers} workers answered")


def test_two_workers_show_the_same_gauges_never_their_sum(trained_home):
    simulate.simulate(300, home=trained_home, seed=3)
    d = drift.check(home=trained_home)
    _append(trained_home, {"kind": "watch", "checked_at_utc": "2026-12-01T10:00:00Z", "decision": "ok"})
    psi = {s.feature: s.value for s in d.models[0].statistics if s.name == "psi"}
    with running_server(trained_home, workers=2) as url:
        first = _by_worker(url, 2)
        _append(trained_home, {"kind": "watch", "checked_at_utc": "2026-12-01T11:00:00Z", "decision": "investigate"})
        second = _by_worker(url, 2)
    a, b = first.values()
    assert a == b and _gauges(a, "churn_drift_psi") == pytest.approx(psi)
    assert a[("churn_watch_decision_info", (("decision", "ok"),))] == 1  # not 2
    assert a[("churn_drift_alerts", (("version", "v1"),))] == len(d.models[0].alerts)
    c, e = second.values()
    assert c == e and c[("churn_watch_decision_info", (("decision", "investigate"),))] == 1
    assert c[("churn_watch_decision_info", (("decision", "ok"),))] == 0


# --- the Grafana dashboard ------------------------------------------------------------------------------------

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset"}
PROMQL_FUNCTIONS = {"rate", "irate", "increase", "sum", "max", "min", "avg", "count", "topk", "bottomk",
                    "histogram_quantile", "time", "clamp_min", "clamp_max", "label_replace", "abs", "vector",
                    "max_over_time", "last_over_time"}


def _metric_names(expr):
    """The metric names an expression reads (label matchers, groupings, strings and variables left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\$\{?\w+\}?|\[[^\]]*\]", "", expr)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        word = m.group()
        if word in PROMQL_WORDS or re.match(r"\s*\(", expr[m.end():]) and word in PROMQL_FUNCTIONS:
            continue
        if re.fullmatch(r"\d+[smhdw]|e\d*", word):
            continue
        names.add(word)
    return names


def _exposed(text):
    """Every series name a scrape exposes, also of families that have no sample yet (a counter never incremented)."""
    names = set()
    for fam in text_string_to_metric_families(text):
        names |= {s.name for s in fam.samples}
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(fam.type, ("",))
        names |= {fam.name + s for s in suffixes}
    return names


def test_the_grafana_dashboard_imports_and_each_panel_reads_what_metrics_exposes(client, trained_home):
    simulate.simulate(300, home=trained_home, seed=1)
    drift.check(home=trained_home)
    performance.check(home=trained_home)
    _append(trained_home, {"kind": "watch", "checked_at_utc": "2026-12-01T10:00:00Z", "decision": "ok"})
    client.post("/predict", json=ROW)
    exposed = _exposed(client.get("/metrics").text)
    assert set(GAUGES) <= exposed

    board = json.loads(DASHBOARD.read_text())
    assert board["title"] and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", board["uid"])
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    read = set()
    for p in panels:
        assert p["title"] and p["type"] and {"h", "w", "x", "y"} <= set(p["gridPos"]), p.get("title")
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["refId"] and t["datasource"] == p["datasource"]
            names = _metric_names(t["expr"])
            assert names and names <= exposed, (p["title"], t["expr"], names - exposed)
            read |= names
    assert {v["type"] for v in variables.values()} <= {"datasource", "custom"}  # no variable queries a metric
    titles = " | ".join(p["title"].lower() for p in panels)
    for words in ("request rate", "latency", "predictions by role", "challenger failures", "drift psi",
                  "drift alerts", "performance", "last check", "watch decision"):
        assert words in titles, words
    assert set(GAUGES) | {"churn_http_requests_total", "churn_http_request_duration_seconds_bucket",
                          "churn_role_predictions_total", "churn_role_failures_total"} <= read


def test_the_expression_reader_finds_the_metric_names():
    assert _metric_names('histogram_quantile(0.95, sum by (endpoint, le) (rate(churn_x_bucket{a="b"}'
                         '[$__rate_interval])))') == {"churn_x_bucket"}
    assert _metric_names("time() - max by (check) (churn_t)") == {"churn_t"}
    assert _metric_names('max by (feature) (churn_psi and on (version) (churn_info > 0))') == \
        {"churn_psi", "churn_info"}
