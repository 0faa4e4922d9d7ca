"""LightGBM's reasons in one run: our TreeSHAP tables against LightGBM's own ``pred_contrib``.

    .venv/bin/python bench/bench_treeshap.py [--sizes 100000 1000000] [--train-rows 20000] [--threads 2]

On the tests' telecom-like table (``tests/datasets.py``, 19 features, blanks in
``TotalCharges``) it trains a LightGBM (the family's defaults: max_depth 4,
num_leaves 15, early stopping) and the logistic regression, then prints:

* the tables: trees, groups, memory and the time to make and verify them (once per loaded model);
* contributions alone, rows/s, on the same float rows and trees with the same
  threads: ``churn_lib.models.treeshap`` (ours) against ``Booster.predict(pred_contrib=True)``
  (LightGBM's), and the largest difference between them (aim: >= 1.5x, <= 1e-9);
* ``churn score --explain 3`` (:func:`churn_lib.scale.batch.score_file`) rows/s
  against the contributions alone (aim: >= 0.7x), and plain ``churn score``
  with LightGBM against the logistic regression (aim: >= 0.5x), on the first size.

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


def contributions(home: Path, scorer, sizes: list[int], threads: int) -> dict[int, float]:
    import numpy as np

    compiled = scorer.compiled
    print(f"\ncontributions alone ({threads} threads, same float rows, same {compiled.iterations} trees)")
    print(f"  {'rows':>10} {'ours rows/s':>12} {'LightGBM rows/s':>16} {'ratio':>6} {'max |diff|':>11}")
    ours_rate = {}
    for n in sizes:
        matrix = compiled._matrix(_rows(home, scorer.contract, n, seed=n % 97))
        (base, ours), t_ours = _timed(lambda: compiled.tables.contributions(matrix, threads=threads))
        ref, t_lgb = _timed(lambda: compiled.booster.predict(matrix, pred_contrib=True, num_threads=threads,
                                                             num_iteration=compiled.iterations))
        diff = max(np.max(np.abs(ours - ref[:, :-1])), np.max(np.abs(base - ref[:, -1])))
        ours_rate[n] = n / t_ours
        print(f"  {n:>10,} {n / t_ours:>12,.0f} {n / t_lgb:>16,.0f} {t_lgb / t_ours:>5.1f}x {diff:>11.2g}")
    return ours_rate


def scoring(home: Path, tmp: Path, n: int, ours_rate: float) -> None:
    from churn_lib.scale import batch
    from tests import datasets

    src = datasets.write(datasets.telecom(n, seed=7), tmp / "score.csv")

    def rate(version: str, explain: int | None) -> float:
        out = tmp / f"out-{version}-{explain}.csv"
        _, seconds = _timed(lambda: batch.score_file(src, out, home=home, model=version, explain=explain))
        out.unlink()
        return n / seconds

    lgb_explained, lgb_plain, lr_plain = rate("v2", 3), rate("v2", None), rate("v1", None)
    print(f"\nchurn score on {n:,} rows (one process)")
    print(f"  LightGBM --explain 3: {lgb_explained:>10,.0f} rows/s = {lgb_explained / ours_rate:.2f}x the "
          "contributions alone (aim >= 0.7x)")
    print(f"  LightGBM plain:       {lgb_plain:>10,.0f} rows/s = {lgb_plain / lr_plain:.2f}x the logistic "
          "regression's (aim >= 0.5x)")
    print(f"  logreg plain:         {lr_plain:>10,.0f} rows/s")


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
        rates = contributions(home, scorer, args.sizes, args.threads)
        if not args.skip_scoring:
            scoring(home, tmp, args.sizes[0], rates[args.sizes[0]])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
