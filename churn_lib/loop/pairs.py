"""Pairing the champion's and the challenger's answers to the same requests, with their outcomes, in one DuckDB pass.

A champion line is a prediction log line without ``role``; a challenger line
has ``"role": "challenger"`` and the champion's ``request_id``. Every log file
is read once (``read_json`` with the fields compare uses, as JSON values), and
a line is used only when those fields pass the checks the record rule
(:mod:`churn_lib.contract.records`) declares for them: ``features`` an object,
``ts`` a finite number, ``probability`` a number in [0, 1], a model named
(``model_version`` or ``version``, texts), ``request_id`` a text of 1 to 128
characters (here required: a line without one cannot be paired). The others
are counted by the rule's reason (a line DuckDB cannot parse is ``malformed``).
The read, the checks and the grouping by request id are one statement (a
value's JSON kind is taken from its text's first character, not parsed again
per check); only the pairs' numbers are fetched into numpy.

Pairs are exact: a request id with exactly one usable champion line and
exactly one usable challenger line. A request id logged twice in a role
(``duplicate request_id``), a champion line without a challenger line, a
challenger line without a champion line, and a line of another role are
counted, never paired. The window (``since``: the champion's time) is applied
before pairing. The versions compared are those of the newest pair; pairs of
other versions (a challenger changed within the window) are counted and left
out, then ``last`` keeps the newest pairs. Outcomes are joined as
:func:`churn_lib.logs.query.outcomes` joins them: by ``request_id``, or by the
contract's id column when the outcome names the customer; of several outcomes
for one key the one received last counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import _duck
from ..contract import records as _records

CHALLENGER = "challenger"
#: Reasons a line is not used, besides the rule's.
NO_REQUEST_ID, OTHER_ROLE = "no request_id", "unknown role"
_COLUMNS = ("request_id", "id", "model_version", "version", "probability", "prediction", "threshold", "latency_ms",
            "ts", "features", "role")
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


#: The JSON kind of a value from its text's first character, as a code point (DuckDB hands a JSON column over as
#: minified text, and parsing it again with ``json_type`` for every check costs more than the read; the character is
#: taken once per column, ``o_<col>``, and compared as a number): ``-`` or a digit is a number.
_KIND = ("CASE o_{0} WHEN 123 THEN 'OBJECT' WHEN 34 THEN 'VARCHAR' WHEN 91 THEN 'ARRAY' WHEN 116 THEN 'BOOLEAN' "
         "WHEN 102 THEN 'BOOLEAN' WHEN 110 THEN 'NULL' ELSE CASE WHEN o_{0} = 45 OR o_{0} BETWEEN 48 AND 57 "
         "THEN 'NUMBER' END END")
#: A JSON string's text: between its quotes, unless it holds an escape (then unescaped by DuckDB's JSON functions).
_TEXT = ("CASE WHEN o_{0} = 34 THEN CASE WHEN contains({0}::VARCHAR, '\\') THEN {0} ->> '$' "
         "ELSE ({0}::VARCHAR)[2:-2] END END")
#: The columns compare reads as numbers (their value is parsed once, in the inner projection).
_NUMBER_COLUMNS = ("ts", "probability", "prediction", "threshold", "latency_ms")
#: The columns compare reads as texts (taken once, in the inner projection).
_TEXT_COLUMNS = ("request_id", "model_version", "version")


def _check(field: _records.Field, col: str) -> str:
    """SQL: true when the JSON value ``col`` passes the rule's ``field`` (absent and null as it declares), on the
    inner projection's ``k_<col>`` (its kind) and ``v_<col>`` (a number's value)."""
    kind = {_records.NUMBER: "NUMBER", _records.TEXT: "VARCHAR", _records.OBJECT: "OBJECT"}[field.kind]
    limits = ["true"]
    if field.kind == _records.NUMBER:
        limits = [f"isfinite(v_{col})"]
        limits += [f"v_{col} >= {float(field.low)!r}"] if field.low is not None else []
        limits += [f"v_{col} <= {float(field.high)!r}"] if field.high is not None else []
    elif field.kind == _records.TEXT and field.max_length is not None:
        limits = [f"length(t_{col}) BETWEEN {field.min_length or 0} AND {field.max_length}"]
    return (f"CASE WHEN k_{col} IS NULL THEN {str(not field.required).lower()} "
            f"WHEN k_{col} = 'NULL' THEN {str(field.nullable).lower()} "
            f"WHEN k_{col} = '{kind}' THEN coalesce({' AND '.join(limits)}, false) ELSE false END")


def _reason_sql(rule: _records.Rule) -> str:
    """SQL of the reason a line is not used (NULL: used), the rule's checks of the fields compare reads first."""
    fields = {f.path: f for f in rule.fields}
    cases = [f"WHEN {' AND '.join(f'k_{c} IS NULL' for c in _COLUMNS if c != 'id')} "
             f"THEN '{_records.MALFORMED}'"]
    for path in (("features",), ("ts",), ("probability",), ("model_version",), ("version",)):
        f = fields[path]
        cases.append(f"WHEN NOT ({_check(f, path[0])}) THEN '{f.reason}'")
    cases.append(f"WHEN coalesce(k_model_version, '') <> 'VARCHAR' AND coalesce(k_version, '') <> 'VARCHAR' "
                 f"THEN '{_records.NO_MODEL}'")
    cases.append(f"WHEN NOT ({_check(fields[('request_id',)], 'request_id')}) THEN '{_records.BAD_KEY}'")
    cases.append(f"WHEN coalesce(k_request_id, 'NULL') = 'NULL' THEN '{NO_REQUEST_ID}'")
    cases.append(f"WHEN coalesce(k_role, 'NULL') <> 'NULL' AND role <> '\"{CHALLENGER}\"' THEN '{OTHER_ROLE}'")
    return "CASE " + " ".join(cases) + " END"


def _ids_sql(rule: _records.Rule, id_column: str | None) -> str:
    """SQL: the lines of ``$files`` grouped in one pass: per reason a line is not used, its count (``rid`` NULL);
    per request id, its usable lines of each role (``nc``, ``nk``) and the values of one of each.

    Each JSON value's first character (``o_``), kind (``k_``), number (``v_``) and text (``t_``) are taken once,
    in the inner projections; a line's values are NULL for the other role's columns, so every aggregate is a
    plain ``any_value`` or ``max`` (cheaper than one ``FILTER`` per aggregate)."""
    checked = [c for c in _COLUMNS if c != "id"]
    firsts = ", ".join(f"ord({c}::VARCHAR) AS o_{c}" for c in checked)
    kinds = ", ".join(f"{_KIND.format(c)} AS k_{c}" for c in checked)
    values = ", ".join(f"TRY_CAST({c}::VARCHAR AS DOUBLE) AS v_{c}" for c in _NUMBER_COLUMNS)
    texts = ", ".join(f"{_TEXT.format(c)} AS t_{c}" for c in _TEXT_COLUMNS)
    finite = "CASE WHEN k_{0} = 'NUMBER' AND isfinite(v_{0}) THEN v_{0} END"
    cid = ("CASE WHEN left(id::VARCHAR, 1) = '{' THEN json_extract_string(id, $path) END" if id_column
           else "NULL::VARCHAR")
    # a usable line's model_version and version are each a text or absent or null, one at least a text
    lines = f"""
        SELECT reason, CASE WHEN reason IS NULL THEN t_request_id END AS rid, {cid} AS cid,
               coalesce(t_model_version, t_version) AS model, coalesce(t_version, t_model_version) AS label,
               v_probability AS p, {finite.format('prediction')} AS d, {finite.format('threshold')} AS t,
               {finite.format('latency_ms')} AS lat, v_ts AS ts, coalesce(k_role, 'NULL') <> 'NULL' AS shadow
        FROM (SELECT {_reason_sql(rule)} AS reason, *
              FROM (SELECT *, {kinds}, {values}, {texts}
                    FROM (SELECT *, {firsts}
                          FROM read_json($files, format='newline_delimited', columns=$columns, ignore_errors=true,
                                         maximum_object_size={2 * _records.MAX_LINE_BYTES}))))"""
    one = lambda v, c, k: (f"any_value(CASE WHEN NOT shadow THEN {v} END) AS {c}, "  # noqa: E731 - one per role
                           f"any_value(CASE WHEN shadow THEN {v} END) AS {k}")
    return f"""CREATE TEMP TABLE ids AS
        SELECT reason, rid, count(*) AS lines, count(CASE WHEN NOT shadow THEN 1 END) AS nc,
               count(CASE WHEN shadow THEN 1 END) AS nk,
               max(CASE WHEN NOT shadow THEN ts END) AS ts, max(CASE WHEN shadow THEN ts END) AS kts,
               any_value(CASE WHEN NOT shadow THEN cid END) AS cid,
               {one('model', 'cm', 'km')}, {one('label', 'cl', 'kl')}, {one('p', 'cp', 'kp')},
               {one('d', 'cd', 'kd')}, {one('t', 'ct', 'kt')}, {one('lat', 'clat', 'klat')}
        FROM ({lines}) GROUP BY reason, rid"""


#: How the usable lines in the window were or were not paired.
_UNPAIRED = """SELECT count(*) FILTER (WHERE nc = 1 AND nk = 0 AND ts >= $since),
                      count(*) FILTER (WHERE nk = 1 AND nc = 0 AND kts >= $since),
                      count(*) FILTER (WHERE (nc > 1 OR nk > 1) AND greatest(ts, kts) >= $since)
               FROM ids"""
#: The pairs in the window.


def read(prediction_paths: Sequence[Path], feedback_paths: Sequence[Path], rule: _records.Rule, *,
         id_column: str | None = None, since_ts: float | None = None, last: int | None = None) -> Pairs:
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
    """
    pred = [str(p) for p in prediction_paths if Path(p).exists()]
    fb = [str(p) for p in feedback_paths if Path(p).exists()]
    read: dict[str, Any] = {"prediction_files": pred, "feedback_files": fb, "lines": 0, "skipped": {}}
    empty = np.empty((0, 2))
    nothing = Pairs(None, None, None, None, empty, empty, empty, empty, np.empty(0), np.empty(0), read)
    if not pred:
        return nothing
    con = _duck.connect(ordered=False)
    try:
        args: dict[str, Any] = {"files": pred, "columns": {c: "JSON" for c in _COLUMNS}}
        if id_column:
            args["path"] = '$."' + id_column.replace('"', '\\"') + '"'
        con.execute(_ids_sql(rule, id_column), args)
        for reason, count in con.execute("SELECT reason, sum(lines) FROM ids GROUP BY reason").fetchall():
            read["lines"] += int(count)
            if reason is not None:
                read["skipped"][reason] = int(count)
        con.execute("DELETE FROM ids WHERE reason IS NOT NULL")
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
    versions = con.execute("SELECT cm, km, any_value(cl), any_value(kl), count(*) FROM ids WHERE nc = 1 AND nk = 1 "
                           "AND ts >= $since GROUP BY cm, km ORDER BY max(ts) DESC", since).fetchall()
    read["other_version_pairs"] = {f"{v[2]} / {v[3]}": int(v[4]) for v in versions[1:]}
    if not versions:
        return None
    cm, km, cl, kl, _ = versions[0]
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
    out = con.execute(f"""SELECT w.cp, w.kp, w.cd, w.kd, w.ct, w.kt, w.clat, w.klat, w.ts, {y} AS y FROM (SELECT * FROM ids WHERE nc = 1 AND nk = 1 AND ts >= $since
                          AND cm = $cm AND km = $km {window}) w {join}
                          ORDER BY w.ts, w.rid""", {"cm": cm, "km": km, **since}).fetchnumpy()
    # ordered: the bootstrap draws by position, so the same log must give the same rows in the same order

    def col(name: str) -> np.ndarray:
        v = out[name]
        return (v.filled(np.nan) if isinstance(v, np.ma.MaskedArray) else np.asarray(v)).astype(np.float64)

    both = lambda a, b: np.column_stack([col(a), col(b)])  # noqa: E731 - champion, challenger columns
    return Pairs(cm, km, cl, kl, both("cp", "kp"), both("cd", "kd"), both("ct", "kt"), both("clat", "klat"),
                 col("ts"), col("y"), read)
