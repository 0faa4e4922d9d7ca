"""Sweep speed-up: the same sweep of N full notebook runs, one after the other in
one process, then in parallel on a local Dask cluster, in one process run.

    .venv/bin/python bench/bench_sweep.py [--runs 8] [--rows 1200] [--workers CORES]

Each path runs in its own temporary project home. Prints, per path: wall
time, CPU time of the process and every child it reaped (kernels, workers),
the average number of cores kept busy (CPU / wall), the cores other work on
the machine took meanwhile and how busy the whole machine was (from
/proc/stat: on a shared machine these move the figures), the mean time of one
run, and the speed-up sequential / cluster.
A run of the runner already overlaps its next kernel's start and the HTML
export with the current stage, so on 2 cores the ceiling is 2 / (cores busy
sequentially), not 2. Nothing is timed against a budget.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from churn_lib.scale import cluster, sweep

_C = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _machine() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat (0, 0 elsewhere)."""
    try:
        fields = [float(x) for x in open("/proc/stat").readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields) - idle) / tick, sum(fields) / tick


def _spec(runs: int, rows: int) -> sweep.SweepSpec:
    grid = {"C": list(_C[: min(runs, len(_C))])}
    if runs > len(_C):
        grid["seed"] = list(range(1, -(-runs // len(_C)) + 1))
    spec = sweep.build_spec({"name": "bench", "params": {"n_rows": rows}, "grid": grid})
    return sweep.SweepSpec(sets=spec.sets[:runs], stages=spec.stages, name="bench")


def _one(spec: sweep.SweepSpec, *, serial: bool, workers: int) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"bench-sweep-{'serial' if serial else 'dask'}-"))
    (busy0, total0), cpu0, t0 = _machine(), _cpu(), time.perf_counter()
    try:
        result = sweep.run_sweep(spec, home=home, serial=serial, n_workers=workers)
    finally:
        wall = time.perf_counter() - t0
        cpu = _cpu() - cpu0
        busy1, total1 = _machine()
        shutil.rmtree(home, ignore_errors=True)
    ok = [r for r in result.runs if r.status == "ok"]
    machine = (busy1 - busy0) / (total1 - total0) if total1 > total0 else float("nan")
    others = max(0.0, (busy1 - busy0) - cpu) / wall  # cores taken by other work on the machine meanwhile
    return {"wall": wall, "cpu": cpu, "ok": len(ok), "failed": len(result.failed),
            "machine": machine, "others": others,
            "per_run": sum(r.seconds or 0 for r in result.runs) / len(result.runs), "where": result.where,
            "winner": next((r.index for r in result.runs if r.version == result.winner), None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="parameter sets (full runs) in the sweep")
    parser.add_argument("--rows", type=int, default=1200, help="n_rows of every run")
    parser.add_argument("--workers", type=int, default=cluster.cpu_count(), help="local cluster workers")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    spec = _spec(args.runs, args.rows)
    print(f"sweep of {len(spec.sets)} full runs ({','.join(spec.stages)}), n_rows={args.rows}, "
          f"{cluster.cpu_count()} cores")
    rows = {"sequential": _one(spec, serial=True, workers=1),
            "local cluster": _one(spec, serial=False, workers=args.workers)}
    print(f"{'path':<15} {'wall s':>8} {'cpu s':>8} {'our cores':>9} {'others':>7} {'machine':>8} "
          f"{'s / run':>8} {'ok':>3} {'failed':>6}  where")
    for name, r in rows.items():
        print(f"{name:<15} {r['wall']:8.1f} {r['cpu']:8.1f} {r['cpu'] / r['wall']:9.2f} {r['others']:7.2f} "
              f"{r['machine']:8.0%} {r['per_run']:8.1f} {r['ok']:>3} {r['failed']:>6}  {r['where']}")
    print("our cores: CPU of this process and its children / wall; others: cores used meanwhile by other work "
          "on the machine; machine: share of all cores busy")
    seq, par = rows["sequential"], rows["local cluster"]
    print(f"speed-up (sequential / local cluster): {seq['wall'] / par['wall']:.2f}x; "
          f"same winner: {'yes' if seq['winner'] == par['winner'] else 'NO'} (set {par['winner']})")


if __name__ == "__main__":
    main()
