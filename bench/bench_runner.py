"""`churn run` against the lab's four scripts and against the direct path, in one run on this machine.

    .venv/bin/python bench/bench_runner.py [--repeat 3] [--rows 1000000] [--skip-large]

At the lab's defaults (1,200 rows) it times, each as a fresh process the way a user runs it:

* the lab's four scripts (``bench/lab_scripts/``, one ``python`` process per step, no reports);
* ``churn run`` (the four stage notebooks through papermill, HTML reports, the index);
* ``churn run --direct`` (the same stages through churn_lib, no notebooks);

interleaved ``--repeat`` times, and prints each one's median and the ratios (aim: ``churn run``
<= 2x the lab's scripts). Then, at ``--rows`` (default 1 million), ``churn run`` against ``churn run
--direct`` with the same data size (aim: <= 1.3x), with the stages' own times. Each run gets a fresh
temporary home; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAB = [HERE / "lab_scripts" / f"{name}.py" for name in ("01_generate", "02_prepare", "03_train", "04_evaluate")]
CHURN = [sys.executable, "-m", "churn_lib.cli"]


def _env(home: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")} | {"CHURN_HOME": str(home)}


def lab_scripts(folder: Path, _rows: int) -> tuple[float, dict]:
    start = time.perf_counter()
    for script in LAB:
        subprocess.run([sys.executable, str(script)], cwd=folder, check=True, capture_output=True)
    return time.perf_counter() - start, {}


def churn_run(folder: Path, rows: int, *extra: str) -> tuple[float, dict]:
    home = folder / "home"
    args = [*CHURN, "run", "--json", *extra] + (["-p", f"n_rows={rows}"] if rows != 1200 else [])
    start = time.perf_counter()
    out = subprocess.run(args, env=_env(home), check=True, capture_output=True, text=True)
    took = time.perf_counter() - start
    record = json.loads(out.stdout)
    stages = record.get("seconds") if "--direct" in extra else {s["stage"]: s["seconds"] for s in record["stages"]}
    return took, stages


def churn_direct(folder: Path, rows: int) -> tuple[float, dict]:
    return churn_run(folder, rows, "--direct")


def _time(fn, rows: int) -> tuple[float, dict]:
    folder = Path(tempfile.mkdtemp(prefix="bench-runner-"))
    try:
        return fn(folder, rows)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _row(name: str, times: list[float], stages: dict) -> str:
    per = "  ".join(f"{k} {v:.2f}" for k, v in stages.items())
    return f"  {name:<22} median {statistics.median(times):6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times)})  {per}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per path (default 3)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the large comparison")
    parser.add_argument("--skip-large", action="store_true", help="only the lab's defaults")
    args = parser.parse_args()
    paths = {"lab's four scripts": lab_scripts, "churn run": churn_run, "churn run --direct": churn_direct}
    times: dict[str, list[float]] = {k: [] for k in paths}
    stages: dict[str, dict] = {}
    for _ in range(args.repeat):
        for name, fn in paths.items():
            took, per = _time(fn, 1200)
            times[name].append(took)
            stages[name] = per
    print(f"1,200 rows (the lab's defaults), {args.repeat} interleaved runs each, fresh processes:")
    for name in paths:
        print(_row(name, times[name], stages[name]))
    lab = statistics.median(times["lab's four scripts"])
    run = statistics.median(times["churn run"])
    direct = statistics.median(times["churn run --direct"])
    print(f"  churn run / lab's scripts: {run / lab:.2f}x (aim <= 2x); churn run --direct / lab's scripts: "
          f"{direct / lab:.2f}x; churn run / --direct: {run / direct:.2f}x")
    if args.skip_large:
        return
    big = {"churn run": churn_run, "churn run --direct": churn_direct}
    big_times: dict[str, list[float]] = {k: [] for k in big}
    for _ in range(max(1, args.repeat - 1)):
        for name, fn in big.items():
            took, per = _time(fn, args.rows)
            big_times[name].append(took)
            stages[name] = per
    print(f"{args.rows:,} rows:")
    for name in big:
        print(_row(name, big_times[name], stages[name]))
    ratio = statistics.median(big_times["churn run"]) / statistics.median(big_times["churn run --direct"])
    print(f"  churn run / --direct: {ratio:.2f}x (aim <= 1.3x)")


if __name__ == "__main__":
    main()
