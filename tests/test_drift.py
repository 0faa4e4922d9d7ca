"""Drift monitoring: real drift is caught, training-like traffic stays quiet,
thin windows get "insufficient data", and the command says so by its exit status."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from churn_lib import cli, drift, plots, registry, scoring, simulate
from churn_lib.logs import predictions as predlog
from churn_lib.run import runner
from churn_lib.exceptions import IntegrityError, InvalidParameter, RegistryError

SHIFT_1_STD = simulate.Shift(mean={"tenure_months": 1.0})
NARROW = simulate.Shift(scale={"tenure_months": 0.5})
REGION_MIX = simulate.Shift(mix={"region": {"NA": 0.5, "EU": 0.2, "AF": 0.15, "AS": 0.15}})


@pytest.fixture(scope="module")
def model(_trained_template):
    """The trained template's v1: scorer and profile (read-only)."""
    scorer = scoring.load(home=_trained_template)
    return scorer, drift.load_profile(scorer.entry, home=_trained_template)


def window(model, n_rows, seed, shift=None):
    scorer, profile = model
    rows = simulate.draw(n_rows, seed=seed, shift=shift, profile=profile)
    rows["probability"] = scorer.predict_proba(rows)
    return drift.compare(rows, profile)


def stat(result, feature, name):
    return next(s for s in result.statistics if s.feature == feature and s.name == name)


def run_main(capsys, *args):
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --- the profile -------------------------------------------------------------------

def test_training_saves_a_reference_profile_beside_the_model(trained_home):
    entry = registry.current_entry(home=trained_home)
    assert entry["profile_file"] == entry["model_file"].replace(".joblib", ".profile.json")
    profile = drift.load_profile(entry, home=trained_home)
    assert profile.n_train == entry["n_train"] == 900 and profile.n_test == entry["n_test"] == 300
    assert profile.threshold == entry["threshold"]
    tenure = profile.numeric["tenure_months"]
    assert tenure.min == 1 and tenure.max == 59 and abs(tenure.mean - 30) < 2 and abs(tenure.std - 17) < 1
    assert abs(sum(tenure.proportions) - 1) < 1e-9 and len(tenure.proportions) == len(tenure.edges) + 1
    assert np.all(np.diff(tenure.cdf) >= 0) and tenure.cdf[-1] == 1.0
    assert set(profile.categorical["region"].counts) == {"NA", "EU", "AF", "AS"}  # NA stays North America
    assert 0 < profile.positive_rate < 1
    assert drift.Profile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


def test_an_altered_profile_is_refused(trained_home):
    entry = registry.current_entry(home=trained_home)
    path = trained_home.models_dir / entry["profile_file"]
    path.write_text(path.read_text().replace('"n_train": 900', '"n_train": 901'))
    with pytest.raises(IntegrityError, match="does not match its registered sha256"):
        drift.load_profile(entry, home=trained_home)


def _strip_profiles(home):
    entries = registry.load_entries(home=home)
    for e in entries:
        e.pop("profile_file"), e.pop("profile_sha256")
    home.metadata_json.write_text(json.dumps(entries))


def test_a_model_registered_before_drift_monitoring_says_retrain(trained_home, capsys):
    _strip_profiles(trained_home)
    simulate.simulate(200, home=trained_home, seed=1)
    with pytest.raises(RegistryError, match="retrain to get a reference profile"):
        drift.check(home=trained_home)
    code, _, err = run_main(capsys, "drift")
    assert code == 1 and err.startswith("churn: error:") and "retrain" in err


# --- the statistics, on simulated windows -------------------------------------------

def test_a_one_std_shift_of_tenure_over_200_rows_is_caught_where_the_labs_z_is_not(model):
    result = window(model, 200, seed=1, shift=SHIFT_1_STD)
    assert result.verdict == drift.DRIFT
    lab = stat(result, "tenure_months", "lab_z")
    assert 0.8 < lab.value < 1.2 and not lab.alert  # the lab's rule: z >= 2.5
    assert stat(result, "tenure_months", "mean_shift").alert
    assert stat(result, "tenure_months", "ks").alert


def test_a_change_of_spread_with_the_same_mean_is_caught(model):
    result = window(model, 200, seed=2, shift=NARROW)
    assert result.verdict == drift.DRIFT
    assert stat(result, "tenure_months", "lab_z").value < 0.2
    assert not stat(result, "tenure_months", "mean_shift").alert
    assert stat(result, "tenure_months", "ks").alert and stat(result, "tenure_months", "psi").alert


def test_a_change_of_region_mix_is_caught(model):
    result = window(model, 200, seed=3, shift=REGION_MIX)
    assert result.verdict == drift.DRIFT
    assert stat(result, "region", "chi2").alert
    assert "region" in {s.feature for s in result.alerts}


def test_training_like_traffic_raises_no_alarm_in_95_of_100_trials(model):
    alarms = [window(model, 200, seed=seed).verdict == drift.DRIFT for seed in range(100)]
    assert sum(alarms) <= 5, f"{sum(alarms)} false alarms in 100 trials"


def test_five_rows_give_insufficient_data_not_an_alarm(model):
    result = window(model, 5, seed=4, shift=simulate.Shift(mean={"tenure_months": 5.0}))
    assert result.verdict == drift.INSUFFICIENT and result.statistics == [] and result.n_rows == 5
    assert "at least 100" in result.message


def test_unseen_categories_and_out_of_range_values_are_shares_with_a_test(model):
    scorer, profile = model
    rows = simulate.draw(200, seed=5, profile=profile)
    rows.loc[:9, "region"] = "LATAM"
    rows.loc[:9, "avg_session_minutes"] = 400.0
    rows["probability"] = scorer.predict_proba(rows)
    result = drift.compare(rows, profile)
    unseen, outside = stat(result, "region", "unseen"), stat(result, "avg_session_minutes", "out_of_range")
    assert unseen.value == outside.value == 0.05 and unseen.alert and outside.alert


def test_the_family_wise_rate_is_split_over_the_tests(model):
    result = window(model, 200, seed=6)
    assert result.n_tests == 19 and result.alpha_per_test == pytest.approx(0.05 / 19)
    assert {s.name for s in result.statistics} >= {"lab_z", "mean_shift", "psi", "ks", "chi2", "unseen",
                                                  "out_of_range", "positive_rate", "probability_ks"}


def test_thresholds_are_validated():
    with pytest.raises(InvalidParameter, match="alpha"):
        drift.Thresholds(alpha=0)
    with pytest.raises(InvalidParameter, match="min_window_rows must be an integer >= 2, got 1"):
        drift.Thresholds(min_window_rows=1)


@pytest.mark.parametrize("text, expected", [("2025-01-01", 1735689600.0), ("2025-01-01T01:00:00Z", 1735693200.0),
                                            ("2025-01-01T02:00:00+01:00", 1735693200.0), ("1735689600", 1735689600.0),
                                            ("2h", 10_000 - 7200.0), ("30m", 10_000 - 1800.0)])
def test_since_takes_ages_unix_seconds_and_iso_times(text, expected):
    assert drift.parse_since(text, now=10_000.0) == expected


def test_a_bad_since_names_the_accepted_forms():
    with pytest.raises(InvalidParameter, match="an age"):
        drift.parse_since("last tuesday")


# --- through the log and the command ------------------------------------------------

def test_the_command_exits_0_4_or_5_by_verdict(trained_home, capsys):
    code, out, _ = run_main(capsys, "drift")
    assert code == cli.EXIT_INSUFFICIENT_DATA == 5 and "INSUFFICIENT DATA" in out  # no log yet
    simulate.simulate(200, home=trained_home, seed=7)
    code, out, _ = run_main(capsys, "drift", "--last", "200")
    assert code == cli.EXIT_OK and "NO DRIFT" in out
    simulate.simulate(200, home=trained_home, seed=8, shift=SHIFT_1_STD)
    code, out, _ = run_main(capsys, "drift", "--last", "200", "--json")
    payload = json.loads(out)
    assert code == cli.EXIT_DRIFT == 4 and payload["verdict"] == "drift"
    assert payload["models"][0]["n_rows"] == 200 and payload["read"]["records"] >= 200
    code, out, _ = run_main(capsys, "drift", "--last", "5")
    assert code == 5 and "insufficient data" in out


def test_a_log_with_garbage_lines_is_read_and_the_garbage_counted(trained_home, capsys):
    simulate.simulate(150, home=trained_home, seed=9)
    with open(trained_home.predictions_log, "ab") as fh:
        fh.write(b"garbage\n{\"truncated\": \n\n[1]\n")
    simulate.simulate(150, home=trained_home, seed=10)
    with open(trained_home.predictions_log, "ab") as fh:
        fh.write(b'{"request_id": "half a line')
    # the window (1000) is most of the log: DuckDB reads every line (a blank line is no line to any reader)
    result = drift.check(home=trained_home)
    assert result.verdict == drift.NO_DRIFT and result.models[0].n_rows == 300
    assert result.read["skipped"] == {"malformed": 2, "not an object": 1, "truncated": 1}
    code, out, _ = run_main(capsys, "drift")
    assert code == 0 and "4 skipped (malformed 2, not an object 1, truncated 1)" in out
    assert drift.check(home=trained_home, since=0).read["skipped"] == {"malformed": 2, "not an object": 1,
                                                                       "truncated": 1}
    # a small window is read backwards from the end (here one chunk: the whole file), by the same rule
    result = drift.check(home=trained_home, last=20)
    assert result.models[0].n_rows == 20
    assert result.read["skipped"] == {"malformed": 2, "not an object": 1, "truncated": 1}


def test_each_model_is_compared_with_its_own_profile(trained_home, capsys):
    from churn_lib.learn import train as training

    simulate.simulate(200, home=trained_home, seed=11, shift=REGION_MIX)
    training.train(home=trained_home, version="v2", params=training.TrainParams(seed=7))
    registry.promote("v2", home=trained_home, force=True)
    simulate.simulate(200, home=trained_home, seed=12)
    predlog.append(dict(json.loads(trained_home.predictions_log.read_text().splitlines()[-1]),
                        model_version="churn_model_v9_elsewhere.joblib", version="v9"),
                   path=trained_home.predictions_log)
    current = drift.check(home=trained_home)
    assert [m.version for m in current.models] == ["v2"] and current.verdict == drift.NO_DRIFT
    every = drift.check(home=trained_home, model="all")
    assert {m.version: m.verdict for m in every.models} == {"v1": drift.DRIFT, "v2": drift.NO_DRIFT}
    assert every.verdict == drift.DRIFT and every.unknown_models == {"churn_model_v9_elsewhere.joblib": 1}
    code, out, _ = run_main(capsys, "drift", "--version", "v1")
    assert code == 4 and "v1" in out and "region" in out
    code, _, err = run_main(capsys, "drift", "--version", "v8")
    assert code == 1 and "no registered model named 'v8'" in err


def test_since_selects_by_time(trained_home, capsys):
    import time

    day = 86400.0
    simulate.simulate(200, home=trained_home, seed=13, shift=SHIFT_1_STD, start_ts=time.time() - 3 * day)
    simulate.simulate(200, home=trained_home, seed=14)
    recent = drift.check(home=trained_home, since="1d")
    assert recent.models[0].n_rows == 200 and recent.verdict == drift.NO_DRIFT
    assert drift.check(home=trained_home, since="4d").verdict == drift.DRIFT
    assert drift.check(home=trained_home, since="4d", last=200).verdict == drift.NO_DRIFT  # the newest 200
    code, _, _ = run_main(capsys, "drift", "--since", "1d")
    assert code == 0


def test_the_command_refuses_bad_windows(trained_home, capsys):
    for args in (["--last", "0"], ["--last", "10", "--since", "1h"], ["--since", "soon"], ["--alpha", "1"]):
        with pytest.raises(SystemExit) as info:
            cli.main(["drift", *args])
        assert info.value.code == 2, args
    capsys.readouterr()


def test_the_result_renders_as_tables_plots_and_json(trained_home, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    simulate.simulate(200, home=trained_home, seed=15, shift=NARROW)
    result = drift.check(home=trained_home)
    assert result.statistics_frame().shape[0] == 24 and result.summary_frame().loc[0, "verdict"] == "drift"
    axes = plots.drift_features(result)
    assert axes.size == 6 and "DRIFT" in axes.flat[0].get_title()
    ax = plots.drift_feature(result, "region")
    assert ax.get_title().endswith("no alert")
    [path] = drift.write_result(result, home=trained_home)
    assert path == trained_home.reports_dir / "v1" / "drift" / "drift.json"
    assert json.loads(path.read_text())["verdict"] == "drift"


def test_the_notebook_runs_under_papermill_with_its_defaults(trained_home, tmp_path):
    pytest.importorskip("papermill")
    simulate.simulate(300, home=trained_home, seed=16, shift=REGION_MIX)
    src = str(runner.notebooks_dir() / "05_monitor_drift.ipynb")
    out = tmp_path / "05_out.ipynb"
    env = {**{k: v for k, v in os.environ.items() if k != "MPLBACKEND"}, "CHURN_HOME": str(trained_home.root)}
    proc = subprocess.run([sys.executable, "-m", "papermill", "-k", "python3", "--no-progress-bar", src, str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "drift check: DRIFT" in text and "image/png" in text
    written = json.loads((trained_home.reports_dir / "v1" / "drift" / "drift.json").read_text())
    assert written["models"][0]["verdict"] == "drift"
    assert "v1: ok (estimated F1" in text  # no outcome yet: 300 predictions estimated
    assert [r["kind"] for r in map(json.loads, trained_home.monitoring_log.read_text().splitlines())] == \
        ["drift", "performance"]


@pytest.mark.parametrize("command", ["drift", "simulate"])
def test_the_commands_have_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0 and f"usage: churn {command}" in capsys.readouterr().out


def test_the_installed_command_reports_insufficient_data_by_exit_status(trained_home):
    proc = subprocess.run([sys.executable, "-m", "churn_lib.cli", "drift", "--home", str(trained_home.root)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 5 and "INSUFFICIENT DATA" in proc.stdout and proc.stderr == ""


def test_the_small_and_the_large_window_paths_count_the_same_log_alike(trained_home, monkeypatch):
    """Drift reads a small --last window from the end of the files (msgspec) and a large one with DuckDB: the
    record rule (churn_lib.contract.records) is the same for both, so the same log gives the same counts."""
    from churn_lib.drift import monitor

    simulate.simulate(300, home=trained_home, seed=3)
    good = trained_home.predictions_log.read_bytes().splitlines(keepends=True)
    hostile = [b"not json\n", b"\n", b"[1]\n", good[0].replace(b'"probability":', b'"probability":"x","p":'), b"{}\n",
               good[1].replace(b'"features":{', b'"features":{"x":NaN,'), good[2][:50] + b"\n",
               good[3].replace(b'"request_id":"', b'"request_id":"' + b"r" * 200)]
    with open(trained_home.predictions_log, "ab") as fh:
        fh.write(b"".join(hostile) + good[4][:30])  # and a line being written
    results = {}
    for path, share in (("tail", 1e9), ("duckdb", 0.0)):
        monkeypatch.setattr(monitor, "TAIL_SHARE", share)
        result = drift.check(home=trained_home, last=10_000, record=False)
        results[path] = (result.read["records"], result.read["lines"], result.read["skipped"],
                         [(m.version, m.n_rows) for m in result.models])
    assert results["tail"] == results["duckdb"]
    for last in (10_000,):  # every record: the same statistics
        values = {}
        for path, share in (("tail", 1e9), ("duckdb", 0.0)):
            monkeypatch.setattr(monitor, "TAIL_SHARE", share)
            m = drift.check(home=trained_home, last=last, record=False).models[0]
            values[path] = (m.n_rows, m.first_ts, m.last_ts, [(s.feature, s.name, s.alert) for s in m.statistics],
                            np.array([s.value for s in m.statistics]))
        assert values["tail"][:4] == values["duckdb"][:4]
        np.testing.assert_allclose(values["tail"][4], values["duckdb"][4], rtol=1e-9, atol=1e-12)
    assert results["tail"][2] == {"malformed": 3, "not an object": 1, "no features": 1, "bad probability": 1,
                                  "bad key": 1, "truncated": 1}


def test_the_newest_rows_of_a_large_window_are_those_the_backward_reader_takes(trained_home, monkeypatch):
    """--last N below the log's length: DuckDB chooses the N newest records by time (ORDER BY ts DESC LIMIT N),
    as the backward reader does; the statistics are the same (lines out of time order, a bad line between)."""
    from churn_lib.drift import monitor

    simulate.simulate(400, home=trained_home, seed=5)
    lines = trained_home.predictions_log.read_bytes().splitlines(keepends=True)
    rows = [json.loads(line) for line in lines]
    order = np.random.default_rng(0).permutation(len(rows))
    for k, row in zip(order, rows):
        row["ts"] = 1_700_000_000.0 + float(k)  # distinct times, not in file order
    trained_home.predictions_log.write_bytes(b"".join(predlog.format_line(r) for r in rows[:200]) + b"[1]\n"
                                             + b"".join(predlog.format_line(r) for r in rows[200:]))
    values = {}
    for path, share in (("tail", 1e9), ("duckdb", 0.0)):
        monkeypatch.setattr(monitor, "TAIL_SHARE", share)
        result = drift.check(home=trained_home, last=250, record=False)
        m = result.models[0]
        values[path] = (result.read["skipped"], m.n_rows, m.first_ts, m.last_ts,
                        [(s.feature, s.name, s.alert) for s in m.statistics], [s.value for s in m.statistics])
    assert values["tail"][:5] == values["duckdb"][:5]
    assert values["duckdb"][1:4] == (250, 1_700_000_150.0, 1_700_000_399.0)
    np.testing.assert_allclose(values["tail"][5], values["duckdb"][5], rtol=1e-9, atol=1e-12)


def test_exact_sum_equals_math_fsum_in_any_order_and_chunking():
    """The drift statistics' sums: the same rows in another order or other chunks (the log, the judged-line cache's
    parts, DuckDB's threads) give the same float, math.fsum's, to the last digit."""
    import math

    from churn_lib.drift.stats import ExactSum

    rng = np.random.default_rng(0)
    for trial in range(100):
        n = int(rng.integers(1, 3000))
        x = [rng.normal(0, 1, n), rng.normal(0, 1, n) * 10.0 ** rng.integers(-300, 300, n),
             np.r_[rng.normal(1e16, 1, n), -1e16 * np.ones(n)],  # cancellation
             np.r_[rng.normal(0, 1, n) * 1e-310, 5e-324, -0.0]][trial % 4]  # subnormals, signed zero
        want = math.fsum(x.tolist())
        for _ in range(3):
            acc = ExactSum()
            for part in np.split(rng.permutation(x), np.sort(rng.integers(0, n + 1, 3))):
                acc.add(part)
            assert acc.value() == want
    assert ExactSum().value() == 0.0
