"""The reports index: ``reports/index.html``, one row per model version.

Built from the registry (entries, current pointer, history) and the run
records (``reports/<version>/run.json``, which record what the index shows,
such as the parameters that differ from their defaults); newest first; self-contained HTML
(inline CSS, no script, no network) so it reads offline and from the API.
Regenerated after every run, promotion and rollback made through ``churn``.

The latest comparison of champion and challenger and the latest watch
decision show below the versions, read from the monitoring history
(``reports/monitoring.jsonl``, :mod:`churn_lib.logs.monitoring`); nothing
shows before there is one.

A sweep (:mod:`churn_lib.scale.sweep`) shows as a group: one table per sweep,
ordered by its selection metric on the common holdout, with links to the same
table sorted by each other metric (static pages under
``reports/_sweeps/<id>/``, so sorting needs no script).
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

from .. import registry
from .._io import atomic_write_text
from ..exceptions import ChurnError
from ..home import Home
from ..logs import monitoring

log = logging.getLogger(__name__)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.9rem}th,td{border-bottom:1px solid #ddd;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}tr.current{background:#eef7ee}.pass{color:#17752d;font-weight:600}.fail{color:#b3261e;font-weight:600}
.muted{color:#777}code{font-size:.85em}a{color:#0b57d0}
"""


def _run_records(home: Home) -> dict[str, dict[str, Any]]:
    out = {}
    if not home.reports_dir.is_dir():
        return out
    for path in sorted(home.reports_dir.glob("*/run.json")):
        try:
            out[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            log.warning("skipping unreadable run record %s", path)
    return out


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def index_rows(*, home: Home | str | None = None) -> list[dict[str, Any]]:
    """The index's rows, newest first: one per registered version or run."""
    home = Home.resolve(home)
    try:
        entries = registry.load_entries(home=home)
    except ChurnError as exc:
        log.warning("index without registry entries: %s", exc)
        entries = []
    current = registry.current_file(home=home)
    runs = _run_records(home)
    in_sweep = {r["version"]: (s.get("name"), s["sweep_id"], r["index"])
                for s in _sweep_records(home) for r in s.get("runs", []) if r.get("version")}
    by_version = {e["version"]: e for e in entries}
    rows = []
    for version in set(by_version) | set(runs):
        e, run = by_version.get(version), runs.get(version, {})
        # what differs from the defaults, as the run (or the training) recorded it
        differing = run.get("parameters_changed")
        if differing is None:
            differing = (e or {}).get("params_changed") or {}
        m = (e or {}).get("metrics") or (run.get("entry") or {}).get("metrics") or {}
        folder = home.reports_dir / version
        drift = sorted(p.relative_to(home.reports_dir).as_posix() for p in folder.glob("drift/*.html")) \
            if folder.is_dir() else []
        rows.append({
            "version": version,
            "time": (e or {}).get("trained_at_utc") or run.get("started_at_utc") or "",
            "current": bool(e and e["model_file"] == current),
            "registered": e is not None,
            "run_status": run.get("status"),
            "passed_gate": (e or {}).get("passed_gate"),
            "gate_reasons": (e or {}).get("gate_reasons", []),
            "threshold": (e or {}).get("threshold"),
            "model": _family((e or {}) or (run.get("entry") or {})),
            "f1": m.get("f1"), "roc_auc": m.get("roc_auc"), "brier": m.get("brier"),
            "parameters": differing,
            "stages": [(s["notebook"], s.get("html"), s.get("status"), s.get("seconds"))
                       for s in run.get("stages", []) if s.get("notebook") != "-"],
            "drift": drift,
            "sweep": in_sweep.get(version),
        })
    rows.sort(key=lambda r: r["time"], reverse=True)
    return rows


def _family(entry: dict[str, Any]) -> str | None:
    """``lightgbm``, ``logreg + sigmoid``: an entry's model family and calibration (None before training)."""
    if not entry.get("metrics"):
        return None
    cal = (entry.get("calibration") or {}).get("method")
    return entry.get("model_family", "logreg") + (f" + {cal}" if cal else "")


def render_index(rows: list[dict[str, Any]], history: list[dict[str, Any]],
                 sweeps: list[dict[str, Any]] | None = None, loop: dict[str, Any] | None = None) -> str:
    """The index page for ``rows`` (see :func:`index_rows`), the registry history, sweep records and the
    loop's latest lines (see :func:`loop_records`)."""
    esc = html.escape
    body = []
    for r in rows:
        gate = ("<span class='pass'>passed</span>" if r["passed_gate"] else
                "<span class='fail'>refused</span>" if r["passed_gate"] is False else "<span class='muted'>-</span>")
        if r["gate_reasons"]:
            gate += "<br><span class='muted'>" + esc("; ".join(r["gate_reasons"])) + "</span>"
        links = []
        for notebook, page, status, seconds in r["stages"]:
            label = esc(notebook) + ("" if status == "ok" else f" ({esc(str(status))})")
            if seconds is not None:
                label += f" <span class='muted'>{seconds:.1f} s</span>"
            links.append(f"<a href='{esc(Path(page).relative_to('reports').as_posix())}'>{label}</a>"
                         if page else label)
        links += [f"<a href='{esc(p)}'>drift: {esc(Path(p).stem)}</a>" for p in r["drift"]]
        status = r["run_status"] or ("registered" if r["registered"] else "-")
        if r["run_status"] and not r["registered"] and r["run_status"] == "ok":
            status = "ok (not trained)"
        params = ", ".join(f"{esc(k)}={esc(json.dumps(v))}" for k, v in r["parameters"].items()) or \
            "<span class='muted'>defaults</span>"
        body.append(
            f"<tr class='{'current' if r['current'] else ''}'><td><b>{esc(r['version'])}</b>"
            f"{' &#9733; current' if r['current'] else ''}{_sweep_mark(r.get('sweep'))}</td><td>{esc(r['time'][:19].replace('T', ' '))}</td>"
            f"<td>{esc(status)}</td><td>{esc(r.get('model') or '-')}</td><td>{params}</td><td>{_fmt(r['f1'])}</td>"
            f"<td>{_fmt(r['roc_auc'])}</td>"
            f"<td>{_fmt(r['brier'])}</td><td>{_fmt(r['threshold'], 2)}</td><td>{gate}</td>"
            f"<td>{'<br>'.join(links) or '-'}</td></tr>")
    hist = "".join(
        f"<tr><td>{esc(str(h.get('ts', ''))[:19].replace('T', ' '))}</td><td>{esc(str(h.get('action')))}</td>"
        f"<td>{esc(str(h.get('version')))}</td><td>{esc(str(h.get('reason', '')))}"
        f"{' (forced)' if h.get('forced') else ''}</td></tr>"
        for h in reversed(history[-50:]))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>churn-mlops reports</title><style>{_CSS}</style></head>
<body><h1>churn-mlops: model versions</h1>
<p class="muted">Newest first. Metrics are on each version's test split at its stored threshold.</p>
<table><thead><tr><th>version</th><th>time (UTC)</th><th>run</th><th>model</th><th>parameters that differ</th><th>F1</th>
<th>ROC AUC</th><th>Brier</th><th>threshold</th><th>gate</th><th>reports</th></tr></thead>
<tbody>{''.join(body) or "<tr><td colspan='11'>no runs yet</td></tr>"}</tbody></table>
{_loop_section(loop or {})}
{_sweeps_section(sweeps or [])}
<h2>Changes of the current model</h2>
<table><thead><tr><th>time (UTC)</th><th>action</th><th>version</th><th>reason</th></tr></thead>
<tbody>{hist or "<tr><td colspan='4'>none yet</td></tr>"}</tbody></table>
</body></html>
"""


def write_index(*, home: Home | str | None = None) -> Path:
    """(Re)write ``reports/index.html``; returns its path."""
    home = Home.resolve(home)
    path = home.reports_dir / "index.html"
    atomic_write_text(path, render_index(index_rows(home=home), registry.history(home=home),
                                         _sweep_records(home), loop_records(home=home)))
    return path


# --- the loop: the latest comparison of champion and challenger, the latest watch decision ------------------

def loop_records(*, home: Home | str | None = None) -> dict[str, Any]:
    """The latest ``compare`` and ``watch`` lines of the monitoring history (None where there is none)."""
    home = Home.resolve(home)
    return {kind: (monitoring.records(kind, home=home) or [None])[-1]
            for kind in (monitoring.COMPARE, monitoring.WATCH)}


def _when(value: Any) -> str:
    return html.escape(str(value or "")[:19].replace("T", " "))


def _deciding(rec: dict[str, Any]) -> str:
    """``f1: [+0.0123, +0.0456], p = 0.002`` - the metric that decided and its interval, or ``-``."""
    key, diffs = rec.get("decided_by"), rec.get("differences")
    diff = diffs.get(key) if isinstance(diffs, dict) and isinstance(key, str) else None
    interval = diff.get("interval") if isinstance(diff, dict) else None
    if not isinstance(interval, list) or len(interval) != 2:
        return "-"
    low, high = interval
    if not all(isinstance(v, (int, float)) for v in (low, high)):
        return "-"
    p = diff.get("p_value")
    said = (", no bootstrap draw crossed 0" if p == 0 else f", p = {p:.3g}") if isinstance(p, (int, float)) else ""
    return f"{html.escape(str(key))}: [{low:+.4f}, {high:+.4f}]{said}"


def _list(value: Any) -> list[Any]:
    """``value`` when a line holds the list it should, else nothing (a damaged line must not break the index)."""
    return value if isinstance(value, list) else []


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "-"


def _loop_section(loop: dict[str, Any]) -> str:
    """The latest comparison and watch decision as two small tables; empty before either exists."""
    esc = html.escape
    parts = []
    rec = loop.get(monitoring.COMPARE)
    if isinstance(rec, dict):
        versions = {m.get("role"): m.get("version") for m in _list(rec.get("models")) if isinstance(m, dict)}
        verdict = str(rec.get("verdict") or "-")
        mark = "pass" if verdict == "challenger_better" else "fail" if verdict == "champion_better" else "muted"
        cells = [("checked (UTC)", _when(rec.get("checked_at_utc"))),
                 ("champion", esc(str(versions.get("champion") or "-"))),
                 ("challenger", esc(str(versions.get("challenger") or "-"))),
                 ("pairs", f"{_count(rec.get('pairs'))} ({_count(rec.get('labelled'))} with an outcome, "
                           f"{_count(rec.get('positives'))} churner(s))"),
                 ("verdict", f"<span class='{mark}'>{esc(verdict)}</span>"),
                 ("deciding metric (95 % interval of challenger - champion)", _deciding(rec)),
                 ("reason", f"<span class='muted'>{esc(str(rec.get('reason') or ''))}</span>")]
        parts.append("<h2 id='compare'>Champion and challenger: the latest comparison</h2>"
                     "<p class='muted'>On the same customers (<code>churn compare</code>, notebook 05).</p>"
                     + _key_table(cells))
    tick = loop.get(monitoring.WATCH)
    if isinstance(tick, dict):
        cells = [("checked (UTC)", _when(tick.get("checked_at_utc"))), ("decision", esc(str(tick.get("decision") or "-"))),
                 ("reasons", esc(", ".join(map(str, _list(tick.get("reasons")))) or "-")),
                 ("version", esc(str(tick.get("version") or "-"))), ("message", esc(str(tick.get("message") or "")))]
        run = tick.get("run")
        if isinstance(run, dict):
            said = f"{run.get('status')}" + (f": {run['version']}" if run.get("version") else "")
            cells.append(("retrain", esc(said)))
        parts.append("<h2 id='watch'>The watch: the latest decision</h2>"
                     "<p class='muted'><code>churn watch</code>; every tick is a line of "
                     "<code>reports/monitoring.jsonl</code>.</p>" + _key_table(cells))
    return "".join(parts)


def _key_table(cells: list[tuple[str, str]]) -> str:
    """A two-column table, one row per (label, HTML value); the labels are escaped here."""
    return ("<table><tbody>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in cells)
            + "</tbody></table>")


# --- sweeps: a group per sweep, sortable by metric without script ----------------------

#: Holdout metrics a sweep table can be sorted by -> True when higher is better.
SWEEP_SORT_KEYS: dict[str, bool] = {"f1": True, "roc_auc": True, "average_precision": True, "accuracy": True,
                                    "brier": False}
_SWEEP_LABELS = {"f1": "F1", "roc_auc": "ROC AUC", "average_precision": "avg precision", "accuracy": "accuracy",
                 "brier": "Brier", "set": "set"}


def _sweep_records(home: Home) -> list[dict[str, Any]]:
    """Sweep records (``reports/_sweeps/<id>/sweep.json``), newest first."""
    folder = home.reports_dir / "_sweeps"
    out = []
    for path in folder.glob("*/sweep.json") if folder.is_dir() else ():
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            log.warning("skipping unreadable sweep record %s", path)
    out.sort(key=lambda s: s.get("started_at_utc", ""), reverse=True)
    return out


def _sweep_mark(sweep: tuple | None) -> str:
    if not sweep:
        return ""
    name, sweep_id, index = sweep
    return (f"<br><span class='muted'>sweep <a href='#{html.escape(sweep_id)}'>{html.escape(str(name))}</a> "
            f"set {index}</span>")


def sort_sweep_runs(runs: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Runs ordered by a holdout metric (best first; runs without holdout scores last) or by ``"set"``."""
    if key == "set":
        return sorted(runs, key=lambda r: r["index"])
    higher = SWEEP_SORT_KEYS[key]

    def rank(r: dict[str, Any]) -> tuple:
        value = (r.get("holdout") or {}).get(key)
        return (value is None, 0.0 if value is None else (-value if higher else value), r["index"])

    return sorted(runs, key=rank)


def _sweep_table(record: dict[str, Any], key: str, *, to_reports: str, to_pages: str) -> str:
    """One sweep as a table sorted by ``key``; links are relative (``to_reports``: path to reports/)."""
    esc = html.escape
    runs = record.get("runs", [])
    varying = [k for k in dict.fromkeys(k for r in runs for k in r.get("params", {}))
               if len({json.dumps(r.get("params", {}).get(k)) for r in runs}) > 1]
    metric = record.get("metric", "f1")
    links = " &middot; ".join(
        f"<b>{_SWEEP_LABELS[k]}</b>" if k == key else
        f"<a href='{esc(to_pages)}by-{k}.html'>{_SWEEP_LABELS[k]}</a>" for k in (*SWEEP_SORT_KEYS, "set"))
    body = []
    for r in sort_sweep_runs(runs, key):
        h = r.get("holdout") or {}
        version = r.get("version")
        winner = version is not None and version == record.get("winner")
        report = r.get("report") or ""
        if r.get("status") == "ok" and version:
            link = f"<a href='{esc(to_reports)}{esc(version)}/03_train.html'>{esc(version)}</a>"
        elif version:
            try:
                rel = Path(report).relative_to(Path(record.get("home", "")) / "reports").as_posix()
            except ValueError:
                rel = f"{version}/run.json"
            link = f"{esc(version)} (<a href='{esc(to_reports)}{esc(rel)}'>failed report</a>)"
        else:
            link = "<span class='muted'>-</span>"
        gate = ("<span class='pass'>passed</span>" if r.get("passed_gate") else
                "<span class='fail'>refused</span>" if r.get("passed_gate") is False else "-")
        status = r.get("status", "-")
        if status == "failed":
            status = f"<span class='fail'>failed</span><br><span class='muted'>{esc(str(r.get('error') or ''))}</span>"
        params = ", ".join(f"{esc(k)}={esc(json.dumps(r['params'][k]))}" for k in varying
                           if k in r.get("params", {})) or "<span class='muted'>defaults</span>"
        own = (r.get("metrics") or {}).get("f1")
        body.append(
            f"<tr class='{'current' if winner else ''}'><td>{r['index']}</td><td>{link}"
            f"{' &#9733; winner' + (' (promoted)' if record.get('promoted') else '') if winner else ''}</td>"
            f"<td>{params}</td><td>{status}</td><td>{gate}</td>"
            + "".join(f"<td>{_fmt(h.get(k))}</td>" for k in SWEEP_SORT_KEYS)
            + f"<td>{_fmt(own)}</td><td>{_fmt(r.get('seconds'), 1)}</td></tr>")
    holdout = (record.get("holdout") or {}).get("description", "")
    winner = record.get("winner")
    verdict = (f"winner <b>{esc(winner)}</b>{' (promoted)' if record.get('promoted') else ' (not promoted)'}"
               if winner else "no winner")
    note = f" &middot; {esc(record['note'])}" if record.get("note") else ""
    heads = "".join(f"<th>holdout {_SWEEP_LABELS[k]}</th>" for k in SWEEP_SORT_KEYS)
    return (f"<h3 id='{esc(record['sweep_id'])}'>{esc(str(record.get('name')))} "
            f"<span class='muted'>{esc(record['sweep_id'])} &middot; "
            f"{esc(str(record.get('started_at_utc', ''))[:19].replace('T', ' '))} &middot; "
            f"{esc(str(record.get('status')))} &middot; {esc(str(record.get('where', '')))}</span></h3>"
            f"<p>Selected by holdout {esc(_SWEEP_LABELS.get(metric, metric))} on {esc(holdout)}; {verdict}{note}."
            f"<br>Sorted by {_SWEEP_LABELS[key]}; sort by: {links}</p>"
            f"<table><thead><tr><th>set</th><th>version</th><th>parameters that vary</th><th>run</th><th>gate</th>"
            f"{heads}<th>own test F1</th><th>seconds</th></tr></thead><tbody>{''.join(body)}</tbody></table>")


def _sweeps_section(sweeps: list[dict[str, Any]]) -> str:
    if not sweeps:
        return ""
    parts = [_sweep_table(s, s.get("metric", "f1") if s.get("metric") in SWEEP_SORT_KEYS else "f1",
                          to_reports="", to_pages=f"_sweeps/{s['sweep_id']}/") for s in sweeps[:20]]
    return ("<h2>Sweeps</h2><p class='muted'>Newest first. Every version of a sweep is scored on the same "
            "holdout data; the best that passed its gate is promoted.</p>" + "".join(parts))


def write_sweep_pages(record: dict[str, Any], *, home: Home | str | None = None) -> list[Path]:
    """Write ``reports/_sweeps/<id>/by-<key>.html``: the sweep's table sorted by each metric and by set."""
    home = Home.resolve(home)
    folder = home.reports_dir / "_sweeps" / record["sweep_id"]
    paths = []
    for key in (*SWEEP_SORT_KEYS, "set"):
        table = _sweep_table(record, key, to_reports="../../", to_pages="")
        page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>sweep "
                f"{html.escape(str(record.get('name')))}</title><style>{_CSS}</style></head><body>"
                f"<p><a href='../../index.html'>&larr; all versions</a></p>{table}</body></html>\n")
        path = folder / f"by-{key}.html"
        atomic_write_text(path, page)
        paths.append(path)
    return paths
