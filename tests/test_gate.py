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
                                                  "no_regression", "no_regression_auc"]
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
    assert ("min_f1 = None  # gate: least test F1 at the stored threshold of an F1-tuned model, an absolute floor "
            "(the lab's 0.65; a new contract sets none); None: the contract's gate.min_f1") in cell.splitlines()
    assert [name for name in gate.SETTINGS if f"\n{name} = None  # gate: " in cell] == list(gate.SETTINGS)


# --- the objective: F1 or profit, plus ROC AUC ----------------------------------------------------

PROFIT = {**METRICS, "f1": 0.55, "threshold": 0.08, "roc_auc": 0.84, "profit_per_1000": 412.0}
PROFIT_BASELINES = {"always_0": {"f1": 0.0, "brier": 0.53, "profit_per_1000": 0.0},
                    "always_1": {"f1": 0.69, "brier": 0.47, "profit_per_1000": 250.0},
                    "prior": {"f1": 0.52, "brier": 0.25, "profit_per_1000": 90.0}}
#: An F1-tuned current model re-scored on the same rows: a better F1, less profit at the new model's costs.
CURRENT = {"version": "v1", "objective": "f1", "threshold": 0.30, "note": " on the 300 test rows neither model "
           "trained on", "f1": 0.625, "f1_new": 0.555, "roc_auc": 0.83, "roc_auc_new": 0.84,
           "profit_per_1000": 398.5, "profit_per_1000_new": 412.0}


def test_a_profit_tuned_model_with_a_lower_f1_but_more_profit_passes_and_says_on_what():
    lab_gate = Gate(min_f1=0.65, baseline_margin=0.0)  # the lab's floor would refuse its F1 of 0.55
    verdict = gate.check(lab_gate, PROFIT, PROFIT_BASELINES, CURRENT, objective="profit")
    assert verdict.passed and verdict.reasons == []
    crit = _by_name(verdict)
    assert list(crit) == ["min_f1", "beats_always_0", "beats_always_1", "beats_prior", "no_regression",
                          "no_regression_auc"]
    assert crit["min_f1"].reason == ("F1 0.5500 at threshold 0.08, not judged: the model was tuned for profit, so it "
                                     "is judged on profit per 1,000 and ROC AUC (min_f1 0.6500 applies to F1-tuned "
                                     "models only)")
    assert crit["beats_always_0"].reason == "profit per 1,000 412.0 vs always_0 baseline (contact nobody) 0.0 (+412.0)"
    assert crit["beats_always_1"].reason == ("profit per 1,000 412.0 vs always_1 baseline (contact everyone) 250.0 "
                                             "(+162.0)")
    assert crit["beats_prior"].reason.endswith("(+322.0); Brier 0.2200 vs 0.2500")
    assert crit["no_regression"].value == 412.0 and crit["no_regression"].required == pytest.approx(398.5 * 0.98)
    assert crit["no_regression"].reason == (
        "profit per 1,000 412.0 vs current v1 398.5 at its threshold 0.30, same costs (this model's) on the 300 test "
        "rows neither model trained on (tolerance 2% of the current model's profit); v1 was tuned for f1, judged "
        "here on profit")
    assert crit["no_regression_auc"].reason == ("ROC AUC 0.8400 vs current v1 0.8300 on the 300 test rows neither "
                                                "model trained on (tolerance 0.0200)")
    # the same scores judged as an F1-tuned model: refused on F1, as the gate did before it knew the objective
    as_f1 = gate.check(lab_gate, PROFIT, PROFIT_BASELINES, CURRENT)
    assert [c.name for c in as_f1.criteria if not c.passed] == ["min_f1", "beats_always_1", "no_regression"]
    assert all(r.startswith("F1 ") for r in as_f1.reasons)


def test_a_profit_tuned_model_with_less_profit_is_refused_naming_profit():
    poorer = {**CURRENT, "profit_per_1000_new": 380.0}
    verdict = gate.check(Gate(), PROFIT, PROFIT_BASELINES, poorer, objective="profit")
    assert verdict.reasons == ["profit per 1,000 380.0 vs current v1 398.5 at its threshold 0.30, same costs "
                               "(this model's) on the 300 test rows neither model trained on (tolerance 2% of the "
                               "current model's profit); v1 was tuned for f1, judged here on profit"]
    assert gate.check(Gate(regression_tolerance=0.05), PROFIT, PROFIT_BASELINES, poorer, objective="profit").passed
    # a loss is judged the same way: the tolerance is a share of the current model's profit, whatever its sign
    losing = {**CURRENT, "profit_per_1000": -100.0, "profit_per_1000_new": -101.0}
    assert _by_name(gate.check(Gate(), PROFIT, PROFIT_BASELINES, losing, objective="profit"))["no_regression"].passed
    assert not gate.check(Gate(), PROFIT, PROFIT_BASELINES, {**losing, "profit_per_1000_new": -103.0},
                          objective="profit").passed


def test_a_profit_tuned_model_must_earn_more_than_contacting_everyone_or_nobody():
    everyone = {**PROFIT_BASELINES, "always_1": {**PROFIT_BASELINES["always_1"], "profit_per_1000": 412.0}}
    verdict = gate.check(Gate(), PROFIT, everyone, objective="profit")
    assert verdict.reasons == ["profit per 1,000 412.0 vs always_1 baseline (contact everyone) 412.0 (+0.0)"]
    losing = gate.check(Gate(), {**PROFIT, "profit_per_1000": -5.0}, PROFIT_BASELINES, objective="profit")
    assert "profit per 1,000 -5.0 vs always_0 baseline (contact nobody) 0.0 (-5.0)" in losing.reasons
    assert _by_name(gate.check(Gate(), PROFIT, PROFIT_BASELINES, objective="profit"))["min_f1"].reason.endswith(
        "(no F1 floor applies)")


@pytest.mark.parametrize("objective", ["f1", "profit"])
def test_an_auc_regression_beyond_the_tolerance_is_refused_naming_auc(objective):
    worse = {**CURRENT, "f1_new": 0.64, "roc_auc_new": 0.80}  # better on either objective, worse at ranking
    scores = {**PROFIT, "f1": 0.72}
    verdict = gate.check(Gate(), scores, PROFIT_BASELINES, worse, objective=objective)
    assert verdict.reasons == ["ROC AUC 0.8000 vs current v1 0.8300 on the 300 test rows neither model trained on "
                               "(tolerance 0.0200)"]
    crit = _by_name(verdict)["no_regression_auc"]
    assert crit.value == 0.80 and crit.required == pytest.approx(0.81)
    # unset, the AUC's tolerance is regression_tolerance; set, it is its own
    assert gate.check(Gate(regression_tolerance=0.05), scores, PROFIT_BASELINES, worse, objective=objective).passed
    assert not gate.check(Gate(regression_tolerance=0.05, auc_tolerance=0.01), scores, PROFIT_BASELINES, worse,
                          objective=objective).passed
    assert gate.check(Gate(auc_tolerance=0.05), scores, PROFIT_BASELINES, worse, objective=objective).passed


def test_the_auc_check_passes_with_its_reason_when_there_is_nothing_to_compare():
    assert _by_name(gate.check(Gate(), METRICS, {}))["no_regression_auc"].reason == "no current model to compare with"
    broken = gate.check(Gate(), METRICS, {}, {"version": "v1", "error": "its file is missing"})
    assert _by_name(broken)["no_regression_auc"].reason == ("current model v1 could not be re-scored: its file is "
                                                            "missing")
    one_class = _by_name(gate.check(Gate(), METRICS, {}, {**CURRENT, "roc_auc": None}))["no_regression_auc"]
    assert one_class.passed and one_class.reason == ("ROC AUC not measured on the 300 test rows neither model "
                                                     "trained on: it needs churners and stayers among the rows")


def test_an_f1_tuned_model_is_judged_on_f1_and_told_when_the_current_one_was_tuned_for_profit():
    current = {**CURRENT, "objective": "profit", "f1": 0.50}
    crit = _by_name(gate.check(Gate(), METRICS, BASELINES, current))["no_regression"]
    assert crit.passed and crit.reason == ("F1 0.5550 vs current v1 0.5000 on the 300 test rows neither model "
                                           "trained on (tolerance 0.0200); v1 was tuned for profit, judged here on f1")
    with pytest.raises(ValueError, match="objective must be one of f1, profit, got 'recall'"):
        gate.check(Gate(), METRICS, BASELINES, objective="recall")


def test_auc_tolerance_is_a_setting_of_the_contract_and_of_the_run():
    assert "auc_tolerance" in gate.SETTINGS and contract.lab().gate.auc_tolerance is None
    assert TrainParams(auc_tolerance=0.05).gate_settings(contract.lab()).auc_tolerance == 0.05
    with pytest.raises(InvalidParameter, match=r"^auc_tolerance must be a number between 0 and 1 or None, got 2$"):
        TrainParams(auc_tolerance=2)
    assert "auc_tolerance" not in contract.lab().to_dict()["gate"]  # unset: the lab's fingerprint is unchanged
    assert Gate(auc_tolerance=0.01).to_dict()["auc_tolerance"] == 0.01
