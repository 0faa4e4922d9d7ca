"""Commands start fast: each imports only the libraries it uses.

Every command runs in a fresh interpreter (as ``churn`` does), which then reports
the third-party packages in ``sys.modules``. The lists below are the
expectation: a heavy import that a command does not use (pandas for
``churn --help``, joblib for reading the history ...) fails here, whichever
module brought it in. Times are measured in ``bench/``, never here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from churn_lib.logs import predictions as predlog

#: The heavy libraries of the project (what costs start-up time when imported).
HEAVY = frozenset({"pandas", "numpy", "scipy", "sklearn", "joblib", "matplotlib", "duckdb", "lightgbm", "dask",
                   "distributed", "papermill", "nbconvert", "nbformat", "jupyter_client", "fastapi", "uvicorn",
                   "starlette", "pydantic", "msgspec", "pyarrow", "yaml", "httpx"})

#: What ``churn drift`` uses on a window of logged predictions: the log read (DuckDB, msgspec, numpy) and the
#: distributions (scipy.special: not scipy.stats, nor the model); its tables are text, not pandas.
DRIFT_USES = frozenset({"numpy", "msgspec", "duckdb", "scipy"})

#: What ``churn feedback FILE`` uses: pandas and numpy read and check the file in blocks, msgspec is the
#: prediction log's record rule, DuckDB counts the outcomes that name a logged prediction.
FEEDBACK_USES = frozenset({"pandas", "numpy", "msgspec", "duckdb"})

#: What ``churn compare`` uses: DuckDB pairs the log's lines, numpy holds the pairs and the statistics (McNemar's
#: tails from ``math``: no scipy), msgspec is the record rule, yaml reads the home's contract and policy; no pandas
#: (its tables, ``Comparison.frame``, import it when drawn; the policy's retrain stages when a retrain asks for them).
COMPARE_USES = frozenset({"numpy", "msgspec", "duckdb", "yaml"})

# A command's name after `churn`, and the heavy libraries it may import (exactly these).
EXPECTED = [
    (["--help"], frozenset()),
    (["--version"], frozenset()),
    (["feedback", "--help"], frozenset()),
    (["history"], frozenset()),             # the registry's history is JSON lines: no joblib, no pandas
    (["registry", "list"], frozenset()),    # nothing registered: nothing to tabulate
    (["challenger"], frozenset()),
    (["feedback", "outcomes.csv"], FEEDBACK_USES),
]

_REPORT = """
import json, sys
from churn_lib.cli import main
try:
    status = main(sys.argv[2:])
except SystemExit as exc:  # --help, --version
    status = exc.code
with open(sys.argv[1], "w") as fh:
    json.dump({"status": status, "modules": sorted(sys.modules)}, fh)
"""


def _run(argv: list[str], home: Path, report: Path, *, full: bool = False) -> tuple[int, set[str], str]:
    """``churn ARGV`` in a fresh interpreter: its exit status, the packages it imported (every module with
    ``full``), and what it printed."""
    env = {**os.environ, "CHURN_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-c", _REPORT, str(report), *argv], env=env, capture_output=True,
                          text=True, timeout=300, cwd=home)
    assert report.exists(), proc.stderr
    found = json.loads(report.read_text())
    modules = set(found["modules"]) if full else {m.partition(".")[0] for m in found["modules"]}
    return found["status"], modules, proc.stdout + proc.stderr


@pytest.fixture
def feedback_home(home):
    """A home with one logged prediction and an outcomes file naming it."""
    rec = predlog.record(request_id="req-001", model_file="m.joblib", version="v1", threshold=0.5,
                         probability=0.9, features={"tenure_months": 6}, latency_ms=1.0, ts=1_700_000_000.0)
    home.logs_dir.mkdir(parents=True, exist_ok=True)
    predlog.append(rec, path=home.predictions_log)
    (home.root / "outcomes.csv").write_text("request_id,outcome\nreq-001,1\nreq-002,0\n", encoding="utf-8")
    return home


@pytest.mark.parametrize("argv,uses", EXPECTED, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_a_command_imports_only_what_it_uses(argv, uses, feedback_home, tmp_path):
    status, modules, output = _run(argv, feedback_home.root, tmp_path / "report.json")
    assert status == 0, output
    assert modules & HEAVY == uses, f"churn {' '.join(argv)}: unexpected {sorted(modules & HEAVY - uses)}, " \
                                    f"missing {sorted(uses - modules)}"


def test_feedback_still_matches_the_logged_prediction(feedback_home, tmp_path):
    """The light start-up changes nothing the user sees: the outcome naming a logged prediction is matched."""
    status, _, output = _run(["feedback", "outcomes.csv", "--json"], feedback_home.root, tmp_path / "report.json")
    assert status == 0
    result = json.loads(output)
    assert (result["accepted"], result["matched"]) == (2, 1)


def test_the_parser_is_the_same_whichever_command_is_built():
    """Building only the run command's flags gives that command the flags the full parser gives it."""
    from churn_lib.cli import build_parser

    full = build_parser()
    for command in ("generate", "train", "drift", "score", "performance", "simulate", "challenger", "export"):
        only = build_parser(command)
        argv = {"score": [command, "a.csv", "b.csv"], "export": [command, "v1", "out"]}.get(command, [command])
        assert vars(only.parse_args(argv)).keys() == vars(full.parse_args(argv)).keys()
        assert {k: v for k, v in vars(only.parse_args(argv)).items() if not k.startswith("_") and k != "func"} == \
               {k: v for k, v in vars(full.parse_args(argv)).items() if not k.startswith("_") and k != "func"}


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_drift_imports_no_scipy_stats_nor_the_model(trained_home, tmp_path, as_json):
    """A drift check with a verdict: the statistics' distributions come from scipy.special, not scipy.stats;
    its statistics table is printed without pandas."""
    from churn_lib import simulate

    simulate.simulate(200, home=trained_home, seed=1)
    argv = ["drift", *(["--json"] if as_json else [])]  # the 200 lines are read by DuckDB
    status, modules, output = _run(argv, trained_home.root, tmp_path / "report.json", full=True)
    assert status == 0, output
    if as_json:
        assert json.loads(output)["verdict"] == "no drift"
    else:
        assert "drift check: NO DRIFT" in output and "positive_rate" in output
    heavy = {m.partition(".")[0] for m in modules} & HEAVY
    assert heavy == DRIFT_USES, f"unexpected {sorted(heavy - DRIFT_USES)}, missing {sorted(DRIFT_USES - heavy)}"
    assert "scipy.stats" not in modules


#: A lab request's features: a line is compared only when it is a record of the contract (every feature given).
FEATURES = {"tenure_months": 6, "num_complaints": 3, "avg_session_minutes": 12.5, "plan_type": "basic",
            "region": "NA"}


def test_compare_imports_no_scipy_nor_the_model(home, tmp_path):
    """A comparison with a verdict: the pairs, the bootstrap and McNemar's test import neither scipy nor sklearn."""
    rng = np.random.default_rng(0)
    lines, outcomes = [], []
    for i, truth in enumerate(rng.beta(1, 3, 600)):
        for role, p, version in (("champion", float(np.clip(truth + rng.normal(0, 0.15), 0, 1)), "v1"),
                                 ("challenger", float(truth), "v2")):
            rec = predlog.record(request_id=f"r{i}", model_file=f"model_{version}.joblib", version=version,
                                 threshold=0.3, probability=round(p, 6), features=FEATURES,
                                 latency_ms=1.0, ts=1_700_000_000.0 + i)
            lines.append(predlog.format_line({**rec, "role": role} if role == "challenger" else rec))
        outcomes.append(f'{{"request_id":"r{i}","outcome":{int(rng.random() < truth)}}}\n')
    home.logs_dir.mkdir(parents=True, exist_ok=True)
    home.predictions_log.write_bytes(b"".join(lines))
    home.feedback_log.write_text("".join(outcomes))
    status, modules, output = _run(["compare", "--json"], home.root, tmp_path / "report.json", full=True)
    assert status == 0, output
    assert json.loads(output)["pairs"] == 600
    heavy = {m.partition(".")[0] for m in modules} & HEAVY
    assert heavy == COMPARE_USES, f"unexpected {sorted(heavy - COMPARE_USES)}, missing {sorted(COMPARE_USES - heavy)}"


@pytest.mark.parametrize("seed", range(3))
def test_the_drift_distributions_are_scipy_stats_to_the_bit(seed):
    """Each distribution the drift statistics take from scipy.special (or .kolmogorov) gives scipy.stats' value."""
    stats = pytest.importorskip("scipy.stats")
    from churn_lib.drift import kolmogorov
    from churn_lib.drift import stats as drift_stats

    rng = np.random.default_rng(seed)
    for n in [1, 2, 3, 7, 50, 139, 140, 141, 999, 5000, 100_000, 100_001, 1_000_000]:
        for d in [0.0, 0.5 / n, 1.0 / n, 0.5, 1.0, *rng.uniform(0, 1, 3), *rng.uniform(0, 4 / np.sqrt(n), 4)]:
            assert kolmogorov.sf(d, n) == float(stats.kstwo.sf(d, n)), (d, n)
    for _ in range(200):
        ref, prod = rng.integers(0, 60, 6).astype(float), rng.integers(0, 3000, 6).astype(float)
        ref[rng.integers(6)] = 0
        table = np.vstack([ref, prod])
        table = table[:, table.sum(axis=0) > 0]
        res = stats.chi2_contingency(table, correction=False)
        assert drift_stats._chi2_two_sample(ref, prod) == (float(res.statistic), float(res.pvalue))
        n = int(rng.integers(1, 2_000_000))
        k, p0 = int(rng.integers(1, min(n, 300) + 1)), float(rng.uniform(1e-7, 0.5))
        assert drift_stats._binomial_excess(k, n, p0) == float(stats.binom.sf(k - 1, n, p0))
