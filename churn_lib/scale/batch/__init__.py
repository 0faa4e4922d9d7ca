"""Batch scoring: score a CSV file of any size in chunks, with bounded memory.

:func:`score_file` reads the input in blocks of whole lines (``chunk_bytes``
each, default 2 MiB, about 65,000 rows), validates every row against the
model's dataset contract (:func:`churn_lib.contract.check_frame`, the rules
the quality stage and the API apply: valid ranges, whole numbers, categories
after normalisation, each column's own missing tokens, so the lab's ``NA``
is North America), scores the valid rows with the registry's model through :mod:`churn_lib.scoring` (the
compiled numpy scorer when it verifies) and appends them to the output. Memory
stays near 20 times one block on top of the interpreter and the model, whatever
the file's size (about 200 MiB in all with the defaults).

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

Limits: one record per line (no line breaks inside quoted fields), UTF-8 (a
byte-order mark is tolerated), comma-separated. Parquet is not read: the
project's data is CSV end to end and pyarrow would be the heaviest dependency
of the package; the block reader is the only part a Parquet reader would replace.

This face holds the entry point, :func:`score_file`; the work is done by its
modules: :mod:`.layout` (the header and the added columns), :mod:`.reader`
(blocks of whole lines), :mod:`.scorer` (validate and score a block),
:mod:`.formatter` (the score columns as bytes), :mod:`.parts` (Dask) and
:mod:`.results`. Both outputs are written through :func:`churn_lib._io.atomic_file`:
a reader never sees half a file, and they get the mode of any new file (the umask's).

Examples
--------
>>> from churn_lib.scale import batch                                  # doctest: +SKIP
>>> result = batch.score_file("customers.csv", "scores.csv", model="v3")  # doctest: +SKIP
>>> result.summary()                                                  # doctest: +SKIP
'scored 9,998,713 of 10,000,000 rows with v3 ...'
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import BinaryIO, Callable

from ... import scoring
from ..._io import atomic_file
from ...exceptions import InvalidParameter
from ...home import Home
from . import parts
from .layout import OUTPUT_COLUMNS, REJECT_COLUMNS, Layout, explain_columns, read_layout
from .reader import DEFAULT_CHUNK_BYTES, DEFAULT_PARTITION_BYTES, MIN_CHUNK_BYTES
from .results import BatchProgress, BatchResult
from .scorer import BlockResult, score_range, validate

__all__ = ["DEFAULT_CHUNK_BYTES", "DEFAULT_PARTITION_BYTES", "OUTPUT_COLUMNS", "REJECT_COLUMNS", "BatchProgress",
           "BatchResult", "default_rejects", "explain_columns", "score_file", "validate"]

log = logging.getLogger(__name__)


def default_rejects(output: str | os.PathLike) -> Path:
    """Where rejected rows go by default: ``scores.csv`` -> ``scores.rejects.csv``.

    Examples
    --------
    >>> default_rejects("out/scores.csv").as_posix()
    'out/scores.rejects.csv'
    """
    path = Path(output)
    suffix = path.suffix or ".csv"
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
               on_progress: Callable[[BatchProgress], None] | None = None) -> BatchResult:
    """Score every row of a CSV file with a registered model; write scores and rejects.

    Parameters
    ----------
    input : path
        A CSV with a header naming at least the model's features (any other
        columns, e.g. a customer id or the target, are carried through).
    output : path
        Written atomically: the input's header and valid rows, unchanged and
        in order, plus ``probability, prediction, version``.
    home : Home or path, optional
        The project home whose registry holds the model.
    model : str, optional
        Version label or model file; default the current model.
    rejects : path, optional
        Rejected rows with ``line`` and ``reason``, always written (header only when nothing was
        rejected); default :func:`default_rejects`.
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

    Returns
    -------
    BatchResult

    Raises
    ------
    DataError
        The input is missing, has no header or lacks a feature column, or breaks lines inside quoted fields.
    InvalidParameter
        Bad sizes, clashing paths, or an unreachable scheduler.
    NoCurrentModel, ModelNotFound, IntegrityError
        From the registry: no model to use, or its artifact fails its sha256.
    """
    started = time.perf_counter()
    src, dst, rej = _paths(input, output, rejects, chunk_bytes=chunk_bytes, partition_bytes=partition_bytes)
    scorer, layout = _open(src, model=model, home=Home.resolve(home), explain=explain)
    with atomic_file(dst) as out, atomic_file(rej) as rj:  # rejects renamed first, then the output
        total, n_parts, where = _score(src, dst, layout, scorer, out, rj, scheduler=scheduler, n_workers=n_workers,
                                       chunk_bytes=chunk_bytes, partition_bytes=partition_bytes,
                                       on_progress=on_progress)
    result = _result(src, dst, rej, scorer, total, partitions=n_parts, scheduler=where, started=started)
    log.info("%s", result.summary())
    return result

def _paths(input: str | os.PathLike, output: str | os.PathLike, rejects: str | os.PathLike | None, *,
           chunk_bytes: int, partition_bytes: int) -> tuple[Path, Path, Path]:
    """The input, output and rejects paths, once the sizes and the paths are checked."""
    for name, value in (("chunk_bytes", chunk_bytes), ("partition_bytes", partition_bytes)):
        if not isinstance(value, int) or value < MIN_CHUNK_BYTES:
            raise InvalidParameter(f"{name} must be at least {MIN_CHUNK_BYTES} bytes, got {value!r}", name=name)
    src, dst = Path(input), Path(output)
    rej = Path(rejects) if rejects is not None else default_rejects(dst)
    _check_paths(src, dst, rej)
    return src, dst, rej


def _open(src: Path, *, model: str | None, home: Home, explain: int | None) -> tuple[scoring.Scorer, Layout]:
    """The model's scorer (sha256-checked by the registry, compiled and verified) and the input's layout."""
    n_explain = 0 if explain is None else scoring.check_explain(explain)
    scorer = scoring.load(model, home=home)
    if n_explain and not scorer.explains:
        raise InvalidParameter(f"explain: model {scorer.version} cannot explain its answers ({scorer.engine_note})",
                               name="explain")
    return scorer, read_layout(src, scorer.contract, n_explain)


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
