"""Executed reports show the stages' own output only: no kernel or library noise under a cell.

The stages of a run share one kernel (churn_lib/run/kernels.py); what that kernel prints on its
own, such as IPython's "History logging moved to new session" after ``%reset``, lands in whichever
cell is running. Every executed notebook and HTML report of a run is read here.
"""

import json
import re
import shutil

import pytest
from bs4 import BeautifulSoup

from churn_lib.run import runner
from churn_lib.home import Home

#: Text no report may show: IPython's history error, any traceback, a library's warning.
NOISE = re.compile(r"History logging moved|ERROR!|Traceback|\b\w*Warning\b")


@pytest.fixture(scope="module")
def reports(run_home, tmp_path_factory):
    """The reports of the shared 4-stage run, plus an evaluate and a drift check run after it in one
    kernel (a copy of that home), so report 05 is read too."""
    home, _, _ = run_home
    root = tmp_path_factory.mktemp("noise") / "home"
    shutil.copytree(home.root, root)
    record = runner.run(home=root, stages="evaluate,monitor_drift")
    assert record["status"] == "ok"
    folder = Home(root).reports_dir / "v1"
    ipynbs = sorted(folder.glob("*.ipynb")) + sorted((folder / "drift").glob("*.ipynb"))
    htmls = sorted(folder.glob("*.html")) + sorted((folder / "drift").glob("*.html"))
    return ipynbs, htmls


def test_every_stage_report_is_read(reports):
    ipynbs, htmls = reports
    names = {p.stem.split("-")[0] for p in ipynbs}
    assert names == {"01_generate_data", "02_prepare_data", "03_train", "04_evaluate", "05_monitor_drift"}
    assert {p.stem for p in htmls} == {p.stem for p in ipynbs}


def test_executed_notebooks_have_no_stderr_error_or_noise(reports):
    ipynbs, _ = reports
    found = []
    for path in ipynbs:
        for cell in json.loads(path.read_text())["cells"]:
            for out in cell.get("outputs", []):
                text = json.dumps(out.get("text", "")) + json.dumps(out.get("data", {}).get("text/plain", ""))
                if out["output_type"] == "error" or out.get("name") == "stderr" or NOISE.search(text):
                    found.append((path.name, out["output_type"], out.get("name"), text[:200]))
    assert not found, found


def test_html_reports_have_no_stderr_error_or_noise(reports):
    _, htmls = reports
    found = []
    for path in htmls:
        soup = BeautifulSoup(path.read_text(), "html.parser")
        outputs = soup.select(".jp-OutputArea-output")
        assert outputs, f"{path.name}: no cell output found (did the template change?)"
        for out in outputs:
            text = out.get_text()
            if out.get("data-mime-type") == "application/vnd.jupyter.stderr" or NOISE.search(text):
                found.append((path.name, out.get("data-mime-type"), text[:200]))
    assert not found, found


def test_report_05_without_a_challenger_says_so_in_one_line(reports):
    ipynbs, _ = reports
    (path,) = [p for p in ipynbs if p.stem.startswith("05_monitor_drift")]
    cells = {"".join(c["source"]).splitlines()[0]: c["outputs"] for c in json.loads(path.read_text())["cells"]
             if c["cell_type"] == "code"}
    printed = [o for o in cells["found = compare.compare_if_any(last=window.last, since=window.since)"]
               if o.get("name") == "stdout"]
    assert ["".join(o["text"]) for o in printed] == ["no challenger: none is set (churn challenger VERSION sets one)\n"]
    assert cells["plots.champion_challenger(found);"] == []  # no figure repeats it
