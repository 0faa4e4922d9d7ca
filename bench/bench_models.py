"""Model families in one run: quality on a wide contract, training time at scale, explained batch scoring.

    .venv/bin/python bench/bench_models.py [--rows 1000000] [--wide-rows 7043] [--skip-scale]

Prints, for the logistic regression (``logreg``) and LightGBM (``lightgbm``):

* on the tests' telecom-like table (``tests/datasets.py``, 21 columns, 19
  features; the size of the public 7,043-row telecom churn table): test ROC
  AUC, F1 at the stored threshold, Brier score and top-decile lift, without and
  with sigmoid calibration, and the training time (5-fold out-of-fold
  predictions for the threshold + the final fit);
* at ``--rows`` rows of the lab's generator: the training time of each family;
* ``churn score`` (:func:`churn_lib.scale.batch.score_file`) on ``--rows`` rows,
  plain and with ``explain=3``, in rows/s; aim: >= 200,000 rows/s explained
  with the logistic regression.

Everything runs in temporary homes, removed at the end. Figures are printed,
never asserted; the machine is shared, so compare ratios within one run.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAMILIES = ("logreg", "lightgbm")


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def wide(tmp: Path, rows: int) -> None:
    from churn_lib.run import runner
    from churn_lib.learn.train import TrainParams, train
    from tests import datasets

    home = tmp / "wide"
    datasets.telecom_home(home, rows=rows, seed=1)
    runner.run_direct(home=home, stages=("generate", "prepare"))
    print(f"\nwide contract: {rows:,} rows, 19 features (tests/datasets.py telecom), 25 % test split")
    print(f"  {'model':<22} {'ROC AUC':>8} {'F1':>7} {'Brier':>7} {'lift@10%':>9} {'trees':>6} {'train s':>8}")
    for family in FAMILIES:
        for cal in ("none", "sigmoid"):
            result, seconds = _timed(lambda: train(home=home, params=TrainParams(
                family=family, calibration=cal, min_f1=0.0, regression_tolerance=1.0)))
            m = result.entry["metrics"]
            model = result.model.model if cal != "none" else result.model
            trees = getattr(model, "best_iteration_", "-")
            print(f"  {family + ('' if cal == 'none' else ' + ' + cal):<22} {m['roc_auc']:8.4f} {m['f1']:7.4f} "
                  f"{m['brier']:7.4f} {m['lift_top_decile']:9.2f} {trees!s:>6} {seconds:8.1f}")


def scale(tmp: Path, rows: int) -> None:
    from churn_lib.scale import batch
    from churn_lib.run import runner
    from churn_lib.learn.train import TrainParams, train

    home = tmp / "scale"
    home.mkdir()
    _, seconds = _timed(lambda: runner.run_direct(home=home, stages=("generate", "prepare"),
                                                  params={"n_rows": rows}))
    print(f"\nlab's generator at {rows:,} rows (data made and prepared in {seconds:.1f} s)")
    print(f"  {'model':<10} {'train s':>8} {'ROC AUC':>8} {'trees':>6}   (5 out-of-fold fits + the final fit)")
    versions = {}
    for family in FAMILIES:
        result, seconds = _timed(lambda: train(home=home, version=family, params=TrainParams(
            family=family, min_f1=0.0, regression_tolerance=1.0)))
        versions[family] = result.entry["version"]
        trees = getattr(result.model, "best_iteration_", "-")
        print(f"  {family:<10} {seconds:8.1f} {result.entry['metrics']['roc_auc']:8.4f} {trees!s:>6}")
    src = home / "data" / "raw.csv"
    print(f"\nchurn score on {rows:,} rows ({src.stat().st_size / 2**20:.0f} MiB), in this process")
    print(f"  {'model':<10} {'plain rows/s':>13} {'explain=3 rows/s':>17} {'ratio':>6}")
    for family in FAMILIES:
        plain = batch.score_file(src, tmp / "plain.csv", home=home, model=versions[family])
        explained = batch.score_file(src, tmp / "explained.csv", home=home, model=versions[family], explain=3)
        aim = ""
        if family == "logreg":
            aim = f"   (aim >= 200,000: {'met' if explained.rows_per_second >= 200_000 else 'NOT met'})"
        print(f"  {family:<10} {plain.rows_per_second:13,.0f} {explained.rows_per_second:17,.0f} "
              f"{explained.rows_per_second / plain.rows_per_second:6.2f}{aim}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for training time and scoring")
    parser.add_argument("--wide-rows", type=int, default=7043, help="rows of the wide table (default 7,043)")
    parser.add_argument("--skip-scale", action="store_true", help="only the wide contract")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    logging.disable(logging.WARNING)
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-models-"))
    try:
        wide(tmp, args.wide_rows)
        if not args.skip_scale:
            scale(tmp, args.rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
