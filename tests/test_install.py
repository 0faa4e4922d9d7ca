"""churn-mlops installs the way Python tools do, and runs outside the repository.

A wheel is built once with ``python -m build`` (an sdist, then the wheel from it) from a copy of
the files the package is made of, and installed with its pinned dependencies into a clean virtual
environment (no site packages, no ``PYTHONPATH``, no repository on the path). The user's story then
runs there, each part in an empty folder outside the repository: ``churn run`` on the defaults,
``churn init`` on a CSV of one's own, ``churn run`` and ``churn serve``.

This is the one test of the installed product: everything else imports the repository's source.
It takes about two minutes on a 2-core machine (build 10-20 s, install 40-80 s, two runs of 20-40 s),
and runs by default: CI runs it through ``make test``. ``make lab``'s folder is checked here too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from churn_lib.home import MARKER, find_home
from churn_lib.run import runner

from . import datasets

REPO = Path(__file__).resolve().parent.parent
#: What the wheel is built from (pyproject.toml names README.md as the long description).
SOURCES = ("pyproject.toml", "README.md", "churn_lib", "serve")
STAGE_NOTEBOOKS = sorted(set(runner.NOTEBOOKS.values()))
DEFAULT_REPORTS = ["01_generate_data", "02_prepare_data", "03_train", "04_evaluate"]


def _env(venv: Path) -> dict[str, str]:
    """The environment of a user whose shell has the venv activated: nothing of the repository or the test run."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CHURN_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


def _check(cmd: list, *, cwd: Path, env: dict[str, str] | None = None,
           timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _empty_folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    assert not folder.resolve().is_relative_to(REPO) and find_home(folder) == folder.resolve()
    return folder


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``python -m build`` on a copy of the package's files: the sdist, then the wheel built from it."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _check([sys.executable, "-m", "build", "--outdir", dist, src], cwd=src, env=env, timeout=600)
    (built,) = dist.glob("churn_mlops-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Iterator[Path]:
    """A clean virtual environment with the wheel and its pinned dependencies (``constraints.txt``);
    removed afterwards (it is 500 MB, and pytest keeps the last three runs' temporary folders)."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    here = tmp_path_factory.mktemp("pip")
    env = _env(root)
    _check([sys.executable, "-m", "venv", root], cwd=here, env=env, timeout=300)
    # --no-compile: the byte code of ~500 MB of dependencies is written on first import instead (half the time)
    _check([root / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-compile",
            "-c", REPO / "constraints.txt", wheel], cwd=here, env=env, timeout=1200)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _churn(venv: Path, folder: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return _check([venv / "bin" / "churn", *args], cwd=folder, env=_env(venv), timeout=timeout)


def test_the_wheel_ships_the_stage_notebooks_and_both_packages(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"churn_lib/notebooks/{nb}.ipynb" for nb in STAGE_NOTEBOOKS} <= names
    assert {"churn_lib/__init__.py", "serve/__init__.py", "serve/run.py"} <= names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "churn = churn_lib.cli:main" in text and "serve = serve.run:run" in text


def test_the_venv_imports_the_installed_package_not_the_repository(venv, tmp_path):
    folder = _empty_folder(tmp_path, "empty")
    code = ("import json, churn_lib, serve\nfrom churn_lib.run import runner\n"
            "print(json.dumps([churn_lib.__file__, serve.__file__, str(runner.notebooks_dir()),"
            " sorted(p.name for p in runner.notebooks_dir().glob('*.ipynb'))]))")
    out = _check([venv / "bin" / "python", "-c", code], cwd=folder, env=_env(venv), timeout=120).stdout
    lib, srv, notebooks, names = json.loads(out)
    site = (venv / "lib").resolve()
    assert all(Path(p).resolve().is_relative_to(site) for p in (lib, srv, notebooks))
    assert names == [f"{nb}.ipynb" for nb in STAGE_NOTEBOOKS]


def test_churn_run_on_the_defaults_in_an_empty_folder(venv, tmp_path):
    folder = _empty_folder(tmp_path, "empty")
    out = _churn(venv, folder, "run").stdout
    assert re.search(r"^v1 \(churn_model_v1_\w+\.joblib\) passed the gate and is now current", out, re.M), out
    assert f"reports: {folder.resolve() / 'reports' / 'v1'} (4 stage(s)" in out
    reports = folder / "reports"
    for name in DEFAULT_REPORTS:
        assert (reports / "v1" / f"{name}.ipynb").is_file() and (reports / "v1" / f"{name}.html").is_file()
    assert json.loads((reports / "v1" / "run.json").read_text())["status"] == "ok"
    assert "href='v1/03_train.html'" in (reports / "index.html").read_text()
    assert (folder / "registry" / "current_model.txt").read_text().strip().startswith("churn_model_v1_")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health(venv: Path, folder: Path, *, timeout: float = 90) -> tuple[int, dict]:
    """Start ``churn serve`` in ``folder`` on 127.0.0.1 and a free port, GET /health, stop it."""
    port = _free_port()
    log = open(folder.parent / "serve.log", "wb")
    proc = subprocess.Popen([str(venv / "bin" / "churn"), "serve", "--port", str(port)], cwd=folder,
                            env=_env(venv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, (folder.parent / "serve.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())
            except OSError:  # not listening yet
                assert time.monotonic() < deadline, "churn serve did not answer in time"
                time.sleep(0.3)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_churn_init_on_a_csv_then_run_and_serve_in_an_empty_folder(venv, tmp_path):
    source = datasets.write(datasets.telecom(800, seed=7), tmp_path / "exports" / "customers.csv")
    folder = _empty_folder(tmp_path, "empty")
    out = _churn(venv, folder, "init", "--data", str(source), "--target", "Churn", "--id", "customerID").stdout
    assert out.startswith(f"created the home {folder.resolve()}: ") and (folder / "dataset.yaml").is_file()
    out = _churn(venv, folder, "run").stdout
    assert re.search(r"^v1 \(churn_model_v1_\w+\.joblib\) passed the gate and is now current", out, re.M), out
    assert (folder / "reports" / "v1" / "04_evaluate.html").is_file()
    status, body = _health(venv, folder)
    assert status == 200 and body["status"] == "ok" and body["version"] == "v1", body
    assert body["contract"] == "customers"


def test_make_lab_opens_the_stage_notebooks_and_they_find_the_home():
    """``make lab`` starts JupyterLab on the package's notebook folder; a notebook's kernel starts in that
    folder, and finds the repository's home by its marker above it."""
    (lab,) = re.findall(r"^lab:.*\n(?:\t.*\n)+", (REPO / "Makefile").read_text(), re.M)
    (folder,) = re.findall(r"jupyter lab (\S+)", lab)
    folder = REPO / folder
    assert folder.resolve() == (REPO / "churn_lib" / "notebooks").resolve()
    assert sorted(p.stem for p in folder.glob("*.ipynb")) == STAGE_NOTEBOOKS
    assert (REPO / MARKER).is_file() and find_home(folder) == REPO
