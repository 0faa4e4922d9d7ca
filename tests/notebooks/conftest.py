"""Fixtures of the notebook tests."""

import pytest

from churn_lib.run import runner
from churn_lib.home import Home

SMALL = {"n_rows": 400}


@pytest.fixture(scope="session")
def run_home(tmp_path_factory):
    """One full notebook run (4 stages) on small data, shared by the notebook tests."""
    root = tmp_path_factory.mktemp("nbrun") / "home"
    events = []
    record = runner.run(home=root, params=SMALL, on_event=lambda *e: events.append(e))
    return Home(root), record, events


