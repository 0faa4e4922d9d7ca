"""The stage table (:mod:`churn_lib.run.stages`): notebooks, parameter names, checks, the parameters cell."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from importlib import resources

import pytest

from churn_lib import InvalidParameter
from churn_lib.run import stages

#: Names that several stages declare on purpose: each is one thing for the whole run, so one
#: `-p name=value` rightly sets it everywhere. Any other name two stages share is a clash.
SHARED = {
    "seed": "the run's seed: the data's draw and the training's split and model (the stage table says so)",
    "version": "the run's version label: the model the train stage registers, evaluate evaluates and "
               "monitor_drift checks (the runner sets it in every stage that declares it)",
}
#: Clashes still in the table, each an expected failure until its rename lands. Remove an entry
#: when its name is no longer shared (its case is then not generated, and nothing xfails).

STAGES = list(stages.TABLE.values())
NOTEBOOKS = resources.files("churn_lib") / "notebooks"


def _declared_by() -> dict[str, list[stages.Param]]:
    out: dict[str, list[stages.Param]] = defaultdict(list)
    for stage in STAGES:
        for param in stage.params.values():
            out[param.name].append(param)
    return out


SHARED_NAMES = sorted(name for name, params in _declared_by().items() if len(params) > 1)
USER_PARAMS = [(s.name, p) for s in STAGES for p in s.user_params.values()]
GROUP_PARAMS = [(s.name, p) for s in STAGES for p in s.params.values() if p.owner is not None]


def _wrong_type(param: stages.Param):
    """A value of a type ``param`` refuses (a string for a number or a flag, a number for a string)."""
    return 1 if param.kind is str else "1"


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_every_stage_names_a_notebook_shipped_in_the_package(stage):
    assert re.fullmatch(r"\d\d_[a-z]+(_[a-z]+)*", stage.notebook), stage.notebook
    assert (NOTEBOOKS / f"{stage.notebook}.ipynb").is_file(), f"churn_lib/notebooks/{stage.notebook}.ipynb"


def test_the_stage_notebooks_are_the_table_in_execution_order():
    shipped = sorted(p.name[:-len(".ipynb")] for p in NOTEBOOKS.iterdir() if re.match(r"\d\d_.*\.ipynb$", p.name))
    assert [s.notebook for s in STAGES] == shipped  # no stray stage notebook, numbered as the table runs them
    assert stages.resolve(reversed([s.name for s in STAGES])) == tuple(s.name for s in STAGES)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_no_name_is_declared_twice_within_a_stage(stage):
    declared = [p.name for cls, names in stage.groups for p in stages._params_of(cls, names)]
    declared += [p.name for p in stage.extra]
    assert len(declared) == len(set(declared)) == len(stage.params)


@pytest.mark.parametrize("name", SHARED_NAMES)
def test_a_name_several_stages_declare_sets_one_thing(name):
    params = _declared_by()[name]
    owners = [f"{p.owner.__module__}.{p.owner.__qualname__}" if p.owner else "the stage table" for p in params]
    assert name in SHARED, f"{name} is declared by {owners}: -p {name}=... sets all of them; give each its own name"
    assert len({(p.kind, p.optional, p.default) for p in params}) == 1, f"{name} has two types or defaults"


def test_the_allow_list_names_only_names_that_are_shared():
    assert set(SHARED) <= set(SHARED_NAMES)


@pytest.mark.parametrize("stage,param", GROUP_PARAMS, ids=lambda x: x if isinstance(x, str) else x.name)
def test_build_refuses_a_value_of_the_wrong_type_naming_it(stage, param):
    wrong = _wrong_type(param)
    with pytest.raises(InvalidParameter, match=rf"^parameter {param.name}={wrong!r} of \d\d_\w+ must be "
                                               rf"{param.type_name} \(default ") as caught:
        stages.build(stage, {param.name: wrong})
    assert caught.value.name == param.name
    if not param.optional:
        with pytest.raises(InvalidParameter, match=rf"^parameter {param.name}=None ") as caught:
            stages.build(stage, {param.name: None})
        assert caught.value.name == param.name


@pytest.mark.parametrize("stage,param", USER_PARAMS, ids=lambda x: x if isinstance(x, str) else x.name)
def test_the_run_check_refuses_a_value_of_the_wrong_type_naming_it(stage, param):
    wrong = _wrong_type(param)
    with pytest.raises(InvalidParameter, match=rf"^parameter {param.name}={wrong!r} of ") as caught:
        stages.check((stage,), {param.name: wrong})
    assert caught.value.name == param.name


def test_an_unknown_or_runner_only_name_is_refused_naming_it_and_listing_the_known_ones():
    # build() takes a notebook's globals(), so it skips names it does not declare; the run's check,
    # made before any kernel starts, is where an unknown name is refused.
    with pytest.raises(InvalidParameter, match=r"^unknown parameter\(s\) n_rowz for the selected stages\. "
                                               r"Parameters: 01_generate_data: n_rows \(int or None\), ") as caught:
        stages.check(("generate", "prepare"), {"n_rows": 500, "n_rowz": 5})
    assert caught.value.name == "n_rowz"
    with pytest.raises(InvalidParameter, match=r"^unknown parameter\(s\) register ") as caught:
        stages.check(("train",), {"register": False})  # set by the runner, never by a user
    assert caught.value.name == "register"
    with pytest.raises(InvalidParameter, match="unknown parameter") as caught:
        stages.check(("prepare",), {"n_rows": 500})  # declared, but by a stage not selected
    assert caught.value.name == "n_rows"


def test_a_value_its_dataclass_refuses_is_refused_naming_it():
    with pytest.raises(InvalidParameter, match="n_rows must be an integer >= 1 or None, got 0") as caught:
        stages.check(("generate",), {"n_rows": 0})
    assert caught.value.name == "n_rows"
    with pytest.raises(InvalidParameter, match="n_rows") as caught:
        stages.build("generate", {"n_rows": -3})
    assert caught.value.name == "n_rows"


def test_check_splits_values_per_stage_and_build_coerces_them():
    per_stage = stages.check(("generate", "train"), {"seed": 7, "n_rows": 300, "offer_success": 1})
    assert per_stage == {"generate": {"seed": 7, "n_rows": 300}, "train": {"seed": 7, "offer_success": 1.0}}
    assert type(per_stage["train"]["offer_success"]) is float  # an int is a float, stored as one
    (train_params,) = stages.build("train", {"seed": 7, "offer_success": 1, "unrelated_global": object()})
    assert (train_params.seed, train_params.offer_success) == (7, 1.0)
    assert type(train_params.offer_success) is float


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_the_parameters_cell_round_trips(stage):
    source = stage.parameters_cell()
    namespace: dict = {}
    exec(compile(source, stage.notebook, "exec"), {}, namespace)  # literals only: a notebook's first cell
    assert namespace == {name: p.default for name, p in stage.params.items()}
    assert list(namespace) == list(stage.params)  # in notebook order
    for line, param in zip(source.splitlines(), stage.params.values(), strict=True):
        (assign,) = ast.parse(line).body
        assert ast.literal_eval(assign.value) == param.default
        assert line.endswith(f"  # {param.help}") and param.help, line
    assert stages.build(stage.name, namespace) == stages.build(stage.name, {})
