"""The monitoring history: one JSON line per drift or performance check, comparison or watch tick in
``reports/monitoring.jsonl``.

For the API's ``/metrics`` gauges, :class:`Follower` keeps the latest record of each kind and
version: it reads only what was appended since its last look, and nothing when a
``stat`` says the file is unchanged.

Each line is a summary per model version (the verdict, the window's volume and
the figures a trend needs), appended with a single ``write`` like the logs;
:func:`history` reads them back (skipping damaged lines) for notebook 05 and
the reports index, and :func:`records` reads the lines of one kind as written
(the watch reads its own ticks back).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported where a table is built: a drift check needs none
    import pandas as pd

from .._io import append_line
from ..exceptions import DataError
from ..home import Home

log = logging.getLogger(__name__)

DRIFT, PERFORMANCE = "drift", "performance"
#: A comparison's line is the summary it gives (churn_lib.loop.compare.Comparison.record), kept as given.
COMPARE = "compare"
#: A watch tick's line (churn_lib.loop.watch): these fields, in this order; anything else is dropped.
WATCH = "watch"
WATCH_FIELDS = ("tick", "checked_at_utc", "decision", "reasons", "message", "version", "window", "evidence",
                "policy", "run", "promotion")


def _summary(kind: str, result: dict[str, Any]) -> dict[str, Any]:
    if kind == COMPARE:
        return {"kind": kind, **result}
    if kind == WATCH:
        return {"kind": kind, **{k: result.get(k) for k in WATCH_FIELDS}}
    models = []
    for m in result.get("models", []):
        row: dict[str, Any] = {"version": m.get("version"), "verdict": m.get("verdict")}
        if kind == DRIFT:
            row["rows"] = m.get("n_rows")
            stats = [s for s in m.get("statistics", []) if isinstance(s, dict)]
            row["alarms"] = sum(1 for s in stats if s.get("alert"))
            psi = [s.get("value") for s in stats if s.get("name") == "psi" and s.get("value") is not None]
            row["max_psi"] = max(psi) if psi else None
            row["psi"] = {s.get("feature"): s.get("value") for s in stats  # per feature, for /metrics
                          if s.get("name") == "psi" and s.get("value") is not None}
        else:
            row["rows"] = m.get("predictions")
            row["with_outcome"] = m.get("with_outcome")
            for part in ("realized", "estimated"):
                figures = m.get(part) or {}
                for key in ("roc_auc", "f1", "brier"):
                    row[f"{part}_{key}"] = figures.get(key)
        models.append(row)
    return {"kind": kind, "checked_at_utc": result.get("checked_at_utc"), "verdict": result.get("verdict"),
            "window": result.get("window"), "models": models}


def append(kind: str, result: dict[str, Any], *, home: Home | str | None = None, required: bool = False) -> None:
    """Append the summary of a check; a history that cannot be written is logged, never an error of the check.

    ``required``: the line must be on disk before the caller goes on (a watch records a retrain before it
    starts it), so a failed write is a :class:`~churn_lib.exceptions.DataError`.
    """
    home = Home.resolve(home)
    try:
        append_line(home.monitoring_log, json.dumps(_summary(kind, result), separators=(",", ":"), default=str))
    except OSError as exc:
        if required:
            raise DataError(f"could not append to {home.monitoring_log}: {exc.strerror or exc}",
                            path=str(home.monitoring_log)) from None
        log.warning("could not append to %s: %s", home.monitoring_log, exc)


def records(kind: str, *, home: Home | str | None = None) -> list[dict[str, Any]]:
    """The lines of ``kind``, oldest first, as written (damaged lines skipped; none without a history)."""
    home = Home.resolve(home)
    out = []
    try:
        with open(home.monitoring_log, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if f'"kind":"{kind}"' not in line:  # most lines are of other kinds: no JSON parse for them
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and rec.get("kind") == kind:
                    out.append(rec)
    except FileNotFoundError:
        pass
    return out


def history(*, home: Home | str | None = None, kind: str | None = None) -> pd.DataFrame:
    """One row per check and model version: ``kind``, ``checked_at``, ``version``, ``verdict`` and the figures."""
    import pandas as pd
    home = Home.resolve(home)
    rows = []
    try:
        with open(home.monitoring_log, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if not isinstance(rec, dict) or (kind is not None and rec.get("kind") != kind):
                    continue
                for m in rec.get("models") or []:
                    if isinstance(m, dict):
                        rows.append({"kind": rec.get("kind"), "checked_at": rec.get("checked_at_utc"), **m})
    except FileNotFoundError:
        pass
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["checked_at"] = pd.to_datetime(frame["checked_at"], utc=True, errors="coerce")
    return frame


# --- the latest records, for /metrics ------------------------------------------------------------------------

#: The kinds of line whose latest time is kept; lines of other kinds are skipped.
CHECKS = (DRIFT, PERFORMANCE, "compare", "watch")
#: Versions kept (those checked most recently), so a damaged file cannot grow the metrics without bound.
MAX_VERSIONS = 100
#: Longest version label or feature name kept; a longer one is not a name our tools write.
MAX_LABEL = 200
#: The performance figures a line carries (``realized_<metric>``, ``estimated_<metric>``: see :func:`_summary`).
PERFORMANCE_METRICS = ("roc_auc", "f1", "brier")
_PERFORMANCE_PARTS = ("realized", "estimated")
_LINE_START = b'{"kind":'  # how every line appended by :func:`append` begins


@dataclass
class Latest:
    """The latest monitoring records: a time per kind of check, drift and performance figures per version.

    Attributes
    ----------
    checked_at : dict
        Kind of check (:data:`CHECKS`) -> Unix seconds of its latest line that has a readable time.
    drift : dict
        Version -> ``{"alarms": int or None, "psi": {feature: value}}`` of its latest drift line.
    performance : dict
        Version -> ``{(metric, "realized" | "estimated"): value}`` of its latest performance line.
    decision : str or None
        The decision of the latest ``watch`` line (None when it has none).
    """

    checked_at: dict[str, float] = field(default_factory=dict)
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)
    performance: dict[str, dict[tuple[str, str], float]] = field(default_factory=dict)
    decision: str | None = None

    def add(self, record: Any) -> None:
        """Take one parsed line into account (a later line replaces what an earlier one said)."""
        if not isinstance(record, dict) or record.get("kind") not in CHECKS:
            return
        kind = record["kind"]
        ts = _timestamp(record.get("checked_at_utc"))
        if ts is not None:
            self.checked_at[kind] = ts
        if kind == "watch":
            decision = record.get("decision")
            self.decision = decision if isinstance(decision, str) else None
            return
        if kind not in (DRIFT, PERFORMANCE):
            return
        models = record.get("models")
        for row in models if isinstance(models, list) else ():
            version = row.get("version") if isinstance(row, dict) else None
            if not _label(version):
                continue
            if kind == DRIFT:
                psi = row.get("psi")
                figures: Any = {"alarms": row["alarms"] if _number(row.get("alarms")) else None,
                                "psi": {f: float(v) for f, v in psi.items() if _label(f) and _number(v)}
                                if isinstance(psi, dict) else {}}
            else:
                figures = {(key[len(part) + 1:], part): float(value) for key, value in row.items()
                           for part in _PERFORMANCE_PARTS
                           if key.startswith(part + "_") and key[len(part) + 1:] in PERFORMANCE_METRICS
                           and _number(value)}
            _keep_latest(self.drift if kind == DRIFT else self.performance, version, figures)



def _label(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_LABEL


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).timestamp()


def _keep_latest(by_version: dict[str, Any], version: str, figures: Any) -> None:
    by_version.pop(version, None)  # re-inserted last: the dict stays ordered from least to most recently checked
    by_version[version] = figures
    while len(by_version) > MAX_VERSIONS:
        del by_version[next(iter(by_version))]


def _parse(raw: bytes) -> Any:
    """One line as JSON; a line glued to the rest of a torn one is read from where the whole line begins."""
    for start in (0, raw.rfind(_LINE_START)):
        if start < 0:
            break
        try:
            return json.loads(raw[start:].decode("utf-8", errors="replace"))
        except (ValueError, RecursionError):  # not JSON, or nested too deep
            continue
    return None


class Follower:
    """The latest records of a monitoring history, followed as the file grows.

    :meth:`latest` costs one ``stat`` when the file is unchanged (same inode,
    size and modification time); when it grew, only the appended lines are
    read; when it shrank or was replaced, it is read again from the start. A
    line that is not yet complete (no newline) is read when it is; damaged
    lines are skipped. Safe to call from several threads.

    Parameters
    ----------
    path : path
        The history file (``Home.monitoring_log``).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._key: tuple[int, int, int, int] | None = None  # device, inode, size, mtime of what was read
        self._offset = 0  # bytes read up to the end of the last whole line
        self._latest = Latest()
        self.reads = 0  # times the file was opened (an unchanged file is not)

    def latest(self) -> Latest | None:
        """The latest records, or None when there is no history file (or it cannot be read)."""
        with self._lock:
            try:
                st = os.stat(self.path)
            except OSError:
                self._key, self._offset, self._latest = None, 0, Latest()
                return None
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if key == self._key:
                return self._latest
            grew = self._key is not None and key[:2] == self._key[:2] and st.st_size > self._key[2]
            if not grew:
                self._offset, self._latest = 0, Latest()
            try:
                self._read()
            except OSError as exc:
                log.debug("could not read %s: %s", self.path, exc)
                self._key, self._offset, self._latest = None, 0, Latest()
                return None
            self._key = key
            return self._latest

    def _read(self) -> None:
        self.reads += 1
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break  # being written: read again next time
                self._offset += len(raw)
                self._latest.add(_parse(raw))
