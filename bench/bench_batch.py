"""Batch scoring: rows/s and peak memory of ``churn score`` against pandas + the
scikit-learn pipeline, on the same CSV file, in one process run.

    .venv/bin/python bench/bench_batch.py [--rows 10000000] [--input FILE] [--workers CORES]

Makes a trained home (the lab's defaults) and an input file of generated rows
plus a customer id column (kept between runs with --input), then scores it
with each path, every path in a fresh interpreter so that its peak resident
memory (ru_maxrss) is its own:

* pandas + sklearn: ``read_csv`` of the whole file, ``predict_proba``, ``to_csv``
  (what one writes without this module);
* pandas + sklearn, chunked: the same in chunks of 250,000 rows (bounded memory);
* churn score: :func:`churn_lib.scale.batch.score_file` in one process;
* churn score on a local Dask cluster: partitions on the workers (peak shown
  for the client and for the largest worker).

Checks that every path gives the same probabilities (6 decimals) and that both
churn paths write byte-identical files. Nothing is timed against a budget.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHUNK_ROWS = 250_000


def _peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def _pandas(src: Path, out: Path, home: Path, chunked: bool) -> None:
    import pandas as pd

    from churn_lib import contract, registry

    entry = registry.current_entry(home=home)
    pipe = registry.load_model(entry, home=home)
    # as churn_lib.data.read_csv: only an empty field is missing, so the region NA stays North America
    read = dict(keep_default_na=False, na_values=[""], dtype={"customer_id": str, "plan_type": str, "region": str})
    frames = pd.read_csv(src, chunksize=CHUNK_ROWS, **read) if chunked else [pd.read_csv(src, **read)]
    for k, df in enumerate(frames):
        proba = pipe.predict_proba(df[list(contract.lab().feature_names)])[:, 1]
        df["probability"] = proba.round(6)
        df["prediction"] = (proba >= entry["threshold"]).astype(int)
        df["version"] = entry["version"]
        df.to_csv(out, index=False, mode="w" if k == 0 else "a", header=k == 0)


def _churn(src: Path, out: Path, home: Path, scheduler: str | None, workers: int) -> dict:
    from churn_lib.scale import batch

    return batch.score_file(src, out, home=home, scheduler=scheduler, n_workers=workers).to_dict()


def _child(args: argparse.Namespace) -> None:
    """One path, in this fresh interpreter; prints one JSON line."""
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    src, out, home = Path(args.input), Path(args.out), Path(args.home)
    t0 = time.perf_counter()
    info: dict = {}
    if args.child in ("pandas", "pandas-chunked"):
        _pandas(src, out, home, chunked=args.child == "pandas-chunked")
    else:
        info = _churn(src, out, home, "local" if args.child == "churn-dask" else None, args.workers)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "peak_mb": _peak_mb(resource.RUSAGE_SELF),
                      "children_peak_mb": _peak_mb(resource.RUSAGE_CHILDREN), "engine": info.get("engine"),
                      "rows_scored": info.get("rows_scored")}))


def _make_input(path: Path, rows: int) -> None:
    """Generated rows with a customer id first, written in chunks (the generator's draw order is kept)."""
    from churn_lib import data

    df = data.generate(rows, seed=11)
    df.insert(0, "customer_id", [f"c{i:08d}" for i in range(rows)])
    with open(path, "w") as fh:
        for start in range(0, rows, 1_000_000):
            df.iloc[start:start + 1_000_000].to_csv(fh, index=False, header=start == 0)


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _probabilities(path: Path, n: int):
    import pandas as pd

    return pd.read_csv(path, nrows=n, usecols=["probability"])["probability"].to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the generated input")
    parser.add_argument("--input", help="input CSV to (re)use; generated when missing")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="local cluster workers")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args)
    logging.basicConfig(level=logging.ERROR)
    from churn_lib.run import runner

    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    home = work / "home"
    runner.run_direct(home=home, stages=("generate", "prepare", "train"))
    src = Path(args.input) if args.input else work / "customers.csv"
    if not src.exists():
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                        f"import bench_batch as b; from pathlib import Path; b._make_input(Path({str(src)!r}), "
                        f"{args.rows})"], check=True)
        print(f"generated {src} in {time.perf_counter() - t0:.0f} s")
    size = src.stat().st_size
    with open(src, "rb") as fh:
        rows = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 24), b"")) - 1
    print(f"input: {rows:,} rows, {size / 2**20:,.0f} MiB; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.2f}")
    paths = {"pandas + sklearn": "pandas", "pandas + sklearn, chunked": "pandas-chunked",
             "churn score": "churn", f"churn score, local cluster ({args.workers} workers)": "churn-dask"}
    results, outputs = {}, {}
    for name, child in paths.items():
        out = work / f"out-{child}.csv"
        proc = subprocess.run([sys.executable, __file__, "--child", child, "--input", str(src), "--out", str(out),
                               "--home", str(home), "--workers", str(args.workers)],
                              capture_output=True, text=True)
        if proc.returncode:
            print(f"{name}: failed\n{proc.stderr[-2000:]}")
            continue
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        outputs[name] = out
    base = results.get("pandas + sklearn")
    print(f"{'path':<40} {'seconds':>8} {'rows/s':>11} {'peak MiB':>9} {'workers MiB':>11} {'vs pandas':>9}")
    for name, r in results.items():
        workers = f"{r['children_peak_mb']:11.0f}" if "cluster" in name else f"{'-':>11}"
        ratio = f"{base['seconds'] / r['seconds']:8.2f}x" if base else "-"
        print(f"{name:<40} {r['seconds']:8.1f} {rows / r['seconds']:11,.0f} {r['peak_mb']:9.0f} {workers} {ratio}")
    churn = [outputs[n] for n in outputs if n.startswith("churn")]
    if len(churn) == 2:
        print(f"churn outputs byte-identical (in process vs cluster): {_sha(churn[0]) == _sha(churn[1])}")
    if base and churn:
        import numpy as np

        diff = np.abs(_probabilities(outputs["pandas + sklearn"], 1_000_000) - _probabilities(churn[0], 1_000_000))
        print(f"probabilities vs the sklearn pipeline, first 1,000,000 rows: max |diff| {diff.max():.1e}")
    shutil.rmtree(work, ignore_errors=True)  # outputs, the home and a generated input (not --input's)


if __name__ == "__main__":
    main()
