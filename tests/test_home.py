from pathlib import Path

from churn_lib import Home, find_home
from churn_lib.home import MARKER


def test_env_var_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("CHURN_HOME", str(tmp_path / "elsewhere"))
    assert find_home() == (tmp_path / "elsewhere").resolve()


def test_marker_found_from_a_subfolder(tmp_path):
    (tmp_path / MARKER).touch()
    sub = tmp_path / "notebooks"
    sub.mkdir()
    assert find_home(sub) == tmp_path.resolve()


def test_working_directory_is_the_fallback(tmp_path):
    assert find_home(tmp_path) == tmp_path.resolve()


def test_layout_matches_the_design(tmp_path):
    h = Home(tmp_path)
    assert h.raw_csv == tmp_path / "data" / "raw.csv"
    assert h.current_txt == tmp_path / "registry" / "current_model.txt"
    assert h.models_dir == tmp_path / "registry" / "models"
    assert h.predictions_log == tmp_path / "logs" / "predictions.log"
    assert Home.resolve(h) is h


def test_ensure_creates_generated_folders(tmp_path):
    Home(tmp_path).ensure()
    assert all((tmp_path / d).is_dir() for d in ("data", "registry/models", "reports", "logs"))


def test_importing_does_no_io(tmp_path, monkeypatch):
    import importlib

    import churn_lib
    monkeypatch.chdir(tmp_path)
    importlib.reload(churn_lib)
    assert list(Path(tmp_path).iterdir()) == []
