"""Batch scoring: score a CSV or Parquet file of any size in chunks, with bounded memory.

:func:`score_file` reads the input in blocks of whole lines (``chunk_bytes``
each, default 2 MiB, about 65,000 rows), validates every row against the
model's dataset contract (:func:`churn_lib.contract.check_frame`, the rules
the quality stage and the API apply: valid ranges, whole numbers, categories
after normalisation, each column's own missing tokens, so the lab's ``NA``
is North America), scores the valid rows with the registry's model through :mod:`churn_lib.scoring` (the
compiled numpy scorer when it verifies) and appends them to the output. Two
blocks are in flight: the model scores one on a thread of its own while the next
is parsed and checked. Memory stays near 20 times one block (25 with reasons) on
top of the interpreter and the model, whatever the file's size (about 260 MiB in
all with the defaults on the tests' 19-feature table, 320 MiB with reasons).

The output keeps every valid input row byte for byte, in input order, and adds
three columns: ``probability`` (6 decimals, like the API), ``prediction`` (at
the threshold stored with the model) and ``version`` (the model's label).
With ``explain=N`` it adds the API's explanation as columns (:func:`explain_columns`):
``explain_base``, then ``reason_k`` (a feature's name) and ``contribution_k``
(its contribution to the log-odds, 6 decimals) for the top N features by
|contribution|, then ``explain_other`` (the rest's sum); the reasons' values are
the row's own columns.
Rows that cannot be scored are never dropped silently: they go, unchanged, to
a rejects file (default ``<output>.rejects.csv``) after two columns, ``line``
(the line number in the input, the header being line 1) and ``reason``. Output
rows plus rejected rows are exactly the input rows.

With a Dask scheduler (:mod:`churn_lib.scale.cluster`), the input is cut into
partitions at line boundaries (``partition_bytes``, default 32 MiB), each
worker scores its partitions into part files beside the output, and the
parts are concatenated in order (:mod:`.parts`). The model is loaded once, through the
registry (sha256-checked), by the caller and shipped to the workers; workers
need the input and output folders (a shared filesystem on a real cluster),
not the registry.

Formats: the input and the output are each CSV or Parquet (a ``.parquet``
name, or Parquet's magic bytes for the input). CSV in, CSV out is the fast
path above, byte for byte. A CSV input is read in the model's contract's
dialect (``source.csv``: separator and decimal mark; ``sep``/``decimal``
override it), and the output and the rejects keep that dialect (the score
columns read ``;0,123456;1;v3``); a header separated otherwise is refused,
showing it. Parquet in, or out, goes through DuckDB in bounded memory
(:mod:`.parquet`): the output keeps the input's columns, in order (and their
types, from Parquet), plus the score columns. The rejects file is in the
input's format (a CSV line is kept as read; a Parquet row keeps its types),
with ``line`` (CSV, the header being line 1) or ``row`` (Parquet, 1 for the
first row) and ``reason``. A Parquet input is scored in this process (no Dask).

Limits: one record per line (no line breaks inside quoted fields), UTF-8 (a
byte-order mark is tolerated).

This face holds the entry point, :func:`score_file`; the work is done by its
modules: :mod:`.layout` (the header and the added columns), :mod:`.reader`
(blocks of whole lines), :mod:`.scorer` (validate and score a block),
:mod:`.formatter` (the score columns as bytes), :mod:`.parts` (Dask), :mod:`.parquet`
(Parquet in or out) and :mod:`.results`. Both outputs are written through :func:`churn_lib._io.atomic_file`:
a reader never sees half a file, and they get the mode of any new file (the umask's).

Examples
--------
>>> from churn_lib.scale import batch                                  # doctest: +SKIP
>>> result = batch.score_file("customers.csv", "scores.csv", model="v3")  # doctest: +SKIP
>>> result.summary()                                                  # doctest: +SKIP
'scored 9,998,713 of 10,000,000 rows with v3 ...'
"""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path
from typing import BinaryIO, Callable

from ... import contract as _contract
from ... import scoring
from ..._io import atomic_file
from ...data import parquet as _parquet
from ...exceptions import ContractError, InvalidParameter
from ...home import Home
from . import parquet, parts
from .layout import OUTPUT_COLUMNS, REJECT_COLUMNS, Layout, explain_columns, read_layout
from .reader import DEFAULT_CHUNK_BYTES, DEFAULT_PARTITION_BYTES, MIN_CHUNK_BYTES
from .results import BatchProgress, BatchResult
from .scorer import BlockResult, score_range, validate

__all__ = ["DEFAULT_CHUNK_BYTES", "DEFAULT_PARTITION_BYTES", "OUTPUT_COLUMNS", "REJECT_COLUMNS", "BatchProgress",
           "BatchResult", "default_rejects", "explain_columns", "score_file", "validate"]

log = logging.getLogger(__name__)


def default_rejects(output: str | os.PathLike, *, parquet: bool | None = None) -> Path:
    """Where rejected rows go by default: ``scores.csv`` -> ``scores.rejects.csv``; with ``parquet`` (the
    input's format: True Parquet, False CSV) the extension is the input's.

    Examples
    --------
    >>> default_rejects("out/scores.csv").as_posix()
    'out/scores.rejects.csv'
    >>> default_rejects("out/scores.parquet", parquet=False).as_posix()
    'out/scores.rejects.csv'
    """
    path = Path(output)
    suffix = path.suffix or ".csv"
    if parquet is not None and _contract.is_parquet_name(suffix) != parquet:
        suffix = ".parquet" if parquet else ".csv"
    return path.with_name(f"{path.name[: len(path.name) - len(path.suffix)]}.rejects{suffix}")


def _check_paths(src: Path, dst: Path, rej: Path) -> None:
    resolved = {name: p.expanduser().resolve() for name, p in (("input", src), ("output", dst), ("rejects", rej))}
    if len(set(resolved.values())) < 3:
        raise InvalidParameter(f"input, output and rejects must be three different files "
                               f"(got {src}, {dst}, {rej})", name="output")
    for name in ("output", "rejects"):
        if resolved[name].is_dir():
            raise InvalidParameter(f"{name} {resolved[name]} is a folder; give a file name", name=name)


def score_file(input: str | os.PathLike, output: str | os.PathLike, *, home: Home | str | None = None,
               model: str | None = None, rejects: str | os.PathLike | None = None,
               chunk_bytes: int = DEFAULT_CHUNK_BYTES, scheduler: str | None = None, n_workers: int | None = None,
               partition_bytes: int = DEFAULT_PARTITION_BYTES, explain: int | None = None,
               on_progress: Callable[[BatchProgress], None] | None = None, sep: str | None = None,
               decimal: str | None = None) -> BatchResult:
    """Score every row of a CSV or Parquet file with a registered model; write scores and rejects.

    Parameters
    ----------
    input : path
        A CSV or Parquet file naming at least the model's features (any other
        columns, e.g. a customer id or the target, are carried through).
    output : path
        Written atomically, Parquet when named ``.parquet``, else CSV: the input's
        columns and valid rows (a CSV input's lines unchanged), in order, plus
        ``probability, prediction, version``.
    home : Home or path, optional
        The project home whose registry holds the model.
    model : str, optional
        Version label or model file; default the current model.
    rejects : path, optional
        Rejected rows with ``line`` and ``reason``, always written (header only when nothing was
        rejected), in the input's format; default :func:`default_rejects`.
    chunk_bytes : int, default=2 MiB
        Bytes of input per block; peak memory grows by about 20 times this.
    scheduler : str, optional
        None scores in this process; ``"local"`` starts a local Dask cluster;
        an address (``tcp://HOST:8786``) uses that cluster, whose workers must
        see ``input`` and the output folder at the same paths.
    n_workers : int, optional
        Workers of a local cluster (default one per core).
    partition_bytes : int, default=32 MiB
        Bytes of input per Dask task.
    explain : int, optional
        Add each row's top ``explain`` reasons as columns (:func:`explain_columns`).
    on_progress : callable, optional
        Called with a :class:`BatchProgress` after each block (or partition on Dask).
    sep, decimal : str, optional
        A CSV input's separator and decimal mark (default: the model's contract's ``source.csv``).

    Returns
    -------
    BatchResult

    Raises
    ------
    DataError
        The input is missing, has no header or lacks a feature column, breaks lines inside quoted fields, is
        separated otherwise than the dialect says (the header is shown), or is a damaged Parquet file or has
        a nested or binary column (the file and column named).
    InvalidParameter
        Bad sizes, clashing paths, rejects named for the other format, a scheduler for a Parquet input, or an
        unreachable scheduler.
    NoCurrentModel, ModelNotFound, IntegrityError
        From the registry: no model to use, or its artifact fails its sha256.
    """
    # Over 60 lines for its docstring, the reference of `churn score`; the body is 20.
    started = time.perf_counter()
    src, dst, rej = _paths(input, output, rejects, chunk_bytes=chunk_bytes, partition_bytes=partition_bytes)
    in_parquet = _parquet.is_parquet(src)
    if in_parquet and scheduler is not None:
        raise InvalidParameter("a Parquet input is scored in this process; drop --scheduler (or score a CSV "
                               "export of it on the cluster)", name="scheduler")
    n_explain = 0 if explain is None else scoring.check_explain(explain)
    scorer = _scorer(model, home=Home.resolve(home), n_explain=n_explain)
    if in_parquet:
        total = parquet.score_parquet(src, dst, rej, scorer, explain=n_explain, chunk_bytes=chunk_bytes,
                                      on_progress=on_progress)
        n_parts, where = 0, None
    else:
        layout = read_layout(src, scorer.contract, n_explain, _dialect(scorer.contract, sep, decimal))
        score = functools.partial(_score, src, dst, layout, scorer, scheduler=scheduler, n_workers=n_workers,
                                  chunk_bytes=chunk_bytes, partition_bytes=partition_bytes, on_progress=on_progress)
        total, n_parts, where = _score_csv(dst, rej, layout, scorer, score)
    result = _result(src, dst, rej, scorer, total, partitions=n_parts, scheduler=where, started=started)
    log.info("%s", result.summary())
    return result


def _score_csv(dst: Path, rej: Path, layout: Layout, scorer: scoring.Scorer,
               score: Callable[[BinaryIO, BinaryIO], tuple[BlockResult, int, str | None]]
               ) -> tuple[BlockResult, int, str | None]:
    """A CSV input scored by ``score(out, rejects)`` into ``dst`` (CSV, or Parquet converted from a temporary
    CSV beside it) and the CSV ``rej``."""
    if not _contract.is_parquet_name(str(dst)):
        with atomic_file(dst) as out, atomic_file(rej) as rj:  # rejects renamed first, then the output
            return score(out, rj)
    scored = dst.with_name(f".{dst.name}.scored.csv")
    try:
        with atomic_file(scored) as out, atomic_file(rej) as rj:
            found = score(out, rj)
        parquet.csv_to_parquet(scored, dst, layout, scorer.contract)
        return found
    finally:
        scored.unlink(missing_ok=True)


def _dialect(contract: _contract.Contract, sep: str | None, decimal: str | None) -> _contract.CsvDialect:
    """A CSV input's dialect: the contract's source's, with ``sep`` / ``decimal`` given instead."""
    own = contract.source.csv
    if sep is None and decimal is None:
        return own
    sep = own.sep if sep is None else sep
    if decimal is None:
        decimal = "." if sep == "," else own.decimal
    try:
        return _contract.CsvDialect(sep=sep, decimal=decimal)
    except ContractError as exc:
        raise InvalidParameter(f"--sep {sep!r} and --decimal {decimal!r}: {exc}", name="sep") from None

def _paths(input: str | os.PathLike, output: str | os.PathLike, rejects: str | os.PathLike | None, *,
           chunk_bytes: int, partition_bytes: int) -> tuple[Path, Path, Path]:
    """The input, output and rejects paths, once the sizes and the paths are checked."""
    for name, value in (("chunk_bytes", chunk_bytes), ("partition_bytes", partition_bytes)):
        if not isinstance(value, int) or value < MIN_CHUNK_BYTES:
            raise InvalidParameter(f"{name} must be at least {MIN_CHUNK_BYTES} bytes, got {value!r}", name=name)
    src, dst = Path(input), Path(output)
    in_parquet = _parquet.is_parquet(src)
    rej = Path(rejects) if rejects is not None else default_rejects(dst, parquet=in_parquet)
    if _contract.is_parquet_name(str(rej)) != in_parquet:
        raise InvalidParameter(f"rejects {rej}: rejected rows are written in the input's format "
                               f"({'Parquet' if in_parquet else 'CSV'}, kept as read): give it a "
                               f"{'.parquet' if in_parquet else '.csv'} name", name="rejects")
    _check_paths(src, dst, rej)
    return src, dst, rej


def _scorer(model: str | None, *, home: Home, n_explain: int) -> scoring.Scorer:
    """The model's scorer (sha256-checked by the registry, compiled and verified), refused when it cannot
    give the ``n_explain`` reasons asked for."""
    scorer = scoring.load(model, home=home)
    if n_explain and not scorer.explains:
        raise InvalidParameter(f"explain: model {scorer.version} cannot explain its answers ({scorer.engine_note})",
                               name="explain")
    return scorer


def _score(src: Path, dst: Path, layout: Layout, scorer: scoring.Scorer, out: BinaryIO, rejects: BinaryIO, *,
           scheduler: str | None, n_workers: int | None, chunk_bytes: int, partition_bytes: int,
           on_progress: Callable[[BatchProgress], None] | None) -> tuple[BlockResult, int, str | None]:
    """Both headers, then every row, in this process or on a cluster: the total, partitions and where."""
    out.write(layout.output_header())
    rejects.write(layout.rejects_header())
    if scheduler is not None:
        return parts.score_on_cluster(src, dst, layout, scorer, out, rejects, scheduler=scheduler,
                                      n_workers=n_workers, chunk_bytes=chunk_bytes,
                                      partition_bytes=partition_bytes, on_progress=on_progress)

    def progress(pos: int, done: BlockResult) -> None:
        if on_progress is not None:
            on_progress(BatchProgress(pos, layout.size, done.scored, done.rejected))

    total = score_range(str(src), layout.data_start, layout.size, layout, scorer, out, rejects, first_line=2,
                        chunk_bytes=chunk_bytes, progress=progress)
    return total, 0, None


def _result(src: Path, dst: Path, rej: Path, scorer: scoring.Scorer, total: BlockResult, *, partitions: int,
            scheduler: str | None, started: float) -> BatchResult:
    return BatchResult(input=str(src), output=str(dst), rejects=str(rej), version=scorer.version,
                       model_file=scorer.model_file, threshold=scorer.threshold, engine=scorer.engine,
                       engine_note=scorer.engine_note, rows_in=total.lines, rows_scored=total.scored,
                       rows_rejected=total.rejected, reasons=dict(total.counts), partitions=partitions,
                       scheduler=scheduler, seconds=round(time.perf_counter() - started, 3))
