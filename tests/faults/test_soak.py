"""Short runs of bench/soak.py: 10 connections for 8 s, 2 workers, the model (or the challenger) switching every
1.5 s."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..serve.conftest import _two_versions_template  # noqa: F401 (fixture)

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def _soak():
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    return soak


def test_a_short_soak_keeps_every_promise(_two_versions_template):  # noqa: F811
    soak = _soak()
    figures = soak.soak(connections=10, duration=8, workers=2, switch_every=1.5, home=_two_versions_template)
    assert figures["broken_promises"] == [], figures
    assert figures["successes"] > 0 and figures["lines_per_success"] == 1.0 and figures["torn_lines"] == 0
    assert figures["rollbacks"] >= 1 and figures["promotions"] >= 1
    assert set(figures["versions_logged"]) == {"v1", "v2"}


def test_a_short_soak_with_a_changing_challenger_and_outcomes_keeps_every_promise(_two_versions_template):  # noqa: F811
    figures = _soak().soak(connections=10, duration=8, workers=2, switch_every=1.5, home=_two_versions_template,
                           challenger=True)
    assert figures["broken_promises"] == [], figures
    assert figures["failures"] == 0 and figures["lines_per_success"] == 1.0 and figures["torn_lines"] == 0
    assert figures["challenger_changes"] >= 3 and figures["challenger_lines"] > 0
    assert figures["challenger_lines_checked_against_the_sample"] > 0 and figures["challenger_lines_mismatched"] == 0
    assert figures["outcomes_accepted"] > 0 and figures["outcomes_not_on_disk_once"] == 0
    assert figures["roles_answered"] == {"champion": figures["successes"]}
