"""The reports index (``reports/index.html``, :mod:`churn_lib.run.reports`), read as a browser reads it.

The page is parsed (html.parser), never searched as text: the CSS alone holds the word
"current", so a substring test would pass on any page.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from churn_lib import registry
from churn_lib.learn import train as training
from churn_lib.logs import monitoring
from churn_lib.loop import compare
from churn_lib.run import reports

from .test_compare import _logs

REFUSED_BECAUSE = "test F1 0.41 is below the gate 0.65"
STAR = "\u2605"


class _Page(HTMLParser):
    """Tables as rows of cell texts (``<br>`` read as a newline), each row's class and links; every id and href."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[dict]] = []
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self._row: dict | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = {"class": (attrs.get("class") or "").split(), "cells": [], "links": []}
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")
        elif tag == "a" and "href" in attrs:
            self.hrefs.append(attrs["href"])
            if self._row is not None:
                self._row["links"].append(attrs["href"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row["cells"].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _versions_table(home) -> list[dict]:
    """The index's first table as one dict per row, keyed by its header (plus ``class`` and ``links``)."""
    header, *rows = _parse(reports.write_index(home=home)).tables[0]
    return [dict(zip(header["cells"], r["cells"]), **{"class": r["class"], "links": r["links"]}) for r in rows]


def _register(home, version=None, *, passed=True, f1=0.7):
    fields = {"passed_gate": passed, "gate_reasons": [] if passed else [REFUSED_BECAUSE], "threshold": 0.5,
              "metrics": {"f1": f1, "roc_auc": 0.8, "brier": 0.1}}
    entry, _ = registry.register({"model": version}, fields, home=home, version=version)
    return entry


def _write_run(home, version, *, status="ok", stages=()):
    """A run record as the runner writes it; ``stages``: (notebook, has_html) - the page is created when it has one."""
    records = []
    for notebook, has_html in stages:
        page = None
        if has_html:
            page = f"reports/{version}/{notebook}.html"
            (home.root / page).parent.mkdir(parents=True, exist_ok=True)
            (home.root / page).write_text("<html></html>", encoding="utf-8")
        records.append({"stage": notebook, "notebook": notebook, "status": "ok" if has_html else "failed",
                        "html": page, "seconds": 1.25})
    folder = home.reports_dir / version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps({
        "version": version, "status": status, "started_at_utc": "2999-01-01T00:00:00.000000Z",
        "parameters_changed": {"n_rows": 500}, "stages": records}), encoding="utf-8")


@pytest.fixture
def three_versions(home):
    """v1 and v2 passed, v3 refused, "exp-a" (newest) passed: the pointer is on exp-a."""
    _register(home, f1=0.71)
    _register(home, f1=0.72)
    _register(home, passed=False, f1=0.41)
    _register(home, "exp-a", f1=0.73)
    return home


def test_one_row_per_registered_version_newest_first(three_versions):
    rows = _versions_table(three_versions)
    entries = registry.load_entries(home=three_versions)
    assert [r["version"].split()[0] for r in rows] == ["exp-a", "v3", "v2", "v1"]  # by time, not by label
    assert [r["time (UTC)"] for r in rows] == [e["trained_at_utc"][:19].replace("T", " ") for e in entries[::-1]]
    assert [r["F1"] for r in rows] == ["0.7300", "0.4100", "0.7200", "0.7100"]
    assert {r["run"] for r in rows} == {"registered"}


def test_an_empty_home_says_there_are_no_runs(home):
    page = _parse(reports.write_index(home=home))
    assert [r["cells"] for r in page.tables[0][1:]] == [["no runs yet"]]


def test_only_the_current_version_is_marked_and_the_mark_follows_a_rollback(three_versions):
    home = three_versions

    def marked(rows):
        return {r["version"].split()[0]: ("current" in r["class"], r["version"]) for r in rows}

    assert marked(_versions_table(home)) == {"exp-a": (True, f"exp-a {STAR} current"), "v3": (False, "v3"),
                                             "v2": (False, "v2"), "v1": (False, "v1")}
    registry.rollback(home=home, to="v1")
    assert marked(_versions_table(home)) == {"exp-a": (False, "exp-a"), "v3": (False, "v3"), "v2": (False, "v2"),
                                             "v1": (True, f"v1 {STAR} current")}
    home.current_txt.unlink()  # nothing current: nothing marked
    assert not any(current for current, _ in marked(_versions_table(home)).values())


def test_a_refused_version_shows_the_gate_reason(three_versions):
    gates = {r["version"].split()[0]: r["gate"] for r in _versions_table(three_versions)}
    assert gates == {"exp-a": "passed", "v3": f"refused\n{REFUSED_BECAUSE}", "v2": "passed", "v1": "passed"}


def test_every_link_resolves_to_a_file_that_exists(three_versions):
    home = three_versions
    _write_run(home, "v1", stages=[("01_generate_data", True), ("02_prepare_data", True), ("03_train", True),
                                   ("04_evaluate", False)])  # 04's export failed: named, not linked
    drift = home.reports_dir / "v1" / "drift" / "05_monitor_drift-20990101_000000.html"
    drift.parent.mkdir()
    drift.write_text("<html></html>", encoding="utf-8")
    _write_run(home, "v9", status="failed", stages=[("01_generate_data", True)])  # a failed run: a row, no entry
    index = reports.write_index(home=home)
    page = _parse(index)
    rows = {r["cells"][0].split()[0]: r for r in page.tables[0][1:]}
    assert rows["v1"]["links"] == ["v1/01_generate_data.html", "v1/02_prepare_data.html", "v1/03_train.html",
                                   "v1/drift/05_monitor_drift-20990101_000000.html"]
    assert "04_evaluate (failed)" in rows["v1"]["cells"][-1]
    assert rows["v9"]["links"] == ["v9/01_generate_data.html"] and rows["v9"]["cells"][2] == "failed"
    for href in page.hrefs:
        assert not urlsplit(href).scheme and not urlsplit(href).netloc, f"{href}: the index works offline"
        target = (index.parent / unquote(urlsplit(href).path)).resolve()
        assert target.is_file() and target.is_relative_to(home.reports_dir.resolve()), href
    assert len(page.hrefs) == 5


def test_a_trained_home_shows_the_training_metrics_and_its_real_gate_reason(trained_home):
    home = trained_home
    refused = training.train(home=home, params=training.TrainParams(min_f1=0.99))
    assert not refused.passed_gate
    entries = {e["version"]: e for e in registry.load_entries(home=home)}
    rows = {r["version"].split()[0]: r for r in _versions_table(home)}
    assert list(rows) == ["v2", "v1"]
    assert rows["v1"]["version"] == f"v1 {STAR} current" and "current" not in rows["v2"]["class"]
    assert rows["v2"]["gate"] == "refused\n" + "; ".join(entries["v2"]["gate_reasons"])
    assert "0.99" in rows["v2"]["gate"]
    for version, row in rows.items():
        metrics = entries[version]["metrics"]
        assert (row["F1"], row["ROC AUC"], row["Brier"]) == tuple(
            f"{metrics[k]:.4f}" for k in ("f1", "roc_auc", "brier"))
        assert row["model"] == "logreg"


# --- the loop: the latest comparison and watch decision --------------------------------------------------------

def _key_tables(page: _Page) -> list[dict[str, str]]:
    """The page's label/value tables (two cells a row) as dicts: the loop's sections."""
    return [{r["cells"][0]: r["cells"][1] for r in t} for t in page.tables
            if t and all(len(r["cells"]) == 2 for r in t)]


def _watch_line(home, decision: str, at: str, **extra) -> None:
    monitoring.append(monitoring.WATCH, {"tick": at[-8:], "checked_at_utc": at, "decision": decision,
                                         "reasons": [decision], "message": f"the tick said {decision}",
                                         "version": "v1", "window": {}, "evidence": {}, "policy": {}, **extra},
                      home=home)


def test_the_index_shows_the_latest_comparison_and_the_latest_watch_decision(home):
    _logs(home, 3000, labelled=2500)
    compare.compare(home=home, last=100)  # an older comparison: insufficient evidence
    found = compare.compare(home=home)
    _watch_line(home, "investigate", "2099-01-01T00:00:00.000000Z")
    _watch_line(home, "retrain", "2099-01-02T00:00:00.000000Z",
                run={"status": "ok", "version": "v3", "passed_gate": True})
    page = _parse(reports.write_index(home=home))
    assert {"compare", "watch"} <= page.ids
    shown, tick = _key_tables(page)
    low, high = found.differences["f1"]["interval"]
    assert found.verdict == "challenger_better" and found.decided_by == "f1"
    assert shown["champion"] == "v1" and shown["challenger"] == "v2" and shown["verdict"] == "challenger_better"
    assert shown["pairs"] == f"3,000 (2,500 with an outcome, {found.positives:,} churner(s))"
    assert shown["deciding metric (95 % interval of challenger - champion)"].startswith(
        f"f1: [{low:+.4f}, {high:+.4f}]")
    assert shown["reason"] == found.reason
    assert shown["checked (UTC)"] == found.checked_at_utc[:19].replace("T", " ")
    assert tick["decision"] == "retrain" and tick["retrain"] == "ok: v3"
    assert tick["checked (UTC)"] == "2099-01-02 00:00:00"
    assert tick["message"] == "the tick said retrain"


def test_the_index_shows_no_loop_section_before_a_comparison_or_a_tick(three_versions):
    page = _parse(reports.write_index(home=three_versions))
    assert not _key_tables(page) and not {"compare", "watch"} & page.ids
    _watch_line(three_versions, "insufficient_data", "2099-01-01T00:00:00.000000Z")
    page = _parse(reports.write_index(home=three_versions))
    assert "compare" not in page.ids and [t["decision"] for t in _key_tables(page)] == ["insufficient_data"]


def test_an_insufficient_comparison_shows_no_deciding_metric_and_a_damaged_line_does_not_break_the_index(home):
    _logs(home, 300, labelled=100)
    found = compare.compare(home=home)
    (shown,) = _key_tables(_parse(reports.write_index(home=home)))
    assert found.verdict == shown["verdict"] == "insufficient_evidence"
    assert shown["deciding metric (95 % interval of challenger - champion)"] == "-"
    assert "the policy needs 200" in shown["reason"]
    with open(home.monitoring_log, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"kind": "compare", "pairs": "many", "models": "x", "decided_by": "f1",
                             "differences": {"f1": {"interval": ["a", "b"]}}}, separators=(",", ":")) + "\n")
        fh.write(json.dumps({"kind": "watch", "reasons": 5, "run": [1]}, separators=(",", ":")) + "\n")
    shown, tick = _key_tables(_parse(reports.write_index(home=home)))
    assert shown["pairs"] == "- (- with an outcome, - churner(s))" and shown["champion"] == "-"
    assert shown["deciding metric (95 % interval of challenger - champion)"] == "-"
    assert (tick["reasons"], tick["decision"]) == ("-", "-") and "retrain" not in tick
    with open(home.monitoring_log, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"kind": "compare", "models": 5, "differences": [1], "decided_by": "f1"},
                            separators=(",", ":")) + "\n")
    shown, _ = _key_tables(_parse(reports.write_index(home=home)))
    assert shown["challenger"] == "-" and shown["verdict"] == "-"


def test_churn_compare_rewrites_the_index_with_its_comparison(home, capsys):
    from churn_lib import cli

    reports.write_index(home=home)  # an index without a comparison
    _logs(home, 3000, labelled=2500)
    assert cli.main(["compare"]) == 0
    verdict = capsys.readouterr().out.split(":", 1)[0]
    (shown,) = _key_tables(_parse(home.reports_dir / "index.html"))
    assert shown["verdict"] == verdict == "challenger_better"
