"""What an MLflow model folder holds, written without MLflow: ``MLmodel``, environment, input example.

The folder (MLflow's "pyfunc filesystem format")::

    MLmodel                     python_function flavor: loader_module churn_lib.export.pyfunc, data
                                churn_home, code code; the signature; the input example; metadata
                                (churn_mlops: version, family, threshold, the model file and its sha256)
    requirements.txt            the exact installed versions of what loading needs (==)
    python_env.yaml conda.yaml  the environment, for --env-manager virtualenv / uv / conda
    input_example.json          the contract's example rows (pandas "split" orient)
    serving_input_example.json  the same, as a request to ``mlflow models serve``
    churn_home/registry/...     the model as a one-model registry: metadata.json, the model file
                                and its sidecars, byte for byte the registered ones
    code/churn_lib/...          the Python source of churn_lib that wrote it (what the loader imports)

The signature comes from the model's contract: one column per feature, in the
contract's order: ``long`` for an integer, ``double`` for a float (and for an
integer or boolean whose missing values the model fills in: only a float
column holds a missing value), ``boolean``, ``string`` for a category; the
outputs ``probability`` (double) and ``prediction`` (long).

Why by hand: ``MLmodel`` is a documented YAML file and the rest is JSON and
text, so exporting needs neither MLflow nor its dependencies (it is a test
extra, not a dependency); the tests load every export with the pinned
``mlflow-skinny``, which is what would catch a change of the format.
"""

from __future__ import annotations

import json
import platform
import shutil
import uuid
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from .. import __version__
from .. import contract as _contract
from .. import models, registry, scoring
from .._io import atomic_write_json, atomic_write_text, sha256_file
from ..exceptions import DataError, IntegrityError
from ..home import Home
from . import pyfunc

#: The folder (relative to the export) holding the model as a one-model registry: the flavor's ``data``.
DATA = "churn_home"
#: The folder holding churn_lib's source: the flavor's ``code`` (MLflow puts it on ``sys.path``).
CODE = "code"
#: What loading and scoring a model imports, whatever its family (each family adds its ``LIBRARIES``).
LOADING = ("numpy", "pandas", "scikit-learn", "scipy", "joblib")
#: MLflow's distributions, the full one first: the first installed is pinned too, as MLflow pins itself.
MLFLOW = ("mlflow", "mlflow-skinny")
#: The output columns and their MLflow types.
OUTPUTS = (("probability", "double"), ("prediction", "long"))


def column_type(f: _contract.Feature) -> str:
    """The MLflow type of a feature's column (see the module docstring)."""
    if f.type == _contract.CATEGORICAL:
        return "string"
    if f.type == _contract.FLOAT or f.imputed:
        return "double"
    return "long" if f.type == _contract.INTEGER else "boolean"


def signature(contract: _contract.Contract) -> dict[str, Any]:
    """The ``signature`` block of ``MLmodel``: inputs from the contract, the two outputs."""
    inputs = [{"type": column_type(f), "name": f.name, "required": True} for f in contract.features]
    outputs = [{"type": kind, "name": name, "required": True} for name, kind in OUTPUTS]
    return {"inputs": json.dumps(inputs), "outputs": json.dumps(outputs), "params": None}


def _typed(f: _contract.Feature, value: Any) -> Any:
    """An example value as its signature column holds it (a whole number in a double column is a float)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    kind = column_type(f)
    if kind == "string":
        return f.normalise(value)
    if kind == "boolean":
        return f.boolean(value)
    if kind == "long":
        return int(value)
    return float(f.boolean(value)) if f.type == _contract.BOOLEAN else float(value)


def example_rows(contract: _contract.Contract) -> list[dict[str, Any]]:
    """The contract's example rows (its ``examples``: the lab's requests), features only, typed as the
    signature; the contract's built example when none has every feature."""
    rows = [{k: v for k, v in e.items() if k in contract.feature_names} for e in contract.examples]
    rows = [r for r in rows if set(r) == set(contract.feature_names)] or [contract.example()]
    return [{f.name: _typed(f, r.get(f.name)) for f in contract.features} for r in rows]


def example_frame(contract: _contract.Contract) -> pd.DataFrame:
    """:func:`example_rows` as a DataFrame (columns in the contract's order)."""
    return pd.DataFrame(example_rows(contract), columns=list(contract.feature_names))


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def requirements(family: str) -> list[str]:
    """``name==version`` of what loading a model of ``family`` imports (installed versions), MLflow first when
    installed."""
    mlflow = next((f"{name}=={v}" for name in MLFLOW if (v := _installed(name))), None)
    pins = [mlflow] if mlflow else []
    for name in (*LOADING, *models.family(family).LIBRARIES):
        v = _installed(name)
        if v is None:  # it was imported a moment ago to load the model: an environment without metadata
            raise DataError(f"cannot pin {name}: no installed version found (is it installed with pip?)")
        pins.append(f"{name}=={v}")
    return pins


def _environments(pins: list[str]) -> dict[str, dict[str, Any]]:
    """``python_env.yaml`` and ``conda.yaml`` as MLflow writes them."""
    py = platform.python_version()
    build = [f"{n}=={v}" if (v := _installed(n)) else n for n in ("pip", "setuptools")] + ["wheel"]
    return {"python_env.yaml": {"python": py, "build_dependencies": build, "dependencies": ["-r requirements.txt"]},
            "conda.yaml": {"channels": ["conda-forge"], "dependencies": [f"python={py}", "pip", {"pip": pins}],
                           "name": "mlflow-env"}}


def mlmodel(scorer: scoring.Scorer, *, pins: list[str], exported_at: datetime) -> dict[str, Any]:
    """The ``MLmodel`` file's content."""
    entry = scorer.entry
    flavor = {"loader_module": pyfunc.__name__, "data": DATA, "code": CODE,
              "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
              "python_version": platform.python_version()}
    meta = {"version": scorer.version, "model_family": scorer.family, "calibration": entry.get("calibration"),
            "threshold": scorer.threshold, "model_file": scorer.model_file, "model_sha256": entry["model_sha256"],
            "contract_sha256": entry.get("contract_sha256"), "features": list(scorer.features),
            "churn_mlops_version": __version__}
    out: dict[str, Any] = {
        "flavors": {"python_function": flavor},
        "metadata": {"churn_mlops": meta},
        "model_uuid": uuid.uuid4().hex,
        "saved_input_example_info": {"artifact_path": "input_example.json", "pandas_orient": "split",
                                     "serving_input_path": "serving_input_example.json", "type": "dataframe"},
        "signature": signature(scorer.contract),
        "utc_time_created": exported_at.strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    mlflow_pin = next((p for p in pins if p.split("==")[0] in MLFLOW), None)
    if mlflow_pin:
        out["mlflow_version"] = mlflow_pin.split("==")[1]
    return out


def _copy_model(scorer: scoring.Scorer, *, home: Home, into: Home) -> None:
    """The registered files (model and sidecars) and the entry, as a one-model registry under ``into``."""
    entry = scorer.entry
    into.models_dir.mkdir(parents=True)
    copy = into.models_dir / scorer.model_file
    shutil.copyfile(registry.model_path(entry, home=home), copy)
    if sha256_file(copy) != entry["model_sha256"]:  # changed since it was loaded and checked
        raise IntegrityError(f"model file of {scorer.version} changed while it was exported; export it again",
                             version=scorer.version)
    for kind in registry.SIDECARS:
        text = registry.read_sidecar(entry, kind, home=home)  # sha256-checked
        if text is not None:
            atomic_write_text(into.models_dir / registry.sidecar_path(entry, kind, home=home).name, text)
    atomic_write_json(into.metadata_json, [entry])


def _copy_code(into: Path) -> None:
    """churn_lib's Python source (no caches, no notebooks): what ``loader_module`` imports."""
    package = Path(pyfunc.__file__).resolve().parents[1]
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.ipynb")
    shutil.copytree(package, into / package.name, ignore=skip, copy_function=shutil.copyfile)


def write(folder: Path, scorer: scoring.Scorer, *, home: Home) -> list[str]:
    """Write the MLflow model folder of a loaded model into ``folder`` (empty); return its pinned requirements.

    Raises
    ------
    DataError
        The contract's example rows are refused by the contract (the input example must score).
    IntegrityError
        The model file changed since it was loaded.
    """
    import yaml

    rows = example_rows(scorer.contract)
    _check, refusal = pyfunc.check_rows(pd.DataFrame(rows), scorer.contract)
    if refusal is not None:  # the input example must be one the model takes
        raise DataError(f"the example rows of {scorer.version}'s contract cannot be its input example: {refusal}",
                        key="examples")
    _copy_model(scorer, home=home, into=Home(folder / DATA))
    _copy_code(folder / CODE)
    pins = requirements(scorer.family)
    content = mlmodel(scorer, pins=pins, exported_at=datetime.now(timezone.utc).replace(tzinfo=None))
    atomic_write_text(folder / "MLmodel", yaml.safe_dump(content, sort_keys=True, default_flow_style=False))
    atomic_write_text(folder / "requirements.txt", "\n".join(pins) + "\n")
    for name, env in _environments(pins).items():
        atomic_write_text(folder / name, yaml.safe_dump(env, sort_keys=False, default_flow_style=False))
    names = list(scorer.features)
    split = {"columns": names, "data": [[r[n] for n in names] for r in rows]}
    atomic_write_json(folder / "input_example.json", split)
    atomic_write_json(folder / "serving_input_example.json", {"dataframe_split": split})
    return pins
