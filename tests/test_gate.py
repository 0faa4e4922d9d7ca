"""The gate (churn_lib.learn.gate): settings and scores in, each criterion's verdict and reason out."""

from __future__ import annotations

import pytest

from churn_lib import InvalidParameter, contract
from churn_lib.contract import Gate
from churn_lib.learn import gate
from churn_lib.learn.train import TrainParams

METRICS = {"f1": 0.70, "threshold": 0.26, "brier": 0.22, "lift_top_decile": 1.6}
BASELINES = {"always_0": {"f1": 0.0, "brier": 0.53}, "always_1": {"f1": 0.69, "brier": 0.47},
             "prior": {"f1": 0.52, "brier": 0.25}}


def _by_name(verdict):
    return {c.name: c for c in verdict.criteria}


def test_every_criterion_passes_with_its_reason():
    verdict = gate.check(Gate(min_f1=0.65, baseline_margin=0.0), METRICS, BASELINES)
    assert verdict.passed and verdict.reasons == []
    assert [c.name for c in verdict.criteria] == ["min_f1", "beats_always_0", "beats_always_1", "beats_prior",
                                                  "no_regression"]
    crit = _by_name(verdict)
    assert crit["min_f1"].reason == "F1 0.7000 at threshold 0.26 >= min_f1 0.6500"
    assert crit["beats_prior"].reason == "F1 0.7000 vs prior baseline 0.5200 (margin +0.1800); Brier 0.2200 vs 0.2500"
    assert crit["no_regression"].reason == "no current model to compare with"
    assert verdict.to_dict()["criteria"][0] == {"name": "min_f1", "passed": True, "value": 0.70, "required": 0.65,
                                               "reason": "F1 0.7000 at threshold 0.26 >= min_f1 0.6500"}


def test_no_floor_passes_and_says_where_to_set_one():
    crit = _by_name(gate.check(Gate(), METRICS, {}))["min_f1"]
    assert crit.passed and crit.required is None
    assert crit.reason.endswith("no absolute floor set (gate.min_f1 in dataset.yaml, or the train parameter min_f1)")


def test_a_baseline_must_be_beaten_by_the_margin_and_the_prior_on_brier_too():
    verdict = gate.check(Gate(baseline_margin=0.02), METRICS, BASELINES)
    assert [c.name for c in verdict.criteria if not c.passed] == ["beats_always_1"]
    assert _by_name(verdict)["beats_always_1"].required == pytest.approx(0.71)
    worse_brier = {"prior": {"f1": 0.52, "brier": 0.20}}
    assert not gate.check(Gate(), METRICS, worse_brier).passed


@pytest.mark.parametrize("least, lift, passed, shown", [(1.5, 1.6, True, "top-decile lift 1.60 >= min_lift_top_decile 1.50"),
                                                        (2.0, 1.6, False, "top-decile lift 1.60 < min_lift_top_decile 2.00"),
                                                        (1.0, None, False, "top-decile lift n/a < min_lift_top_decile 1.00")])
def test_the_lift_floor_is_checked_only_when_set(least, lift, passed, shown):
    assert "min_lift_top_decile" not in _by_name(gate.check(Gate(), METRICS, {}))
    crit = _by_name(gate.check(Gate(min_lift_top_decile=least), {**METRICS, "lift_top_decile": lift}, {}))
    assert crit["min_lift_top_decile"].passed is passed and crit["min_lift_top_decile"].reason == shown


def test_no_regression_judges_the_new_model_on_the_rows_it_was_compared_on():
    current = {"version": "v1", "f1": 0.74, "f1_new": 0.73, "note": " on the 80 test rows neither model trained on"}
    crit = _by_name(gate.check(Gate(regression_tolerance=0.02), METRICS, {}, current))["no_regression"]
    assert crit.passed and crit.value == 0.73 and crit.required == pytest.approx(0.72)
    assert crit.reason == ("F1 0.7300 vs current v1 0.7400 on the 80 test rows neither model trained on "
                           "(tolerance 0.0200)")
    strict = gate.check(Gate(regression_tolerance=0.0), METRICS, {}, current)
    assert strict.reasons == [crit.reason.replace("0.0200", "0.0000")]
    broken = _by_name(gate.check(Gate(), METRICS, {}, {"version": "v1", "error": "its file is missing"}))
    assert broken["no_regression"].passed
    assert broken["no_regression"].reason == "current model v1 could not be re-scored: its file is missing"


def test_the_settings_are_the_contracts_with_the_runs_overrides():
    lab_gate = contract.lab().gate
    assert TrainParams().gate_settings(contract.lab()) == lab_gate == Gate(min_f1=0.65, baseline_margin=0.0)
    mine = TrainParams(min_f1=0.0, min_lift_top_decile=1.2).gate_settings(contract.lab())
    assert mine == Gate(min_f1=0.0, baseline_margin=0.0, regression_tolerance=0.02, min_lift_top_decile=1.2)


def test_a_train_parameter_takes_its_settings_declaration():
    """Declared once, on contract.Gate: the override has the same range, and says what None means."""
    with pytest.raises(InvalidParameter, match=r"^min_f1 must be a number between 0 and 1 or None, got 1.5$"):
        TrainParams(min_f1=1.5)
    with pytest.raises(InvalidParameter, match=r"^min_lift_top_decile must be a number >= 0 or None, got -1$"):
        TrainParams(min_lift_top_decile=-1)
    from churn_lib.run import stages

    cell = stages.TABLE["train"].parameters_cell()
    assert ("min_f1 = None  # gate: least test F1 at the stored threshold, an absolute floor (the lab's 0.65; "
            "a new contract sets none); None: the contract's gate.min_f1") in cell.splitlines()
    assert [name for name in gate.SETTINGS if f"\n{name} = None  # gate: " in cell] == list(gate.SETTINGS)
