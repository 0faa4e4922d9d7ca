"""LightGBM's reasons in one run: our TreeSHAP tables against LightGBM's own ``pred_contrib``.

    .venv/bin/python bench/bench_treeshap.py [--sizes 100000 1000000] [--train-rows 20000] [--threads 2]

On the tests' telecom-like table (``tests/datasets.py``, 19 features, blanks in
``TotalCharges``) it trains a LightGBM (the family's defaults: max_depth 4,
num_leaves 15, early stopping) and the logistic regression, then prints:

* the tables: trees, groups, memory and the time to make and verify them (once per loaded model);
* contributions alone, rows/s, on the same float rows and trees with the same
  threads: ``churn_lib.models.treeshap`` (ours) against ``Booster.predict(pred_contrib=True)``
  (LightGBM's), and the largest difference between them (aim: >= 1.5x, <= 1e-9);
* for each size, one file of the telecom table scored by ``churn score``
  (:func:`churn_lib.scale.batch.score_file`, the model loaded as the command does):
  ``--explain 3`` with LightGBM against the contributions alone of the same
  file's valid rows (the tables on the float rows score_file makes, the same
  threads; aim: >= 0.7x), and plain LightGBM against the plain logistic
  regression on the same file (aim: >= 0.5x); as rows/s and as CPU seconds
  (every thread of the process: on a shared machine the steadier figure).

Everything runs in a temporary home, removed at the end. Figures are printed,
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


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _home(tmp: Path, train_rows: int) -> Path:
    from churn_lib.learn.train import TrainParams, train
    from churn_lib.run import runner
    from tests import datasets

    home = tmp / "home"
    datasets.telecom_home(home, rows=train_rows, seed=1)
    runner.run_direct(home=home, version="v1", stages=("generate", "prepare", "train"))  # logreg
    train(home=home, version="v2", params=TrainParams(family="lightgbm", min_f1=0.0, regression_tolerance=1.0))
    return home


def _rows(home: Path, contract, n: int, seed: int):
    """``n`` rows of the home's prepared table (typed as the contract says), drawn with replacement, a
    twentieth of the cells missing."""
    import numpy as np

    from churn_lib.data import read_csv
    from churn_lib.home import Home

    table = read_csv(Home.resolve(home).processed_csv, contract)[list(contract.feature_names)]
    rng = np.random.default_rng(seed)
    frame = table.iloc[rng.integers(0, len(table), n)].reset_index(drop=True)
    return frame.mask(rng.random(frame.shape) < 0.05)


def contributions(home: Path, scorer, sizes: list[int], threads: int) -> None:
    import numpy as np

    compiled = scorer.compiled
    print(f"\ncontributions alone ({threads} threads, same float rows, same {compiled.iterations} trees)")
    print(f"  {'rows':>10} {'ours rows/s':>12} {'LightGBM rows/s':>16} {'ratio':>6} {'max |diff|':>11}")
    for n in sizes:
        matrix = compiled._matrix(_rows(home, scorer.contract, n, seed=n % 97))
        (base, ours), t_ours = _timed(lambda: compiled.tables.contributions(matrix, threads=threads))
        ref, t_lgb = _timed(lambda: compiled.booster.predict(matrix, pred_contrib=True, num_threads=threads,
                                                             num_iteration=compiled.iterations))
        diff = max(np.max(np.abs(ours - ref[:, :-1])), np.max(np.abs(base - ref[:, -1])))
        print(f"  {n:>10,} {n / t_ours:>12,.0f} {n / t_lgb:>16,.0f} {t_lgb / t_ours:>5.1f}x {diff:>11.2g}")


def _timed_cpu(fn):
    """``(result, wall seconds, CPU seconds of this process: every thread)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def scoring(home: Path, tmp: Path, n: int, scorer, threads: int) -> None:
    """``churn score`` on one file of ``n`` rows: explained against the contributions alone of the same rows,
    plain LightGBM against the plain logistic regression, each as rows/s and as CPU seconds."""
    from churn_lib.data import read_csv
    from churn_lib.scale import batch
    from tests import datasets

    src = datasets.write(datasets.telecom(n, seed=7), tmp / f"score-{n}.csv")
    features, _, _, _ = batch.validate(read_csv(src, scorer.contract, columns=scorer.features), scorer.contract)
    matrix = scorer.compiled._matrix(features)  # the float rows score_file hands to the tables
    _, t_alone, c_alone = _timed_cpu(lambda: scorer.compiled.tables.contributions(matrix, threads=threads))

    def run(version: str, explain: int | None) -> tuple[float, float]:
        out = tmp / f"out-{version}-{explain}.csv"
        _, seconds, cpu = _timed_cpu(lambda: batch.score_file(src, out, home=home, model=version, explain=explain))
        out.unlink()
        return seconds, cpu

    (t_x, c_x), (t_lgb, c_lgb), (t_lr, c_lr) = run("v2", 3), run("v2", None), run("v1", None)
    print(f"\nchurn score on {n:,} rows (score_file, one process, the model loaded each time; "
          f"{len(matrix):,} valid rows)")
    print(f"  {'':34} {'rows/s':>10} {'CPU s':>7} {'ratio (rows/s)':>15} {'ratio (CPU)':>12}")
    print(f"  {'contributions alone (same rows)':34} {len(matrix) / t_alone:>10,.0f} {c_alone:>7.2f}")
    print(f"  {'LightGBM --explain 3':34} {n / t_x:>10,.0f} {c_x:>7.2f} {t_alone / t_x:>14.2f}x {c_alone / c_x:>11.2f}x"
          "   (aim >= 0.7x the contributions alone)")
    print(f"  {'LightGBM plain':34} {n / t_lgb:>10,.0f} {c_lgb:>7.2f} {t_lr / t_lgb:>14.2f}x {c_lr / c_lgb:>11.2f}x"
          "   (aim >= 0.5x the logistic regression)")
    print(f"  {'logistic regression plain':34} {n / t_lr:>10,.0f} {c_lr:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-scoring", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    logging.basicConfig(level=logging.ERROR)
    from churn_lib import scoring as _scoring

    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-treeshap-"))
    try:
        home = _home(tmp, args.train_rows)
        scorer, seconds = _timed(lambda: _scoring.load("v2", home=home))
        print(f"LightGBM v2 loaded and verified in {seconds:.2f} s; contributions: "
              f"{scorer.compiled.contributions_note}")
        if scorer.compiled.tables is None:
            print("the tables were refused: nothing to compare")
            return
        contributions(home, scorer, args.sizes, args.threads)
        if not args.skip_scoring:
            for n in args.sizes:
                scoring(home, tmp, n, scorer, args.threads)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
