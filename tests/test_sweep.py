"""Sweeps: the spec, data isolation of parallel runs, registry consistency, the winner, the CLI.

One small sweep runs once on a local Dask cluster of 2 workers (reached by its
address, as ``--scheduler`` does) and several tests read what it left.
"""

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from churn_lib import Home, InvalidParameter, cli, registry
from churn_lib.run import runner
from churn_lib.scale import cluster, sweep
from churn_lib.scale.sweep import selection
from churn_lib import contract, data, quality
from churn_lib.learn import metrics, train as training
from churn_lib.models import logreg
from . import lab_contract as schema
from churn_lib._io import sha256_file
from churn_lib.home import DATA_ENV_VAR

SPEC = """\
name: small
stages: generate,prepare,train
params: {n_rows: 600}
sets:
  - {seed: 42, C: 0.01}
  - {n_rows: 50}          # fails in prepare: fewer rows than min_rows
  - {seed: 7, C: 1.0}
select: {holdout_rows: 5000, holdout_seed: 99}
"""


# --- the spec ------------------------------------------------------------------------

def test_grid_and_sets_expand_over_the_common_params():
    spec = sweep.build_spec({"params": {"n_rows": 500}, "sets": [{"C": 5.0}],
                             "grid": {"C": [0.1, 1.0], "seed": [1, 2]}})
    assert spec.sets == ({"n_rows": 500, "C": 5.0},
                         {"n_rows": 500, "C": 0.1, "seed": 1}, {"n_rows": 500, "C": 0.1, "seed": 2},
                         {"n_rows": 500, "C": 1.0, "seed": 1}, {"n_rows": 500, "C": 1.0, "seed": 2})
    assert spec.stages == runner.STAGES and spec.metric == "f1" and spec.promote


@pytest.mark.parametrize("raw, message", [
    ({}, "has no parameter set"),
    ({"grid": {"C": [1.0]}, "colour": 1}, r"unknown key\(s\) colour"),
    ({"sets": [{"version": "x"}]}, "names a version"),
    ({"sets": [{"C": 1.0}, {"C": 1.0}]}, "sets 0 and 1 are the same"),
    ({"grid": {"C": []}}, "non-empty list"),
    ({"grid": {"C": [1.0]}, "stages": "prepare,train"}, "must include generate"),
    ({"grid": {"C": [1.0]}, "select": {"metric": "auc"}}, "metric 'auc' is not one of"),
    ({"grid": {"seed": [1, 5]}, "select": {"holdout_seed": 5}}, "the holdout's seed"),
    ({"grid": {"C": [1.0]}, "select": {"holdout_rows": 10}}, "at least 100"),
])
def test_bad_specs_are_refused_with_a_clear_message(raw, message):
    with pytest.raises(InvalidParameter, match=message):
        sweep.build_spec(raw)


def test_load_spec_reads_yaml_and_names_the_sweep_after_the_file(tmp_path):
    path = tmp_path / "regularisation.yaml"
    path.write_text(SPEC.replace("name: small\n", ""))
    spec = sweep.load_spec(path)
    assert spec.name == "regularisation" and len(spec.sets) == 3 and spec.holdout.seed == 99
    path.write_text("grid: [unclosed")
    with pytest.raises(InvalidParameter, match="is not valid YAML"):
        sweep.load_spec(path)
    with pytest.raises(InvalidParameter, match="cannot read sweep spec"):
        sweep.load_spec(tmp_path / "missing.yaml")


def test_a_set_with_an_unknown_parameter_fails_before_any_kernel_starts(home):
    spec = sweep.build_spec({"sets": [{"C": 1.0}, {"n_row": 10}]})
    with pytest.raises(InvalidParameter, match=r"set 1 \(n_row=10\): unknown parameter\(s\) n_row"):
        sweep.run_sweep(spec, home=home, serial=True)
    assert not list(home.reports_dir.iterdir()) and not (home.data_dir / "sweeps").exists()


def test_a_grid_over_model_families_refuses_another_familys_parameter_before_any_kernel_starts(home):
    spec = sweep.build_spec({"grid": {"family": ["logreg", "lightgbm"], "C": [0.1]}})
    assert [s["family"] for s in spec.sets] == ["logreg", "lightgbm"]
    with pytest.raises(InvalidParameter, match=r"set 1 \(.*family=lightgbm.*\): C is a parameter of family=logreg"):
        sweep.run_sweep(spec, home=home, serial=True)
    assert not list(home.reports_dir.iterdir())
    sweep.build_spec({"sets": [{"family": "logreg", "C": 0.1}, {"family": "lightgbm", "num_leaves": 7}]})


# --- data isolation: a home with a data folder of its own -------------------------------

def test_a_home_can_keep_its_data_in_a_folder_of_its_own(tmp_path, monkeypatch):
    own = Home(tmp_path / "h", data_root=tmp_path / "d")
    assert own.raw_csv == tmp_path / "d" / "raw.csv" and own.train_stats_json == tmp_path / "d" / "train_stats.json"
    assert own.registry_dir == tmp_path / "h" / "registry" and own.reports_dir == tmp_path / "h" / "reports"
    assert Home(tmp_path / "h").train_stats_json == tmp_path / "h" / "registry" / "train_stats.json"
    monkeypatch.setenv("CHURN_HOME", str(tmp_path / "h"))
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "d"))
    assert Home.resolve() == own  # what a kernel of a sweep run sees
    assert Home.resolve(tmp_path / "h").data_dir == tmp_path / "h" / "data"  # an explicit home is explicit
    env = runner._kernel_env(Home(tmp_path / "h"))
    assert DATA_ENV_VAR not in env and env["CHURN_HOME"] == str(tmp_path / "h")  # no stale data folder leaks
    assert runner._kernel_env(own)[DATA_ENV_VAR] == str(tmp_path / "d")


# --- the winner ---------------------------------------------------------------------------

def _register(home, version, *, C, passed, seed=1):
    df = data.generate(400, seed=seed)
    pipe = logreg.build(contract.lab(), seed=seed, params=logreg.Params(C=C))
    pipe.fit(df[list(schema.FEATURES)], df[schema.TARGET])
    registry.register(pipe, {"passed_gate": passed, "threshold": 0.5, "seed": seed}, home=home, version=version,
                      promote_if_passed=False)


def _result(home, runs, metric="f1"):
    return sweep.SweepResult(sweep_id="sweep-test", name="t", metric=metric, holdout=sweep.Holdout(2000, 99),
                             runs=runs, where="test", started_at_utc="", home=str(home.root))


def _outcome(i, version, passed):
    return sweep.RunOutcome(index=i, params={"i": i}, data_dir="-", status="ok", version=version, passed_gate=passed)


def test_the_best_version_that_passed_the_gate_on_the_holdout_is_promoted(home):
    for version, C, passed in (("a", 1e-4, True), ("b", 1.0, True), ("c", 1.0, False)):
        _register(home, version, C=C, passed=passed, seed={"a": 1, "b": 2, "c": 3}[version])
    runs = [_outcome(0, "a", True), _outcome(1, "b", True), _outcome(2, "c", False)]
    result = _result(home, runs, metric="brier")
    selection.select(result, home, promote=True)
    X, y = selection.holdout_frame(result.holdout)
    brier = {}
    for v in "abc":
        model = registry.load_model(registry.get(v, home=home), home=home)
        brier[v] = metrics.compute_metrics(y, model.predict_proba(X)[:, 1], 0.5)["brier"]
    assert {r.version: round(r.holdout["brier"], 10) for r in runs} == {v: round(b, 10) for v, b in brier.items()}
    expected = min(("a", "b"), key=brier.get)  # lower Brier is better; c failed its gate, whatever its score
    assert result.winner == expected and result.promoted
    assert registry.current_entry(home=home)["version"] == expected
    last = registry.history(home=home)[-1]
    assert last["action"] == "promote" and "best of sweep sweep-test by holdout brier" in last["reason"]


def test_nothing_is_promoted_when_no_version_passed_or_promotion_is_off(home):
    _register(home, "a", C=1.0, passed=False)
    _register(home, "b", C=1.0, passed=True, seed=2)
    result = _result(home, [_outcome(0, "a", False)])
    selection.select(result, home, promote=True)
    assert result.winner is None and not result.promoted and "no version of the sweep passed the gate" in result.note
    result = _result(home, [_outcome(0, "b", True)])
    selection.select(result, home, promote=False)
    assert result.winner == "b" and not result.promoted and registry.current_file(home=home) is None


# --- registry consistency under many writers -----------------------------------------------

@pytest.fixture(scope="module")
def dask_address():
    """A local Dask cluster of 2 worker processes for this module, shut down at its end."""
    with cluster.connect(n_workers=2) as client:
        yield client.scheduler.address


def test_parallel_runs_on_dask_claim_distinct_versions_and_register_consistently(dask_address, home):
    """Eight runs' registry steps at once from two worker processes (the runner's path, without kernels)."""
    from distributed import Client

    root = str(home.root)

    def claim_train_register(k):
        own = Home(Path(root), data_root=Path(root) / "data" / "stress" / str(k))
        data.write_raw(data.generate(300, seed=k), home=own)
        quality.prepare(home=own)
        version = runner._run_version(own, None, ("generate", "prepare", "train"))
        training.train(home=own, version=version, params=training.TrainParams(seed=k, cv_folds=2), register=False)
        entry, promoted = registry.register_candidate(version, home=own, promote_if_passed=False)
        return version, entry["model_file"], promoted

    with Client(dask_address) as client:
        done = client.gather([client.submit(claim_train_register, k, pure=False) for k in range(8)])
    versions = sorted(v for v, _, _ in done)
    assert versions == sorted(f"v{k}" for k in range(1, 9))
    entries = registry.load_entries(home=home)
    assert sorted(e["version"] for e in entries) == versions
    assert len({e["model_file"] for e in entries}) == 8
    for e in entries:
        registry.verify(e, home=home)  # artifact present and matching its sha256
    assert not any(p for _, _, p in done) and registry.current_file(home=home) is None
    assert not list(home.candidates_dir.glob("*"))


# --- one small sweep, end to end, through the command ---------------------------------------

@pytest.fixture(scope="module")
def swept(dask_address, tmp_path_factory):
    """``churn sweep`` of three sets (one failing) on the module's 2-worker cluster."""
    base = tmp_path_factory.mktemp("sweep")
    root = base / "home"
    spec = base / "small.yaml"
    spec.write_text(SPEC)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["sweep", str(spec), "--home", str(root), "--scheduler", dask_address])
    home = Home(root)
    record = json.loads(next((home.reports_dir / "_sweeps").glob("*/sweep.json")).read_text())
    return home, code, out.getvalue(), err.getvalue(), record


def test_every_set_ran_as_its_own_version_and_the_failure_is_reported(swept):
    home, code, out, err, record = swept
    assert code == cli.EXIT_SWEEP_FAILURES  # a run failed; the others completed
    runs = {r["index"]: r for r in record["runs"]}
    assert [runs[i]["status"] for i in range(3)] == ["ok", "failed", "ok"]
    versions = [runs[i]["version"] for i in range(3)]
    assert sorted(versions) == ["v1", "v2", "v3"]
    failed = runs[1]
    assert "stage prepare" in failed["error"] and "min_rows" in failed["error"]
    assert failed["report"].endswith("02_prepare_data.html") and Path(failed["report"]).exists()
    assert f"failed: set 1 (n_rows=50) as {failed['version']}" in out and failed["report"] in out
    assert "runs ok, 1 failed" in out.replace("2 of 3 runs ok", "runs ok")
    assert "Traceback" not in err


def test_registry_is_consistent_and_only_the_winner_was_promoted(swept):
    home, _, _, _, record = swept
    entries = registry.load_entries(home=home)
    ok = sorted(r["version"] for r in record["runs"] if r["status"] == "ok")
    assert sorted(e["version"] for e in entries) == ok  # the failed run registered nothing
    for e in entries:
        registry.verify(e, home=home)
    assert not list(home.candidates_dir.glob("*"))
    history = registry.history(home=home)
    assert [h["action"] for h in history] == ["promote"]  # runs did not promote themselves
    assert history[0]["version"] == record["winner"] == registry.current_entry(home=home)["version"]
    assert record["promoted"] and f"winner: {record['winner']}" in swept[2]


def test_the_winner_is_best_on_the_common_holdout_by_the_pipelines_own_scores(swept):
    home, _, _, _, record = swept
    df = data.generate(5000, seed=99)
    X, y = df[list(schema.FEATURES)], df[schema.TARGET].to_numpy()
    f1 = {}
    for e in registry.load_entries(home=home):
        assert e["passed_gate"]
        proba = registry.load_model(e, home=home).predict_proba(X)[:, 1]
        f1[e["version"]] = metrics.compute_metrics(y, proba, e["threshold"])["f1"]
    assert record["winner"] == max(f1, key=f1.get)
    for r in record["runs"]:
        if r["status"] == "ok":
            assert r["holdout"]["f1"] == pytest.approx(f1[r["version"]], abs=1e-12)


def test_each_run_had_its_own_data_and_the_shared_home_none(swept):
    home, _, _, _, record = swept
    assert not home.raw_csv.exists() and not home.processed_csv.exists()  # nobody wrote the shared data files
    for r in record["runs"]:
        folder = Path(r["data_dir"])
        assert folder.parent.parent == home.data_dir / "sweeps"
        n_rows = r["params"]["n_rows"]
        assert len((folder / "raw.csv").read_text().splitlines()) == n_rows + 1
        if r["status"] == "ok":
            entry = registry.get(r["version"], home=home)
            assert entry["data_sha256"] == sha256_file(folder / "processed.csv")
            assert entry["data_file"] == (folder / "processed.csv").relative_to(home.root).as_posix()
            run = json.loads((home.reports_dir / r["version"] / "run.json").read_text())
            assert run["data_dir"] == str(folder) and run["parameters"] == r["params"]
    winner = next(r for r in record["runs"] if r["version"] == record["winner"])
    assert home.train_stats_json.read_bytes() == (Path(winner["data_dir"]) / "train_stats.json").read_bytes()


def test_reports_per_version_and_the_index_shows_the_sweep_as_a_sortable_group(swept):
    home, _, _, _, record = swept
    for r in record["runs"]:
        if r["status"] == "ok":
            for nb in ("01_generate_data", "02_prepare_data", "03_train"):
                assert (home.reports_dir / r["version"] / f"{nb}.html").exists()
    index = (home.reports_dir / "index.html").read_text()
    sweep_id = record["sweep_id"]
    assert "<h2>Sweeps</h2>" in index and f"id='{sweep_id}'" in index and "winner" in index
    assert f"href='_sweeps/{sweep_id}/by-brier.html'" in index
    brier = (home.reports_dir / "_sweeps" / sweep_id / "by-brier.html").read_text()
    order = [r["version"] for r in sorted((r for r in record["runs"] if r["holdout"]),
                                          key=lambda r: r["holdout"]["brier"])]
    positions = [brier.index(f">{v}</a>") for v in order]
    assert positions == sorted(positions)  # best (lowest) Brier first
    assert "href='../../index.html'" in brier and "failed report" in brier


def test_progress_shows_runs_done_running_and_failed(swept):
    _, _, out, _, _ = swept
    counts = [tuple(map(int, m)) for m in re.findall(r"^\[(\d+)/3 done, (\d+) running, (\d+) failed\]", out, re.M)]
    assert counts[-1] == (3, 0, 1)
    assert all(running <= 2 for _, running, _ in counts)  # never more than the two workers
    assert [d for d, _, _ in counts] == sorted(d for d, _, _ in counts)
    assert "set 1: prepare failed" in out and "set 0: train ok" in out


def test_a_serial_sweep_reports_progress_and_a_failure_without_promoting(home):
    spec = sweep.build_spec({"stages": "generate,prepare,train", "sets": [{"missing": 0.5}]})  # prepare blocks
    events = []
    result = sweep.run_sweep(spec, home=home, serial=True, on_progress=events.append)
    assert [r.status for r in result.runs] == ["failed"] and result.winner is None
    assert result.note == "no run succeeded; nothing promoted" and registry.load_entries(home=home) == []
    assert (events[0].event, events[0].stage, events[0].status, events[0].running) == ("stage", "generate", "start", 1)
    assert (events[-1].event, events[-1].done, events[-1].failed, events[-1].running) == ("finished", 1, 1, 0)
    assert "failed: set 0 (missing=0.5)" in result.summary() and "missing_rate on tenure_months" in result.summary()
    assert result.where.startswith("this process")
