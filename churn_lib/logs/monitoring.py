"""The monitoring history: one JSON line per drift or performance check, comparison or watch tick in
``reports/monitoring.jsonl``.

Each line is a summary per model version (the verdict, the window's volume and
the figures a trend needs), appended with a single ``write`` like the logs;
:func:`history` reads them back (skipping damaged lines) for notebook 05 and
the reports index, and :func:`records` reads the lines of one kind as written
(the watch reads its own ticks back).
"""

from __future__ import annotations

import json
import logging
from typing import Any

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
