"""How cost grows: ``churn run --direct`` on the tests' telecom-like table at 1, 3 and 10 million rows.

    .venv/bin/python bench/bench_scale.py [--rows 1000000,3000000] [--max-gb 14] [--max-minutes 20] [--keep DIR]

For each size it writes the tests' 19-feature table (``tests/datasets.py`` ``telecom``, 21 columns
with the id and the target) to a CSV in chunks of 250,000 rows (ids made unique across chunks),
makes a home with ``churn init`` on a 50,000-row sample of the same generator, then runs each stage
of ``churn run --direct`` as its own process, the way a user runs it:

* ``generate`` - ``--stages generate -p source=BIG.csv``: the file copied, checked, to ``data/raw.csv``;
* ``prepare``, ``train`` (the contract's default family), ``evaluate`` (``--version v1``).

Per stage it records the wall seconds and the peak resident memory of that process
(``VmHWM`` of that process, written by it at exit; it includes the interpreter and its imports), and prints a table,
MiB per 1,000 rows, the marginal MiB per 1,000 rows between sizes (what the data costs, without the
fixed start-up) and the growth ratios against the smallest size. Writing the table is timed
separately ("make table": the benchmark's own generator, not a stage); with ``--keep DIR`` a table
written by an earlier run is reused (the home is always fresh).

Bounded: a stage whose resident memory passes ``--max-gb`` or whose size has run (stages only) past ``--max-minutes``
is killed, reported, and the run stops there. The load average is printed before and after each
size (the machine is shared). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests import datasets  # noqa: E402  (the tests' builder: the same table the e2e tests use)

CHURN = [sys.executable, "-m", "churn_lib.cli"]
# A stage's process reports its own peak at exit: VmHWM of its address space. ``ru_maxrss`` from wait4 would
# not do: Linux carries the parent's high-water mark over the fork and exec into the child's figure.
_HWM = ("import atexit, os, runpy, sys\n"
        "def _hwm():\n"
        "    line = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
        "    open(os.environ['BENCH_SCALE_HWM'], 'w').write(line.split()[1])\n"
        "atexit.register(_hwm)\n"
        "sys.argv = ['churn'] + sys.argv[1:]\n"
        "runpy.run_module('churn_lib.cli', run_name='__main__', alter_sys=True)\n")
STAGE = [sys.executable, "-c", _HWM]
CHUNK = 250_000
STAGES = ("generate", "prepare", "train", "evaluate")
GB = 1 << 30


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")} | {"CHURN_HOME": str(home)}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def write_table(path: Path, rows: int, seed: int = 0) -> float:
    """The telecom table of ``rows`` rows to ``path``, chunk by chunk; the seconds it took."""
    start = time.perf_counter()
    with open(path, "w", newline="") as fh:
        for k, offset in enumerate(range(0, rows, CHUNK)):
            n = min(CHUNK, rows - offset)
            frame = datasets.telecom(n, seed=seed + k)
            prefix = frame["customerID"].str.slice(0, 4)
            frame["customerID"] = prefix + "-" + np.char.zfill(np.arange(offset, offset + n).astype(str), 8)
            frame.to_csv(fh, index=False, header=k == 0)
    return time.perf_counter() - start


def _status_kib(pid: int, field: str = "VmHWM:") -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_stage(args: list[str], env: dict[str, str], *, max_gb: float, deadline: float) -> dict:
    """One child process, polled; its seconds, peak RSS (GiB), exit status and output (or why it was stopped)."""
    hwm = Path(tempfile.mkstemp(prefix="bench-scale-hwm-")[1])
    env = env | {"BENCH_SCALE_HWM": str(hwm)}
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out_parts: list[str] = []
    stopped = None
    reader = threading.Thread(target=lambda: out_parts.append(proc.stdout.read()), daemon=True)
    err_parts: list[str] = []
    err_reader = threading.Thread(target=lambda: err_parts.append(proc.stderr.read()), daemon=True)
    reader.start()
    err_reader.start()
    seen = 0
    while True:
        pid, status = os.waitpid(proc.pid, os.WNOHANG)
        if pid:
            break
        seen = max(seen, _status_kib(proc.pid))
        if stopped is None and seen * 1024 > max_gb * GB:
            stopped = f"resident memory passed {max_gb} GB"
        elif stopped is None and time.time() > deadline:
            stopped = "the time limit passed"
        if stopped:
            os.kill(proc.pid, signal.SIGKILL)
        time.sleep(0.2)
    reader.join()
    err_reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    reported = hwm.read_text().strip()
    hwm.unlink()
    peak = max(int(reported) if reported else 0, seen) * 1024 / GB  # killed: the last poll's figure
    return {"seconds": time.perf_counter() - start, "peak_gb": peak, "returncode": proc.returncode,
            "stdout": "".join(out_parts), "stderr": "".join(err_parts), "stopped": stopped}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(rows: int, folder: Path, *, max_gb: float, max_minutes: float) -> dict:
    """Every stage at ``rows`` rows in a fresh home under ``folder``; the figures per stage."""
    home = folder / "home"
    shutil.rmtree(home, ignore_errors=True)  # a fresh home every time, also in a kept folder
    big = folder / "telecom.csv"
    sample = folder / "sample.csv"
    result = {"rows": rows, "load_before": _load(), "stages": {}}
    print(f"\n== {rows:,} rows (load average {result['load_before']})", flush=True)
    datasets.write(datasets.telecom(50_000, seed=99), sample)
    env = _env(home)
    r = subprocess.run([*CHURN, "init", "--home", str(home), "--data", str(sample), "--target", "Churn"],
                       env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"churn init failed: {r.stderr}")
    stamp = folder / "telecom.rows"  # a table kept from an earlier run (--keep) is reused
    if big.exists() and stamp.exists() and stamp.read_text().strip() == str(rows):
        result["make_table_s"] = None
        print(f"  make table   reused {big}", flush=True)
    else:
        result["make_table_s"] = write_table(big, rows)
        stamp.write_text(f"{rows}\n")
        print(f"  make table   {result['make_table_s']:7.1f} s", flush=True)
    result["csv_mb"] = big.stat().st_size / (1 << 20)
    print(f"  {result['csv_mb']:,.0f} MiB of CSV", flush=True)
    deadline = time.time() + max_minutes * 60
    for stage in STAGES:
        extra = {"generate": ["-p", f"source={big}"], "evaluate": ["--version", "v1"]}.get(stage, [])
        got = run_stage([*STAGE, "run", "--direct", "--json", "--stages", stage, *extra], env,
                        max_gb=max_gb, deadline=deadline)
        seconds = got["seconds"]
        if got["returncode"] == 0:
            inner = json.loads(got["stdout"])["seconds"].get(stage)
        else:
            inner = None
        result["stages"][stage] = {"seconds": round(seconds, 2), "stage_seconds": inner,
                                   "peak_gb": round(got["peak_gb"], 3), "returncode": got["returncode"],
                                   "stopped": got["stopped"]}
        mark = "" if got["returncode"] == 0 else f"  FAILED ({got['stopped'] or got['stderr'].strip()[-300:]})"
        print(f"  {stage:<12} {seconds:7.1f} s   peak {got['peak_gb']:6.2f} GiB{mark}", flush=True)
        if got["returncode"] not in (0, 3):  # 3: refused by the gate, still a measured run
            result["stopped"] = stage
            break
    result["load_after"] = _load()
    result["files_mb"] = {p.name: round(p.stat().st_size / (1 << 20), 1)
                          for p in (home / "data").glob("*.csv")}
    print(f"  load average after: {result['load_after']}; files (MiB): {result['files_mb']}", flush=True)
    return result


def report(results: list[dict]) -> None:
    """The table (rows, stage, seconds, peak GB, MB per 1k rows), marginal MB per 1k rows and growth ratios."""
    print("\n| rows | stage | seconds | peak GiB | MiB per 1k rows |")
    print("|---:|---|---:|---:|---:|")
    for res in results:
        for stage, got in res["stages"].items():
            mb_per_k = got["peak_gb"] * 1024 / (res["rows"] / 1000)
            print(f"| {res['rows']:,} | {stage} | {got['seconds']:.1f} | {got['peak_gb']:.2f} | {mb_per_k:.3f} |")
    base = results[0]
    for res in results[1:]:
        scale = res["rows"] / base["rows"]
        print(f"\n{res['rows']:,} against {base['rows']:,} rows ({scale:.1f}x the rows):")
        for stage, got in res["stages"].items():
            ref = base["stages"].get(stage)
            if not ref:
                continue
            marginal = (got["peak_gb"] - ref["peak_gb"]) * 1024 / ((res["rows"] - base["rows"]) / 1000)
            print(f"  {stage:<9} time {got['seconds'] / ref['seconds']:5.2f}x   peak memory "
                  f"{got['peak_gb'] / ref['peak_gb']:5.2f}x   marginal {marginal:.3f} MiB per 1k rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,3000000,10000000",
                        help="comma-separated sizes (default 1000000,3000000,10000000)")
    parser.add_argument("--max-gb", type=float, default=14.0, help="kill a stage above this resident memory")
    parser.add_argument("--max-minutes", type=float, default=20.0, help="stop a size's stages after this long")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    sizes = [int(s) for s in args.rows.split(",")]
    results = []
    for rows in sizes:
        folder = (args.keep / str(rows)) if args.keep else Path(tempfile.mkdtemp(prefix="bench-scale-"))
        folder.mkdir(parents=True, exist_ok=True)
        try:
            res = measure(rows, folder, max_gb=args.max_gb, max_minutes=args.max_minutes)
        finally:
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
        results.append(res)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        if res.get("stopped"):
            print(f"stopped at {rows:,} rows in stage {res['stopped']}; larger sizes not run")
            break
    report(results)


if __name__ == "__main__":
    main()
