"""Reading the JSON-line logs with DuckDB: windows of predictions for drift, outcomes joined to predictions.

Writes stay single-``write`` JSON-line appends (:mod:`churn_lib.logs.predictions`,
:mod:`churn_lib.logs.outcomes`); the reads here hand the current and rotated files
to DuckDB's ``read_json_objects`` (multi-threaded, within :data:`churn_lib._duck.MEMORY_LIMIT`)
and judge every line with the SQL derived from the contract's record rule
(:meth:`churn_lib.contract.records.Rule.sql`): the same lines are kept, and the
others skipped for the same reasons, as by the Python and msgspec readers. A
last line without a newline (a write in progress) is counted as truncated.
"""

from __future__ import annotations

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
from .predictions import Batch, Decoder, ReadStats, decoder

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
    for why, count in reason[reason.notna()].value_counts().items():
        take = min(reasons[why], int(count))  # as many lines of this reason are the ones being written
        if take:
            stats.skip(_records.TRUNCATED, take)
            reasons[why] -= take
        if count - take:
            stats.skip(str(why), int(count) - take)
    return ok


def _scan(paths: Sequence[Path], contract: _contract.Contract, stats: ReadStats) -> Iterator[tuple[np.ndarray, Batch]]:
    """Every non-blank line of ``paths`` as ``(usable?, batch)`` chunks, in no particular order; counts in ``stats``.

    One pass of DuckDB over the files (every core); the window is applied by
    the caller, so every line is counted whatever the window.
    """
    dec = decoder(contract)
    rule = dec.rule
    reasons, texts = _unterminated(paths, rule)
    stats.files.extend(str(p) for p in paths)
    stats.bytes_read += sum(p.stat().st_size for p in paths)
    frag = "CASE WHEN list_contains($texts, text) THEN text END" if texts else "NULL::VARCHAR"
    query = (f"{rule.sql(_SOURCE)} SELECT reason, {', '.join(_picks(rule, dec))}, ts, p, model, {frag} AS frag "
             "FROM judged")
    args: dict[str, Any] = {"files": [str(p) for p in paths]}
    if texts:
        args["texts"] = sorted(texts)
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
            stats: ReadStats | None = None) -> Iterator[Batch]:
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
        for ok, batch in _scan(paths, contract, stats):
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


# --- outcomes joined to predictions ---------------------------------------------------------------

_PREDICTION_COLUMNS = {"request_id": "VARCHAR", "id": "JSON", "model_version": "VARCHAR", "version": "VARCHAR",
                       "probability": "DOUBLE", "prediction": "INTEGER", "threshold": "DOUBLE", "ts": "DOUBLE"}
_FEEDBACK_COLUMNS = {"request_id": "VARCHAR", "id": "VARCHAR", "outcome": "VARCHAR", "ts": "DOUBLE",
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


def outcomes(prediction_paths: Sequence[Path], feedback_paths: Sequence[Path], *, id_column: str | None = None,
             since_ts: float | None = None, last: int | None = None,
             models: Iterable[str] | None = None) -> Joined:
    """Every prediction in a window with its outcome, joined in DuckDB (multi-threaded, memory within its limit).

    An outcome names its prediction by ``request_id``, or by the contract's id
    column (``id_column``; the prediction's ``id`` object). Of several outcomes
    for one key the one received last counts. A prediction line that is not
    usable (no probability in [0, 1], no time, no model) and a feedback line
    without a key or a 0/1 outcome are skipped and counted in ``read``.
    """
    pred = [str(p) for p in prediction_paths if Path(p).exists()]
    fb = [str(p) for p in feedback_paths if Path(p).exists()]
    empty = np.empty(0)
    if last is not None and last < 1:
        raise ValueError("last must be positive")
    read: dict[str, Any] = {"prediction_files": pred, "feedback_files": fb, "predictions": 0,
                            "prediction_lines_skipped": 0, "feedback_lines": 0, "feedback_lines_skipped": 0,
                            "outcomes": 0, "repeated_outcomes": 0, "with_outcome": 0}
    if not pred:
        return Joined(np.empty(0, dtype=object), empty, empty, empty, empty, empty, read)
    con = _duck.connect(ordered=False)
    try:
        args: dict[str, Any] = {"pfiles": pred, "pcols": {k: v for k, v in _PREDICTION_COLUMNS.items()
                                                         if id_column or k != "id"}}
        if id_column:
            args["path"] = _id_path(id_column)
        where = ["p BETWEEN 0 AND 1", "isfinite(ts)", "model IS NOT NULL"]
        if since_ts is not None:
            where.append("ts >= $since")
            args["since"] = float(since_ts)
        if models is not None:
            where.append("list_contains($models, model)")
            args["models"] = sorted(set(models))
        window = f"ORDER BY ts DESC LIMIT {int(last)}" if last is not None else ""
        if fb:
            # one pass over the outcomes: the last received per key (and how many were given), bad lines as key NULL
            con.execute(f"""CREATE TEMP TABLE fb AS
                WITH fb_raw AS (SELECT coalesce(request_id, id) AS k, request_id IS NOT NULL AS by_request,
                                       CASE trim(outcome) WHEN '1' THEN 1 WHEN '0' THEN 0 END AS y, received
                                FROM {_json_source('ffiles', 'fcols')})
                SELECT CASE WHEN k IS NOT NULL AND y IS NOT NULL THEN k END AS key, by_request,
                       arg_max(y, coalesce(received, 0)) AS y, count(*) AS n
                FROM fb_raw GROUP BY ALL""", {"ffiles": fb, "fcols": _FEEDBACK_COLUMNS})
            lines, bad, unique = (int(v or 0) for v in con.execute(
                "SELECT sum(n), sum(n) FILTER (WHERE key IS NULL), count(*) FILTER (WHERE key IS NOT NULL) "
                "FROM fb").fetchone())
            read.update(feedback_lines=lines, feedback_lines_skipped=bad, outcomes=unique,
                        repeated_outcomes=lines - bad - unique)
            join = ("LEFT JOIN (SELECT key, y FROM fb WHERE by_request AND key IS NOT NULL) r "
                    "ON r.key = p.request_id")
            if id_column:
                join += (" LEFT JOIN (SELECT key, y FROM fb WHERE NOT by_request AND key IS NOT NULL) c "
                         "ON c.key = p.cid")
            y = "coalesce(r.y, c.y)::DOUBLE" if id_column else "r.y::DOUBLE"
        else:
            join, y = "", "NULL::DOUBLE"
        query = f"""
            WITH raw AS (
                SELECT request_id, {"json_extract_string(id, $path)" if id_column else "NULL::VARCHAR"} AS cid,
                       coalesce(model_version, version) AS model,
                       probability AS p, threshold AS t, prediction AS d, ts
                FROM {_json_source('pfiles', 'pcols')}),
            p AS (SELECT * FROM raw WHERE {' AND '.join(where)} {window})
            SELECT p.model, p.p, p.t, p.d::DOUBLE AS d, p.ts, {y} AS y FROM p {join}"""
        out = con.execute(query, args).fetchnumpy()
    finally:
        con.close()

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
