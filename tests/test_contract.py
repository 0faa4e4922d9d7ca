"""The dataset contract: reading and checking dataset.yaml, the lab's contract, the one row validator."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import yaml

from churn_lib import ContractError, IntegrityError, InvalidParameter, contract, registry
from churn_lib.data import infer
from churn_lib.run import runner
from churn_lib.contract import check_frame, from_dict, lab

from .test_data import LAB_SHA256


def _spec(**overrides):
    d = lab().to_dict()
    d.update(overrides)
    return d


def test_the_labs_contract_round_trips_and_is_stable():
    c = lab()
    assert c.columns == ("tenure_months", "num_complaints", "avg_session_minutes", "plan_type", "region", "churn")
    assert from_dict(c.to_dict()) == c and from_dict(yaml.safe_load(yaml.safe_dump(c.to_dict(), sort_keys=False))) == c
    assert c.sha256() == from_dict(c.to_dict()).sha256() and len(c.sha256()) == 64
    assert c.example() == {k: v for k, v in contract.LAB_EXAMPLES[0].items() if k != "request_id"}
    assert c.gate.min_f1 == 0.65 and contract.is_lab(c)


def test_a_home_without_a_contract_is_the_labs(home):
    assert contract.load(home) == lab()


def test_init_without_data_writes_the_labs_contract_and_keeps_the_labs_file(tmp_path):
    result = infer.init_home(tmp_path / "lab")
    assert contract.load_file(result.contract_path) == lab()
    assert "generator" in open(result.contract_path).read() and (tmp_path / "lab" / ".churn-home").exists()
    runner.run_direct(home=tmp_path / "lab", stages=("generate", "prepare"))
    for name in ("raw.csv", "processed.csv"):
        assert hashlib.sha256((tmp_path / "lab" / "data" / name).read_bytes()).hexdigest() == LAB_SHA256


@pytest.mark.parametrize("overrides, message", [
    ({"colour": 1}, "unknown key(s) colour"),
    ({"format": 9}, "format 9 is not supported"),
    ({"source": {"generator": "mars"}}, "the only generator is lab"),
    ({"source": {"path": "a.csv", "generator": "lab"}}, "either {path: FILE_OR_GLOB} or {generator: lab}"),
    ({"target": {"column": "churn", "positive": ["1"], "negative": ["1"]}}, "both positive and negative"),
    ({"target": {"column": "churn", "positive": [], "negative": ["0"]}}, "at least one label"),
    ({"features": {}}, "features must map"),
    ({"features": {"x": {"type": "text"}}}, "type 'text' is not one of"),
    ({"features": {"x": {"type": "integer", "range": [5, 1]}}}, "is empty (low > high)"),
    ({"features": {"x": {"type": "integer", "range": [0]}}}, "must be [low, high]"),
    ({"features": {"x": {"type": "categorical"}}}, "unseen: reject needs the allowed values"),
    ({"features": {"x": {"type": "categorical", "values": ["A"], "case": "lower"}}}, "should be 'a'"),
    ({"features": {"x": {"type": "integer", "values": ["a"]}}}, "values do(es) not apply to a integer"),
    ({"features": {"x": {"type": "boolean", True: ["y"]}}}, "quote it"),
    ({"features": {"request_id": {"type": "float"}}}, "may not be called 'request_id'"),
    ({"features": {"churn": {"type": "float"}}}, "appear more than once"),
    ({"features": {"x": {"type": "float", "on_missing": "guess"}}}, "on_missing 'guess' is not one of"),
    ({"gate": {"min_f1": 2}}, "gate.min_f1 must be a number between 0 and 1 or null, got 2"),
    ({"gate": {"min_f1": True}}, "gate.min_f1 must be a number between 0 and 1 or null, got True"),
    ({"gate": {"baseline_margin": None}}, "gate.baseline_margin must be a number between 0 and 1, got None"),
    ({"gate": {"min_lift_top_decile": -1}}, "gate.min_lift_top_decile must be a number >= 0 or null, got -1"),
    ({"gate": {"gate_f1": 0.5}}, "gate takes min_f1, baseline_margin, regression_tolerance, min_lift_top_decile"),
])
def test_a_bad_contract_is_refused_naming_the_key(overrides, message):
    with pytest.raises(ContractError) as info:
        from_dict(_spec(**overrides))
    assert message in str(info.value)


def test_the_gate_settings_are_read_checked_and_written_back():
    c = from_dict(_spec(gate={"min_f1": 0.5, "min_lift_top_decile": 2}))
    assert c.gate == contract.Gate(min_f1=0.5, baseline_margin=0.02, regression_tolerance=0.02, min_lift_top_decile=2.0)
    assert c.to_dict()["gate"]["min_lift_top_decile"] == 2.0 and from_dict(c.to_dict()) == c
    # unset, the lift floor is not written: every contract from before it existed keeps its fingerprint
    assert "min_lift_top_decile" not in lab().to_dict()["gate"]
    assert lab().sha256() == "d1ec9ca848e40b2b08bcddd7676ec46f56c667df872cac6b994a96c994b2e2bf"
    with pytest.raises(InvalidParameter, match="regression_tolerance must be a number between 0 and 1, got 2"):
        contract.Gate(regression_tolerance=2)


def test_a_contract_file_that_is_not_yaml_says_where(tmp_path):
    path = tmp_path / "dataset.yaml"
    path.write_text("features: [unclosed\n")
    with pytest.raises(ContractError, match="is not valid YAML"):
        contract.load_file(path)
    with pytest.raises(ContractError, match="does not exist"):
        contract.load_file(tmp_path / "nothing.yaml")


def _frame():
    return pd.DataFrame({"tenure_months": [6, 250, 7, 6.0, "x"], "num_complaints": [3, 0, 1, 2, 1],
                         "avg_session_minutes": [12.5, 1.0, -4.0, 3.0, 2.0],
                         "plan_type": [" Basic", "gold", "premium", "basic", None],
                         "region": ["NA", " na", "EU", "AS", "AF"], "churn": [1, 0, "1.0", 2, 0]})


def test_the_validator_names_each_broken_rule_per_row():
    check = check_frame(_frame(), lab())
    assert check.bad_rows().tolist() == [False, True, True, True, True]
    assert check.reasons(np.arange(5)) == [
        "", "tenure_months=250 is outside 0..200; plan_type='gold' is not one of basic, premium",
        "avg_session_minutes=-4 is outside 0..500",
        "churn=2 is not a target label (1 (churned) or 0 (stayed))",
        "tenure_months='x' is not a number; plan_type is missing"]
    assert check.columns["region"].values.tolist() == ["NA", "NA", "EU", "AS", "AF"]  # NA is North America
    assert check.columns["churn"].values.tolist() == [1, 0, 1, -1, 0]  # "1.0" is the label 1


def test_cleaning_clips_only_in_preparation():
    assert check_frame(_frame(), lab(), clip=True).columns["avg_session_minutes"].values[2] == 0.0
    assert np.isnan(check_frame(_frame(), lab()).columns["avg_session_minutes"].values[2])


def test_missing_tokens_and_spellings_belong_to_their_column():
    c = from_dict({"source": {"path": "x.csv"}, "target": {"column": "left", "positive": ["Y"], "negative": ["N"]},
                   "features": {"charges": {"type": "float", "missing": ["", "NA"], "on_missing": "impute"},
                                "region": {"type": "categorical", "values": ["NA", "EU"], "case": "upper"},
                                "paperless": {"type": "boolean", "true_values": ["Yes"], "false_values": ["No"]}}})
    frame = pd.DataFrame({"charges": ["1.5", "NA", " ", "abc"], "region": ["NA", "eu", "NA", "EU"],
                          "paperless": ["yes", "No", "maybe", "YES"], "left": ["Y", "N", "y", "N"]})
    check = check_frame(frame, c)
    assert check.columns["charges"].missing.tolist() == [False, True, True, False]
    assert check.columns["region"].missing.tolist() == [False] * 4  # the same token is a category here
    assert check.columns["paperless"].values.tolist()[:2] == [1.0, 0.0]
    assert check.bad_rows().tolist() == [False, False, True, True]  # 'maybe' is no boolean, 'abc' no number
    assert "paperless='maybe' is not a boolean" in check.reasons(np.array([2]))[0]


def test_a_registered_model_carries_a_checked_copy_of_its_contract(trained_home):
    entry = registry.current_entry(home=trained_home)
    assert registry.load_contract(entry, home=trained_home) == lab()
    path = registry.sidecar_path(entry, "contract", home=trained_home)
    path.write_text(path.read_text().replace("tenure_months", "tenure_days"))
    with pytest.raises(IntegrityError, match="contract file of v1 does not match its registered sha256"):
        registry.load_contract(entry, home=trained_home)
    report = registry.check(home=trained_home)
    assert not report.ok and any("contract copy of v1" in p.problem for p in report.problems)


def test_entries_from_before_contracts_are_the_labs(trained_home):
    entry = dict(registry.current_entry(home=trained_home))
    entry.pop("contract_file"), entry.pop("contract_sha256")
    assert registry.load_contract(entry, home=trained_home) == lab()


def test_the_package_face_names_every_public_name_and_only_those():
    public = {n for n in vars(contract) if not n.startswith("_") and n not in ("annotations",)}
    modules = {"spec", "files", "frame", "records"}  # submodules appear as attributes once imported
    assert set(contract.__all__) == public - modules
    assert all(getattr(contract, n) is not None for n in contract.__all__)
