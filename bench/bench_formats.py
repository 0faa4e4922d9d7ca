"""``churn score`` on a Parquet input against the same rows as CSV: rows/s of each, in one run.

    .venv/bin/python bench/bench_formats.py [--rows 1000000]

Makes a trained home (the lab's defaults), writes ``--rows`` generated rows
plus a customer id as a CSV, converts it to Parquet with DuckDB (numbers
typed), then scores CSV -> CSV (the fast path), Parquet -> CSV,
Parquet -> Parquet and CSV -> Parquet, each once, and prints rows/s and the
ratio to the CSV path. Checks that the Parquet -> CSV output is the CSV
path's, byte for byte. Nothing is timed against a budget.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()

    import duckdb

    from churn_lib import data
    from churn_lib.run import runner
    from churn_lib.scale import batch

    with tempfile.TemporaryDirectory(prefix="bench-formats-") as tmp:
        work = Path(tmp)
        home = work / "home"
        home.mkdir()
        runner.run_direct(home=home, stages=("generate", "prepare", "train"))
        frame = data.generate(args.rows, seed=7)
        frame.insert(0, "customer_id", [f"c{i:08d}" for i in range(len(frame))])
        csv_path, pq_path = work / "in.csv", work / "in.parquet"
        frame.to_csv(csv_path, index=False)
        del frame
        con = duckdb.connect()
        con.execute(f"COPY (SELECT * FROM read_csv('{csv_path}', types={{'customer_id': 'VARCHAR', "
                    f"'region': 'VARCHAR', 'plan_type': 'VARCHAR'}})) TO '{pq_path}' (FORMAT parquet)")
        con.close()
        print(f"{args.rows:,} rows: CSV {csv_path.stat().st_size / 2**20:.0f} MiB, "
              f"Parquet {pq_path.stat().st_size / 2**20:.0f} MiB")
        runs = {}
        for name, src, out in (("CSV -> CSV", csv_path, "a.csv"), ("Parquet -> CSV", pq_path, "b.csv"),
                               ("Parquet -> Parquet", pq_path, "c.parquet"), ("CSV -> Parquet", csv_path, "d.parquet")):
            started = time.perf_counter()
            result = batch.score_file(src, work / out, home=home)
            seconds = time.perf_counter() - started
            runs[name] = result.rows_in / seconds
            print(f"{name:20s} {seconds:6.2f} s  {runs[name]:>12,.0f} rows/s  "
                  f"{runs[name] / runs['CSV -> CSV']:.2f}x the CSV path")
        same = (work / "a.csv").read_bytes() == (work / "b.csv").read_bytes()
        print(f"Parquet -> CSV output is the CSV path's byte for byte: {same}")
        print(f"peak resident memory of this process: "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
