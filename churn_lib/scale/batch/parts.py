"""Scoring on a Dask cluster: partitions scored on the workers into part files, joined in input order.

The input is cut at line starts (:func:`.reader.partitions`); each worker
scores its partitions (:func:`score_partition`) into ``part-NNNNNN.csv`` and
``.rejects`` files in a folder beside the output, and the client appends them
to the outputs in order, renumbering the rejected lines. The scorer is
shipped to the workers once; they need the input and output folders (a
shared filesystem on a real cluster), not the registry.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

from ... import scoring
from .. import cluster
from .layout import Layout
from .reader import partitions
from .results import BatchProgress
from .scorer import BlockResult, score_range


def score_partition(path: str, start: int, end: int, layout: Layout, scorer: scoring.Scorer, parts: str,
                    index: int, chunk_bytes: int) -> BlockResult:
    """Dask task: score one partition into ``part-<index>.csv`` / ``.rejects`` (line numbers local, from 0)."""
    folder = Path(parts)
    with open(folder / f"part-{index:06d}.csv", "wb") as out, \
            open(folder / f"part-{index:06d}.rejects", "wb") as rejects:
        return score_range(path, start, end, layout, scorer, out, rejects, first_line=0, chunk_bytes=chunk_bytes)


def append_file(path: Path, out: BinaryIO) -> None:
    """Append a part file to ``out``; in the kernel (copy_file_range) where the platform has it."""
    out.flush()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        copied = 0
        try:
            while copied < size:
                n = os.copy_file_range(fh.fileno(), out.fileno(), size - copied)
                if n == 0:
                    break
                copied += n
        except (AttributeError, OSError):  # no copy_file_range here (or across these filesystems)
            pass
        if copied < size:
            fh.seek(copied)
            out.seek(0, os.SEEK_END)
            shutil.copyfileobj(fh, out, 1 << 22)


def _wait(client: Any, futures: dict[Any, int], ranges: list[tuple[int, int]], layout: Layout,
          on_progress: Callable[[BatchProgress], None] | None) -> dict[int, BlockResult]:
    """Each partition's result as it finishes (reported to ``on_progress``); cancels the rest on any error."""
    from distributed import as_completed  # only a cluster run pays for importing distributed

    results: dict[int, BlockResult] = {}
    done = BlockResult()
    bytes_done = layout.data_start
    try:
        for future in as_completed(futures):
            k = futures[future]
            results[k] = future.result()
            done.add(results[k])
            bytes_done += ranges[k][1] - ranges[k][0]
            if on_progress is not None:
                on_progress(BatchProgress(bytes_done, layout.size, done.scored, done.rejected))
    except BaseException:
        client.cancel(list(futures))
        raise
    return results


def _join(parts: Path, results: dict[int, BlockResult], out: BinaryIO, rejects: BinaryIO,
          layout: Layout) -> BlockResult:
    """Append the part files to the outputs in input order, numbering rejected lines as in the input."""
    total = BlockResult()
    for k in range(len(results)):
        append_file(parts / f"part-{k:06d}.csv", out)
        base = 2 + total.lines  # part rejects number lines from 0 within the partition
        with open(parts / f"part-{k:06d}.rejects", "rb") as fh:
            for line in fh:
                number, rest = line.split(bytes([layout.sep]), 1)
                rejects.write(b"%d%c%s" % (int(number) + base, layout.sep, rest))
        total.add(results[k])
    return total


def score_on_cluster(src: Path, dst: Path, layout: Layout, scorer: scoring.Scorer, out: BinaryIO,
                     rejects: BinaryIO, *, scheduler: str, n_workers: int | None, chunk_bytes: int,
                     partition_bytes: int, on_progress: Callable[[BatchProgress], None] | None
                     ) -> tuple[BlockResult, int, str]:
    """Score ``src`` on a Dask cluster into ``out`` and ``rejects``; returns the total, the number of
    partitions and a description of the cluster."""
    ranges = partitions(src, layout, partition_bytes)
    parts = Path(tempfile.mkdtemp(prefix=f".{dst.name}.parts-", dir=dst.parent))
    try:
        with cluster.connect(None if scheduler == cluster.LOCAL else scheduler, n_workers=n_workers) as client:
            where = cluster.describe(client)
            shipped = client.scatter(scorer, broadcast=True)
            futures = {client.submit(score_partition, str(src.resolve()), a, b, layout, shipped, str(parts), k,
                                     chunk_bytes, pure=False): k for k, (a, b) in enumerate(ranges)}
            results = _wait(client, futures, ranges, layout, on_progress)
        return _join(parts, results, out, rejects, layout), len(ranges), where
    finally:
        shutil.rmtree(parts, ignore_errors=True)
