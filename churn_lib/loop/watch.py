"""The watch: each tick checks the newest predictions and decides, from a closed set, whether anything must happen.

:func:`tick` reads the window since the last tick (or the policy's age),
runs the drift check (:func:`churn_lib.drift.check`) and the performance
check (:func:`churn_lib.drift.performance.check`: realized figures where
outcomes came back, the CBPE estimate where not) on the current model, and
decides one of :data:`DECISIONS`:

* ``ok`` - nothing to do;
* ``investigate`` - drift alone (a person looks at the drift report);
* ``retrain`` - the figure was below the floor in N of the last T ticks: a
  notebook run on the newest data registers a version (never making it current)
  and, when it passes the gate, makes it the challenger at the policy's sample;
* ``insufficient_data`` - too few predictions for either check;
* ``cooldown`` - a retrain is due, but a retrain started or the current model
  changed less than the cooldown ago;
* ``locked`` - another watch holds ``reports/.watch.lock``.

With ``auto_promote: true``, a tick first compares the challenger with the
champion (:func:`churn_lib.loop.compare.compare`) and promotes it through the
gate when the verdict is ``challenger_better``, the comparison in the history
line. Every tick appends a line of kind ``watch`` to ``reports/monitoring.jsonl``;
a retrain tick writes it before the run starts (``run.status: started``, so a
killed run still counts for the cooldown) and again, same ``tick``, when it ends.
:func:`watch` ticks until told to stop. The policy is ``churn.yaml``'s ``watch:``
section (:class:`churn_lib.loop.policy.WatchPolicy`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from .. import drift, registry
from .._io import iso
from ..drift import performance
from ..exceptions import ChurnError, DataError, NoCurrentModel, PromotionRefused, RegistryError
from ..home import Home
from ..logs import monitoring
from . import compare as _compare, policy as _policy

log = logging.getLogger(__name__)

OK, INVESTIGATE, RETRAIN = "ok", "investigate", "retrain"
INSUFFICIENT_DATA, COOLDOWN, LOCKED = "insufficient_data", "cooldown", "locked"
#: The decisions of a tick, a closed set.
DECISIONS = (OK, INVESTIGATE, RETRAIN, INSUFFICIENT_DATA, COOLDOWN, LOCKED)
#: The watch's own lock, in ``reports/`` beside the monitoring history (not the registry's lock: a tick that
#: retrains holds it for minutes, and registry commands must go on meanwhile).
LOCK_NAME = ".watch.lock"
#: Alerting drift statistics kept in a tick's evidence, the largest first.
TOP_STATISTICS = 5
#: Pointer actions that count as a change of the current model for the cooldown (``reconcile`` records one
#: after the fact; its own time is not the change's).
_CHANGES = ("register", "promote", "rollback")


@dataclass
class Tick:
    """One tick of the watch: its decision, reason codes and evidence, and the run or promotion it made."""

    tick: str
    checked_at_utc: str
    decision: str
    reasons: list[str]
    message: str
    version: str | None
    window: dict[str, Any]
    evidence: dict[str, Any]
    policy: dict[str, Any]
    run: dict[str, Any] | None = None
    promotion: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for people: the decision, its message, and the run it launched."""
        text = f"watch: {self.decision.upper()} - {self.message}"
        if self.run:
            run = self.run
            text += f"; retrain {run['status']}" + (f": {run['version']}" if run.get("version") else "")
            if run.get("challenger"):
                text += f", the challenger at sample {run['challenger']['sample']:g}"
            elif run.get("error") or run.get("challenger_refused"):
                text += f" ({run.get('error') or run.get('challenger_refused')})"
            elif run.get("passed_gate") is False:
                text += " (refused by the gate: not made the challenger)"
        if self.promotion:
            p = self.promotion
            text += f"; {p['version']} promoted" if p["promoted"] else f"; not promoted: {p.get('why')}"
        return text


def _ts(text: Any) -> float | None:
    """Unix seconds of a record's timestamp (``...Z``), or None."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


@contextlib.contextmanager
def _watch_lock(home: Home) -> Iterator[str | None]:
    """Hold the watch's lock for the block; yields None when held, else what the holder wrote (its pid)."""
    path = home.reports_dir / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited: a kernel the run starts never holds it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield None
    finally:
        os.close(fd)  # releases the lock


def _ticks(home: Home) -> list[dict[str, Any]]:
    """The watch's earlier ticks that checked (``locked`` ones did not), oldest first, the last line of each."""
    by_id: dict[str, dict[str, Any]] = {}
    for rec in monitoring.records(monitoring.WATCH, home=home):
        if rec.get("decision") != LOCKED and isinstance(rec.get("tick"), str):
            by_id[rec["tick"]] = rec  # a retrain's second line replaces its first
    return sorted(by_id.values(), key=lambda r: (r.get("window") or {}).get("until_ts") or 0.0)


def _since(pol: _policy.WatchPolicy, ticks: list[dict[str, Any]], now: float) -> float:
    """Where this tick's window starts: the policy's age back, else the last tick, else the log's beginning."""
    if pol.window_seconds is not None:
        return now - pol.window_seconds
    last = (ticks[-1].get("window") or {}).get("until_ts") if ticks else None
    return float(last) if isinstance(last, (int, float)) else 0.0


def _drift_evidence(home: Home, since_ts: float, pol: _policy.WatchPolicy) -> dict[str, Any]:
    """The drift check of the current model on the window, summarised: verdict, rows, the largest alarms."""
    try:
        result = drift.check(home=home, since=since_ts, model="current",
                             thresholds=drift.Thresholds(min_window_rows=max(2, pol.min_rows)))
    except NoCurrentModel:
        raise
    except RegistryError as exc:  # a model registered before drift profiles: performance still decides
        return {"verdict": "unavailable", "error": str(exc)}
    m = result.model()
    alerts = sorted(m.alerts, key=lambda s: -abs(s.effect if s.effect is not None else s.value or 0.0))
    top = [{"feature": s.feature, "name": s.name, "value": s.value, "effect": s.effect, "p_value": s.p_value}
           for s in alerts[:TOP_STATISTICS]]
    return {"verdict": result.verdict, "rows": m.n_rows, "alerts": len(m.alerts), "top": top}


def _figures(part: dict[str, Any] | None) -> dict[str, Any] | None:
    keep = ("rows", "churn_rate", "roc_auc", "f1", "precision", "recall", "brier")
    return None if part is None else {k: part.get(k) for k in keep}


def _performance_evidence(home: Home, since_ts: float, pol: _policy.WatchPolicy) -> dict[str, Any]:
    """The performance check on the window and the figure held against the floor: realized where enough
    outcomes (and churners among them) came back, else the estimate on the predictions without one."""
    result = performance.check(home=home, since=since_ts, model="current",
                               floor=pol.floor if pol.metric == "f1" else None, min_rows=pol.min_rows)
    m = result.models[0]
    real, est = m.realized or {}, m.estimated or {}
    positives = round((real.get("churn_rate") or 0.0) * (real.get("rows") or 0))
    kind = value = None
    if m.with_outcome >= pol.min_rows and positives >= pol.min_positives and real.get(pol.metric) is not None:
        kind, value = "realized", real[pol.metric]
    elif m.predictions - m.with_outcome >= pol.min_rows and est.get(pol.metric) is not None:
        kind, value = "estimated", est[pol.metric]
    floor = pol.floor if pol.floor is not None else m.floor
    below = None if value is None or floor is None else bool(value < floor)
    return {"verdict": m.verdict, "metric": pol.metric, "kind": kind, "value": value, "floor": floor,
            "below_floor": below, "predictions": m.predictions, "with_outcome": m.with_outcome,
            "positives": positives, "realized": _figures(m.realized), "estimated": _figures(m.estimated)}


def _held(ticks: list[dict[str, Any]], version: str, below: bool | None,
          pol: _policy.WatchPolicy) -> tuple[int, int]:
    """(ticks below the floor, ticks counted): this one and the last ``of_last_ticks - 1`` earlier ticks of the
    same current version that had a figure."""
    marks = [t["evidence"]["performance"].get("below_floor") for t in ticks
             if t.get("version") == version and isinstance((t.get("evidence") or {}).get("performance"), dict)]
    marks = [b for b in marks if b is not None]
    if below is not None:
        marks.append(below)
    marks = marks[-pol.of_last_ticks:]
    return sum(1 for b in marks if b), len(marks)


def _last_change(home: Home, ticks: list[dict[str, Any]]) -> tuple[float, str] | None:
    """The latest retrain start (the watch's lines) or change of the current model (the registry's history)."""
    events = [(ts, "retrain") for t in ticks if (ts := (t.get("run") or {}).get("started_at_ts")) is not None]
    events += [(ts, "promotion") for r in registry.history(home=home)
               if r.get("action") in _CHANGES and (ts := _ts(r.get("ts"))) is not None]
    return max(events, default=None)


def _decide(drift_ev: dict[str, Any], perf: dict[str, Any], held: tuple[int, int], cooling: tuple[float, str] | None,
            pol: _policy.WatchPolicy, now: float) -> tuple[str, list[str], str]:
    """The decision, its reason codes and one line for people, from the evidence."""
    reasons = [{"drift": "drift", "no drift": "no_drift", "unavailable": "drift_unavailable"}.get(
        drift_ev["verdict"], "drift_insufficient_data")]
    kind, value, floor = perf["kind"], perf["value"], perf["floor"]
    if value is None:
        reasons.append("performance_insufficient_data")
        said = (f"{perf['predictions']} prediction(s), {perf['with_outcome']} with an outcome "
                f"({perf['positives']} churner(s)): fewer than min_rows {pol.min_rows} of either")
    elif floor is None:
        reasons.append("no_floor")
        said = f"{kind} {pol.metric} {value:.4f}, no floor (set watch.floor or the gate's F1)"
    else:
        reasons.append(f"{kind}_{'below' if perf['below_floor'] else 'at_or_above'}_floor")
        said = f"{kind} {pol.metric} {value:.4f} {'<' if perf['below_floor'] else '>='} floor {floor:.4f}"
    below, counted = held
    said += f"; below the floor in {below} of the last {counted} tick(s) (retrain at {pol.below_floor_ticks} of " \
            f"{pol.of_last_ticks}); drift: {drift_ev['verdict']}"
    if below >= pol.below_floor_ticks:
        reasons.append("held_below_floor")
        if cooling is not None and now - cooling[0] < pol.cooldown_seconds:
            reasons.append(f"cooldown_after_{cooling[1]}")
            return COOLDOWN, reasons, (f"{said}; a {cooling[1]} at {iso(cooling[0])} is less than "
                                       f"{pol.cooldown} ago")
        return RETRAIN, reasons, said
    if drift_ev["verdict"] == drift.DRIFT:
        return INVESTIGATE, reasons, said
    if value is None and drift_ev["verdict"] != drift.NO_DRIFT:
        return INSUFFICIENT_DATA, reasons, said
    return OK, reasons, said


def _retrain(home: Home, pol: _policy.WatchPolicy, record: dict[str, Any]) -> dict[str, Any]:
    """Record the retrain's start, run the notebooks on the newest data (registered, never promoted), and make
    the new version the challenger when it passed the gate; what happened (``run``), reason codes added."""
    started = time.time()
    record["run"] = {"status": "started", "started_at_ts": started, "started_at_utc": iso(started),
                     "stages": list(_policy.RETRAIN_STAGES), "parameters": dict(pol.retrain_params or {})}
    record["reasons"].append("retrain_started")
    monitoring.append(monitoring.WATCH, record, home=home, required=True)  # on disk before the run starts
    run = dict(record["run"])
    from ..run import runner  # the notebooks' runner, imported by a retrain only (a compare imports this module)

    try:
        done = runner.run(home=home, stages=_policy.RETRAIN_STAGES, params=pol.retrain_params, promote=False)
    except ChurnError as exc:
        run.update(status="failed", version=getattr(exc, "version", None), error=str(exc),
                   report=getattr(exc, "report_path", None))
        record["reasons"].append("retrain_failed")
        return run
    entry = done.get("entry") or {}
    run.update(status="ok", version=done["version"], run_json=f"reports/{done['version']}/run.json",
               passed_gate=entry.get("passed_gate"), gate_reasons=entry.get("gate_reasons", []),
               seconds=done["seconds"])
    if not entry.get("passed_gate"):
        record["reasons"].append("retrain_refused_by_gate")
        return run
    try:
        registry.set_challenger(done["version"], sample=pol.sample, home=home,
                                reason=f"retrained by churn watch (tick {record['tick']}): "
                                       + ", ".join(record["reasons"]))
        run["challenger"] = {"version": done["version"], "sample": pol.sample}
        record["reasons"].append("challenger_set")
    except (PromotionRefused, RegistryError) as exc:
        run["challenger_refused"] = str(exc)
        record["reasons"].append("challenger_refused")
    return run


def _auto_promote(home: Home, pol: _policy.WatchPolicy) -> tuple[dict[str, Any] | None, list[str]]:
    """With ``auto_promote``: compare the challenger (since it was set) and promote it through the gate when the
    verdict is ``challenger_better``; what was done and its reason codes (None, []: nothing to do)."""
    shadow = registry.read_challenger(home=home)
    if not pol.auto_promote or shadow is None:
        return None, []
    since = _ts(shadow.set_at)
    try:
        found = _compare.compare(home=home, since=since)
    except DataError as exc:
        return {"version": shadow.version, "promoted": False, "why": str(exc)}, ["auto_promote_no_pairs"]
    out = _compare.promote(found, home=home, by="auto_promote by churn watch")
    if out["promoted"]:
        return out, ["auto_promoted"]
    return out, ["auto_promote_not_better" if found.verdict != _compare.CHALLENGER_BETTER else "auto_promote_refused"]


def tick(*, home: Home | str | None = None) -> Tick:
    """One tick: check the newest window, decide, retrain or promote as the policy says, append the line.

    Parameters
    ----------
    home : Home or path, optional

    Returns
    -------
    Tick
        Its ``decision`` is one of :data:`DECISIONS`.

    Raises
    ------
    InvalidParameter
        ``churn.yaml`` is not valid (one line naming the key).
    NoCurrentModel
        No model is current: there is nothing to watch.
    DataError
        The retrain's start could not be recorded (the retrain is not started).

    Examples
    --------
    >>> tick(home=tmp_home).decision  # doctest: +SKIP
    'ok'
    """
    home = Home.resolve(home)
    pol = _policy.load(home=home)
    policy_id = {"sha256": pol.watch.sha256(), "path": pol.path}
    now = time.time()
    record: dict[str, Any] = {"tick": uuid.uuid4().hex[:16], "checked_at_utc": iso(now), "version": None,
                              "window": {"until": iso(now), "until_ts": now}, "policy": policy_id,
                              "run": None, "promotion": None}
    with _watch_lock(home) as holder:
        if holder is not None:
            record.update(decision=LOCKED, reasons=[LOCKED], evidence={"holder_pid": holder},
                          message=f"another watch (pid {holder}) holds {home.reports_dir / LOCK_NAME}")
        else:
            _checked_tick(home, pol.watch, record, now)
    monitoring.append(monitoring.WATCH, record, home=home, required=record["decision"] == RETRAIN)
    result = Tick(**{k: record.get(k) for k in monitoring.WATCH_FIELDS})
    log.info("%s", result.summary())
    return result


def _checked_tick(home: Home, pol: _policy.WatchPolicy, record: dict[str, Any], now: float) -> None:
    """The tick under the watch's lock: checks, auto-promotion, decision, retrain; fills ``record``."""
    current = registry.current_entry(home=home)
    if current is None:
        raise NoCurrentModel("no model is current, so the watch has nothing to watch: promote a model first")
    ticks = _ticks(home)
    since_ts = _since(pol, ticks, now)
    record["version"] = current["version"]
    record["window"].update(since=iso(since_ts), since_ts=since_ts)
    drift_ev = _drift_evidence(home, since_ts, pol)
    perf = _performance_evidence(home, since_ts, pol)
    record["promotion"], promo_reasons = _auto_promote(home, pol)
    held = _held(ticks, current["version"], perf["below_floor"], pol)
    decision, reasons, message = _decide(drift_ev, perf, held, _last_change(home, ticks), pol, now)
    record.update(decision=decision, reasons=reasons + promo_reasons, message=message,
                  evidence={"drift": drift_ev, "performance": perf,
                            "held": {"below": held[0], "counted": held[1], "needed": pol.below_floor_ticks,
                                     "of_last": pol.of_last_ticks}})
    if decision == RETRAIN:
        record["run"] = _retrain(home, pol, record)


def watch(*, home: Home | str | None = None, interval: float = 3600.0, stop: threading.Event | None = None,
          on_tick: Callable[[Tick], None] | None = None) -> Tick | None:
    """Tick now and then every ``interval`` seconds until ``stop`` is set (a tick in progress finishes first).

    Parameters
    ----------
    home : Home or path, optional
    interval : float, default=3600
        Seconds from the start of one tick to the start of the next (at least the tick's own length).
    stop : threading.Event, optional
        Set it (a signal handler does) to end the watch between ticks.
    on_tick : callable, optional
        Called with each :class:`Tick` (the CLI prints it).

    Returns
    -------
    Tick or None
        The last tick (None when stopped before the first).
    """
    stop = stop or threading.Event()
    last = None
    while not stop.is_set():
        started = time.monotonic()
        last = tick(home=home)
        if on_tick is not None:
            on_tick(last)
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
    return last
