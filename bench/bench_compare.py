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
* ``loop.pairs.read`` without the judged-line cache: the judging by the record rule, the pairing by request id
  and the outcome join;
* the command a user runs, ``churn compare --json`` in a fresh interpreter (``python -m churn_lib.cli``, the
  home given by ``CHURN_HOME``): imports, registry, the comparison, its record and the reports index (the aim:
  1 M pairs with outcomes in under 3 s), three times: *cold* (no judged-line cache: every line judged, and the
  cache written), *warm* (the same log again: the judged lines read from the cache), and *appended* (after
  1 % more pairs and their outcomes were appended: only those judged); and apart, the imports alone
  (``churn_lib.cli``, ``loop.compare``, ``duckdb``). They run with the bytecode cache on, in a folder of the
  temporary home (``PYTHONPYCACHEPREFIX``), after one untimed import that fills it: an installed package has
  its cache. Their CPU seconds are the child process's (``RUSAGE_CHILDREN``);
* in this process, with the cache warm (between the warm and the appended command): ``pairs.read`` and
  ``loop.compare.compare(record=False)`` end to end (the pairs, the description, the metrics and the bootstrap);
* *after drift*: the cache removed, drift's reader (``logs.query.newest``, what ``churn drift --last`` and a
  watch tick run, in this process) judges the log and writes the cache; then the command again: the cache is
  one per log file and contract, whoever wrote it, so compare finds it warm (and writes no second cache).

The verdict must be ``challenger_better`` (the outcomes come from the
challenger's probabilities) and every pair must be found by every run, else
exit status 1. With ``--dir``, the appended lines are cut off again and the
cache removed at the end, so the home can be reused.
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


def _write(home: Path, n: int, seed: int, *, first: int = 0) -> None:
    """The two roles' lines for ``n`` requests (numbered from ``first``) and one outcome each, appended in blocks."""
    from churn_lib import contract
    from churn_lib.logs import predictions

    rng = np.random.default_rng(seed + first)
    truth = rng.beta(1, 3, n)
    champ = np.clip(truth + rng.normal(0, 0.15, n), 0, 1).round(6)
    chal = truth.round(6)
    y = (rng.random(n) < truth).astype(int)
    features = {k: v for k, v in contract.LAB_EXAMPLES[0].items() if k != "request_id"}
    (home / "logs").mkdir(parents=True, exist_ok=True)
    step = 100_000
    with open(home / "logs" / "predictions.log", "ab") as pf, open(home / "logs" / "feedback.log", "ab") as ff:
        for start in range(0, n, step):
            out, fb = [], []
            for i in range(start, min(n, start + step)):
                rid, ts = f"bench-{first + i}", 1.7e9 + (first + i) * 0.01
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

    con = _duck.connect(ordered=False)
    counts = ", ".join(f"count({c})" for c in _READ)
    with _Clock() as clock:
        con.execute(f"SELECT count(*), {counts} FROM read_json($f, format='newline_delimited', columns=$c, "
                    "ignore_errors=true)",
                    {"f": [str(home / "logs" / "predictions.log")], "c": {c: "JSON" for c in _READ}}).fetchone()
    con.close()
    return clock.wall, clock.cpu


#: The fields of a line compare reads.
_READ = ("request_id", "id", "model_version", "version", "probability", "prediction", "threshold", "latency_ms",
         "ts", "features", "role")
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


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(CHURN_HOME=str(home), PYTHONPYCACHEPREFIX=str(home / ".pycache"))
    return env


def _imports(home: Path) -> tuple[float, float]:
    """(wall, cpu) of the command's imports alone, the bytecode cache filled first."""
    _child(["-c", _IMPORTS], _env(home))
    return _child(["-c", _IMPORTS], _env(home))[:2]


def _command(home: Path) -> tuple[float, float, dict]:
    """(wall, cpu) of ``churn compare --json`` on ``home``, and what it printed."""
    wall, cpu, proc = _child(["-m", "churn_lib.cli", "compare", "--json"], _env(home))
    if proc.returncode != 0:
        raise SystemExit(f"churn compare exited {proc.returncode}: {proc.stderr.strip()}")
    return wall, cpu, json.loads(proc.stdout)


class _Clock:
    """Wall and CPU seconds (this process, every thread: DuckDB's too) of a block: on a shared machine the CPU
    seconds say what the work costs, the wall seconds what a user waits."""

    def __enter__(self) -> "_Clock":
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu


def _appended(root: Path, rows: int, seed: int) -> tuple[float, float, dict]:
    """The command after 1 % more pairs (and their outcomes) were appended; they are cut off again after it."""
    logs = root / "logs"
    sizes = {name: (logs / name).stat().st_size for name in ("predictions.log", "feedback.log")}
    try:
        _write(root, max(1, rows // 100), seed, first=rows)
        return _command(root)
    finally:
        for name, size in sizes.items():
            os.truncate(logs / name, size)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="paired requests (default 1,000,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", help="write the home here and keep it (reused when it already has the logs)")
    args = ap.parse_args(argv)
    from churn_lib import contract
    from churn_lib.contract import records
    from churn_lib.logs import judged, outcomes, predictions, query as logquery
    from churn_lib.loop import compare, pairs

    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-compare-"))
    files = lambda: (predictions.log_files(home=root), outcomes.log_files(home=root))  # noqa: E731
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
            got = pairs.read(*files(), records.rule(contract.lab()))
        imports = _imports(root)
        shutil.rmtree(root / "logs" / judged.FOLDER, ignore_errors=True)  # cold: no judged-line cache
        runs = {"cold": _command(root), "warm": _command(root)}
        with _Clock() as warm_read:
            warm = pairs.read(*files(), records.rule(contract.lab()), cache=root / "logs" / judged.FOLDER)
        with _Clock() as total:
            result = compare.compare(home=root, record=False)
        runs["appended"] = _appended(root, args.rows, args.seed)
        shutil.rmtree(root / "logs" / judged.FOLDER, ignore_errors=True)  # drift judges the log first
        with _Clock() as drift_read:
            logquery.newest(files()[0], contract.lab(), last=10 ** 6, cache=root / "logs" / judged.FOLDER)
        runs["after drift"] = _command(root)
        caches = len(list((root / "logs" / judged.FOLDER).glob("*.json")))
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
        else:
            shutil.rmtree(root / "logs" / judged.FOLDER, ignore_errors=True)
    print(f"DuckDB scan of the log:       {scan[0]:6.2f} s (cpu {scan[1]:.2f} s)")
    print(f"pairs.read, no cache:         {read.wall:6.2f} s (cpu {read.cpu:.2f} s; "
          f"{read.wall / scan[0]:.2f}x the scan)")
    print(f"imports of the command:       {imports[0]:6.2f} s (cpu {imports[1]:.2f} s)")
    for name, (wall, cpu, _) in runs.items():
        if name == "after drift":
            print(f"drift's reader, cold cache:   {drift_read.wall:6.2f} s (cpu {drift_read.cpu:.2f} s; "
                  "judges the log, writes the cache)")
        print(f"churn compare --json, {name + ':':13}{wall:5.2f} s (cpu {cpu:.2f} s; aim {AIM_SECONDS:g} s: "
              f"{'met' if wall <= AIM_SECONDS else 'missed'})")
    print(f"pairs.read, warm cache:       {warm_read.wall:6.2f} s (cpu {warm_read.cpu:.2f} s)")
    print(f"compare (end to end), warm:   {total.wall:6.2f} s (cpu {total.cpu:.2f} s)")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"verdict: {result.summary()}")
    more = args.rows + max(1, args.rows // 100)
    found = {name: (printed["pairs"], printed["verdict"]) for name, (_, _, printed) in runs.items()}
    ok = len(got) == len(warm) == args.rows == result.pairs and result.labelled == args.rows \
        and result.verdict == compare.CHALLENGER_BETTER \
        and found == {"cold": (args.rows, result.verdict), "warm": (args.rows, result.verdict),
                      "appended": (more, result.verdict), "after drift": (args.rows, result.verdict)} \
        and caches == 1
    if not ok:
        print(f"FAILED: {len(got):,} pairs read ({len(warm):,} warm), {result.pairs:,} compared, "
              f"{result.labelled:,} labelled, verdict {result.verdict}; the command: {found}; "
              f"{caches} judged-line cache(s) after drift and compare (one expected)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
