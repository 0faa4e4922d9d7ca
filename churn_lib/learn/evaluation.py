"""Evaluation: a registered version against the other registered versions and
the current model, side by side, on the same test split.

The test split is rebuilt from ``data/processed.csv`` with the evaluated
version's seed and test size, so every model is scored on exactly the rows the
evaluated version never saw. Each model is scored at its own stored threshold
(0.5 for entries that have none, like the lab's). A model trained on another
split (``same_split`` false) may have seen some of these rows in training, so
its scores there are optimistic; the table says so rather than hiding it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import registry
from .._io import sha256_file
from ..contract import Contract
from ..data import read_csv
from ..exceptions import ChurnError, IntegrityError, ModelNotFound
from ..home import Home
from .metrics import Gains, compute_metrics, gains_at, threshold_curve
from .train import split


@dataclass
class Evaluation:
    """Scores of every registered version on the evaluated version's test split."""

    version: str
    current_version: str | None
    table: pd.DataFrame
    data_matches: bool
    y_test: np.ndarray = field(repr=False)
    proba: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    X_test: pd.DataFrame | None = field(repr=False, default=None)
    scorer: Any = field(repr=False, default=None)  # the evaluated version's (explanations)

    @property
    def threshold(self) -> float:
        """The evaluated version's stored threshold."""
        return float(self.table.loc[self.table["evaluated"], "threshold"].iloc[0])

    def summary(self) -> str:
        row = self.table[self.table["evaluated"]].iloc[0]
        text = (f"{self.version}: F1 {row.get('f1', float('nan')):.4f} at its threshold {row['threshold']:.2f} "
                f"on {len(self.y_test)} test rows; current model: {self.current_version or 'none'}; "
                f"{len(self.table)} model(s) compared on the same rows.")
        if not self.data_matches:
            text += " Note: the processed data changed since this version was trained."
        return text

    def curve(self, version: str | None = None) -> pd.DataFrame:
        """F1 / precision / recall against the threshold on this test split (display only)."""
        return threshold_curve(self.y_test, self.proba[version or self.version])

    def gains(self, version: str | None = None) -> Gains:
        """Gains and lift of a version (default the evaluated one) on this test split, at its threshold."""
        version = version or self.version
        threshold = float(self.table.set_index("version").loc[version, "threshold"])
        return gains_at(self.y_test, self.proba[version], threshold)

    def reasons(self, n: int = 3):
        """Global importance and the riskiest decile's top reasons of the evaluated version on its test split
        (:func:`churn_lib.learn.explain.reasons`)."""
        from .explain import reasons

        if self.scorer is None or self.X_test is None:
            raise ChurnError(f"{self.version} has no scorer to explain it with")
        return reasons(self.scorer, self.X_test, n=n)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "current_version": self.current_version,
            "data_matches": self.data_matches,
            "models": self.table.replace({np.nan: None}).to_dict(orient="records"),
            "errors": dict(self.errors),
        }


def evaluate(version: str | None = None, *, home: Home | str | None = None) -> Evaluation:
    """Score every registered model on ``version``'s test split.

    Parameters
    ----------
    version : str, optional
        Label or model file name; default the most recently registered. A
        staged candidate of a run in progress is found by its label too.

    Raises
    ------
    ModelNotFound
        Nothing is registered, or no model has that name.
    IntegrityError
        The evaluated version itself cannot be scored (its file, or columns its data lacks).
    """
    home = Home.resolve(home)
    entry, entries, payload = _evaluated(version, home)
    data_path = _training_data(entry, home)
    contract = (payload.get("contract") if entry.get("pending") else None) or registry.load_contract(entry, home=home)
    df = read_csv(data_path, contract, columns=(*contract.feature_names, contract.target.column))  # as training reads it
    _, X_test, _, y_test = split(df, contract, test_size=entry.get("params", {}).get("test_size", 0.25),
                                 seed=entry.get("seed", 42))
    current = registry.current_file(home=home)
    staged = {version: payload["model"]} if payload else {}
    rows, probas, errors = [], {}, {}
    evaluated = None
    for e in entries:
        row = _row(e, entry, current)
        rows.append(row)
        try:
            model, features = _model_of(e, entry, staged, contract, X_test, home)
        except ChurnError as exc:
            errors[e["version"]] = str(exc)
            continue
        p = model.predict_proba(X_test[list(features)])[:, 1]
        probas[e["version"]] = p
        m = compute_metrics(y_test, p, row["threshold"])
        row.update({k: m[k] for k in ("f1", "precision", "recall", "accuracy", "roc_auc", "brier", "lift_top_decile")})
        if e is entry:
            from .. import scoring

            evaluated = scoring.build(e, model, contract=contract)
    if entry["version"] in errors:
        raise IntegrityError(errors[entry["version"]], version=entry["version"])
    cur = next((e["version"] for e in entries if e["model_file"] == current), None)
    return Evaluation(version=entry["version"], current_version=cur, table=pd.DataFrame(rows),
                      data_matches=entry.get("data_sha256") == sha256_file(data_path), y_test=np.asarray(y_test),
                      proba=probas, errors=errors, X_test=X_test[list(contract.feature_names)], scorer=evaluated)


def _evaluated(version: str | None, home: Home) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The evaluated entry, every entry to score (a run's candidate last) and the candidate's payload ({} if none).

    Raises
    ------
    ModelNotFound
    """
    entries = registry.load_entries(home=home)
    registered = version is None or any(version in (e["version"], e["model_file"]) for e in entries)
    if not registered and registry.has_candidate(version, home=home):
        # A run's candidate: trained and gated, registered only when the run succeeds.
        payload = registry.load_candidate(version, home=home)
        entry = {**payload["fields"], "version": version, "model_file": f"(candidate {version})", "pending": True}
        return entry, [*entries, entry], payload
    if not entries:
        raise ModelNotFound("no model is registered yet: run `churn train` first", target=version)
    return (registry.find(version, entries) if version else entries[-1]), entries, {}


def _row(e: dict[str, Any], entry: dict[str, Any], current: str | None) -> dict[str, Any]:
    """The table's row of entry ``e`` before it is scored: what it is, and whether it shares ``entry``'s split."""
    same_split = (e.get("seed") == entry.get("seed") and e.get("data_sha256") == entry.get("data_sha256")
                  and e.get("params", {}).get("test_size") == entry.get("params", {}).get("test_size"))
    return {"version": e["version"], "current": e["model_file"] == current,
            "evaluated": e is entry, "same_split": same_split, "passed_gate": e.get("passed_gate"),
            "model": e.get("model_family", "logreg"), "calibration": (e.get("calibration") or {}).get("method"),
            "threshold": e.get("threshold", 0.5), "trained_at_utc": e.get("trained_at_utc")}


def _model_of(e: dict[str, Any], entry: dict[str, Any], staged: dict[str, Any], contract: Contract,
              X_test: pd.DataFrame, home: Home) -> tuple[Any, tuple[str, ...]]:
    """Entry ``e``'s model (a staged candidate's, else loaded and checked) and the features it reads.

    Raises
    ------
    ChurnError
        Its file or contract cannot be loaded, or it was trained on columns this data lacks.
    """
    model = staged.get(e["version"]) or registry.load_model(e, home=home)
    features = (contract if e is entry else registry.load_contract(e, home=home)).feature_names
    absent = [f for f in features if f not in X_test.columns]
    if absent:
        raise IntegrityError(f"{e['version']} was trained on other columns ({', '.join(absent[:5])} are "
                             "not in this data)", version=e["version"])
    return model, features


def _training_data(entry: dict, home: Home) -> Path:
    """The processed file ``entry`` was trained on when it is still there (a sweep run's
    own data), else the home's ``data/processed.csv``. Never a path outside the home."""
    name = entry.get("data_file")
    if isinstance(name, str) and name:
        path = (home.root / name).resolve()
        if path.is_relative_to(home.root.resolve()) and path.is_file():
            return path
    return home.processed_csv
