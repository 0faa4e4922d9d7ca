"""The loader MLflow imports for an exported model (``loader_module`` of its ``python_function`` flavor).

``mlflow.pyfunc.load_model(DIR)`` puts ``DIR/code`` (a copy of churn_lib) on
``sys.path``, imports this module and calls :func:`_load_pyfunc` with
``DIR/churn_home``: a one-model registry in the registry's own format. The
model is loaded the way every churn command loads one
(:func:`churn_lib.scoring.from_entry`): unpickled only after its sha256 (and
its contract copy's) matches the entry, then compiled and verified.

:meth:`ChurnModel.predict` checks the rows against the model's contract (the
one row validator, :func:`churn_lib.contract.check_frame`: the API's and batch
scoring's rules) and returns a DataFrame with the churn probability
(``probability``, our scorer's, calibrated when the model is) and the decision
at the stored threshold (``prediction``, 1 or 0): probabilities, not only
labels (mlflow/mlflow#694). A row the contract refuses fails the call with the
row and the reason (MLflow's serving answers 400), never a guess.

This module imports MLflow only to raise its error type, when a call is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import contract as _contract
from .. import registry, scoring
from ..exceptions import IntegrityError, InvalidParameter
from ..home import Home

#: Refused rows named in an error message (the count says how many there were).
SHOWN_REFUSALS = 3


def _refuse(message: str) -> None:
    """Raise MLflow's "invalid parameter value" (its server answers 400 with ``message``), else ours."""
    try:
        from mlflow.exceptions import MlflowException
    except ImportError:  # called outside MLflow
        raise InvalidParameter(message, name="model_input") from None
    raise MlflowException.invalid_parameter_value(message)


def check_rows(frame: pd.DataFrame, contract: _contract.Contract) -> tuple[Any, str | None]:
    """The contract's check of ``frame``'s feature columns, and why it is refused (None: every row is valid)."""
    check = _contract.check_frame(frame, contract, target=False, ids=False)
    if check.missing_columns:
        return check, (f"missing feature column(s): {', '.join(check.missing_columns)} "
                       f"(the model takes {', '.join(contract.feature_names)})")
    bad = check.bad_rows()
    if not bad.any():
        return check, None
    idx = np.flatnonzero(bad)[:SHOWN_REFUSALS]
    rows = "; ".join(f"row {frame.index[i]!r}: {why}" for i, why in zip(idx, check.reasons(idx)))
    return check, f"{int(bad.sum())} of {len(frame)} row(s) break the model's contract: {rows}"


def predict_frame(scorer: scoring.Scorer, frame: pd.DataFrame) -> pd.DataFrame:
    """``probability`` and ``prediction`` per row of ``frame`` (the contract's features, other columns ignored).

    Raises
    ------
    MlflowException or InvalidParameter
        A feature column is missing, or rows break the contract (the first few named with the reason).
    """
    check, refusal = check_rows(frame, scorer.contract)
    if refusal is not None:
        _refuse(refusal)
    proba = np.asarray(scorer.predict_proba(check.features()), dtype=np.float64)
    return pd.DataFrame({"probability": proba, "prediction": (proba >= scorer.threshold).astype(np.int64)},
                        index=frame.index)


class ChurnModel:
    """What ``mlflow.pyfunc.load_model`` wraps: a loaded :class:`~churn_lib.scoring.Scorer` behind ``predict``."""

    def __init__(self, scorer: scoring.Scorer) -> None:
        self.scorer = scorer

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """``probability`` (float) and ``prediction`` (0/1 at the stored threshold) per row of ``model_input``.

        ``model_input``: a DataFrame (what MLflow passes after checking the signature) or anything
        ``pandas.DataFrame`` takes (a list of row mappings, a mapping of columns). ``params``: none are used.
        """
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return predict_frame(self.scorer, frame)


def load(data_path: str | Path) -> ChurnModel:
    """The exported model in ``data_path`` (a one-model registry), integrity-checked, ready to predict.

    Raises
    ------
    IntegrityError
        The folder does not hold exactly one registered model, or its files do not match their sha256.
    """
    home = Home(Path(data_path).resolve())
    entries = registry.load_entries(home=home)
    if len(entries) != 1:
        raise IntegrityError(f"{home.metadata_json} must register exactly one model, found {len(entries)}: "
                             "export the model again", path=str(home.metadata_json))
    return ChurnModel(scoring.from_entry(entries[0], home=home))


def _load_pyfunc(data_path: str) -> ChurnModel:
    """MLflow's entry point (``loader_module``): :func:`load`."""
    return load(data_path)
