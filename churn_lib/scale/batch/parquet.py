"""Parquet on either side of ``churn score``, through DuckDB (no pyarrow).

* Parquet in (:func:`score_parquet`): the model's features are streamed from
  the file in blocks of rows (DuckDB reads row group by row group), validated
  and scored as a CSV block is; each block's verdicts and score columns go to a
  small Parquet part file. Then one streaming DuckDB query puts the input's
  columns (their types unchanged) beside the scores, row by row (a
  ``POSITIONAL JOIN``), and writes the valid rows to the output (Parquet, or CSV
  in the lab's dialect) and the rejected ones to the rejects file (Parquet:
  ``row`` (1 is the first row), ``reason``, then the input's columns).
* CSV in, Parquet out (:func:`csv_to_parquet`): the CSV is scored by the fast
  path into a temporary CSV, which DuckDB converts: the contract's integer,
  float and boolean features typed (BIGINT, DOUBLE, BOOLEAN; a missing token is
  NULL), every other input column text as written, the score columns typed.

Scores are rounded to 6 decimals on every path, so a Parquet output holds the
numbers the CSV output spells. Every output is written to a temporary file and
renamed at the end (:func:`churn_lib._io.atomic_write`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ... import _duck
from ... import contract as _contract
from ... import scoring
from ..._io import atomic_write
from ...data import parquet as _parquet
from ...exceptions import DataError
from .layout import OUTPUT_COLUMNS, Layout, explain_columns
from .results import BatchProgress
from .scorer import BlockResult, validate

#: Columns of a Parquet rejects file placed before the input's own columns.
PARQUET_REJECT_COLUMNS: tuple[str, ...] = ("row", "reason")
#: Rows per DuckDB vector (what ``fetch_df_chunk`` counts in).
_VECTOR = 2048
#: Bytes a row of features takes in a block, for turning ``chunk_bytes`` into rows.
_ROW_BYTES = 32


def rows_per_block(chunk_bytes: int) -> int:
    """Rows of a Parquet block for a ``chunk_bytes`` budget (2 MiB: 65,536 rows), whole DuckDB vectors."""
    return max(1, chunk_bytes // (_ROW_BYTES * _VECTOR)) * _VECTOR


def _round6(values: np.ndarray) -> np.ndarray:
    """Values at 6 decimals, as the CSV output spells them (``+ 0.0`` turns -0.0 into 0.0)."""
    return np.rint(np.asarray(values, dtype=np.float64) * 1e6) / 1e6 + 0.0


def _check_columns(src: Path, cols: tuple[_parquet.Column, ...], contract: _contract.Contract,
                   added: tuple[str, ...]) -> None:
    names = [c.name for c in cols]
    missing = [f for f in contract.feature_names if f not in names]
    if missing:
        raise DataError(f"{src} lacks the feature column(s) {', '.join(missing)} of the model's contract "
                        f"{contract.name!r}; its columns are {', '.join(names)}", path=str(src))
    taken = [c for c in added + PARQUET_REJECT_COLUMNS if c in names]
    if taken:
        raise DataError(f"{src} already has column(s) {', '.join(taken)}, which the outputs add; rename them in "
                        "the input", path=str(src))


def _feature_sql(col: _parquet.Column, feature: _contract.Feature) -> str:
    """A feature as the validator takes it: numbers and booleans of numeric types as DOUBLE, the rest as text."""
    name = _duck.ident(col.name)
    if feature.is_numeric and col.kind in ("integer", "float", "boolean"):
        return f"CAST({name} AS DOUBLE) AS {name}"
    return f"CAST({name} AS VARCHAR) AS {name}"


def _side_frame(block: pd.DataFrame, first_row: int, scorer: scoring.Scorer, n_explain: int
                ) -> tuple[pd.DataFrame, BlockResult]:
    """Validate and score one block of features: per row its verdict, number, reason and score columns."""
    features, ok, reasons, counts = validate(block, scorer.contract)
    n = len(block)
    side: dict[str, Any] = {"ok": ok, "row": np.arange(first_row, first_row + n, dtype=np.int64),
                            "reason": np.where(ok, None, reasons).astype(object),
                            "probability": np.full(n, np.nan), "prediction": np.zeros(n, dtype=np.int32)}
    for c in explain_columns(n_explain) if n_explain else ():
        side[c] = np.full(n, None, dtype=object) if c.startswith("reason_") else np.full(n, np.nan)
    if ok.any() and n_explain:
        p, base, top, contrib, other = scorer.explain(features, n_explain)
        side["probability"][ok], side["prediction"][ok] = p, p >= scorer.threshold
        names = np.array(scorer.features, dtype=object)
        side["explain_base"][ok] = _round6(base)
        for k in range(n_explain):
            side[f"reason_{k + 1}"][ok] = names[top[:, k]]
            side[f"contribution_{k + 1}"][ok] = _round6(contrib[:, k])
        side["explain_other"][ok] = _round6(other)
    elif ok.any():
        side["probability"][ok], side["prediction"][ok] = scorer.predict(features)
    side["probability"] = _round6(np.clip(side["probability"], 0.0, 1.0))
    scored = int(ok.sum())
    return pd.DataFrame(side), BlockResult(lines=n, scored=scored, rejected=n - scored,
                                           counts=Counter({k: v for k, v in counts.items() if v}))


def _side_sql(n_explain: int) -> str:
    """The part files' columns with their types fixed (a block without a valid row has no strings to infer from)."""
    cols = ["ok::BOOLEAN AS ok", "row::BIGINT AS row", "reason::VARCHAR AS reason",
            "probability::DOUBLE AS probability", "prediction::INTEGER AS prediction"]
    for c in explain_columns(n_explain) if n_explain else ():
        cols.append(f"{c}::{'VARCHAR' if c.startswith('reason_') else 'DOUBLE'} AS {c}")
    return ", ".join(cols)


def score_parquet(src: Path, dst: Path, rej: Path, scorer: scoring.Scorer, *, explain: int, chunk_bytes: int,
                  on_progress: Callable[[BatchProgress], None] | None = None) -> BlockResult:
    """Score the Parquet file ``src``; valid rows to ``dst`` (Parquet when named so, else CSV), rejected ones
    to the Parquet file ``rej`` (see the module docstring). Returns the totals.

    Raises
    ------
    DataError
        Not a readable Parquet file, a nested or binary column, a feature missing, an added column taken
        (each naming the file, and the column where there is one).
    """
    import duckdb

    added = OUTPUT_COLUMNS + (explain_columns(explain) if explain else ())
    read = _duck.connect(_parquet.MEMORY_LIMIT, ordered=True)
    write = _duck.connect(_parquet.MEMORY_LIMIT, ordered=True)  # a second connection: `read` streams meanwhile
    parts: Path | None = None
    try:
        cols = _parquet.columns(read, src)
        _check_columns(src, cols, scorer.contract, added)
        parts = Path(tempfile.mkdtemp(prefix=f".{dst.name}.scores-", dir=dst.parent))
        by_name = {c.name: c for c in cols}
        total_rows = int(read.execute("SELECT count(*) FROM read_parquet($p)", {"p": str(src)}).fetchone()[0])
        select = ", ".join(_feature_sql(by_name[f.name], f) for f in scorer.contract.features)
        try:
            total = _score_blocks(read, write, src, select, parts, scorer, explain=explain,
                                  rows=rows_per_block(chunk_bytes), total_rows=total_rows, on_progress=on_progress)
            _write_outputs(write, src, parts, dst, rej, scorer.version, added)
        except duckdb.Error as exc:
            raise _parquet.locate_damage(read, src, cols, exc) from None
        return total
    finally:
        read.close()
        write.close()
        if parts is not None:
            shutil.rmtree(parts, ignore_errors=True)


def _score_blocks(read: Any, write: Any, src: Path, select: str, parts: Path, scorer: scoring.Scorer, *,
                  explain: int, rows: int, total_rows: int,
                  on_progress: Callable[[BatchProgress], None] | None) -> BlockResult:
    """The first pass: blocks of features streamed from ``src``, each scored into a part file of ``parts``."""
    total = BlockResult()
    read.execute(f"SELECT {select} FROM read_parquet($p)", {"p": str(src)})
    k = 0
    while True:
        block = read.fetch_df_chunk(rows // _VECTOR)
        if not len(block) and k:
            break
        side, done = _side_frame(block, total.lines + 1, scorer, explain)
        write.register("side", side)
        write.execute(f"COPY (SELECT {_side_sql(explain)} FROM side) TO "
                      f"'{_parquet.sql_path(parts / f'part-{k:06d}.parquet')}' (FORMAT parquet)")
        write.unregister("side")
        total.add(done)
        k += 1
        if on_progress is not None:
            on_progress(BatchProgress(total.lines, total_rows, total.scored, total.rejected))
        if not len(block):
            break
    return total


def _write_outputs(con: Any, src: Path, parts: Path, dst: Path, rej: Path, version: str,
                   added: tuple[str, ...]) -> None:
    """The second pass: the input's rows beside their scores (in order); valid ones to ``dst``, the rest to
    ``rej``, each through a temporary file renamed at the end."""
    as_csv = not _contract.is_parquet_name(str(dst))
    scores = []
    for c in added:
        if c == "version":
            scores.append(f"$version AS {c}")
        elif c == "prediction" or c.startswith("reason_"):
            scores.append(f"s.{_duck.ident(c)}")  # typed in the part files
        else:  # numbers at 6 decimals: spelled as the CSV path spells them
            scores.append(f"printf('%.6f', s.{_duck.ident(c)}) AS {_duck.ident(c)}" if as_csv
                          else f"s.{_duck.ident(c)}")
    joined = f"read_parquet($src) i POSITIONAL JOIN read_parquet($parts) s"
    args = {"src": str(src), "parts": str(parts / "part-*.parquet")}
    fmt = "(FORMAT csv, HEADER true, DELIMITER ',')" if as_csv else "(FORMAT parquet)"

    def output(tmp: Path) -> None:
        con.execute(f"COPY (SELECT i.*, {', '.join(scores)} FROM {joined} WHERE s.ok) TO "
                    f"'{_parquet.sql_path(tmp)}' {fmt}", {**args, "version": version})

    def rejects(tmp: Path) -> None:
        con.execute(f"COPY (SELECT s.row, s.reason, i.* FROM {joined} WHERE NOT s.ok) TO "
                    f"'{_parquet.sql_path(tmp)}' (FORMAT parquet)", args)

    atomic_write(rej, rejects)  # rejects renamed first, then the output (as the CSV path does)
    atomic_write(dst, output)


def csv_to_parquet(scored_csv: Path, dst: Path, layout: Layout, contract: _contract.Contract) -> None:
    """Convert the fast path's scored CSV (in the input's dialect) to the Parquet file ``dst``, typed as the
    module docstring says; written to a temporary file renamed at the end."""
    columns = (*layout.columns, *layout.added)
    src = ("read_csv($path, header=true, all_varchar=true, delim=$sep, quote='\"', escape='\"', strict_mode=true, "
           "auto_detect=false, columns=$columns)")
    features = {f.name: f for f in contract.features}
    select = ", ".join(_typed(c, features.get(c), layout.dialect) for c in columns)
    con = _duck.connect(_parquet.MEMORY_LIMIT, ordered=True)
    try:
        atomic_write(dst, lambda tmp: con.execute(
            f"COPY (SELECT {select} FROM {src}) TO '{_parquet.sql_path(tmp)}' (FORMAT parquet)",
            {"path": str(scored_csv), "sep": layout.dialect.sep, "columns": {c: "VARCHAR" for c in columns}}))
    finally:
        con.close()


def _typed(column: str, feature: _contract.Feature | None, dialect: _contract.CsvDialect) -> str:
    """The SQL that types one column of the scored CSV for Parquet (see the module docstring)."""
    name = _duck.ident(column)
    text = f"trim({name})"
    number = f"replace({text}, ',', '.')" if dialect.decimal == "," else text
    if column in ("probability", "explain_base", "explain_other") or column.startswith("contribution_"):
        return f"CAST({number} AS DOUBLE) AS {name}"
    if column == "prediction":
        return f"CAST({text} AS INTEGER) AS {name}"
    if feature is None or not feature.is_numeric:
        return name
    tokens = ", ".join(_literal(t.strip()) for t in feature.missing if t.strip()) or "NULL"
    if feature.type == _contract.BOOLEAN:
        trues = ", ".join(_literal(t.strip().casefold()) for t in (*feature.true_values, "true"))
        falses = ", ".join(_literal(t.strip().casefold()) for t in (*feature.false_values, "false"))
        value = (f"CASE WHEN lower({text}) IN ({trues}) THEN true WHEN lower({text}) IN ({falses}) THEN false "
                 f"ELSE TRY_CAST({number} AS DOUBLE) = 1 END")
    elif feature.type == _contract.INTEGER:
        value = f"CAST(CAST({number} AS DOUBLE) AS BIGINT)"
    else:
        value = f"CAST({number} AS DOUBLE)"
    return f"CASE WHEN {name} IS NULL OR {text} IN ({tokens}) THEN NULL ELSE {value} END AS {name}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
