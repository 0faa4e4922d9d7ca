"""A short run of bench/soak.py: 10 connections for 8 s, 2 workers, the model switching every 1.5 s."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..serve.conftest import _two_versions_template  # noqa: F401 (fixture)

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def test_a_short_soak_keeps_every_promise(_two_versions_template):  # noqa: F811
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    figures = soak.soak(connections=10, duration=8, workers=2, switch_every=1.5, home=_two_versions_template)
    assert figures["broken_promises"] == [], figures
    assert figures["successes"] > 0 and figures["lines_per_success"] == 1.0 and figures["torn_lines"] == 0
    assert figures["rollbacks"] >= 1 and figures["promotions"] >= 1
    assert set(figures["versions_logged"]) == {"v1", "v2"}
