"""Notebook 05 with a challenger: the comparison of champion and challenger on the same customers, its verdict,
table and plot, and the watch's decisions in the trends; the reports index shows the same comparison."""

import json
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest

from churn_lib import contract, registry
from churn_lib.home import Home
from churn_lib.learn import train as training
from churn_lib.logs import monitoring, predictions
from churn_lib.run import runner

from .test_report_noise import NOISE

FEATURES = {k: v for k, v in contract.LAB_EXAMPLES[0].items() if k != "request_id"}
N = 3000


def _paired_logs(home: Home, champion: dict, challenger: dict) -> None:
    """``N`` requests answered by both models (the challenger's scores are the truth), all with an outcome."""
    r = np.random.default_rng(0)
    truth = r.beta(1, 3, N)
    noisy = np.clip(truth + r.normal(0, 0.15, N), 0, 1)
    y = (r.random(N) < truth).astype(int)
    lines = []
    for i in range(N):
        for entry, p, role in ((champion, noisy[i], None), (challenger, truth[i], "challenger")):
            lines.append(predictions.record(request_id=f"r{i}", model_file=entry["model_file"],
                                            version=entry["version"], threshold=0.3, probability=float(p),
                                            features=FEATURES, latency_ms=1.0, ts=1000.0 + i, role=role))
    home.predictions_log.parent.mkdir(parents=True, exist_ok=True)
    home.predictions_log.write_bytes(b"".join(predictions.format_line(x) for x in lines))
    home.feedback_log.write_text("".join(json.dumps({"request_id": f"r{i}", "outcome": int(y[i]), "received": 1})
                                         + "\n" for i in range(N)))


@pytest.fixture(scope="module")
def report(run_home, tmp_path_factory):
    """Notebook 05 run on a copy of the shared home with v2 as the challenger, paired lines and two watch ticks."""
    home, _, _ = run_home
    root = tmp_path_factory.mktemp("compare") / "home"
    shutil.copytree(home.root, root)
    home = Home(root)
    training.train(home=home, params=training.TrainParams())  # v2: passes the gate, becomes current
    registry.rollback(home=home)  # v1 current again
    registry.set_challenger("v2", home=home)
    _paired_logs(home, registry.get("v1", home=home), registry.get("v2", home=home))
    for decision, at in (("insufficient_data", "2099-01-01T00:00:00Z"), ("investigate", "2099-01-02T00:00:00Z")):
        monitoring.append(monitoring.WATCH, {"tick": at[:10], "checked_at_utc": at, "decision": decision,
                                             "reasons": [decision], "message": decision}, home=home)
    record = runner.run(home=root, stages="monitor_drift", params={"last": N})
    assert record["status"] == "ok"
    (ipynb,) = (home.reports_dir / "v1" / "drift").glob("05_monitor_drift*.ipynb")
    return home, json.loads(ipynb.read_text())


def _outputs(nb: dict, needle: str) -> list[dict]:
    (cell,) = [c for c in nb["cells"] if c["cell_type"] == "code" and needle in "".join(c["source"])]
    return cell["outputs"]


def test_notebook_05_shows_the_verdict_the_table_and_the_plot_of_the_comparison(report):
    home, nb = report
    outputs = _outputs(nb, "compare.compare_if_any")
    (printed,) = [o for o in outputs if o.get("name") == "stdout"]
    assert "".join(printed["text"]).startswith(f"challenger_better: challenger v2 vs champion v1 on {N:,} pair(s) - "
                                               "f1 difference 95 % interval [+")
    (table,) = [o for o in outputs if o["output_type"] == "execute_result"]
    html = "".join(table["data"]["text/html"])
    for word in ("metric", "roc_auc", "f1", "brier", "interval_low", "interval_high", "decides"):
        assert word in html
    (plot,) = _outputs(nb, "plots.champion_challenger")
    assert "image/png" in plot["data"]
    (trends,) = _outputs(nb, "plots.monitoring_trends")
    assert "image/png" in trends["data"]
    (line,) = monitoring.records(monitoring.COMPARE, home=home)  # the notebook's comparison, recorded once
    assert (line["verdict"], line["pairs"], line["labelled"]) == ("challenger_better", N, N)


def test_notebook_05_with_a_challenger_has_no_error_or_noise(report):
    _, nb = report
    found = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text = json.dumps(out.get("text", "")) + json.dumps(out.get("data", {}).get("text/plain", ""))
            if out["output_type"] == "error" or out.get("name") == "stderr" or NOISE.search(text):
                found.append((out["output_type"], out.get("name"), text[:200]))
    assert not found, found


class _Cells(HTMLParser):
    """Every table cell's text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: list[str] = []
        self._open = False

    def handle_starttag(self, tag, attrs):
        if tag in ("td", "th"):
            self._open = True
            self.cells.append("")

    def handle_endtag(self, tag):
        self._open = self._open and tag not in ("td", "th")

    def handle_data(self, data):
        if self._open:
            self.cells[-1] += data


def test_the_reports_index_shows_the_notebooks_comparison_and_the_latest_watch_decision(report):
    home, _ = report
    page = _Cells()
    page.feed((home.reports_dir / "index.html").read_text(encoding="utf-8"))
    cells = page.cells
    assert cells[cells.index("verdict") + 1] == "challenger_better"
    assert cells[cells.index("challenger") + 1] == "v2" and cells[cells.index("decision") + 1] == "investigate"
