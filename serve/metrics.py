"""Prometheus metrics of the API (text exposition format at ``GET /metrics``).

prometheus_client writes the exposition format and, when ``churn serve``
starts several workers, aggregates their counters through the folder named by
``PROMETHEUS_MULTIPROC_DIR`` (set by :func:`serve.run.run`), so a
scrape that lands on any worker sees the whole service.

Series (``endpoint`` is the route template, never the raw path, so its
cardinality is bounded):

* ``churn_http_requests_total{endpoint,method,status}``
* ``churn_http_errors_total{endpoint,status}`` - responses with status >= 400
* ``churn_http_request_duration_seconds{endpoint}`` - latency histogram
* ``churn_predictions_total{version,prediction}`` - the served model's predictions by class
* ``churn_role_predictions_total{role}`` - logged predictions of the champion (the served model) and of
  the challenger (in shadow)
* ``churn_role_failures_total{role}`` - champion: prediction requests answered 5xx; challenger: rows it
  did not score or log (an error, a dropped challenger, a full queue, a failed write)
* ``churn_model_info{version,model_file,scorer}`` - 1 for the served model (summed over workers)
* ``churn_model_load_failures_total``, ``churn_prediction_log_failures_total``

Model-quality gauges, read at scrape time from the monitoring history
(``reports/monitoring.jsonl``, written by ``churn drift``, ``churn performance``,
``churn compare`` and ``churn watch``), never computed in a request. A
:class:`MonitoringCollector` follows the file (one ``stat`` per scrape while it
is unchanged) and is not part of the multi-process aggregation: every worker
reads the same file, so every worker shows the same values, never their sum.
One series per version (its latest check) or per check:

* ``churn_drift_psi{feature,version}`` - PSI of each feature in the version's latest drift check
* ``churn_drift_alerts{version}`` - statistics that alarmed in that check
* ``churn_performance{metric,kind,version}`` - ``roc_auc``, ``f1``, ``brier``; ``kind`` is ``realized`` (on
  outcomes) or ``estimated`` (CBPE, without), from the version's latest performance check
* ``churn_monitor_last_check_timestamp_seconds{check}`` - ``drift``, ``performance``, ``compare``, ``watch``
* ``churn_watch_decision_info{decision}`` - 1 for the latest watch decision, 0 for the rest of
  :data:`WATCH_DECISIONS`
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from churn_lib.logs import monitoring
from churn_lib.serving import METRICS_DIR_ENV

#: The routes whose 5xx answers count as the champion's failures.
PREDICTION_ROUTES = frozenset({"/predict", "/predict/batch"})
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: The watch's decisions (a closed set): ``churn_watch_decision_info`` has one series each.
WATCH_DECISIONS = ("ok", "investigate", "retrain", "insufficient_data", "cooldown", "locked")


def multiprocess() -> bool:
    return bool(os.environ.get(METRICS_DIR_ENV))


class MonitoringCollector(Collector):
    """The model-quality gauges, built at each scrape from the latest records of a monitoring history.

    No history file: no gauges. A version's series come from its latest line of
    each kind, so a version whose latest drift check had too few rows has no PSI.

    Parameters
    ----------
    path : path
        The history (``Home.monitoring_log``); read at scrape time, never here.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.follower = monitoring.Follower(path)

    def describe(self) -> list[GaugeMetricFamily]:
        """The families without samples (registering the collector reads nothing)."""
        return list(self._families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        latest = self.follower.latest()
        if latest is None:
            return iter(())
        psi, alerts, performance, checked, decision = self._families()
        for version, drift in latest.drift.items():
            for feature, value in sorted(drift["psi"].items()):
                psi.add_metric([feature, version], value)
            if drift["alarms"] is not None:
                alerts.add_metric([version], drift["alarms"])
        for version, figures in latest.performance.items():
            for (metric, kind), value in sorted(figures.items()):
                performance.add_metric([metric, kind, version], value)
        for check in monitoring.CHECKS:
            if check in latest.checked_at:
                checked.add_metric([check], latest.checked_at[check])
        if "watch" in latest.checked_at or latest.decision is not None:
            for name in WATCH_DECISIONS:
                decision.add_metric([name], 1.0 if name == latest.decision else 0.0)
        return iter([f for f in (psi, alerts, performance, checked, decision) if f.samples])

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily("churn_drift_psi", "PSI of each feature in the latest drift check of each version",
                              labels=["feature", "version"]),
            GaugeMetricFamily("churn_drift_alerts", "Drift statistics that alarmed in the latest drift check of "
                              "each version", labels=["version"]),
            GaugeMetricFamily("churn_performance", "Latest performance check of each version: realized (on "
                              "outcomes) or estimated (CBPE, without) ROC AUC, F1 and Brier score",
                              labels=["metric", "kind", "version"]),
            GaugeMetricFamily("churn_monitor_last_check_timestamp_seconds", "Unix time of the latest line of each "
                              "check in the monitoring history", labels=["check"]),
            GaugeMetricFamily("churn_watch_decision_info", "1 for the latest watch decision, 0 for the others",
                              labels=["decision"]),
        )


class Metrics:
    """The API's metrics, registered on a registry of their own (one per app).

    Parameters
    ----------
    monitoring_log : path, optional
        The monitoring history whose latest records give the model-quality gauges; None: no such gauges.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, monitoring_log: str | os.PathLike | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.monitor = MonitoringCollector(monitoring_log) if monitoring_log is not None else None
        if self.monitor is not None:
            r.register(self.monitor)
        self.requests = Counter("churn_http_requests", "HTTP requests by endpoint, method and status",
                                ["endpoint", "method", "status"], registry=r)
        self.errors = Counter("churn_http_errors", "HTTP responses with status >= 400 by endpoint and status",
                              ["endpoint", "status"], registry=r)
        self.latency = Histogram("churn_http_request_duration_seconds", "HTTP request latency by endpoint",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.predictions = Counter("churn_predictions", "Predictions by model version and predicted class",
                                   ["version", "prediction"], registry=r)
        self.model_info = Gauge("churn_model_info", "1 for the model being served (summed over workers)",
                                ["version", "model_file", "scorer"], multiprocess_mode="livesum", registry=r)
        self.role_predictions = Counter("churn_role_predictions", "Predictions by role: champion (answered) and "
                                        "challenger (in shadow, logged, never returned)", ["role"], registry=r)
        self.role_failures = Counter("churn_role_failures", "Failures by role: champion, prediction requests "
                                     "answered 5xx; challenger, rows not scored or not logged", ["role"],
                                     registry=r)
        self.load_failures = Counter("churn_model_load_failures", "Failed loads of the model the pointer names",
                                     registry=r)
        self.log_failures = Counter("churn_prediction_log_failures",
                                    "Requests whose predictions could not be written to the log", registry=r)
        self._children: dict[tuple, Any] = {}  # labelled series by key: labels() costs a lock and a lookup
        self._served: tuple[str, str, str] | None = None
        self._seen_load_failures = 0
        self._seen_log_failures = 0
        self._seen_shadow = [0, 0]  # the challenger's predictions and failures, as counted so far

    # --- events -------------------------------------------------------------

    def child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def predicted(self, version: str, n_churn: int, n_stay: int) -> None:
        self.child(self.role_predictions, "champion").inc(n_churn + n_stay)
        if n_churn:
            self.child(self.predictions, version, "1").inc(n_churn)
        if n_stay:
            self.child(self.predictions, version, "0").inc(n_stay)

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        code = str(status)
        self.child(self.requests, endpoint, method, code).inc()
        if status >= 400:
            self.child(self.errors, endpoint, code).inc()
        self.child(self.latency, endpoint).observe(seconds)
        if status >= 500 and endpoint in PREDICTION_ROUTES:
            self.child(self.role_failures, "champion").inc()

    def sync(self, service: Any) -> None:
        """Bring the served-model gauge and the failure counters up to date with ``service``."""
        scorer = service.holder.scorer
        served = (scorer.version, scorer.model_file, scorer.engine) if scorer else None
        if served != self._served:
            if self._served:
                self.model_info.labels(*self._served).set(0)
            if served:
                self.model_info.labels(*served).set(1)
            self._served = served
        for attr, counter, source in (("_seen_load_failures", self.load_failures, service.holder.load_failures),
                                      ("_seen_log_failures", self.log_failures, service.log.failures)):
            delta = source - getattr(self, attr)
            if delta > 0:
                counter.inc(delta)
                setattr(self, attr, source)
        shadow = getattr(service, "shadow", None)  # a test's stand-in service may have none
        if shadow is not None:
            for k, (counter, source) in enumerate(((self.role_predictions, shadow.predictions),
                                                   (self.role_failures, shadow.failures))):
                delta = source - self._seen_shadow[k]
                if delta > 0:
                    self.child(counter, "challenger").inc(delta)
                    self._seen_shadow[k] = source

    # --- exposition ---------------------------------------------------------

    def render(self) -> bytes:
        """The text exposition of this process, or of every worker in multi-process mode."""
        if multiprocess():
            from prometheus_client import multiprocess as mp

            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)
            if self.monitor is not None:  # read by each worker, so never summed across them
                registry.register(self.monitor)
            return generate_latest(registry)
        return generate_latest(self.registry)

    @staticmethod
    def process_exited() -> None:
        """Drop this worker's live gauges (multi-process mode) when it shuts down."""
        if multiprocess():
            from prometheus_client import multiprocess as mp

            mp.mark_process_dead(os.getpid())


class MetricsMiddleware:
    """Pure ASGI middleware: counts requests and errors and times them (to the last byte sent), by route template;
    after each request brings the served-model gauge and failure counters up to date."""

    def __init__(self, app: ASGIApp, metrics: Metrics, service: Any = None,
                 known_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.metrics = metrics
        self.service = service
        self.known_paths = known_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        end = None  # when the last byte of the answer was sent: a background task after it is not its latency
        status = 500  # an exception before the response started is answered 500 by Starlette

        async def send_status(message: Message) -> None:
            nonlocal status, end
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                end = time.perf_counter()

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            # a request refused before routing (413) is labelled by its path when that is a route
            endpoint = getattr(route, "path", None) or (
                scope["path"] if scope["path"] in self.known_paths else "other")
            self.metrics.observe(endpoint, scope["method"], status, (end or time.perf_counter()) - start)
            if self.service is not None:
                self.metrics.sync(self.service)
