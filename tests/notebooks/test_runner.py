"""Stage notebooks run headless through papermill in a temporary project home."""

import json
import re

import pytest

from churn_lib import InvalidParameter, StageFailed, registry
from churn_lib.run import runner
from .conftest import SMALL

def test_full_run_leaves_reports_and_registers_the_version(run_home):
    home, record, events = run_home
    assert record["status"] == "ok" and record["version"] == "v1"
    folder = home.reports_dir / "v1"
    for nb in ("01_generate_data", "02_prepare_data", "03_train", "04_evaluate"):
        assert (folder / f"{nb}.ipynb").exists() and (folder / f"{nb}.html").exists()
    assert [e[:2] for e in events] == [(s, st) for s in runner.STAGES for st in ("start", "ok")]
    assert registry.current_entry(home=home)["version"] == "v1"
    assert not list(home.candidates_dir.glob("*"))  # the staged candidate was registered and removed


def test_run_json_records_parameters_timing_libraries_and_data(run_home):
    home, record, _ = run_home
    saved = json.loads((home.reports_dir / "v1" / "run.json").read_text())
    assert saved["parameters"] == SMALL and saved["status"] == "ok"
    assert [s["status"] for s in saved["stages"]] == ["ok"] * 4
    assert all(s["seconds"] > 0 for s in saved["stages"])
    assert saved["stages"][0]["parameters"] == {"n_rows": 400}
    assert saved["stages"][2]["parameters"] == {"version": "v1", "register": False}
    assert {"pandas", "scikit-learn", "papermill"} <= set(saved["libraries"])
    assert len(saved["data_sha256"]) == 64 and saved["entry"]["version"] == "v1"


def _html(home, name):
    return (home.reports_dir / "v1" / f"{name}.html").read_text()


def test_train_report_has_plots_metrics_and_gate_without_error(run_home):
    home, _, _ = run_home
    page = _html(home, "03_train")
    # confusion matrix, ROC + PR, threshold curve, coefficients: embedded, no network needed
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', page)) >= 4
    for text in ("beats_always_1", "no_regression", "roc_auc", "brier", "passed the gate"):
        assert text in page
    assert "An Exception was encountered" not in page and "Traceback" not in page
    assert not re.search(r'<script[^>]+src="https?://', page)  # readable offline


def test_generate_and_prepare_reports_show_what_a_reviewer_needs(run_home):
    home, _, _ = run_home
    generate = _html(home, "01_generate_data")
    assert "churn_rate" in generate and generate.count("data:image/png;base64,") >= 2
    prepare = _html(home, "02_prepare_data")
    for check in ("missing_rate", "allowed_categories", "duplicates", "target_values", "tenure_months"):
        assert check in prepare
    evaluate = _html(home, "04_evaluate")
    assert "same_split" in evaluate and "register" in evaluate  # the table and the history


def test_index_lists_the_version_with_links(run_home):
    from bs4 import BeautifulSoup

    home, _, _ = run_home
    soup = BeautifulSoup((home.reports_dir / "index.html").read_text(), "html.parser")
    (row,) = soup.table.tbody.find_all("tr")  # one version: one row
    cells = [td.get_text(" ", strip=True) for td in row.find_all("td")]
    header = [th.get_text(strip=True) for th in soup.table.thead.find_all("th")]
    by_column = dict(zip(header, cells))
    # the current version's row is marked current: its class (the CSS highlight) and a star by its label
    assert row.get("class") == ["current"] and by_column["version"] == "v1 \u2605 current"
    assert by_column["gate"] == "passed" and by_column["run"] == "ok"
    assert "n_rows=400" in by_column["parameters that differ"]
    links = {a["href"] for a in row.find_all("a")}
    assert {f"v1/{nb}.html" for nb in ("01_generate_data", "02_prepare_data", "03_train", "04_evaluate")} <= links


def test_executed_notebooks_keep_the_parameters_papermill_injected(run_home):
    home, _, _ = run_home
    nb = json.loads((home.reports_dir / "v1" / "03_train.ipynb").read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and 'version = "v1"' in "".join(injected[0]["source"])
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("params, message", [
    ({"n_row": 10}, r"unknown parameter\(s\) n_row.*01_generate_data: n_rows \(int or None\)"),
    ({"n_rows": "many"}, r"n_rows='many' of 01_generate_data must be int"),
    ({"min_f1": True}, r"min_f1=True of 03_train must be float or None"),
    ({"register": True}, r"unknown parameter\(s\) register"),
])
def test_bad_parameters_are_refused_before_any_kernel_starts(home, monkeypatch, params, message):
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a kernel started"))
    with pytest.raises(InvalidParameter, match=message):
        runner.run(home=home, params=params)
    assert not (home.reports_dir / "v1").exists()


def test_unknown_stage_and_taken_version_are_refused(trained_home):
    with pytest.raises(InvalidParameter, match="unknown stage 'training'"):
        runner.run(home=trained_home, stages="generate,training")
    with pytest.raises(InvalidParameter, match="'v1' is already registered"):
        runner.run(home=trained_home, version="v1")


def test_a_failing_stage_keeps_its_report_and_leaves_the_registry_unchanged(trained_home):
    before = {p.name: p.read_bytes() for p in trained_home.registry_dir.glob("*.json*")}
    with pytest.raises(StageFailed, match=r"stage evaluate of v2 failed .*report: .*04_evaluate.html") as info:
        # evaluate a version that does not exist: the stage fails after train staged its candidate
        runner.run(home=trained_home, version="v2", stages="train,evaluate",
                   params={"min_f1": 0.0}, folder=_broken_evaluate(trained_home))
    page = open(info.value.report_path).read()
    assert "An Exception was encountered" in page and "ZeroDivisionError" in page
    saved = json.loads((trained_home.reports_dir / "v2" / "run.json").read_text())
    assert saved["status"] == "failed" and [s["status"] for s in saved["stages"]] == ["ok", "failed"]
    after = {p.name: p.read_bytes() for p in trained_home.registry_dir.glob("*.json*")}
    assert after == before and not registry.has_candidate("v2", home=trained_home)
    assert "failed" in (trained_home.reports_dir / "index.html").read_text()


def _broken_evaluate(home):
    """A copy of the notebooks whose evaluate stage fails in its last cell."""
    import shutil

    import nbformat

    folder = home.root / "nb-copy"
    shutil.copytree(runner.notebooks_dir(), folder)
    nb = nbformat.read(folder / "04_evaluate.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("1 / 0"))
    nbformat.write(nb, folder / "04_evaluate.ipynb")
    return folder


def test_gate_refusal_is_not_a_failed_run(trained_home):
    record = runner.run(home=trained_home, stages="train", params={"min_f1": 0.99})
    assert record["status"] == "ok" and record["entry"]["passed_gate"] is False
    assert registry.current_entry(home=trained_home)["version"] == "v1"
    assert "refused" in (trained_home.reports_dir / "v2" / "03_train.html").read_text()


def test_runs_claim_distinct_version_labels(trained_home):
    from churn_lib.run.runner import _run_version

    labels = [_run_version(trained_home, None, ("generate", "prepare", "train")) for _ in range(3)]
    assert labels == ["v2", "v3", "v4"] and all((trained_home.reports_dir / v).is_dir() for v in labels)
    assert _run_version(trained_home, None, ("evaluate",)) == "v1"
    with pytest.raises(InvalidParameter, match="'v9' is not registered"):
        _run_version(trained_home, "v9", ("evaluate",))


def test_a_drift_check_run_keeps_the_versions_run_record(trained_home):
    first = runner.run(home=trained_home, stages="evaluate")  # attaches to v1, the latest
    assert first["version"] == "v1" and not (trained_home.reports_dir / "v1" / "run.json").exists()
    record = runner.run(home=trained_home, stages="monitor_drift")
    assert record["version"] == "v1" and record["status"] == "ok"
    drift_pages = list((trained_home.reports_dir / "v1" / "drift").glob("05_monitor_drift-*.html"))
    assert len(drift_pages) == 1
    assert len(list((trained_home.reports_dir / "v1" / "runs").glob("*.json"))) == 2
    index = (trained_home.reports_dir / "index.html").read_text()
    assert f"v1/drift/{drift_pages[0].name}" in index
