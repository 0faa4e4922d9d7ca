"""Benchmark: join logged predictions with their outcomes and compute realized metrics.

Builds a home under a temporary folder with a trained v1 and ``--rows``
predictions scored by it (as ``bench_drift.py`` does), then writes as many
outcomes to ``logs/feedback.log`` in the format :mod:`churn_lib.logs.outcomes`
writes: each drawn as Bernoulli(the prediction's logged probability), about 1 %
more lines that give an earlier prediction a fresh outcome received later (the
one received last wins), and a few bad lines (not JSON; an outcome "maybe").

Timed in this process, after the imports, the best of ``--repeat`` runs each:

* ``logquery.outcomes``: the DuckDB join of the prediction and feedback logs;
* ``performance.check(record=False)``: the join and the realized metrics, end
  to end (the aim: 1M predictions with 1M outcomes in under 3 s).

The files were just written, so they are read from the page cache. The realized
ROC AUC, F1 at the served threshold and Brier score are then computed again
with scikit-learn on the outcomes written (latest wins applied here); a
difference over 1e-9 is a correctness failure (exit status 1). Timings are
figures of one run on this machine, never asserted.

Usage::

    .venv/bin/python bench/bench_outcomes.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

AIM_SECONDS = 3.0
TOLERANCE = 1e-9
BAD_LINES = (b"not json {\n", b'{"request_id":"bench-1","outcome":\n')  # plus a few outcomes "maybe"


def _make_log(home: Path, n_lines: int) -> tuple[np.ndarray, float]:
    """bench_drift's log (a trained v1, ``n_lines`` predictions scored by it); the logged probabilities in
    file order, and the served threshold."""
    from churn_lib.logs import predictions as predlog
    from churn_lib.run import runner
    from churn_lib import scoring, simulate

    runner.run_direct(home=home, stages=("generate", "prepare", "train"))
    scorer = scoring.load(home=home)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    t0, step, logged = time.time() - n_lines * 0.01, 100_000, []
    with open(home / "logs" / "predictions.log", "wb") as fh:
        for start in range(0, n_lines, step):
            rows = simulate.draw(min(step, n_lines - start), seed=start)
            proba = [round(p, 6) for p in scorer.predict_proba(rows).tolist()]
            logged.extend(proba)
            fh.write(b"".join(
                predlog.format_line({"request_id": f"bench-{start + i}", "model_version": scorer.model_file,
                                     "prediction": int(p >= scorer.threshold), "probability": p,
                                     "latency_ms": 0.8, "features": {**r, "tenure_months": int(r["tenure_months"]),
                                                                     "num_complaints": int(r["num_complaints"])},
                                     "ts": round(t0 + (start + i) * 0.01, 3), "threshold": scorer.threshold,
                                     "version": scorer.version})
                for i, (r, p) in enumerate(zip(rows.to_dict(orient="records"), proba))))
    return np.array(logged), float(scorer.threshold)


def _write_outcomes(home: Path, proba: np.ndarray, seed: int) -> tuple[np.ndarray, int, int]:
    """Outcomes for every prediction, ~1 % repeated later, a few bad lines; the outcome that counts per
    prediction (the one received last), and the numbers of repeats and of bad lines."""
    rng = np.random.default_rng(seed)
    n = len(proba)
    y = (rng.random(n) < proba).astype(np.int8)
    again = rng.choice(n, n // 100, replace=False)  # predictions given a second outcome, later
    y_again = (rng.random(len(again)) < proba[again]).astype(np.int8)
    n_bad = len(BAD_LINES) + 3
    # a line's place in the file: outcome i at i, a repeat of j anywhere after j, the bad lines anywhere
    place = np.concatenate([np.arange(n, dtype=float), again + 0.5 + rng.random(len(again)) * (n - 1 - again),
                            rng.random(n_bad) * n])
    kind = np.concatenate([np.arange(n), again, -1 - np.arange(n_bad)])  # >= 0: the prediction; < 0: a bad line
    value = np.concatenate([y, y_again, np.zeros(n_bad, dtype=np.int8)])
    order = np.argsort(place, kind="stable")
    now = time.time()
    received = [(round(now * 1e6) + k) / 1e6 for k in range(len(order))]  # 1 µs apart, above the float step
    assert all(a < b for a, b in zip(received, received[1:])), "received times must increase"
    ts = round(now, 3)
    with open(home / "logs" / "feedback.log", "wb") as fh:
        for k, j in enumerate(order.tolist()):
            i = int(kind[j])
            if i < -len(BAD_LINES):  # an outcome that is not a label, for some prediction
                line = json.dumps({"request_id": f"bench-{rng.integers(n)}", "outcome": "maybe", "ts": ts,
                                   "received": received[k], "source": "bench"}, separators=(",", ":"))
            elif i < 0:
                fh.write(BAD_LINES[-1 - i])
                continue
            else:
                line = json.dumps({"request_id": f"bench-{i}", "outcome": int(value[j]), "ts": ts,
                                   "received": received[k], "source": "bench"}, separators=(",", ":"))
            fh.write(line.encode("utf-8") + b"\n")
    latest = y.copy()
    latest[again] = y_again  # each repeat is received after its prediction's first outcome
    return latest, len(again), n_bad


def _best(fn, repeat: int) -> tuple[float, object]:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        runs.append((time.perf_counter() - t, out))
    return min(runs, key=lambda r: r[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="predictions and outcomes (default 1000000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement, best kept (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the outcomes (default 0)")
    args = parser.parse_args()
    from sklearn.metrics import brier_score_loss, f1_score, roc_auc_score

    from churn_lib.logs import outcomes as feedback, query as logquery, predictions as predlog
    from churn_lib.drift import performance

    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}")
    home = Path(tempfile.mkdtemp(prefix="bench_outcomes_"))
    try:
        t = time.perf_counter()
        proba, threshold = _make_log(home, args.rows)
        y, n_again, n_bad = _write_outcomes(home, proba, args.seed)
        sizes = [(home / "logs" / f).stat().st_size / 2**20 for f in ("predictions.log", "feedback.log")]
        print(f"logs: {args.rows:,} predictions ({sizes[0]:.0f} MiB); {args.rows:,} outcomes + {n_again:,} "
              f"repeated later + {n_bad} bad lines ({sizes[1]:.0f} MiB); made in {time.perf_counter() - t:.0f} s\n")

        join_s, joined = _best(lambda: logquery.outcomes(predlog.log_files(home=home), feedback.log_files(home=home)),
                               args.repeat)
        check_s, result = _best(lambda: performance.check(home=home, model="current", record=False), args.repeat)
        print(f"{'measurement (best of ' + str(args.repeat) + ')':52s} {'rows':>10s} {'seconds':>8s}")
        print(f"{'logquery.outcomes (DuckDB join)':52s} {len(joined):10,d} {join_s:8.3f}")
        print(f"{'performance.check (join + realized metrics)':52s} {result.models[0].predictions:10,d} "
              f"{check_s:8.3f}")
        read = joined.read
        print(f"read: {read['predictions']:,} predictions, {read['with_outcome']:,} with an outcome; "
              f"{read['feedback_lines']:,} feedback lines, {read['feedback_lines_skipped']:,} skipped, "
              f"{read['outcomes']:,} outcomes, {read['repeated_outcomes']:,} repeated "
              f"(written: {args.rows + n_again + n_bad:,} lines, {n_bad} bad, {n_again:,} repeated)")
        print(f"aim: join {args.rows:,} predictions with {args.rows:,} outcomes and compute realized metrics "
              f"under {AIM_SECONDS:.0f} s: {'met' if check_s < AIM_SECONDS else 'NOT met'} ({check_s:.2f} s)\n")

        ours = result.models[0].realized
        theirs = {"roc_auc": roc_auc_score(y, proba), "f1": f1_score(y, (proba >= threshold).astype(np.int8)),
                  "brier": brier_score_loss(y, proba)}
        print(f"{'realized metric':16s} {'performance.check':>18s} {'scikit-learn':>18s} {'|difference|':>13s}")
        failed = []
        for key, ref in theirs.items():
            mine = float("nan") if ours.get(key) is None else ours[key]
            failed += [key] if not abs(mine - ref) <= TOLERANCE else []  # NaN (no figure) fails too
            print(f"{key:16s} {mine:18.12f} {ref:18.12f} {abs(mine - ref):13.2e}")
        print(f"rows with an outcome: performance.check {result.models[0].with_outcome:,}, written {len(y):,}")
        if failed:
            print(f"CORRECTNESS FAILURE: {', '.join(failed)} differ by more than {TOLERANCE:g}")
            sys.exit(1)
        print(f"correctness: every difference <= {TOLERANCE:g}")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
