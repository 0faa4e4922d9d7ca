"""Shared fixtures: every test runs in its own temporary project home."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from churn_lib import Home


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Clear CHURN_* and run from a temporary working directory."""
    for key in list(os.environ):
        if key.startswith("CHURN_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Home:
    """An empty project home, also exported as CHURN_HOME."""
    root = tmp_path / "home"
    root.mkdir()
    monkeypatch.setenv("CHURN_HOME", str(root))
    return Home(root).ensure()


@pytest.fixture(scope="session")
def _trained_template(tmp_path_factory) -> Path:
    """A home with the default data prepared and v1 trained, built once per session."""
    from churn_lib.run import runner

    root = tmp_path_factory.mktemp("trained") / "home"
    root.mkdir()
    runner.run_direct(home=root, stages=("generate", "prepare", "train"))
    return root


@pytest.fixture
def trained_home(_trained_template, home) -> Home:
    """A home with the default data and v1 trained, promoted and current (a private copy)."""
    shutil.rmtree(home.root)
    shutil.copytree(_trained_template, home.root)
    return home


LAB_REQUESTS = [
    ({"tenure_months": 6, "num_complaints": 3, "avg_session_minutes": 12.5, "plan_type": "basic",
      "region": "AF", "request_id": "req-001"}, 0.907065, 1),
    ({"tenure_months": 48, "num_complaints": 0, "avg_session_minutes": 60, "plan_type": "premium",
      "region": "EU", "request_id": "req-safe"}, 0.139973, 0),
    ({"tenure_months": 180, "num_complaints": 30, "avg_session_minutes": 1.0, "plan_type": "basic",
      "region": "AF"}, 0.999444, 1),
]
