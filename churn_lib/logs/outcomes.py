"""Outcomes: what became of the customers the model scored, appended to ``logs/feedback.log``.

An outcome names the prediction it belongs to by the prediction's
``request_id`` or by the contract's id column (the prediction log keeps the id
under ``id``), gives the outcome in the contract's target labels (or 1/0,
true/false), and optionally when it was observed. One JSON line per outcome::

    {"request_id": "req-001", "outcome": 1, "ts": <observed, Unix s>, "received": <Unix s>, "source": "api"}
    {"id": "7590-VHVEG", "outcome": 0, "ts": ..., "received": ..., "source": "file:october.csv"}

Lines are appended the way predictions are (:func:`churn_lib.logs.predictions.write_lines`:
one ``write`` per batch on an ``O_APPEND`` descriptor, so workers never tear or
interleave lines; a writer killed in the middle of a large write can leave
one unfinished line, which readers skip and count and the next writer ends
before appending); rotated files
(``feedback.log.1`` ...) are read with the current one. An outcome given twice
for the same prediction: the one received last wins when outcomes are joined
(:mod:`churn_lib.logs.query`). Rows that cannot be accepted (no key, an outcome
that is not a label, a bad time) are counted by reason, never written.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # pandas is imported where outcomes are read: the log's file names (compare) need none
    import pandas as pd

from .. import contract as _contract
from ..contract import records as _records
from . import predictions as predlog
from .._io import rotated
from ..exceptions import DataError
from ..home import Home

#: Column names taken as the outcome, in order of preference (else the contract's target column).
OUTCOME_COLUMNS = ("outcome",)
#: Column names taken as the time the outcome was observed.
TIME_COLUMNS = ("time", "ts", "outcome_time", "observed_at")
REQUEST_ID = "request_id"
#: Rows read per block of a CSV file (bounded memory whatever its size).
BLOCK_ROWS = 100_000
#: Example rejects kept for the report.
EXAMPLES = 10


def log_files(*, home: Home | str | None = None) -> list[Path]:
    """The outcome files of a home, oldest first (rotated ``feedback.log.N``, then the current ``feedback.log``)."""
    home = Home.resolve(home)
    if not home.logs_dir.is_dir():
        return []
    return rotated(home.feedback_log) + ([home.feedback_log] if home.feedback_log.exists() else [])


@dataclass
class OutcomesResult:
    """What one call accepted and rejected (and why), and how the log's outcomes match predictions."""

    source: str
    rows: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    repeated: int = 0  # keys given more than once in this call (the last one wins)
    ignored_columns: list[str] = field(default_factory=list)
    key: str = REQUEST_ID
    matched: int | None = None  # of this call's keys, those naming a logged prediction
    log: str = ""
    last_received: float = 0.0

    def reject(self, reason: str, count: int, examples: Iterable[dict[str, Any]] = ()) -> None:
        if count:
            self.rejected[reason] = self.rejected.get(reason, 0) + count
            for e in examples:
                if len(self.examples) < EXAMPLES:
                    self.examples.append(e)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "rows": self.rows, "accepted": self.accepted,
                "rejected_total": self.rejected_total, "rejected": dict(sorted(self.rejected.items())),
                "examples": self.examples, "repeated": self.repeated, "ignored_columns": self.ignored_columns,
                "key": self.key, "matched": self.matched,
                "unmatched": None if self.matched is None else self.accepted - self.repeated - self.matched,
                "log": self.log}

    def summary(self) -> str:
        text = f"accepted {self.accepted:,} of {self.rows:,} outcome(s) (key: {self.key}) -> {self.log}"
        if self.rejected:
            text += "; rejected " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.rejected.items()))
        if self.repeated:
            text += f"; {self.repeated:,} repeated a key given earlier in the same input (the last one counts)"
        if self.matched is not None:
            unmatched = self.accepted - self.repeated - self.matched
            text += f"; {self.matched:,} match a logged prediction" + (
                f", {unmatched:,} do not (yet)" if unmatched else "")
        return text


def _key_column(contract: _contract.Contract, columns: Sequence[str]) -> str | None:
    if REQUEST_ID in columns:
        return REQUEST_ID
    if len(contract.id) == 1 and contract.id[0] in columns:
        return contract.id[0]
    return None


def _outcome_column(contract: _contract.Contract, columns: Sequence[str]) -> str | None:
    for c in (*OUTCOME_COLUMNS, contract.target.column):
        if c in columns:
            return c
    return None


def _time_column(columns: Sequence[str]) -> str | None:
    return next((c for c in TIME_COLUMNS if c in columns), None)


def _times(values: pd.Series, now: float) -> tuple[np.ndarray, np.ndarray]:
    """Unix seconds per value (empty: ``now``), and the mask of values that are not a time."""
    import pandas as pd

    text = values.astype(str).str.strip()
    empty = text.eq("").to_numpy()
    out = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan).copy()
    words = np.isnan(out) & ~empty
    if words.any():
        parsed = pd.to_datetime(text[words], errors="coerce", utc=True, format="ISO8601")
        seconds = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan)
        out[np.flatnonzero(words)] = seconds
    out[empty] = now
    bad = ~np.isfinite(out) | (out < 0)
    return out, bad


def _outcomes(values: pd.Series, target: _contract.Target) -> np.ndarray:
    """0/1 per value, -1 where it is not one of the target's labels (each distinct text judged once)."""
    import pandas as pd

    codes, uniques = pd.factorize(values.astype(str).str.strip(), use_na_sentinel=True)
    judged = np.array([-1 if (o := target.outcome(u)) is None else o for u in uniques] + [-1], dtype=np.int8)
    return judged[codes]


def _block(frame: pd.DataFrame, key: str, outcome: str, when: str | None, contract: _contract.Contract,
           source: str, first_line: int, result: OutcomesResult, seen: set[str], now: float) -> bytes:
    """Validate one block of outcome rows; return the lines to append (and count the rest in ``result``)."""
    n = len(frame)
    keys = frame[key].astype(str).str.strip()
    no_key = (keys.eq("") | frame[key].isna()).to_numpy()
    long_key = (keys.str.len() > _records.MAX_KEY_LENGTH).to_numpy() & ~no_key
    codes = _outcomes(frame[outcome], contract.target)
    bad_outcome = (codes < 0) & ~no_key & ~long_key
    if when is not None:
        ts, bad_time = _times(frame[when], now)
        bad_time &= ~no_key & ~long_key & ~bad_outcome
    else:
        ts, bad_time = np.full(n, now), np.zeros(n, dtype=bool)
    lines = np.arange(first_line, first_line + n)
    labels = contract.target.label_text()
    for reason, mask, what in (("no key", no_key, f"an empty {key}"),
                               ("key too long", long_key, f"a {key} over {_records.MAX_KEY_LENGTH} characters"),
                               ("not an outcome", bad_outcome, f"the outcome is not {labels}, 1/0 or true/false"),
                               ("bad time", bad_time, f"{when} is not Unix seconds or an ISO time")):
        idx = np.flatnonzero(mask)
        result.reject(reason, len(idx), ({"line": int(lines[i]), "reason": what,
                                          "value": str(frame[outcome].iloc[i] if reason == "not an outcome"
                                                       else frame[when].iloc[i] if reason == "bad time"
                                                       else "")[:80]} for i in idx[:EXAMPLES]))
    ok = ~(no_key | long_key | bad_outcome | bad_time)
    field_name = REQUEST_ID if key == REQUEST_ID else "id"
    out = []
    # received: when this block is written, increasing line by line (of two outcomes for a key the later counts,
    # also against another writer's during a long file)
    start = round(max(time.time(), result.last_received + 1e-6), 6)  # on the microsecond grid: steps stay distinct
    for j, (k, o, t) in enumerate(zip(keys[ok].tolist(), codes[ok].tolist(), ts[ok].tolist())):
        if k in seen:
            result.repeated += 1
        else:
            seen.add(k)
        out.append(json.dumps({field_name: k, "outcome": o, "ts": round(t, 3),
                               "received": round(start + j * 1e-6, 6), "source": source},
                              separators=(",", ":")))
    if out:
        result.last_received = start + (len(out) - 1) * 1e-6
    result.accepted += len(out)
    return ("\n".join(out) + "\n").encode("utf-8") if out else b""


def _end_torn_line(path: Path) -> None:
    """End the log's last line if a killed writer left it unfinished, so the next append starts a line of its own.

    A large ``write`` can be cut short by SIGKILL; the fragment stays, as one
    line that readers skip and count, and nothing appended later is glued to it.
    """
    try:
        with open(path, "rb") as fh:
            if fh.seek(0, os.SEEK_END) == 0:
                return
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) == b"\n":
                return
    except FileNotFoundError:
        return
    predlog.write_lines(b"\n", path=path)


def _contract_of(home: Home, contract: _contract.Contract | None) -> _contract.Contract:
    if contract is not None:
        return contract
    from .. import registry

    entry = registry.current_entry(home=home)
    if entry is not None:
        return registry.load_contract(entry, home=home)
    return _contract.load(home)


def ingest_file(path: str | Path, *, home: Home | str | None = None, contract: _contract.Contract | None = None,
                match: bool = True) -> OutcomesResult:
    """Append the outcomes of a CSV file (any size: read in blocks) to the home's ``logs/feedback.log``.

    Columns: ``request_id`` or the contract's id column; ``outcome`` or the
    contract's target column; optionally ``time`` (``ts``, ``outcome_time``,
    ``observed_at``: Unix seconds or ISO time; default: now). Other columns
    are ignored and named.

    Raises
    ------
    DataError
        The file cannot be read, or lacks a key or an outcome column.
    """
    home = Home.resolve(home)
    contract = _contract_of(home, contract)
    path = Path(path)
    header = _header(path)
    key, outcome, when = _columns(path, header, contract)
    result = OutcomesResult(source=f"file:{path.name}", key=key, log=str(home.feedback_log),
                            ignored_columns=[c for c in header if c not in (key, outcome, when)])
    home.logs_dir.mkdir(parents=True, exist_ok=True)
    _end_torn_line(home.feedback_log)
    seen: set[str] = set()
    now = time.time()
    line = 2
    import pandas as pd

    try:
        blocks = pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=BLOCK_ROWS, skipinitialspace=True,
                             encoding="utf-8", names=header, header=0, usecols=[key, outcome] + ([when] if when else []))
        for frame in blocks:
            result.rows += len(frame)
            data = _block(frame, key, outcome, when, contract, result.source, line, result, seen, now)
            predlog.write_lines(data, path=home.feedback_log)  # whole lines only, even if killed
            line += len(frame)
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{path} stops being readable CSV near line {line}: {exc}; the {result.accepted:,} "
                        f"outcome(s) before it were kept", path=str(path)) from None
    if match and result.accepted:
        _match(result, seen, home)
    return result


def _header(path: Path) -> list[str]:
    """The column names of an outcome file (stripped), refused when it cannot be read or names none."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header = [c.strip() for c in next(csv.reader(fh), [])]
    except FileNotFoundError:
        raise DataError(f"outcome file {path} does not exist", path=str(path)) from None
    except IsADirectoryError:
        raise DataError(f"outcome file {path} is a folder, not a CSV file", path=str(path)) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {path} as CSV: {exc}", path=str(path)) from None
    if not any(header):
        raise DataError(f"cannot read {path} as CSV: it is empty or has no header line naming the columns",
                        path=str(path))
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise DataError(f"{path} names the column(s) {', '.join(dupes)} more than once", path=str(path))
    return header


def _columns(path: Path, header: list[str], contract: _contract.Contract) -> tuple[str, str, str | None]:
    """The key, outcome and time columns of an outcome file; refused without a key or an outcome."""
    key = _key_column(contract, header)
    outcome = _outcome_column(contract, header)
    keys_wanted = " or ".join([REQUEST_ID, *contract.id[:1]])
    if key is None or outcome is None:
        missing = [what for what, found in ((f"a key column ({keys_wanted})", key),
                                            (f"an outcome column (outcome or {contract.target.column})", outcome))
                   if found is None]
        raise DataError(f"{path} lacks {' and '.join(missing)}; its header has {', '.join(header) or 'nothing'}",
                        path=str(path))
    return key, outcome, _time_column(header)


def _match(result: OutcomesResult, seen: set[str], home: Home) -> None:
    """Count in ``result`` how many of the keys given name a logged prediction."""
    from . import query as logquery

    result.matched = logquery.count_matching(predlog.log_files(home=home), seen,
                                             id_column=None if result.key == REQUEST_ID else result.key)


def ingest_records(records: Sequence[Mapping[str, Any]], *, home: Home | str | None = None,
                   contract: _contract.Contract | None = None, source: str = "api",
                   match: bool = False) -> OutcomesResult:
    """Append outcomes given as mappings (``POST /feedback``): the same columns as a file, one write.

    Every record is judged: those that cannot be accepted are counted and
    named by position (``line`` is the index in ``records``), never written.
    """
    home = Home.resolve(home)
    contract = _contract_of(home, contract)
    columns: list[str] = []
    for r in records:
        for k in r:
            if k not in columns:
                columns.append(k)
    key = _key_column(contract, columns) or REQUEST_ID
    outcome = _outcome_column(contract, columns) or OUTCOME_COLUMNS[0]
    when = _time_column(columns)
    result = OutcomesResult(source=source, key=key, log=str(home.feedback_log),
                            ignored_columns=[c for c in columns if c not in (key, outcome, when)])
    result.rows = len(records)
    if not records:
        return result

    def text(v: Any) -> str:
        if v is None or isinstance(v, (dict, list)):
            return ""
        if isinstance(v, float) and not math.isfinite(v):
            return ""
        return str(v).lower() if isinstance(v, bool) else str(v)

    import pandas as pd

    frame = pd.DataFrame({c: [text(r.get(c)) for r in records] for c in {key, outcome, *( [when] if when else [])}},
                         dtype=str)
    home.logs_dir.mkdir(parents=True, exist_ok=True)
    _end_torn_line(home.feedback_log)
    seen: set[str] = set()
    data = _block(frame, key, outcome, when, contract, source, 0, result, seen, time.time())
    predlog.write_lines(data, path=home.feedback_log)
    if match and result.accepted:
        _match(result, seen, home)
    return result
