"""Notebook overhead: a full run through the stage notebooks (papermill + HTML)
against the same stages called directly through churn_lib, in one process run.

    .venv/bin/python bench/bench_runner.py [--rows 1200,1000000] [--repeat 1]

Prints, per data size, the wall time of each path, the per-stage times, and
the ratio notebook / direct (aim: <= 1.3 at 1 million rows). Each path runs in
its own temporary project home; nothing is timed against a fixed budget.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

from churn_lib import runner


def _direct(home: Path, n_rows: int) -> tuple[float, dict[str, float]]:
    t0 = time.perf_counter()
    result = runner.run_direct(home=home, params={"n_rows": n_rows})
    return time.perf_counter() - t0, result.seconds


def _notebooks(home: Path, n_rows: int) -> tuple[float, dict[str, float]]:
    t0 = time.perf_counter()
    record = runner.run(home=home, params={"n_rows": n_rows})
    return time.perf_counter() - t0, {s["stage"]: s["seconds"] for s in record["stages"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1200,1000000", help="comma-separated data sizes")
    parser.add_argument("--repeat", type=int, default=1, help="runs per path and size (best is kept)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    # Import the library once up front so the direct path is not charged for it.
    import churn_lib.evaluation, churn_lib.quality, churn_lib.training  # noqa: E401,F401
    print(f"{'rows':>10} {'path':<10} {'seconds':>8}  per stage")
    for n_rows in (int(x) for x in args.rows.split(",")):
        best: dict[str, tuple[float, dict[str, float]]] = {}
        for _ in range(args.repeat):
            for name, fn in (("direct", _direct), ("notebooks", _notebooks)):
                home = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
                try:
                    took, stages = fn(home, n_rows)
                finally:
                    shutil.rmtree(home, ignore_errors=True)
                if name not in best or took < best[name][0]:
                    best[name] = (took, stages)
        for name, (took, stages) in best.items():
            per = "  ".join(f"{k} {v:.2f}" for k, v in stages.items())
            print(f"{n_rows:>10} {name:<10} {took:8.2f}  {per}")
        ratio = best["notebooks"][0] / best["direct"][0]
        print(f"{n_rows:>10} {'ratio':<10} {ratio:8.2f}  (notebooks / direct)")


if __name__ == "__main__":
    main()
