"""Reading the JSON-line logs with DuckDB: windows of predictions for drift, outcomes joined to predictions.

A window streams out in column batches (:func:`windows`); for drift, the newest records of a window are
chosen inside DuckDB and leave it as numeric columns and category counts per model (:func:`newest`).
Every reader (drift here, performance's :func:`outcomes`, compare's :func:`judge_lines`) judges a line into
the same columns (:func:`judged_columns`) and selects its own: through a home's judged-line cache
(:mod:`.judged`) they share one cache per log file and contract, so a line judged for one is judged for all.

Writes stay single-``write`` JSON-line appends (:mod:`churn_lib.logs.predictions`,
:mod:`churn_lib.logs.outcomes`); the reads here hand the current and rotated files
to DuckDB's ``read_json_objects`` (multi-threaded, within :data:`churn_lib._duck.MEMORY_LIMIT`)
and judge every line with the SQL derived from the contract's record rule
(:meth:`churn_lib.contract.records.Rule.sql`): the same lines are kept, and the
others skipped for the same reasons, as by the Python and msgspec readers. A
last line without a newline (a write in progress) is counted as truncated.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .. import _duck
from .. import contract as _contract
from ..contract import records as _records
from ..contract.records import MAX_LINE_BYTES
from . import judged as _judged
from .predictions import Batch, Decoder, ReadStats, decoder

log = logging.getLogger(__name__)

#: Rows handed over per batch when a window is streamed (bounded memory, whatever the window's size).
BATCH_ROWS = 100_000


#: Every non-blank line of the files as JSON; a line DuckDB cannot parse (or longer than the buffer) is NULL.
_SOURCE = ("read_json_objects($files, format='newline_delimited', ignore_errors=true, "
           f"maximum_object_size={2 * MAX_LINE_BYTES})")


def _unterminated(paths: Sequence[Path], rule: _records.Rule) -> tuple[Counter, Counter]:
    """The last lines still being written (no newline yet, not blank): the reasons of those that are not records,
    and the texts of those that are (DuckDB reads both as lines like any other)."""
    reasons: Counter = Counter()
    texts: Counter = Counter()
    for p in paths:
        try:
            with open(p, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                back = min(size, _records.MAX_LINE_BYTES + 2 * 1024)
                fh.seek(size - back)
                tail = fh.read(back)
        except OSError:
            continue
        if not tail or tail.endswith(b"\n"):
            continue
        cut = tail.rfind(b"\n") + 1
        if cut == 0 and back < size:  # longer than the rule allows
            reasons[_records.MALFORMED] += 1
            continue
        fragment = tail[cut:]
        if cut == 0 and fragment.startswith(_records.BOM):
            fragment = fragment[len(_records.BOM):]
        if _records.blank(fragment):
            continue
        reason = rule.judge(fragment)
        if reason is None:
            texts[fragment.strip(_records.WHITESPACE).decode("utf-8")] += 1
        else:
            reasons[reason] += 1
    return reasons, texts


def _batch(frame: Any, dec: Decoder) -> Batch:
    numeric = {name: frame[f"n{k}"].to_numpy(dtype=np.float64, na_value=np.nan)
               for k, (_, name) in enumerate(dec.numeric)}
    categorical = {name: frame[f"c{k}"].to_numpy(dtype=object, na_value=None)
                   for k, (_, name) in enumerate(dec.categorical)}
    return Batch(frame["model"].to_numpy(dtype=object), frame["ts"].to_numpy(dtype=np.float64, na_value=np.nan),
                 frame["p"].to_numpy(dtype=np.float64, na_value=np.nan), numeric, categorical)


def _picks(rule: _records.Rule, dec: Decoder) -> list[str]:
    """SQL of the feature columns of a batch, from the judged values (a number only where the rule saw one)."""
    picks = []
    for k, (_, name) in enumerate(dec.numeric):
        v = rule.sql_value(("features", name))
        flag = rule.contract.feature(name).type == _contract.BOOLEAN
        picks.append(f"{_records.sql_flag(v) if flag else _records.sql_number(v)} AS n{k}")
    picks += [f"{_records.sql_text(rule.sql_value(('features', name)))} AS c{k}"
              for k, (_, name) in enumerate(dec.categorical)]
    return picks


def _count(frame: Any, stats: ReadStats, reasons: Counter, texts: Counter) -> np.ndarray:
    """Count a chunk's lines in ``stats`` (a line still being written as truncated); the mask of its records."""
    reason = frame["reason"]
    ok = reason.isna().to_numpy().copy()
    stats.lines += len(frame)
    if texts:  # a last line being written that reads as a record: one row with its text is that line
        for i in np.flatnonzero(ok & frame["frag"].notna().to_numpy()):
            text = frame["frag"].iat[i]
            if texts[text] > 0:
                texts[text] -= 1
                ok[i] = False
                stats.skip(_records.TRUNCATED)
    stats.records += int(ok.sum())
    _skips(stats, ((str(why), int(count)) for why, count in reason[reason.notna()].value_counts().items()), reasons)
    return ok


def _skips(stats: ReadStats, counts: Iterable[tuple[str, int]], reasons: Counter) -> None:
    """Count skipped lines by reason in ``stats``; as many of a reason as ``reasons`` holds are the last lines
    still being written, counted as truncated (and taken from ``reasons``)."""
    for why, count in counts:
        take = min(reasons[why], count)
        if take:
            stats.skip(_records.TRUNCATED, take)
            reasons[why] -= take
        if count - take:
            stats.skip(why, count - take)


#: The values a reader needs that no check of the rule reads (taken in the same parse of each line): the
#: decision, threshold and latency a line logs.
EXTRA = (("threshold",), ("prediction",), ("latency_ms",))


def judged_columns(rule: _records.Rule) -> str:
    """SQL of every column of a judged line, over :meth:`Rule.sql`'s ``judged`` with :data:`EXTRA`: what a
    judged-line cache holds, the union of what drift, performance and compare read.

    ``reason`` (NULL for a record), ``model``, ``p``, ``ts``; drift's features, ``n<k>`` per numeric feature (a
    flag as 1.0/0.0) and ``c<k>`` per categorical one (:func:`_picks`); the request id ``rid``, the customer id
    ``i<j>`` per id column of the contract (:func:`customer_id`), the version label ``label``, ``shadow`` (the
    line's ``role`` is challenger), and the logged decision ``d``, threshold ``t`` and latency ``lat`` (a number
    where the line has one, else NULL).
    """
    dec = decoder(rule.contract)
    text = lambda path: _records.sql_text(rule.sql_value(path, EXTRA))  # noqa: E731 - a text value
    number = lambda path: _records.sql_number(rule.sql_value(path, EXTRA))  # noqa: E731 - a number value
    ids = [f"{text(('id', name))} AS i{j}" for j, name in enumerate(rule.contract.id)]
    return ", ".join(["reason", "model", "p", "ts", *_picks(rule, dec), f"{text(('request_id',))} AS rid", *ids,
                      f"coalesce({text(('version',))}, {text(('model_version',))}) AS label",
                      f"coalesce({text(('role',))} = '{_records.CHALLENGER}', false) AS shadow",
                      f"{number(('prediction',))} AS d", f"{number(('threshold',))} AS t",
                      f"{number(('latency_ms',))} AS lat"])


def customer_id(contract: _contract.Contract, id_column: str | None) -> str:
    """The column of :func:`judged_columns` holding the customer id at ``id_column`` (SQL NULL without one)."""
    return f"i{contract.id.index(id_column)}" if id_column else "NULL::VARCHAR"


def _judging(paths: Sequence[Path], rule: _records.Rule) -> tuple[str, dict[str, Any], Counter, Counter]:
    """How to judge every non-blank line of ``paths`` by ``rule`` in DuckDB.

    Returns the SQL of the relation ``framed``: :func:`judged_columns` plus a
    column ``frag``, the text of a line that may be a last line still being
    written (else NULL); its arguments; and, from :func:`_unterminated`, the
    reasons of the unterminated lines that are not records and the texts of
    those that are. Columns no reader selects are not computed.
    """
    reasons, texts = _unterminated(paths, rule)
    args: dict[str, Any] = {"files": [str(p) for p in paths]}
    frag = "NULL::VARCHAR"
    if texts:
        frag = "CASE WHEN list_contains($texts, text) THEN text END"
        args["texts"] = sorted(texts)
    sql = f"{rule.sql(_SOURCE, EXTRA)}, framed AS (SELECT {judged_columns(rule)}, {frag} AS frag FROM judged)"
    return sql, args, reasons, texts


def _select(rule: _records.Rule) -> str:
    """The judging query of every non-blank line of ``$files``: :func:`judged_columns` (what a cache holds)."""
    return f"{rule.sql(_SOURCE, EXTRA)} SELECT {judged_columns(rule)} FROM judged"


def _scan(paths: Sequence[Path], contract: _contract.Contract, stats: ReadStats,
          cache: Path | None = None) -> Iterator[tuple[np.ndarray, Batch]]:
    """Every non-blank line of ``paths`` as ``(usable?, batch)`` chunks, in no particular order; counts in ``stats``.

    One pass of DuckDB over the files (every core), or over their judged-line ``cache`` where it can serve;
    the window is applied by the caller, so every line is counted whatever the window.
    """
    dec = decoder(contract)
    if cache is not None:
        con = _duck.connect(ordered=False)
        try:
            found = _from_cache(con, "judged_lines", paths, dec.rule, _features(dec), cache)
            if found is not None:
                _add_read(stats, found.stats)
                try:
                    result = con.execute(f"SELECT reason, {_features(dec)}, ts, p, model, NULL::VARCHAR AS frag "
                                         "FROM judged_lines")
                    while (frame := result.fetch_df_chunk(max(1, BATCH_ROWS // 2048))) is not None and len(frame):
                        yield _count(frame, ReadStats(), Counter(), Counter()), _batch(frame, dec)
                except _duck_error():  # a part damaged inside: judged afresh next time
                    _judged.forget(cache, paths, found.parts)
                    raise
                return
        finally:
            con.close()
    sql, args, reasons, texts = _judging(paths, dec.rule)
    stats.files.extend(str(p) for p in paths)
    stats.bytes_read += sum(p.stat().st_size for p in paths)
    query = f"{sql} SELECT reason, {_features(dec)}, ts, p, model, frag FROM framed"
    con = _duck.connect(ordered=False)
    try:
        result = con.execute(query, args)
        while True:
            frame = result.fetch_df_chunk(max(1, BATCH_ROWS // 2048))
            if frame is None or not len(frame):
                break
            yield _count(frame, stats, reasons, texts), _batch(frame, dec)
    finally:
        con.close()


def windows(paths: Sequence[Path], contract: _contract.Contract | None = None, *, since_ts: float | None = None,
            last: int | None = None, models: Iterable[str] | None = None,
            stats: ReadStats | None = None, cache: Path | None = None) -> Iterator[Batch]:
    """The usable records of ``paths`` in a window, as column batches.

    Parameters
    ----------
    paths : sequence of Path
        Log files (rotated, per worker, current); missing ones are ignored.
    contract : Contract, optional
        The features to decode (default the lab's).
    since_ts : float, optional
        Only records at or after this Unix time.
    last : int, optional
        Only the ``last`` most recent records (by timestamp) of those: then one batch, oldest first.
    models : iterable of str, optional
        Only records served by these models (file name or version label, as logged).
    stats : ReadStats, optional
        Filled with the lines read and skipped (by reason), over every non-empty line of ``paths``.
    cache : Path, optional
        A judged-line cache folder (a home's ``logs/.judged``, :mod:`.judged`): lines judged before are read
        from it, and only the bytes appended since are judged; where it cannot serve, the files are read.

    Yields
    ------
    Batch
        Without ``last``: up to :data:`BATCH_ROWS` rows each, in no particular order; memory is one
        batch whatever the log's size. With ``last``: at most twice ``last`` rows are held.
    """
    contract = contract or _contract.lab()
    dec = decoder(contract)
    stats = stats if stats is not None else ReadStats()
    paths = [Path(p) for p in paths if Path(p).exists()]
    if last is not None and last < 1:
        raise ValueError("last must be positive")
    wanted = np.array(sorted(set(models)), dtype=object) if models is not None else None

    def kept() -> Iterator[Batch]:
        for ok, batch in _scan(paths, contract, stats, cache):
            if since_ts is not None:
                ok = ok & (batch.ts >= since_ts)
            if wanted is not None:
                ok = ok & np.isin(batch.model, wanted)
            if ok.any():
                yield batch if ok.all() else batch.take(ok)

    if not paths:
        return
    if last is None:
        yield from kept()
    else:
        yield _newest(kept(), last, dec)


def _newest(batches: Iterable[Batch], n: int, dec: Decoder) -> Batch:
    """The ``n`` rows with the latest timestamps, oldest first; rows older than the ``n`` in hand are dropped
    on arrival, so at most about ``2 n`` rows are held."""
    kept: list[Batch] = []
    size, floor = 0, -np.inf
    for batch in batches:
        if floor > -np.inf:
            newer = batch.ts >= floor
            if not newer.all():
                batch = batch.take(newer)
        kept.append(batch)
        size += len(batch)
        if size >= 2 * n:
            merged = Batch.concat(kept, dec)
            top = merged.take(np.argpartition(merged.ts, len(merged) - n)[-n:])
            kept, size, floor = [top], n, float(top.ts.min())
    merged = Batch.concat(kept, dec)
    return merged.take(np.argsort(merged.ts, kind="stable")[-n:])


def read_window(paths: Sequence[Path], contract: _contract.Contract | None = None, **kwargs: Any) -> Batch:
    """:func:`windows` as one batch."""
    contract = contract or _contract.lab()
    return Batch.concat(list(windows(paths, contract, **kwargs)), decoder(contract))


@dataclass
class Part:
    """One logged model's records in a window: its numeric columns (NaN where a value is missing) and the counts
    of its categories (None: missing), for statistics that fold arrays and counts, not rows."""

    model: str                                     # the serving model as logged (file name, else version label)
    n: int
    first_ts: float
    last_ts: float
    probability: np.ndarray                        # float64
    numeric: dict[str, np.ndarray]                 # float64 per numeric feature
    categorical: dict[str, dict[str | None, int]]  # per categorical feature: value -> rows


def newest(paths: Sequence[Path], contract: _contract.Contract | None = None, *, last: int,
           since_ts: float | None = None, models: Iterable[str] | None = None,
           stats: ReadStats | None = None, cache: Path | None = None) -> list[Part]:
    """The ``last`` most recent records (by timestamp) of ``paths`` in a window, one :class:`Part` per model.

    Every line is judged by the contract's record rule (:meth:`churn_lib.contract.records.Rule.sql`) in one
    DuckDB pass into a temporary table of the columns drift reads (about 120 bytes a line), counted by reason
    in ``stats``; the window (``since_ts``, ``models`` as in :func:`windows`) and its newest ``last`` rows are
    chosen there, and only the numeric columns and the category counts of those rows leave DuckDB: no row
    becomes a Python object. Of records with the same time at the window's edge, any may be taken.

    With ``cache`` (a home's ``logs/.judged``), the lines judged before are read from the cache
    (:mod:`.judged`) and only the bytes appended since are judged (and cached); where the cache cannot serve,
    the files are judged directly, with the same result.
    """
    contract = contract or _contract.lab()
    if last < 1:
        raise ValueError("last must be positive")
    dec = decoder(contract)
    stats = stats if stats is not None else ReadStats()
    paths = [Path(p) for p in paths if Path(p).exists()]
    if not paths:
        return []
    if cache is not None:
        con = _duck.connect(ordered=False)
        try:
            found = _from_cache(con, "judged_lines", paths, dec.rule, _features(dec), cache)
            if found is not None:
                try:
                    parts = _newest_parts(con, dec, last, since_ts, models)
                except _duck_error() as exc:  # a part damaged inside: judged afresh next time
                    log.debug("judged-line cache refused (%s): reading the files", exc)
                    _judged.forget(cache, paths, found.parts)
                else:
                    _add_read(stats, found.stats)
                    return parts
        finally:
            con.close()
    con = _duck.connect(ordered=False)
    try:
        _add_read(stats, _judge_into(con, "judged_lines", paths, dec.rule, _features(dec)))
        return _newest_parts(con, dec, last, since_ts, models)
    finally:
        con.close()


def _duck_error() -> type:
    import duckdb

    return duckdb.Error


def _features(dec: Decoder) -> str:
    """The feature columns drift reads of a judged line (:func:`judged_columns`)."""
    return ", ".join([f"n{k}" for k in range(len(dec.numeric))] + [f"c{k}" for k in range(len(dec.categorical))])


def _from_cache(con: Any, name: str, paths: Sequence[Path], rule: _records.Rule, columns: str, cache: Path, *,
                kind: str = "VIEW") -> _judged.Cached | None:
    """``name``: ``reason``, ``model``, ``p``, ``ts`` and ``columns`` (SQL over :func:`judged_columns`) of the
    cached judgments of ``paths``, brought up to date: a ``VIEW`` of the cached parts (only those columns are
    read of them) or a ``TABLE`` (a copy); None when the cache cannot serve (nothing half-written is left).

    One cache per log file and contract, whoever reads it: the parts hold every column of
    :func:`judged_columns`, so drift, performance and compare share one judging of each line.
    """
    select = _select(rule)
    try:
        found = _judged.update(con, paths, select=select, cache_key=_judged.key(rule.contract.sha256(), select),
                               folder=cache)
    except _judged.CacheError:
        return None
    if found.parts:
        files = ", ".join("'" + p.replace("'", "''") + "'" for p in found.parts)
        try:
            con.execute(f"CREATE TEMP {kind} {name} AS SELECT reason, model, p, ts, {columns} "
                        f"FROM read_parquet([{files}])")
        except _duck_error() as exc:  # a part damaged inside: judged afresh next time
            log.debug("judged-line cache refused (%s): reading the files", exc)
            _judged.forget(cache, paths, found.parts)
            return None
    else:  # nothing but a line still being written: no rows
        con.execute(f"CREATE TEMP TABLE {name} AS SELECT reason, model, p, ts, {columns} FROM ({select}) LIMIT 0",
                    {"files": [str(p) for p in paths]})
    return found


def _newest_parts(con: Any, dec: Decoder, last: int, since_ts: float | None,
                  models: Iterable[str] | None) -> list[Part]:
    """:func:`newest`'s parts from the judged lines in ``judged_lines``."""
    numeric = [name for _, name in dec.numeric]
    categorical = [name for _, name in dec.categorical]
    where, args = _window(since_ts, models)
    rows = f"(SELECT * FROM judged_lines WHERE {' AND '.join(where)})"
    total = con.execute(f"SELECT count(*) FROM {rows}", args).fetchone()[0]
    if total > last:
        rows, args = _newest_rows(con, rows, args, total, int(last))
    # else every record of the window: read where they are (no copy into a table)
    parts = []
    for model, n, first, latest in con.execute(f"SELECT model, count(*), min(ts), max(ts) FROM {rows} "
                                               "GROUP BY model ORDER BY model", args).fetchall():
        cols = con.execute(f"SELECT p, {', '.join(f'n{k}' for k in range(len(numeric))) or 'NULL'} "
                           f"FROM {rows} WHERE model = $m", {**args, "m": model}).fetchnumpy()
        counts = {name: {v: int(c) for v, c in con.execute(
            f"SELECT c{k}, count(*) FROM {rows} WHERE model = $m GROUP BY ALL", {**args, "m": model}).fetchall()}
            for k, name in enumerate(categorical)}
        parts.append(Part(model, int(n), float(first), float(latest), _floats(cols["p"]),
                          {name: _floats(cols[f"n{k}"]) for k, name in enumerate(numeric)}, counts))
    return parts


def _newest_rows(con: Any, rows: str, args: dict[str, Any], total: int, last: int) -> tuple[str, dict[str, Any]]:
    """SQL (and its arguments) of the ``last`` newest of the ``total`` rows of ``rows`` (ties at the edge: any of
    them, chosen once).

    A window that leaves out fewer rows than it keeps (``churn drift --last N`` on a log a little longer than
    N) finds the edge among the rows left out, DuckDB's top-N of the few oldest, and reads the rest where they
    are; else the newest are kept in a table (a top-N of ``last``). The rows at the edge's time that are kept
    are copied into a small table, so every later scan sees the same ones.
    """
    drop = total - last
    if drop >= last:
        con.execute(f"CREATE TEMP TABLE window_rows AS SELECT * FROM {rows} ORDER BY ts DESC LIMIT {last}", args)
        return "window_rows", {}
    args = {**args, "edge": con.execute(f"SELECT max(ts) FROM (SELECT ts FROM {rows} ORDER BY ts LIMIT {drop})",
                                        args).fetchone()[0]}
    newer = f"(SELECT * FROM {rows} WHERE ts > $edge)"
    left = last - con.execute(f"SELECT count(*) FROM {newer}", args).fetchone()[0]
    if not left:
        return newer, args
    con.execute(f"CREATE TEMP TABLE edge_rows AS SELECT * FROM {rows} WHERE ts = $edge LIMIT {left}", args)
    return f"(SELECT * FROM {newer} UNION ALL SELECT * FROM edge_rows)", args


def _add_read(stats: ReadStats, read: ReadStats) -> None:
    """Add the figures of one read to ``stats``."""
    stats.files.extend(read.files)
    stats.bytes_read += read.bytes_read
    stats.lines += read.lines
    stats.records += read.records
    for why, n in read.skipped.items():
        stats.skip(why, n)


def _floats(v: Any) -> np.ndarray:
    """A fetched numeric column as float64, NULL as NaN."""
    if isinstance(v, np.ma.MaskedArray):
        return v.astype(np.float64).filled(np.nan)
    return np.asarray(v, dtype=np.float64)


# --- outcomes joined to predictions ---------------------------------------------------------------

#: The keys :func:`count_matching` reads from a prediction line.
_PREDICTION_COLUMNS = {"request_id": "VARCHAR", "id": "JSON", "model_version": "VARCHAR", "version": "VARCHAR",
                       "probability": "DOUBLE", "prediction": "INTEGER", "threshold": "DOUBLE", "ts": "DOUBLE"}
#: The columns of an outcome line (:mod:`churn_lib.logs.outcomes`), typed as DuckDB reads them.
_OUTCOME_COLUMNS = {"request_id": "VARCHAR", "id": "VARCHAR", "outcome": "VARCHAR", "ts": "DOUBLE",
                    "received": "DOUBLE"}


def _json_source(param: str, columns: str) -> str:
    return (f"read_json(${param}, format='newline_delimited', columns=${columns}, ignore_errors=true, "
            f"maximum_object_size={MAX_LINE_BYTES})")


def _id_path(id_column: str | None) -> str:
    return "$." + '"' + (id_column or "").replace('"', '\\"') + '"'


def count_matching(prediction_paths: Sequence[Path], keys: Iterable[str], *, id_column: str | None = None) -> int:
    """How many of ``keys`` name a logged prediction: its ``request_id``, or with ``id_column`` its id."""
    paths = [str(p) for p in prediction_paths if Path(p).exists()]
    keys = list(keys)
    if not paths or not keys:
        return 0
    import pandas as pd

    con = _duck.connect(ordered=False)
    try:
        con.register("wanted", pd.DataFrame({"k": pd.array(keys, dtype=object)}))
        key = "request_id" if id_column is None else "json_extract_string(id, $path)"
        args: dict[str, Any] = {"files": paths, "columns": _PREDICTION_COLUMNS}
        if id_column is not None:
            args["path"] = _id_path(id_column)
        return int(con.execute(f"SELECT count(*) FROM wanted WHERE k IN (SELECT {key} FROM "
                               f"{_json_source('files', 'columns')})", args).fetchone()[0])
    finally:
        con.close()


@dataclass
class Joined:
    """Predictions in a window, each with the outcome given for it (NaN: none yet), and what was read."""

    model: np.ndarray        # object: the serving model as logged (file name, else version label)
    probability: np.ndarray  # float64
    threshold: np.ndarray    # float64, NaN where the line has none (the lab's lines)
    prediction: np.ndarray   # float64: the decision served (1, 0), NaN where the line has none
    ts: np.ndarray           # float64, Unix seconds of the prediction
    outcome: np.ndarray      # float64: 1, 0 or NaN
    read: dict[str, Any]

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, mask: np.ndarray) -> "Joined":
        """The rows where ``mask`` is true (``read`` left empty: it describes the whole read)."""
        return Joined(self.model[mask], self.probability[mask], self.threshold[mask], self.prediction[mask],
                      self.ts[mask], self.outcome[mask], {})

    @staticmethod
    def concat(parts: Sequence["Joined"]) -> "Joined":
        """The rows of several joins over the same files (one per contract), with their reads merged: the
        outcome files are the same; of the prediction lines, those none of the contracts keeps are skipped."""
        read = dict(parts[0].read)
        for key in ("predictions", "with_outcome", "prediction_records"):
            read[key] = sum(p.read[key] for p in parts)
        read["prediction_lines"] = max(p.read["prediction_lines"] for p in parts)
        other = read["prediction_lines"] - read["prediction_records"]
        read["prediction_lines_skipped"] = max(other, 0)
        read["prediction_skipped"] = ({"not a record of these models' contracts, or malformed": other}
                                      if other > 0 else {})
        return Joined(*(np.concatenate([getattr(p, name) for p in parts])
                        for name in ("model", "probability", "threshold", "prediction", "ts", "outcome")), read)


def outcomes(prediction_paths: Sequence[Path], outcome_paths: Sequence[Path],
             contract: _contract.Contract | None = None, *, id_column: str | None = None,
             since_ts: float | None = None, last: int | None = None,
             models: Iterable[str] | None = None, cache: Path | None = None) -> Joined:
    """Every prediction in a window with its outcome, joined in DuckDB (multi-threaded, memory within its limit).

    The predictions are the lines the record rule of ``contract`` (default the
    lab's) keeps, judged by its SQL (:meth:`churn_lib.contract.records.Rule.sql`)
    as the drift reader judges them: the same log gives the same predictions
    to drift and to performance. An outcome names its prediction by
    ``request_id``, or by the contract's id column (``id_column``; the
    prediction's ``id`` object). Of several outcomes for one key the one
    received last counts. The rows come in one order (by time, then key),
    whatever the threads or the cache; of records with the same time at the
    edge of ``last``, the first by key are taken. Prediction lines the rule
    skips (counted by reason, over the whole files, in ``read``) and outcome
    lines without a key or a 0/1 outcome are counted in ``read``. With ``cache`` (a home's
    ``logs/.judged``), the prediction lines judged before (by any reader: the
    cache is shared) are read from the judged-line cache (:mod:`.judged`) and
    only the bytes appended since are judged; where the cache cannot serve, the
    files are judged directly, with the same result.

    Raises
    ------
    ValueError
        ``last`` is not positive, or ``id_column`` is not an id column of ``contract``.
    """
    contract = contract or _contract.lab()
    if last is not None and last < 1:
        raise ValueError("last must be positive")
    if id_column is not None and id_column not in contract.id:
        raise ValueError(f"{id_column!r} is not an id column of the contract {contract.name!r}")
    pred = [Path(p) for p in prediction_paths if Path(p).exists()]
    given = [str(p) for p in outcome_paths if Path(p).exists()]
    read: dict[str, Any] = {"prediction_files": [str(p) for p in pred], "feedback_files": given, "predictions": 0,
                            "prediction_lines": 0, "prediction_records": 0, "prediction_lines_skipped": 0,
                            "prediction_skipped": {}, "feedback_lines": 0, "feedback_lines_skipped": 0,
                            "outcomes": 0, "repeated_outcomes": 0, "with_outcome": 0}
    if not pred:
        empty = np.empty(0)
        return Joined(np.empty(0, dtype=object), empty, empty, empty, empty, empty, read)
    con = _duck.connect(ordered=False)
    try:
        stats = _judge_predictions(con, pred, _records.rule(contract), id_column, cache)
        read.update(prediction_lines=stats.lines, prediction_records=stats.records,
                    prediction_lines_skipped=stats.skipped_total,
                    prediction_skipped=dict(sorted(stats.skipped.items())))
        join, y = _outcome_join(con, given, id_column, read) if given else ("", "NULL::DOUBLE")
        where, args = _window(since_ts, models)
        # one order, whatever the threads or the cache: the bootstrap intervals draw rows by position
        order = "request_id, cid, model, p, t, d"
        limit = f"ORDER BY ts DESC, {order} LIMIT {int(last)}" if last is not None else ""
        out = con.execute(f"""WITH p AS (SELECT * FROM predicted WHERE {' AND '.join(where)} {limit})
            SELECT p.model, p.p, p.t, p.d, p.ts, {y} AS y FROM p {join}
            ORDER BY p.ts, {', '.join(f'p.{c}' for c in order.split(', '))}""", args).fetchnumpy()
    finally:
        con.close()
    return _joined(out, read)


def _judge_predictions(con: Any, paths: Sequence[Path], rule: _records.Rule, id_column: str | None,
                       cache: Path | None) -> ReadStats:
    """Judge every line of ``paths`` by ``rule`` into the table ``predicted`` (``reason`` NULL for a record, with
    its key, model, probability, served threshold and decision, time); count its lines as the drift reader does."""
    columns = f"rid AS request_id, {customer_id(rule.contract, id_column)} AS cid, t, d"
    return judge_lines(con, "predicted", paths, rule, columns, cache=cache)


def judge_lines(con: Any, table: str, paths: Sequence[Path], rule: _records.Rule, columns: str, *,
                cache: Path | None = None, then: str | None = None) -> ReadStats:
    """Judge every line of ``paths`` by ``rule`` into the temporary table ``table``; its lines counted by reason.

    Parameters
    ----------
    con : duckdb connection
    table : str
        The table made: ``reason`` (NULL for a record), ``model``, ``p``, ``ts`` and ``columns``.
    paths : sequence of Path
        Existing log files.
    rule : Rule
        The record rule the lines are judged by (:meth:`churn_lib.contract.records.Rule.sql`).
    columns : str
        SQL of further columns over those of a judged line (:func:`judged_columns`), named.
    cache : Path, optional
        A judged-line cache folder (a home's ``logs/.judged``, :mod:`.judged`): lines judged before, by any
        reader (drift, performance, compare: one cache per file and contract, holding every column of
        :func:`judged_columns`), are read from it, and only the bytes appended since are judged; where it cannot
        serve, the files are judged directly.
    then : str, optional
        A statement over ``table`` run at once (its only reader): then, through the cache, ``table`` is a view
        of the cached parts (no copy), and a part DuckDB refuses while it runs is judged afresh from the files.

    Returns
    -------
    ReadStats
        Every non-blank line of ``paths``, as the drift reader counts them. Either way the table's records are
        the same rows: a last line still being written (counted as truncated) is never a record in it.
    """
    if cache is not None:
        found = _from_cache(con, table, paths, rule, columns, cache, kind="VIEW" if then else "TABLE")
        if found is not None:
            try:
                if then:
                    con.execute(then)
                return found.stats
            except _duck_error() as exc:  # a part damaged inside: judged afresh next time
                log.debug("judged-line cache refused (%s): reading the files", exc)
                _judged.forget(cache, paths, found.parts)
                con.execute(f"DROP {'VIEW' if then and found.parts else 'TABLE'} IF EXISTS {table}")
    stats = _judge_into(con, table, paths, rule, columns)
    if then:
        con.execute(then)
    return stats


def _judge_into(con: Any, table: str, paths: Sequence[Path], rule: _records.Rule, columns: str) -> ReadStats:
    """Judge every line of ``paths`` by ``rule`` into the temporary ``table``: ``reason`` (NULL for a record),
    ``model``, ``p``, ``ts``, the SQL ``columns`` (over :func:`judged_columns`) and ``frag``; a last line still
    being written that reads as a record is marked truncated. Its lines counted by reason."""
    sql, args, reasons, texts = _judging(paths, rule)
    con.execute(f"CREATE TEMP TABLE {table} AS {sql} SELECT reason, model, p, ts, {columns}, frag FROM framed", args)
    for text, n in texts.items():  # a last line still being written that reads as a record: truncated
        con.execute(f"UPDATE {table} SET reason = $why WHERE rowid IN (SELECT rowid FROM {table} "
                    "WHERE reason IS NULL AND frag = $text LIMIT $n)",
                    {"why": _records.TRUNCATED, "text": text, "n": n})
    stats = ReadStats(files=[str(p) for p in paths], bytes_read=sum(p.stat().st_size for p in paths))
    counts = con.execute(f"SELECT reason, count(*) FROM {table} GROUP BY reason").fetchall()
    stats.lines = sum(int(n) for _, n in counts)
    stats.records = sum(int(n) for why, n in counts if why is None)
    _skips(stats, ((str(why), int(n)) for why, n in counts if why is not None), reasons)
    return stats


def _window(since_ts: float | None, models: Iterable[str] | None) -> tuple[list[str], dict[str, Any]]:
    """The SQL conditions (and their arguments) of the records of a judged table in a window."""
    where, args = ["reason IS NULL"], {}
    if since_ts is not None:
        where.append("ts >= $since")
        args["since"] = float(since_ts)
    if models is not None:
        where.append("list_contains($models, model)")
        args["models"] = sorted(set(models))
    return where, args


def _outcome_join(con: Any, paths: list[str], id_column: str | None, read: dict[str, Any]) -> tuple[str, str]:
    """Read the outcome files into the table ``given`` (the last received per key, how many were given, bad lines
    as key NULL; counted in ``read``); the SQL joining them to the window ``p`` and of its outcome column."""
    con.execute(f"""CREATE TEMP TABLE given AS
        WITH raw AS (SELECT coalesce(request_id, id) AS k, request_id IS NOT NULL AS by_request,
                            CASE trim(outcome) WHEN '1' THEN 1 WHEN '0' THEN 0 END AS y, received
                     FROM {_json_source('files', 'columns')})
        SELECT CASE WHEN k IS NOT NULL AND y IS NOT NULL THEN k END AS key, by_request,
               arg_max(y, coalesce(received, 0)) AS y, count(*) AS n
        FROM raw GROUP BY ALL""", {"files": paths, "columns": _OUTCOME_COLUMNS})
    lines, bad, unique = (int(v or 0) for v in con.execute(
        "SELECT sum(n), sum(n) FILTER (WHERE key IS NULL), count(*) FILTER (WHERE key IS NOT NULL) "
        "FROM given").fetchone())
    read.update(feedback_lines=lines, feedback_lines_skipped=bad, outcomes=unique,
                repeated_outcomes=lines - bad - unique)
    join = "LEFT JOIN (SELECT key, y FROM given WHERE by_request AND key IS NOT NULL) r ON r.key = p.request_id"
    if not id_column:
        return join, "r.y::DOUBLE"
    join += " LEFT JOIN (SELECT key, y FROM given WHERE NOT by_request AND key IS NOT NULL) c ON c.key = p.cid"
    return join, "coalesce(r.y, c.y)::DOUBLE"


def _joined(out: dict[str, Any], read: dict[str, Any]) -> Joined:
    """The :class:`Joined` of a fetched join (NULL as NaN or None)."""
    def col(name: str, kind: Any) -> np.ndarray:
        v = out[name]
        if isinstance(v, np.ma.MaskedArray):
            return v.filled(np.nan if kind is np.float64 else None).astype(kind)
        return np.asarray(v, dtype=kind)

    joined = Joined(col("model", object), col("p", np.float64), col("t", np.float64), col("d", np.float64),
                    col("ts", np.float64), col("y", np.float64), read)
    read["predictions"] = len(joined)
    read["with_outcome"] = int(np.count_nonzero(~np.isnan(joined.outcome)))
    return joined
