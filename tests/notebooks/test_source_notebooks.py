"""The committed stage notebooks: stripped, kernel python3, thin, with a parameters cell."""

import ast
import json

import pytest

from churn_lib.run import runner, stages

NOTEBOOKS = sorted(runner.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def test_every_stage_has_its_notebook():
    names = {p.stem for p in NOTEBOOKS}
    assert set(runner.NOTEBOOKS.values()) - {"05_monitor_drift"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_and_runs_on_python3(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, f"{path.name} has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_thin(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    params = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    for stmt in ast.parse("".join(params[0]["source"])).body:
        assert isinstance(stmt, (ast.Assign, ast.AnnAssign)) and isinstance(
            stmt.value, (ast.Constant, ast.UnaryOp)), "parameters are literals only"
    for cell in code:
        tree = ast.parse("".join(cell["source"]))
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Lambda)), f"{path.name} defines logic"
        assert "Path(" not in "".join(cell["source"]) and "os.path" not in "".join(cell["source"])
    assert nb["cells"][0]["cell_type"] == "markdown" and "Reads:" in "".join(nb["cells"][0]["source"])


@pytest.mark.parametrize("stage", [s for s in stages.TABLE.values()], ids=lambda s: s.notebook)
def test_each_parameters_cell_reads_as_the_stage_table_renders_it(stage):
    path = runner.notebooks_dir() / f"{stage.notebook}.ipynb"
    nb = json.loads(path.read_text())
    (cell,) = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert "".join(cell["source"]) == stage.parameters_cell(), (
        f"{path.name}: its parameters cell is not the stage table's; regenerate it from "
        f"churn_lib.run.stages.TABLE[{stage.name!r}].parameters_cell()")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_valid_nbformat(path):
    """Jupyter, papermill and nbconvert read the file without "Notebook JSON is invalid" (a 4.4
    notebook with cell ids was one): the file as committed, nothing repaired before the check."""
    import nbformat

    nbformat.validate(json.loads(path.read_text()))
