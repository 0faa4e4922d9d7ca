"""Benchmark: ``churn compare`` over paired predictions with outcomes.

Writes, in a home under a temporary folder, ``--rows`` champion lines and as
many challenger lines (``"role": "challenger"``, the champion's request id,
its own probability, threshold and latency) to ``logs/predictions.log`` in the
service's format (the lab's example features on every line, the two roles
interleaved as the service writes them), and one outcome per request to
``logs/feedback.log``, drawn from the challenger's probability. No model is
trained: compare reads only the logs (and the registry, empty here).

Timed in this process, after the imports, one run each (the files were just
written, so they are read from the page cache), wall and CPU seconds (on a
shared machine the CPU seconds are the steadier figure; the load average is
printed):

* a DuckDB scan of the prediction log, every column compare reads (the floor: reading the JSON);
* ``loop.pairs.read``: the scan, the checks, the pairing by request id and the outcome join;
* ``loop.compare.compare(record=False)``: the pairs, the description, the metrics and the paired bootstrap,
  end to end;
* the command a user runs, ``churn compare --json`` in a fresh interpreter (``python -m churn_lib.cli``, the
  home given by ``CHURN_HOME``): imports, registry, the comparison, its record and the reports index (the aim:
  1 M pairs with outcomes in under 3 s), and apart, the imports alone (``churn_lib.cli``, ``loop.compare``,
  ``duckdb``). Both run with the bytecode cache on, in a folder of the temporary home
  (``PYTHONPYCACHEPREFIX``), after one untimed import that fills it: an installed package has its cache.
  Their CPU seconds are the child process's (``RUSAGE_CHILDREN``).

The verdict must be ``challenger_better`` (the outcomes come from the
challenger's probabilities) and every pair must be found, else exit status 1.
Timings are figures of one run on this machine, never asserted.

Usage::

    .venv/bin/python bench/bench_compare.py [--rows 1000000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

AIM_SECONDS = 3.0


def _write(home: Path, n: int, seed: int) -> None:
    """The two roles' lines for ``n`` requests and one outcome each, written in blocks."""
    from churn_lib import contract
    from churn_lib.logs import predictions

    rng = np.random.default_rng(seed)
    truth = rng.beta(1, 3, n)
    champ = np.clip(truth + rng.normal(0, 0.15, n), 0, 1).round(6)
    chal = truth.round(6)
    y = (rng.random(n) < truth).astype(int)
    features = {k: v for k, v in contract.LAB_EXAMPLES[0].items() if k != "request_id"}
    (home / "logs").mkdir(parents=True, exist_ok=True)
    step = 100_000
    with open(home / "logs" / "predictions.log", "wb") as pf, open(home / "logs" / "feedback.log", "wb") as ff:
        for start in range(0, n, step):
            out, fb = [], []
            for i in range(start, min(n, start + step)):
                rid, ts = f"bench-{i}", 1.7e9 + i * 0.01
                c = predictions.record(request_id=rid, model_file="model_v1.joblib", version="v1", threshold=0.3,
                                       probability=float(champ[i]), features=features, latency_ms=0.8, ts=ts)
                k = predictions.record(request_id=rid, model_file="model_v2.joblib", version="v2", threshold=0.3,
                                       probability=float(chal[i]), features=features, latency_ms=1.1, ts=ts)
                k["role"] = "challenger"
                out += [predictions.format_line(c), predictions.format_line(k)]
                fb.append(f'{{"request_id":"{rid}","outcome":{y[i]},"received":{ts + 86400}}}\n'.encode())
            pf.write(b"".join(out))
            ff.write(b"".join(fb))


def _scan(home: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one DuckDB scan of the prediction log: every column compare reads, as JSON values."""
    from churn_lib import _duck
    from churn_lib.loop import pairs

    con = _duck.connect(ordered=False)
    counts = ", ".join(f"count({c})" for c in pairs._COLUMNS)
    with _Clock() as clock:
        con.execute(f"SELECT count(*), {counts} FROM read_json($f, format='newline_delimited', columns=$c, "
                    "ignore_errors=true)",
                    {"f": [str(home / "logs" / "predictions.log")], "c": {c: "JSON" for c in pairs._COLUMNS}}).fetchone()
    con.close()
    return clock.wall, clock.cpu


#: What the command imports before it reads a line (timed apart).
_IMPORTS = "import churn_lib.cli, churn_lib.loop.compare, duckdb"


def _child(argv: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall and CPU seconds (user + system, the child's) of one fresh interpreter running ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc


def _command(home: Path) -> tuple[tuple[float, float], tuple[float, float], dict]:
    """(wall, cpu) of the imports alone, (wall, cpu) of ``churn compare --json`` on ``home``, and what it printed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(CHURN_HOME=str(home), PYTHONPYCACHEPREFIX=str(home / ".pycache"))
    _child(["-c", _IMPORTS], env)  # fills the bytecode cache
    imports = _child(["-c", _IMPORTS], env)
    wall, cpu, proc = _child(["-m", "churn_lib.cli", "compare", "--json"], env)
    if proc.returncode != 0:
        raise SystemExit(f"churn compare exited {proc.returncode}: {proc.stderr.strip()}")
    return imports[:2], (wall, cpu), json.loads(proc.stdout)


class _Clock:
    """Wall and CPU seconds (this process, every thread: DuckDB's too) of a block: on a shared machine the CPU
    seconds say what the work costs, the wall seconds what a user waits."""

    def __enter__(self) -> "_Clock":
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="paired requests (default 1,000,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", help="write the home here and keep it (reused when it already has the logs)")
    args = ap.parse_args(argv)
    from churn_lib import contract
    from churn_lib.contract import records
    from churn_lib.logs import outcomes, predictions
    from churn_lib.loop import compare, pairs

    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-compare-"))
    try:
        t = time.perf_counter()
        reused = (root / "logs" / "predictions.log").exists()
        if not reused:
            _write(root, args.rows, args.seed)
        size = (root / "logs" / "predictions.log").stat().st_size
        print(("reused" if reused else "wrote") + f" {args.rows:,} pairs ({size / 1e6:,.0f} MB of prediction log) in "
              f"{time.perf_counter() - t:.1f} s [{platform.python_version()}, {os.cpu_count()} cores]")
        scan = _scan(root)
        with _Clock() as read:
            got = pairs.read(predictions.log_files(home=root), outcomes.log_files(home=root),
                             records.rule(contract.lab()))
        with _Clock() as total:
            result = compare.compare(home=root, record=False)
        imports, command, printed = _command(root)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    print(f"DuckDB scan of the log:  {scan[0]:6.2f} s (cpu {scan[1]:.2f} s)")
    print(f"pairs.read:              {read.wall:6.2f} s (cpu {read.cpu:.2f} s; {read.wall / scan[0]:.2f}x the scan)")
    print(f"compare (end to end):    {total.wall:6.2f} s (cpu {total.cpu:.2f} s; {total.wall / read.wall:.2f}x "
          "pairs.read)")
    print(f"imports of the command:  {imports[0]:6.2f} s (cpu {imports[1]:.2f} s)")
    print(f"churn compare --json:    {command[0]:6.2f} s (cpu {command[1]:.2f} s; aim {AIM_SECONDS:g} s: "
          f"{'met' if command[0] <= AIM_SECONDS else 'missed'})")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"verdict: {result.summary()}")
    ok = len(got) == args.rows == result.pairs == printed["pairs"] and result.labelled == args.rows \
        and result.verdict == printed["verdict"] == compare.CHALLENGER_BETTER
    if not ok:
        print(f"FAILED: {len(got):,} pairs read, {result.pairs:,} compared, {result.labelled:,} labelled, "
              f"verdict {result.verdict}; the command: {printed['pairs']:,} pairs, verdict {printed['verdict']}",
              file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
