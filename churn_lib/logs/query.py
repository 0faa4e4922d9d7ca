"""Reading the JSON-line logs with DuckDB: windows of predictions for drift, outcomes joined to predictions.

Writes stay single-``write`` JSON-line appends (:mod:`churn_lib.logs.predictions`,
:mod:`churn_lib.logs.outcomes`); the reads here hand the current and rotated files
to DuckDB's ``read_json`` (multi-threaded, within :data:`churn_lib._duck.MEMORY_LIMIT`),
typed from the contract, with the same validity rules as the hand-written
reader: a line that is not JSON, or lacks the features, a timestamp, a
probability in [0, 1] or a model, is skipped and counted by reason (DuckDB
reads a malformed line as a row of nulls, which is how it is told apart). A
last line without a newline (a write in progress) is counted as truncated.

Looser than :func:`churn_lib.logs.predictions.read_tail` in two ways that only
hand-written lines can reach: a JSON number where the contract has a category
is read as its text, and ``true``/``false`` where it has a number as 1/0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .. import _duck
from .. import contract as _contract
from .predictions import MAX_LINE_BYTES, Batch, Decoder, ReadStats, decoder

#: Rows handed over per batch when a window is streamed (bounded memory, whatever the window's size).
BATCH_ROWS = 100_000


def _sql_type(f: _contract.Feature) -> str:
    return {_contract.CATEGORICAL: "VARCHAR", _contract.BOOLEAN: "BOOLEAN"}.get(f.type, "DOUBLE")


def _columns(contract: _contract.Contract) -> dict[str, str]:
    feats = ", ".join(f"{_duck.ident(f.name)} {_sql_type(f)}" for f in contract.features)
    return {"features": f"STRUCT({feats})", "ts": "DOUBLE", "probability": "DOUBLE",
            "model_version": "VARCHAR", "version": "VARCHAR"}


#: Every line of the files, typed by ``$columns``; a line that does not parse is a row of nulls.
_SOURCE = ("read_json($files, format='newline_delimited', columns=$columns, ignore_errors=true, "
           f"maximum_object_size={MAX_LINE_BYTES})")


def _judged(contract: _contract.Contract) -> str:
    """SQL of every non-empty line with ``reason``: NULL for a usable record, else why it is skipped."""
    checks = []
    for f in contract.features:
        col = f"f.{_duck.ident(f.name)}"
        if f.type in (_contract.INTEGER, _contract.FLOAT):
            checks.append(f"({col} IS NULL OR isfinite({col}))" if f.imputed else f"coalesce(isfinite({col}), false)")
        elif not f.imputed:
            checks.append(f"{col} IS NOT NULL")
    features_ok = " AND ".join(checks) or "true"
    return f"""
        WITH raw AS (
            SELECT features AS f, ts, probability AS p, coalesce(model_version, version) AS model
            FROM {{source}}),
        judged AS (
            SELECT *, CASE
                WHEN f IS NULL AND ts IS NULL AND p IS NULL AND model IS NULL THEN 'malformed'
                WHEN f IS NULL THEN 'no features'
                WHEN NOT ({features_ok}) THEN 'bad feature value'
                WHEN ts IS NULL OR NOT isfinite(ts) THEN 'no timestamp'
                WHEN p IS NULL OR NOT (p BETWEEN 0 AND 1) THEN 'bad probability'
                WHEN model IS NULL THEN 'no model'
            END AS reason
            FROM raw)"""


def _truncated(paths: Sequence[Path]) -> int:
    """Files whose last line has no newline yet."""
    n = 0
    for p in paths:
        try:
            with open(p, "rb") as fh:
                if fh.seek(0, os.SEEK_END) == 0:
                    continue
                fh.seek(-1, os.SEEK_END)
                n += fh.read(1) != b"\n"
        except OSError:
            pass
    return n


def _batch(frame: Any, dec: Decoder) -> Batch:
    numeric = {name: frame[f"n{k}"].to_numpy(dtype=np.float64, na_value=np.nan)
               for k, (_, name) in enumerate(dec.numeric)}
    categorical = {name: frame[f"c{k}"].to_numpy(dtype=object, na_value=None)
                   for k, (_, name) in enumerate(dec.categorical)}
    return Batch(frame["model"].to_numpy(dtype=object), frame["ts"].to_numpy(dtype=np.float64, na_value=np.nan),
                 frame["p"].to_numpy(dtype=np.float64, na_value=np.nan), numeric, categorical)


def _scan(paths: Sequence[Path], contract: _contract.Contract, stats: ReadStats) -> Iterator[tuple[np.ndarray, Batch]]:
    """Every non-empty line of ``paths`` as ``(usable?, batch)`` chunks, in no particular order; counts in ``stats``.

    One pass of DuckDB over the files (every core); the window is applied by
    the caller, so every line is counted whatever the window.
    """
    dec = decoder(contract)
    truncated = _truncated(paths)
    stats.files.extend(str(p) for p in paths)
    stats.bytes_read += sum(p.stat().st_size for p in paths)
    picks = [f"f.{_duck.ident(name)}::DOUBLE AS n{k}" for k, (_, name) in enumerate(dec.numeric)]
    picks += [f"f.{_duck.ident(name)} AS c{k}" for k, (_, name) in enumerate(dec.categorical)]
    query = f"{_judged(contract).replace('{source}', _SOURCE)} SELECT reason, {', '.join(picks)}, ts, p, model FROM judged"
    con = _duck.connect(ordered=False)
    try:
        result = con.execute(query, {"files": [str(p) for p in paths], "columns": _columns(contract)})
        while True:
            frame = result.fetch_df_chunk(max(1, BATCH_ROWS // 2048))
            if frame is None or not len(frame):
                break
            reason = frame["reason"]
            ok = reason.isna().to_numpy()
            stats.lines += len(frame)
            stats.records += int(ok.sum())
            if not ok.all():
                for why, count in reason[~ok].value_counts().items():
                    if why == "malformed" and truncated:  # a last line being written reads as malformed
                        take = min(truncated, int(count))
                        stats.skip("truncated", take)
                        truncated -= take
                        count -= take
                    if count:
                        stats.skip(str(why), int(count))
            yield ok, _batch(frame, dec)
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
