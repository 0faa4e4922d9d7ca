"""`churn export V DIR --format mlflow`: the folder MLflow loads, what it predicts, and what is refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from churn_lib import cli, contract, registry, scoring
from churn_lib._io import sha256_file
from churn_lib.export import mlmodel
from churn_lib.learn.train import TrainParams, train
from churn_lib.run import runner

from . import datasets
from .conftest import LAB_REQUESTS

mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc", reason="mlflow-skinny is a test extra (pip install -e .[test])")


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch):
    """MLflow puts each loaded model's code/ first on sys.path: give the next test the path it had."""
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.fixture(scope="module")
def lab_models(tmp_path_factory, _trained_template) -> Path:
    """The lab's trained home (v1, logreg) plus a LightGBM v2 and a sigmoid-calibrated LightGBM v3."""
    root = tmp_path_factory.mktemp("export_lab") / "home"
    shutil.copytree(_trained_template, root)
    train(home=root, version="v2", params=TrainParams(family="lightgbm", gate_f1=0.0, regression_tolerance=1.0))
    train(home=root, version="v3", params=TrainParams(family="lightgbm", calibration="sigmoid", gate_f1=0.0,
                                                      regression_tolerance=1.0))
    return root


@pytest.fixture(scope="module")
def wide_models(tmp_path_factory) -> Path:
    """The tests' telecom table (19 features: booleans, a filled-in column, an id): logreg v1, lightgbm v2."""
    root = tmp_path_factory.mktemp("export_wide") / "home"
    datasets.telecom_home(root, rows=1500, seed=7)
    runner.run_direct(home=root, version="v1", stages=("generate", "prepare", "train"))
    train(home=root, version="v2", params=TrainParams(family="lightgbm", gate_f1=0.0, regression_tolerance=1.0))
    return root


def run_main(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _export(capsys, home: Path, version: str, folder: Path, *extra: str) -> str:
    code, out, err = run_main(capsys, "export", version, folder, "--format", "mlflow", "--home", home, *extra)
    assert code == 0, err
    return out


def random_rows(c: contract.Contract, n: int, seed: int) -> pd.DataFrame:
    """Valid rows of ``c`` typed as the exported signature (missing values where the model fills them in)."""
    rng = np.random.default_rng(seed)
    data = {}
    for f in c.features:
        if f.type == contract.CATEGORICAL:
            values = pd.Series(rng.choice(list(f.values), size=n), dtype=object)
        elif f.type == contract.BOOLEAN:
            values = pd.Series(rng.random(n) < 0.5)
        else:
            low = f.low if f.low is not None else -1000.0
            high = f.high if f.high is not None else 1000.0
            values = pd.Series(rng.integers(int(low), int(high) + 1, size=n) if f.type == contract.INTEGER
                               else rng.uniform(low, high, size=n))
        if f.imputed:
            values = values.astype(float if f.is_numeric else object)
            values[rng.random(n) < 0.2] = None if f.type == contract.CATEGORICAL else np.nan
        data[f.name] = values
    return pd.DataFrame(data)


def _ours(scorer: scoring.Scorer, frame: pd.DataFrame) -> np.ndarray:
    """Our probabilities, one row at a time as the API scores them (None where a value is missing)."""
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return np.array([scorer.proba_one(r) for r in rows])


def _assert_same_answers(model, scorer: scoring.Scorer, frame: pd.DataFrame) -> None:
    got = model.predict(frame)
    assert list(got.columns) == ["probability", "prediction"]
    assert got["probability"].dtype == np.float64 and got["prediction"].dtype == np.int64
    expected = _ours(scorer, frame)
    assert np.max(np.abs(got["probability"].to_numpy() - expected)) <= 1e-9
    assert got["prediction"].tolist() == (expected >= scorer.threshold).astype(int).tolist()


# --- what MLflow loads predicts our scores --------------------------------------------------

@pytest.mark.parametrize("version, family, calibrated", [("v1", "logreg", False), ("v2", "lightgbm", False),
                                                         ("v3", "lightgbm", True)])
def test_mlflow_loads_the_export_and_predicts_our_probabilities_and_decisions(lab_models, tmp_path, capsys,
                                                                               version, family, calibrated):
    out = _export(capsys, lab_models, version, tmp_path / "model")
    assert f"{version} ({family}{', calibrated' if calibrated else ''}, threshold" in out
    assert f"mlflow models serve -m {tmp_path / 'model'} --env-manager local" in out
    model = mlflow_pyfunc.load_model(str(tmp_path / "model"))
    scorer = scoring.load(version, home=lab_models)
    assert (scorer.calibration is not None) == calibrated
    _assert_same_answers(model, scorer, model.input_example)
    _assert_same_answers(model, scorer, random_rows(scorer.contract, 300, seed=1))


def test_the_labs_examples_get_the_labs_answers(lab_models, tmp_path, capsys):
    _export(capsys, lab_models, "v1", tmp_path / "model")
    got = mlflow_pyfunc.load_model(str(tmp_path / "model")).predict(
        pd.DataFrame([{k: v for k, v in r.items() if k != "request_id"} for r, _, _ in LAB_REQUESTS]))
    assert got["probability"].round(6).tolist() == [p for _, p, _ in LAB_REQUESTS]
    assert got["prediction"].tolist() == [d for _, _, d in LAB_REQUESTS]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_wide_contract_with_booleans_and_missing_values_exports_too(wide_models, tmp_path, capsys, version):
    _export(capsys, wide_models, version, tmp_path / "model")
    model = mlflow_pyfunc.load_model(str(tmp_path / "model"))
    scorer = scoring.load(version, home=wide_models)
    types = {c["name"]: c["type"] for c in json.loads(yaml.safe_load(
        (tmp_path / "model" / "MLmodel").read_text())["signature"]["inputs"])}
    assert {types[f.name] for f in scorer.contract.features} >= {"string", "double", "boolean"}
    assert all(types[f.name] == "double" for f in scorer.contract.features if f.imputed and f.is_numeric)
    _assert_same_answers(model, scorer, model.input_example)
    _assert_same_answers(model, scorer, random_rows(scorer.contract, 300, seed=2))


def test_a_row_the_contract_refuses_is_refused_with_the_row_and_the_reason(lab_models, tmp_path, capsys):
    from mlflow.exceptions import MlflowException

    _export(capsys, lab_models, "v1", tmp_path / "model")
    model = mlflow_pyfunc.load_model(str(tmp_path / "model"))
    rows = model.input_example.copy()
    rows.loc[1, "plan_type"] = "gold"
    with pytest.raises(MlflowException, match=r"1 of 3 row\(s\) break the model's contract: row 1: "
                                              r"plan_type='gold' is not one of basic, premium"):
        model.predict(rows)


def test_the_folder_loads_on_its_own_code_in_a_fresh_process(lab_models, tmp_path, capsys):
    """Where churn-mlops is not importable, the folder's code/ is what MLflow imports."""
    _export(capsys, lab_models, "v2", tmp_path / "model")
    script = ("import json, sys, mlflow.pyfunc; m = mlflow.pyfunc.load_model(sys.argv[1]); import churn_lib; "
              "print(json.dumps({'file': churn_lib.__file__, "
              "'p': m.predict(m.input_example)['probability'].tolist()}))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model")], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["file"]).is_relative_to(tmp_path / "model" / "code")
    scorer = scoring.load("v2", home=lab_models)
    assert np.max(np.abs(np.array(result["p"]) - scorer.predict_proba(mlmodel.example_frame(scorer.contract)))) <= 1e-9


# --- the folder's files --------------------------------------------------------------------

def test_the_folder_has_the_pyfunc_layout_signature_pins_and_sha256(lab_models, tmp_path, capsys):
    from mlflow.models import Model

    folder = tmp_path / "model"
    _export(capsys, lab_models, "v2", folder)
    entry = registry.get("v2", home=lab_models)
    meta = Model.load(str(folder / "MLmodel"))
    flavor = meta.flavors["python_function"]
    assert flavor["loader_module"] == "churn_lib.export.pyfunc" and flavor["code"] == "code"
    c = registry.load_contract(entry, home=lab_models)
    assert meta.signature.inputs.input_names() == list(c.feature_names)
    assert [s.type.name for s in meta.signature.inputs.inputs] == ["long", "long", "double", "string", "string"]
    assert meta.signature.outputs.input_names() == ["probability", "prediction"]
    assert [s.type.name for s in meta.signature.outputs.inputs] == ["double", "long"]
    churn = meta.metadata["churn_mlops"]
    copy = folder / flavor["data"] / "registry" / "models" / entry["model_file"]
    assert churn["model_sha256"] == entry["model_sha256"] == sha256_file(copy)
    assert churn["threshold"] == entry["threshold"] and churn["model_family"] == "lightgbm"
    pins = (folder / "requirements.txt").read_text().split()
    assert all("==" in p for p in pins)
    assert {p.split("==")[0] for p in pins} >= {"numpy", "pandas", "scikit-learn", "scipy", "joblib", "lightgbm"}
    example = json.loads((folder / "input_example.json").read_text())
    assert example["columns"] == list(c.feature_names)
    assert example["data"] == [[r[n] for n in c.feature_names] for r in contract.LAB_EXAMPLES]
    serving = json.loads((folder / "serving_input_example.json").read_text())
    assert serving == {"dataframe_split": example}
    assert not list(tmp_path.glob(".model.*")), "a temporary folder was left behind"


def test_exporting_imports_no_mlflow(trained_home, tmp_path):
    script = ("import sys; from churn_lib import cli; code = cli.main(sys.argv[1:]); "
              "print(code, sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))")
    done = subprocess.run([sys.executable, "-c", script, "export", "v1", str(tmp_path / "model"), "--home",
                           str(trained_home.root)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 []"


# --- refusals: one line, exit 1, nothing written ---------------------------------------------

def _refused(capsys, home: Path, *args) -> str:
    code, out, err = run_main(capsys, "export", *args, "--home", home)
    assert code == 1 and out == ""
    assert err.startswith("churn: error: ") and err.count("\n") == 1
    return err


def test_an_unknown_version_is_refused(trained_home, tmp_path, capsys):
    err = _refused(capsys, trained_home.root, "v9", tmp_path / "model")
    assert "no registered model named 'v9'" in err
    assert not (tmp_path / "model").exists()


def test_a_damaged_model_file_is_refused_and_nothing_is_written(trained_home, tmp_path, capsys):
    entry = registry.get("v1", home=trained_home)
    with open(registry.model_path(entry, home=trained_home), "ab") as fh:
        fh.write(b"\0")
    err = _refused(capsys, trained_home.root, "v1", tmp_path / "model")
    assert "model file of v1 does not match its registered sha256" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_a_non_empty_folder_needs_force_which_replaces_it_whole(trained_home, tmp_path, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    err = _refused(capsys, trained_home.root, "v1", folder)
    assert f"{folder} is not empty" in err and "--force" in err
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]

    entry = registry.get("v1", home=trained_home)
    model_file = registry.model_path(entry, home=trained_home)
    saved = model_file.read_bytes()
    model_file.write_bytes(saved + b"\0")  # a failed --force export leaves the old folder as it was
    err = _refused(capsys, trained_home.root, "v1", folder, "--force")
    assert "does not match its registered sha256" in err
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]

    model_file.write_bytes(saved)
    _export(capsys, trained_home.root, "v1", folder, "--force")
    assert not (folder / "keep.txt").exists() and (folder / "MLmodel").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "model"]


def test_a_folder_holding_the_home_is_refused_even_with_force(trained_home, tmp_path, capsys):
    err = _refused(capsys, trained_home.root, "v1", tmp_path, "--force")
    assert f"{tmp_path} holds the project home {trained_home.root}" in err
    assert registry.get("v1", home=trained_home)["version"] == "v1"


def test_an_empty_folder_is_filled_and_a_file_is_refused(trained_home, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _export(capsys, trained_home.root, "v1", tmp_path / "empty")
    assert (tmp_path / "empty" / "MLmodel").is_file()
    (tmp_path / "file").write_text("x")
    err = _refused(capsys, trained_home.root, "v1", tmp_path / "file")
    assert "exists and is not a folder" in err


@pytest.fixture
def read_only(tmp_path):
    """A folder nobody may write in (root too: the immutable attribute, where the file system has it)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
            pytest.skip("running as root on a file system without chattr +i: cannot make a folder read-only")
        yield folder
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


def test_a_folder_whose_parent_is_not_writable_is_refused(trained_home, read_only, capsys):
    err = _refused(capsys, trained_home.root, "v1", read_only / "model")
    assert f"cannot write {read_only / 'model'}: its folder {read_only} is not writable" in err
    assert list(read_only.iterdir()) == []


def test_an_unknown_format_is_a_usage_error(trained_home, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["export", "v1", str(tmp_path / "model"), "--format", "onnx", "--home", str(trained_home.root)])
    assert info.value.code == 2
    assert "argument --format: must be one of mlflow, got 'onnx'" in capsys.readouterr().err


def test_a_damaged_file_in_the_exported_folder_is_refused_when_loading(trained_home, tmp_path, capsys):
    from churn_lib import IntegrityError

    folder = tmp_path / "model"
    _export(capsys, trained_home.root, "v1", folder)
    (copy,) = (folder / "churn_home" / "registry" / "models").glob("*.joblib")
    copy.write_bytes(copy.read_bytes()[:-1])
    with pytest.raises(IntegrityError, match="model file of v1 does not match its registered sha256"):
        mlflow_pyfunc.load_model(str(folder))
