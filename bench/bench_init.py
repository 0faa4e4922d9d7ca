"""`churn init` on a wide table: time and peak memory against the file's size (issue 10's speed goal).

Builds telecom-like CSVs (tests/datasets.py: 21 columns, an id, Yes/No target, a numeric column stored as
text with blanks) of 250k, 1M and 4M rows, runs `churn init` on each in a fresh process and prints its
wall time and its peak resident memory; the goal is under 10 s for 1M rows with memory that does not
grow with the file (DuckDB profiles within a fixed memory limit).

    .venv/bin/python bench/bench_init.py            # about 2 minutes, most of it building the files
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = """
import json, sys, time
from churn_lib.data import infer
t = time.perf_counter()
result = infer.init_home(sys.argv[1], data=sys.argv[2], target="Churn")
seconds = time.perf_counter() - t
# VmHWM: this process's peak resident memory (ru_maxrss would carry the parent's across exec)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print("RESULT " + json.dumps({"seconds": seconds, "rows": result.inferred.rows,
                              "features": len(result.contract.features), "id": list(result.contract.id),
                              "peak_rss_mb": hwm / 1024}))
"""


def main() -> None:
    from tests import datasets

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        one = datasets.write(datasets.telecom(1_000_000, seed=9), base / "t1m.csv")
        lines = one.read_bytes().split(b"\n", 1)
        quarter = base / "t250k.csv"
        quarter.write_bytes(lines[0] + b"\n" + b"\n".join(lines[1].split(b"\n")[:250_000]) + b"\n")
        four = base / "t4m.csv"
        with open(four, "wb") as out:
            out.write(lines[0] + b"\n")
            for _ in range(4):
                out.write(lines[1])
        results = {}
        for name, path in (("250k", quarter), ("1M", one), ("4M", four)):
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, str(base / f"home-{name}"), str(path)],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            r = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
            r["process_seconds"] = time.perf_counter() - start
            r["file_mb"] = path.stat().st_size / 2 ** 20
            results[name] = r
            print(f"{name:>5} rows ({r['file_mb']:6.0f} MB): init {r['seconds']:5.1f} s "
                  f"(process {r['process_seconds']:5.1f} s), peak {r['peak_rss_mb']:5.0f} MB, "
                  f"{r['features']} features, id {r['id']}")
        print(f"1M rows: {results['1M']['process_seconds']:.1f} s (goal < 10 s); memory 4M / 250k rows: "
              f"{results['4M']['peak_rss_mb'] / results['250k']['peak_rss_mb']:.2f}x for "
              f"{results['4M']['file_mb'] / results['250k']['file_mb']:.0f}x the file")


if __name__ == "__main__":
    main()
