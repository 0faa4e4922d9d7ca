"""The service under broken model files, a full disk and an unwritable log folder; a dying notebook kernel."""

from __future__ import annotations

import json
import os
import shutil

import joblib
import pytest
from fastapi.testclient import TestClient

from churn_lib import registry
from churn_lib.run import runner
from churn_lib.exceptions import PromotionRefused, StageFailed
from serve.app import Settings, create_app

from ..conftest import LAB_REQUESTS
from ..serve.conftest import _two_versions_template, two_versions_home  # noqa: F401 (fixtures)

BODY = LAB_REQUESTS[0][0]
BREAK = {
    "deleted": lambda path, other: path.unlink(),
    "truncated": lambda path, other: path.write_bytes(path.read_bytes()[:200]),
    "replaced": lambda path, other: shutil.copyfile(other, path),  # a valid model, but not the registered one
}


@pytest.mark.parametrize("how", BREAK)
def test_a_broken_model_file_is_never_loaded_and_the_last_good_model_keeps_serving(two_versions_home, how,
                                                                                   monkeypatch):
    home = two_versions_home
    v1, v2 = registry.get("v1", home=home), registry.get("v2", home=home)
    loaded = []
    real_load = joblib.load  # the registry imports joblib when it loads a model
    monkeypatch.setattr(joblib, "load", lambda path, *a, **k: loaded.append(str(path)) or
                        real_load(path, *a, **k))
    with TestClient(create_app(settings=Settings(home=home, retry_interval=0.0))) as c:
        assert c.get("/health").json()["version"] == "v2"
        broken = home.models_dir / v1["model_file"]
        BREAK[how](broken, home.models_dir / v2["model_file"])
        with pytest.raises(PromotionRefused, match="v1"):
            registry.rollback(home=home)  # the registry refuses it ...
        home.current_txt.write_text(v1["model_file"] + "\n")  # ... so a hand edit points at it
        health = c.get("/health").json()
        assert health["status"] == "degraded" and health["version"] == "v2", health
        assert v1["model_file"] in health["reason"] and "still serving" in health["reason"]
        answer = c.post("/predict", json=BODY)
        assert answer.status_code == 200 and answer.json()["version"] == "v2"
    assert str(broken) not in loaded


def _log_on(home, target):
    home.logs_dir.mkdir(parents=True, exist_ok=True)
    home.predictions_log.unlink(missing_ok=True)
    os.symlink(target, home.predictions_log)


@pytest.mark.parametrize("where", ["disk full", "folder is a file"])
def test_an_unwritable_log_answers_with_logged_false_and_degrades_health(trained_home, where):
    home = trained_home
    with TestClient(create_app(home)) as c:
        if where == "disk full":
            _log_on(home, "/dev/full")  # every write: ENOSPC
        else:
            shutil.rmtree(home.logs_dir, ignore_errors=True)
            home.logs_dir.write_text("not a folder")
        answer = c.post("/predict", json=BODY)
        assert answer.status_code == 200 and answer.json()["logged"] is False
        assert answer.json()["probability"] == LAB_REQUESTS[0][1]
        health = c.get("/health").json()
        assert health["status"] == "degraded" and "not being logged" in health["reason"]
        if where == "disk full":
            home.predictions_log.unlink()
        else:
            home.logs_dir.unlink()
            home.logs_dir.mkdir()
        assert c.post("/predict", json=BODY).json()["logged"] is True  # it recovers by itself
        assert json.loads(home.predictions_log.read_text().splitlines()[-1])["probability"] == LAB_REQUESTS[0][1]


def test_a_dying_kernel_fails_the_stage_cleanly_with_its_report(trained_home):
    import nbformat

    home = trained_home
    folder = home.root / "nb-kernel-dies"
    shutil.copytree(runner.notebooks_dir(), folder)
    nb = nbformat.read(folder / "04_evaluate.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"))
    nbformat.write(nb, folder / "04_evaluate.ipynb")
    before = {p.name: p.read_bytes() for p in home.registry_dir.glob("*.json*")}
    with pytest.raises(StageFailed, match=r"stage evaluate of v2 failed .*04_evaluate.html") as info:
        runner.run(home=home, version="v2", stages="train,evaluate", params={"min_f1": 0.0}, folder=folder)
    assert os.path.exists(info.value.report_path)
    saved = json.loads((home.reports_dir / "v2" / "run.json").read_text())
    assert saved["status"] == "failed" and [s["status"] for s in saved["stages"]] == ["ok", "failed"]
    assert {p.name: p.read_bytes() for p in home.registry_dir.glob("*.json*")} == before
    assert not registry.has_candidate("v2", home=home) and registry.check(home=home).ok
