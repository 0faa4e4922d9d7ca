"""Pairing the champion's and the challenger's answers to the same requests, with their outcomes, in DuckDB.

A champion line is a prediction log record without ``role`` (or with
``"role": "champion"``); a challenger line has ``"role": "challenger"`` and the
champion's ``request_id``. A line is used exactly when it is a record by the
contract's record rule (:mod:`churn_lib.contract.records`, judged by its SQL,
:func:`churn_lib.logs.query.judge_lines`): the lines drift and performance
read, skipped for the same reasons (a last line still being written as
``truncated``). Pairing adds one condition of its own: a record without a
``request_id`` cannot be paired (``no request_id``). With a judged-line cache
(a home's ``logs/.judged``, :mod:`churn_lib.logs.judged`), lines judged
before, by a comparison or by a drift or performance check (one cache per log
file and contract), are read from it, and only the bytes appended since are
judged. The records are grouped by request id in one reading of them (each
role's model and version label carried as a small code of the distinct names);
only the pairs' numbers are fetched into numpy.

Pairs are exact: a request id with exactly one usable champion line and
exactly one usable challenger line. A request id logged twice in a role
(``duplicate request_id``), a champion line without a challenger line and a
challenger line without a champion line are counted, never paired. The window
(``since``: the champion's time) is applied before pairing. The versions
compared are those of the newest pair; pairs of other versions (a challenger
changed within the window) are counted and left out, then ``last`` keeps the
newest pairs. Outcomes are joined as :func:`churn_lib.logs.query.outcomes`
joins them: by ``request_id``, or by the contract's id column when the
outcome names the customer; of several outcomes for one key the one received
last counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import _duck
from ..contract import records as _records
from ..logs import query as _query

CHALLENGER = _records.CHALLENGER
#: The reason a record is not used, besides the rule's: it cannot be paired.
NO_REQUEST_ID = "no request_id"
_FEEDBACK_COLUMNS = {"request_id": "VARCHAR", "id": "VARCHAR", "outcome": "VARCHAR", "received": "DOUBLE"}


@dataclass
class Pairs:
    """The paired answers (one row per request id) and what the read saw."""

    champion: str | None       # the model as logged (file name, else version label)
    challenger: str | None
    champion_version: str | None
    challenger_version: str | None
    p: np.ndarray              # (n, 2) float64: champion, challenger probability
    decision: np.ndarray       # (n, 2) float64: the decision logged (1/0), NaN where not given
    threshold: np.ndarray      # (n, 2) float64, NaN where not given
    latency_ms: np.ndarray     # (n, 2) float64, NaN where not given
    ts: np.ndarray             # (n,) float64: the champion's time
    outcome: np.ndarray        # (n,) float64: 1, 0 or NaN
    read: dict[str, Any]

    def __len__(self) -> int:
        return len(self.ts)


def _columns(rule: _records.Rule, id_column: str | None) -> str:
    """SQL of the columns compare reads of a judged line (over :func:`churn_lib.logs.query.judged_columns`): its
    request id, customer id, version label, role (challenger or not), and its decision, threshold and latency
    where each is a finite number."""
    finite = "CASE WHEN isfinite({0}) THEN {0} END AS {0}"
    return (f"rid, {_query.customer_id(rule.contract, id_column)} AS cid, label, shadow, "
            + ", ".join(finite.format(c) for c in ("d", "t", "lat")))


#: The records' distinct model names and version labels, each pair with a small code (the grouping below carries
#: the code, not four strings per request id).
_NAMES = """CREATE OR REPLACE TEMP TABLE names AS
    SELECT (row_number() OVER ())::INTEGER - 1 AS code, model, label
    FROM (SELECT DISTINCT model, label FROM answers WHERE reason IS NULL)"""
#: The records grouped by request id (NULL: the records without one): per role, how many, and the values of one.
#: A line's values are NULL for the other role's columns, so every aggregate is a plain ``any_value`` or ``max``
#: (cheaper than one ``FILTER`` per aggregate). Run after :data:`_NAMES`, in the same statement text (judge_lines'
#: ``then``: one reading of the cached parts).
_IDS = _NAMES + """;
    CREATE TEMP TABLE ids AS
    SELECT rid, count(CASE WHEN NOT shadow THEN 1 END) AS nc,
           count(CASE WHEN shadow THEN 1 END) AS nk,
           max(CASE WHEN NOT shadow THEN ts END) AS ts, max(CASE WHEN shadow THEN ts END) AS kts,
           any_value(CASE WHEN NOT shadow THEN cid END) AS cid,
           {}
    FROM answers a JOIN names n ON a.model IS NOT DISTINCT FROM n.model AND a.label IS NOT DISTINCT FROM n.label
    WHERE reason IS NULL GROUP BY rid"""
_ONE = "any_value(CASE WHEN NOT shadow THEN {0} END) AS c{1}, any_value(CASE WHEN shadow THEN {0} END) AS k{1}"
_VALUES = ", ".join(_ONE.format(v, c) for v, c in (("code", "v"), ("p", "p"), ("d", "d"), ("t", "t"),
                                                   ("lat", "lat")))
#: The versions of the pairs in the window, newest first: each model pair's labels, pairs, and the codes it covers.
_VERSIONS = """SELECT c.model, k.model, any_value(c.label), any_value(k.label), sum(v.n), list(v.cv), list(v.kv)
    FROM (SELECT cv, kv, count(*) AS n, max(ts) AS newest FROM ids WHERE nc = 1 AND nk = 1 AND ts >= $since
          GROUP BY cv, kv) v JOIN names c ON c.code = v.cv JOIN names k ON k.code = v.kv
    GROUP BY c.model, k.model ORDER BY max(v.newest) DESC"""


#: How the usable lines in the window were or were not paired.
_UNPAIRED = """SELECT count(*) FILTER (WHERE nc = 1 AND nk = 0 AND ts >= $since),
                      count(*) FILTER (WHERE nk = 1 AND nc = 0 AND kts >= $since),
                      count(*) FILTER (WHERE (nc > 1 OR nk > 1) AND greatest(ts, kts) >= $since)
               FROM ids"""


def read(prediction_paths: Sequence[Path], feedback_paths: Sequence[Path], rule: _records.Rule, *,
         id_column: str | None = None, since_ts: float | None = None, last: int | None = None,
         cache: Path | None = None) -> Pairs:
    """The champion/challenger pairs of the logs in a window, with their outcomes (see the module docstring).

    Parameters
    ----------
    prediction_paths, feedback_paths : sequence of Path
        The log files (missing ones are ignored).
    rule : Rule
        The record rule of the contract the lines were served under.
    id_column : str, optional
        The contract's id column, when outcomes may name the customer instead of the request.
    since_ts : float, optional
        Only pairs whose champion line is at or after this Unix time.
    last : int, optional
        Only the ``last`` newest pairs (of the versions compared).
    cache : Path, optional
        A judged-line cache folder (a home's ``logs/.judged``); the same pairs and counts as without.
    """
    pred = [Path(p) for p in prediction_paths if Path(p).exists()]
    fb = [str(p) for p in feedback_paths if Path(p).exists()]
    read: dict[str, Any] = {"prediction_files": [str(p) for p in pred], "feedback_files": fb, "lines": 0,
                            "skipped": {}}
    empty = np.empty((0, 2))
    nothing = Pairs(None, None, None, None, empty, empty, empty, empty, np.empty(0), np.empty(0), read)
    if not pred:
        return nothing
    con = _duck.connect(ordered=False)
    try:
        stats = _query.judge_lines(con, "answers", pred, rule, _columns(rule, id_column), cache=cache,
                                   then=_IDS.format(_VALUES))
        unkeyed = con.execute("SELECT sum(nc + nk) FROM ids WHERE rid IS NULL").fetchone()[0]
        if unkeyed:
            stats.skip(NO_REQUEST_ID, int(unkeyed))
        read.update(lines=stats.lines, skipped=dict(sorted(stats.skipped.items())))
        con.execute("DELETE FROM ids WHERE rid IS NULL")
        since = {"since": float("-inf") if since_ts is None else float(since_ts)}
        champion_only, challenger_only, duplicates = con.execute(_UNPAIRED, since).fetchone()
        read.update(champion_without_challenger=int(champion_only), challenger_without_champion=int(challenger_only),
                    duplicate_request_ids=int(duplicates))
        return _pairs(con, fb, id_column, last, since, read) or nothing
    finally:
        con.close()


def _pairs(con: Any, fb: list[str], id_column: str | None, last: int | None, since: dict[str, float],
           read: dict[str, Any]) -> Pairs | None:
    """The pairs of the newest pair's versions (the newest ``last``), joined to their outcomes."""
    versions = con.execute(_VERSIONS, since).fetchall()
    read["other_version_pairs"] = {f"{v[2]} / {v[3]}": int(v[4]) for v in versions[1:]}
    if not versions:
        return None
    cm, km, cl, kl, _, cv, kv = versions[0]
    window = f"ORDER BY ts DESC LIMIT {int(last)}" if last is not None else ""
    y, join = "NULL::DOUBLE", ""
    if fb:
        con.execute(f"""CREATE TEMP TABLE fb AS
            SELECT coalesce(request_id, id) AS k, request_id IS NOT NULL AS by_request,
                   arg_max(CASE trim(outcome) WHEN '1' THEN 1 WHEN '0' THEN 0 END, coalesce(received, 0)) AS y
            FROM read_json($ffiles, format='newline_delimited', columns=$fcols, ignore_errors=true,
                           maximum_object_size={_records.MAX_LINE_BYTES})
            WHERE coalesce(request_id, id) IS NOT NULL AND trim(outcome) IN ('0', '1') GROUP BY ALL""",
                    {"ffiles": fb, "fcols": _FEEDBACK_COLUMNS})
        join = "LEFT JOIN (SELECT k, y FROM fb WHERE by_request) r ON r.k = w.rid"
        y = "r.y::DOUBLE"
        if id_column:
            join += " LEFT JOIN (SELECT k, y FROM fb WHERE NOT by_request) c ON c.k = w.cid"
            y = "coalesce(r.y, c.y)::DOUBLE"
    # only the numbers are fetched: a million request ids as Python strings would cost more than the join
    query = f"""SELECT w.cp, w.kp, w.cd, w.kd, w.ct, w.kt, w.clat, w.klat, w.ts, {y} AS y
                FROM (SELECT * FROM ids WHERE nc = 1 AND nk = 1 AND ts >= $since
                      AND list_contains($cv, cv) AND list_contains($kv, kv) {window}) w {join}"""
    args = {"cv": sorted(set(cv)), "kv": sorted(set(kv)), **since}
    out = con.execute(query, args).fetchnumpy()
    # ordered by the champion's time, then the request id: the bootstrap draws by position, so the same log must give
    # the same rows in the same order. Sorted here by the time alone (numpy's sort of one column, cheaper than
    # DuckDB's of every column by two keys); only when two pairs share a time (or a time is not a number) does the
    # request id decide, and DuckDB orders them all
    order = np.argsort(_number(out["ts"]), kind="stable")
    if len(order) > 1 and not (np.diff(_number(out["ts"])[order]) > 0).all():
        out, order = con.execute(query + " ORDER BY w.ts, w.rid", args).fetchnumpy(), None

    def col(name: str) -> np.ndarray:
        v = _number(out[name])
        return v if order is None else v[order]

    both = lambda a, b: np.stack([col(a), col(b)], axis=1)  # noqa: E731 - champion, challenger columns
    return Pairs(cm, km, cl, kl, both("cp", "kp"), both("cd", "kd"), both("ct", "kt"), both("clat", "klat"),
                 col("ts"), col("y"), read)


def _number(v: Any) -> np.ndarray:
    """A fetched column as float64, NaN where it is NULL."""
    return (v.filled(np.nan) if isinstance(v, np.ma.MaskedArray) else np.asarray(v)).astype(np.float64, copy=False)
