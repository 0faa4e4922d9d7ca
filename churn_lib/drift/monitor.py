"""The drift monitor: a window of logged predictions against the profile of the model that served them.

:func:`check` reads the window (the last N predictions, or those since a
time) from the prediction log, current, rotated and per-worker files, routes
each row to the model that served it and computes that model's statistics
(:mod:`.stats`) against its reference profile (:mod:`.profile`); the
result is a :class:`DriftResult` the notebook, the CLI and ``drift.json`` render.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a table is built: a drift check needs none
    import pandas as pd

from .. import contract as _contract
from ..logs import judged as logjudged, query as logquery, monitoring, predictions as predlog
from .. import registry
from .._io import atomic_write_json, iso, utc_now
from .._params import Range, check_fields, param
from ..exceptions import InvalidParameter, NoCurrentModel, RegistryError
from ..home import Home
from .profile import Profile, load_profile
from .stats import (DRIFT, INSUFFICIENT, NO_DRIFT, NO_PROFILE, ModelDrift, Thresholds, _ModelAcc,
                    _model_drift)

log = logging.getLogger(__name__)

#: The default window: the last this many predictions of the model.
DEFAULT_LAST = 1000


@dataclass(frozen=True)
class Window:
    """Which logged predictions a drift check reads (the monitor stage's window parameters)."""

    last: int = param(DEFAULT_LAST, "the last N logged predictions of that model", range=Range(1))
    since: str | None = param(None, "only predictions since then: an age (24h, 7d), Unix seconds or an ISO time; "
                                    "None: no limit")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.since is not None:
            parse_since(self.since)


@dataclass
class DriftResult:
    """The outcome of a drift check: an overall verdict and one :class:`ModelDrift` per model.

    ``verdict`` is "drift" when any model drifted, else "no drift" when at
    least one model had enough rows, else "insufficient data".
    """

    verdict: str
    models: list[ModelDrift]
    window: dict[str, Any]
    read: dict[str, Any]
    thresholds: dict[str, Any]
    unknown_models: dict[str, int] = field(default_factory=dict)
    checked_at_utc: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def model(self, version: str | None = None) -> ModelDrift:
        """The result of ``version`` (label or model file; default the first model with a verdict)."""
        if version is None:
            for m in self.models:
                if m.verdict in (DRIFT, NO_DRIFT):
                    return m
            if self.models:
                return self.models[0]
            raise InvalidParameter("the drift result holds no model", name="version")
        for m in self.models:
            if version in (m.version, m.model_file):
                return m
        raise InvalidParameter(f"no model {version!r} in the drift result "
                               f"(models: {', '.join(m.version for m in self.models) or 'none'})", name="version")

    def summary_frame(self) -> pd.DataFrame:
        """One row per model: verdict, rows, time span, alerting statistics."""
        import pandas as pd
        rows = [{"version": m.version, "verdict": m.verdict, "n_rows": m.n_rows,
                 "first": iso(m.first_ts), "last": iso(m.last_ts),
                 "alerts": ", ".join(f"{s.feature}.{s.name}" for s in m.alerts), "model_file": m.model_file}
                for m in self.models]
        return pd.DataFrame(rows, columns=["version", "verdict", "n_rows", "first", "last", "alerts", "model_file"])

    def statistics_frame(self) -> pd.DataFrame:
        """Every statistic of every model, one row each (``version`` first)."""
        import pandas as pd
        frames = [m.frame().assign(version=m.version) for m in self.models if m.statistics]
        if not frames:
            return pd.DataFrame(columns=["version", "feature", "name", "value", "effect", "p_value", "alert", "rule"])
        out = pd.concat(frames, ignore_index=True)
        return out[["version"] + [c for c in out.columns if c != "version"]]

    def summary(self) -> str:
        """A few lines for people: the verdict per model, the window and what was read."""
        w = self.window
        span = " ".join(filter(None, [f"last {w['last']}" if w.get("last") else "",
                                      "predictions", f"since {w['since']}" if w.get("since") else ""]))
        lines = [f"drift check: {self.verdict.upper()} ({span}, model {w.get('model') or 'current'})"]
        for m in self.models:
            lines.append(f"  {m.version} ({m.model_file}): {m.verdict}; {m.message}")
        if self.unknown_models:
            lines.append("  rows of models that are not registered: "
                         + ", ".join(f"{k} ({v})" for k, v in self.unknown_models.items()))
        read = self.read
        skipped = ", ".join(f"{k} {v}" for k, v in read.get("skipped", {}).items())
        lines.append(f"  read {read.get('lines', 0)} lines from {len(read.get('files', []))} file(s): "
                     f"{read.get('records', 0)} records"
                     + (f", {read.get('skipped_total')} skipped ({skipped})" if skipped else ", none skipped"))
        return "\n".join(lines)


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_AGE_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str | float | int | datetime | date, *, now: float | None = None) -> float:
    """Unix seconds for ``--since``: an age (``30m``, ``24h``, ``7d``), Unix seconds, or an ISO date/time.

    An ISO time without an offset is UTC.

    Examples
    --------
    >>> parse_since("2025-01-01")
    1735689600.0
    >>> parse_since("1h", now=7200.0)
    3600.0
    """
    if isinstance(value, bool):
        raise InvalidParameter(f"since={value!r} is not a time", name="since")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp()
    text = str(value).strip()
    if m := _AGE.match(text):
        return (time.time() if now is None else now) - float(m.group(1)) * _AGE_SECONDS[m.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter(f"since={text!r} is not a time: use an age (30m, 24h, 7d), Unix seconds or an "
                               "ISO date/time such as 2025-01-31T08:00", name="since") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def _target(model: str | None, entries: list[dict[str, Any]], home: Home) -> dict[str, Any] | None:
    if model == "all":
        return None
    if model is None or model == "current":
        entry = registry.current_entry(home=home)
        if entry is None:
            raise NoCurrentModel("no model is current: use --model VERSION or --model all, "
                                 "or train one that passes the gate")
        return entry
    return registry.find(model, entries)


def check(*, home: Home | str | None = None, last: int | None = None, since: Any = None,
          model: str | None = "current", thresholds: Thresholds | None = None, record: bool = True) -> DriftResult:
    """Compare a window of logged predictions with the profile of the model that served them.

    Parameters
    ----------
    home : Home or path, optional
    last : int, optional
        The last ``last`` predictions (of the selected model, or of all with
        ``model="all"``). Default :data:`DEFAULT_LAST` when ``since`` is not given.
    since : str, float or datetime, optional
        Predictions logged since then (see :func:`parse_since`). With ``last``
        too: the last ``last`` of those.
    model : str, default="current"
        ``current`` (or None), ``all`` (each model against its own profile), or
        a version label / model file.
    thresholds : Thresholds, optional
    record : bool, default=True
        Append the result to the monitoring history (``reports/monitoring.jsonl``).

    Returns
    -------
    DriftResult
        Thin data gives the verdict "insufficient data", never an error.

    Raises
    ------
    InvalidParameter
        Bad window or model argument.
    RegistryError
        The selected model has no profile (or is not registered, or nothing is current).
    """
    home = Home.resolve(home)
    th = thresholds or Thresholds()
    last = _checked_window(last, since, model)
    since_ts = parse_since(since) if since is not None else None
    entries = registry.load_entries(home=home)
    target = _target(model, entries, home)
    router = _Router(entries, home)
    if target is not None:  # its profile must be there: an error before anything is read
        router.profiles[target["model_file"]] = load_profile(target, home=home)
    with _importing("scipy.special"):  # the statistics' distributions (~0.2-0.3 s) load while DuckDB reads
        stats = _read(predlog.log_files(home=home), target, entries, home, last, since_ts, router.route)
    if target is not None:
        router.acc_for(target)
    models = [_model_drift(e, router.accs[e["model_file"]], th) for e in entries if e["model_file"] in router.accs]
    if target is None and models and all(m.verdict == NO_PROFILE for m in models):
        raise RegistryError("no model in the window has a reference profile (registered before drift "
                            "monitoring): retrain to get a reference profile")
    verdicts = {m.verdict for m in models}
    verdict = DRIFT if DRIFT in verdicts else NO_DRIFT if NO_DRIFT in verdicts else INSUFFICIENT
    window = {"last": last, "since": iso(since_ts), "since_ts": since_ts, "model": model}
    result = DriftResult(verdict, models, window, stats.to_dict(), asdict(th), dict(router.unknown), utc_now())
    if record:
        monitoring.append(monitoring.DRIFT, result.to_dict(), home=home)
    log.info("drift check: %s (%s)", verdict, stats.summary())
    return result


@contextlib.contextmanager
def _importing(module: str) -> Iterator[None]:
    """Import ``module`` in a thread while the block runs (DuckDB releases the GIL); joined when it ends."""
    loading = threading.Thread(target=importlib.import_module, args=(module,), daemon=True)
    loading.start()
    try:
        yield
    finally:
        loading.join()


def _checked_window(last: Any, since: Any, model: Any) -> int | None:
    """The window's ``last`` (:data:`DEFAULT_LAST` when neither ``last`` nor ``since`` is given), checked with
    the ``model`` argument."""
    if last is None and since is None:
        last = DEFAULT_LAST
    if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last < 1):
        raise InvalidParameter(f"last={last!r} must be a positive integer", name="last")
    if model is not None and (not isinstance(model, str) or not model):
        raise InvalidParameter(f"model={model!r} must be current, all, or a version label", name="model")
    return last


def _by_name(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Registered entries by the names a log line gives its model: the model file, and the version label
    (the first entry of a label)."""
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        out.setdefault(e["version"], e)
        out[e["model_file"]] = e
    return out


class _Router:
    """Rows of the log to the statistics of the model that served them; rows of unregistered models counted."""

    def __init__(self, entries: list[dict[str, Any]], home: Home) -> None:
        self.home = home
        self.by_name = _by_name(entries)
        self.profiles: dict[str, Profile | None] = {}
        self.accs: dict[str, _ModelAcc] = {}
        self.unknown: Counter = Counter()

    def acc_for(self, entry: dict[str, Any]) -> _ModelAcc:
        key = entry["model_file"]
        if key not in self.accs:
            if key not in self.profiles:
                try:
                    self.profiles[key] = load_profile(entry, home=self.home)
                except RegistryError as exc:  # a model without profile in --model all: listed, not fatal
                    log.warning("%s", exc)
                    self.profiles[key] = None
            self.accs[key] = _ModelAcc(self.profiles[key])
        return self.accs[key]

    def route(self, batch: predlog.Batch | logquery.Part) -> None:
        if isinstance(batch, logquery.Part):  # one model's rows already
            entry = self.by_name.get(batch.model)
            if entry is None:
                self.unknown[batch.model] += batch.n
            elif batch.n:
                self.acc_for(entry).add_part(batch)
            return
        if not len(batch):
            return
        keys = batch.model
        groups = [keys[0]] if (keys == keys[0]).all() else sorted(set(keys.tolist()))
        for key in groups:
            part = batch if len(groups) == 1 else batch.take(keys == key)
            entry = self.by_name.get(key)
            if entry is None:
                self.unknown[key] += len(part)
            else:
                self.acc_for(entry).add(part)


def _contract_groups(target: dict[str, Any] | None, entries: list[dict[str, Any]],
                    home: Home) -> list[tuple[_contract.Contract, set[str] | None]]:
    """The contracts log lines are judged by, each with the models (file names and labels) whose lines it reads.

    Each registered model has a copy of its contract, and lines are judged by
    the rule of the contract of the model that served them: one read per
    contract among the models asked for (``target``, else all ``entries``; a
    home normally has one). The models are None when one contract reads every
    line (``--model all``: lines of unregistered models are counted too). The
    lab's contract when no contract can be read. Drift and performance read
    the same lines through this.
    """
    groups: dict[str, tuple[_contract.Contract, set[str]]] = {}
    for e in ([target] if target is not None else entries):
        try:
            c = registry.load_contract(e, home=home)
        except RegistryError as exc:
            log.warning("%s", exc)
            continue
        groups.setdefault(c.sha256(), (c, set()))[1].update((e["model_file"], e["version"]))
    if not groups:
        groups[_contract.lab().sha256()] = (_contract.lab(), set())
    if target is not None:
        return [(c, {target["model_file"], target["version"]}) for c, _ in groups.values()]
    return [(c, names if len(groups) > 1 else None) for c, names in groups.values()]


def _read(paths: list[Path], target: dict[str, Any] | None, entries: list[dict[str, Any]], home: Home,
          last: int | None, since_ts: float | None, route: Any) -> predlog.ReadStats:
    """Read the window of each contract's models (:func:`_contract_groups`), routing its rows; what was read."""
    parts: list[predlog.ReadStats] = []
    for c, models in _contract_groups(target, entries, home):
        stats = predlog.ReadStats()
        parts.append(stats)
        _read_window(paths, c, last, since_ts, models, stats, route, cache=home.logs_dir / logjudged.FOLDER)
    return parts[0] if len(parts) == 1 else _merged(parts)


#: Below this share of the log's lines, a ``--last`` window is read backwards from the end of the files
#: (a few chunks); above it, and for every ``--since`` window, DuckDB reads the files in one pass.
TAIL_SHARE = 0.25
#: Bytes per log line assumed when guessing a log's length from its size (the API's lines are ~300).
_LINE_BYTES_GUESS = 250


def _read_window(paths: list[Path], contract: _contract.Contract, last: int | None, since_ts: float | None,
                 models: set[str] | None, stats: predlog.ReadStats, route: Any, *, cache: Path | None = None) -> None:
    """Route the rows of one contract's window: the end of the files for a small ``--last`` window, else
    DuckDB over the judged-line ``cache`` (:mod:`churn_lib.logs.judged`: each line judged once in its life)."""
    if since_ts is None:
        size = sum(p.stat().st_size for p in paths if p.exists())
        if last is not None and last < TAIL_SHARE * size / _LINE_BYTES_GUESS:  # the end of the files is enough
            wanted = np.array(sorted(models), dtype=object) if models is not None else None
            select = (lambda batch: np.isin(batch.model, wanted)) if wanted is not None else None
            route(predlog.read_tail(paths, last, select=select, stats=stats, dec=predlog.decoder(contract)))
            return
    else:  # a file last changed before the window holds none of its rows
        paths = [p for p in paths if p.stat().st_mtime >= since_ts - 1.0]
    if last is not None:  # the newest rows are chosen in DuckDB; their columns and category counts come out
        for part in logquery.newest(paths, contract, last=last, since_ts=since_ts, models=models, stats=stats,
                                    cache=cache):
            route(part)
        return
    for batch in logquery.windows(paths, contract, since_ts=since_ts, models=models, stats=stats, cache=cache):
        route(batch)


def _merged(parts: list[predlog.ReadStats]) -> predlog.ReadStats:
    """One read's figures from the reads of several contracts over the same files."""
    out = predlog.ReadStats(lines=max(p.lines for p in parts), records=sum(p.records for p in parts),
                            files=parts[0].files, bytes_read=max(p.bytes_read for p in parts))
    other = out.lines - out.records
    if other > 0:
        out.skipped = {"not a record of these models' contracts, or malformed": other}
    return out


def write_result(result: DriftResult, *, home: Home | str | None = None) -> list[Path]:
    """Write each model's part of ``result`` to ``reports/<version>/drift/drift.json``; return the paths."""
    home = Home.resolve(home)
    paths = []
    for m in result.models:
        registry.validate_label(m.version)
        path = home.reports_dir / m.version / "drift" / "drift.json"
        atomic_write_json(path, {**result.to_dict(), "models": [asdict(m)]})
        paths.append(path)
    return paths
