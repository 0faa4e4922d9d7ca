"""The winner of a sweep, chosen on common test data that no run trained on.

Over a file source, :func:`split_source` holds part of the user's data out
before any run starts and writes the rest as the runs' pool; for the lab's
generator the holdout is fresh draws with a seed no run uses
(:func:`holdout_frame`). :func:`select` scores every registered version of
the sweep on it, through the registry (sha256-checked), and promotes the
best that passed its gate.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ... import contract as _contract
from ... import data, quality, registry, scoring
from ..._io import atomic_file, atomic_write
from ...data.ingest import ingest
from ...exceptions import ChurnError, InvalidParameter, PromotionRefused
from ...home import Home
from ...learn.metrics import compute_metrics
from .results import SweepResult
from .spec import Holdout

log = logging.getLogger(__name__)


def holdout_frame(holdout: Holdout, contract: _contract.Contract | None = None, folder: Path | None = None
                  ) -> tuple[pd.DataFrame, np.ndarray]:
    """The holdout's features and 0/1 labels: generator draws, or the held-out rows of the user's data, cleaned."""
    contract = contract or _contract.lab()
    if not holdout.from_file:
        df = data.generate(holdout.generator_rows, seed=holdout.seed)
    else:
        raw = data.read_csv(folder / "holdout.csv", contract)
        df, _ = quality.check_and_clean(raw, quality.Thresholds(max_missing_rate=1.0, max_invalid_rate=1.0,
                                                                min_clean_rows=2), contract=contract)
    return df[list(contract.feature_names)], df[contract.target.column].to_numpy()


def split_source(contract: _contract.Contract, holdout: Holdout, home: Home, folder: Path) -> Holdout:
    """Copy the file source (checked), hold ``holdout`` of its rows out, write the rest as the runs' pool."""
    copy = folder / "source.csv"
    info = ingest(contract, root=home.root, target=copy)
    frame = pd.read_csv(copy, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    n = len(frame)
    k = holdout.n_rows if holdout.n_rows is not None else int(round(holdout.fraction * n))
    if not 1 <= k < n:
        raise InvalidParameter(f"the holdout of {k} rows does not fit the {n} rows of {info.files[0]}",
                               name="holdout_rows")
    held = np.zeros(n, dtype=bool)
    held[np.random.default_rng(holdout.seed).choice(n, size=k, replace=False)] = True
    for name, part in (("holdout.csv", frame[held]), ("pool.csv", frame[~held])):
        with atomic_file(folder / name, "w") as out:
            part.to_csv(out, index=False)
    copy.unlink()
    return replace(holdout, rows_used=k)


def _score_holdout(version: str, X: pd.DataFrame, y: np.ndarray, home: Home) -> dict[str, Any]:
    scorer = scoring.load(version, home=home)  # through the registry: sha256-checked
    metrics = compute_metrics(y, scorer.predict_proba(X), scorer.threshold)
    metrics.pop("confusion_matrix", None)
    return metrics


def _score_versions(result: SweepResult, home: Home, contract: _contract.Contract | None,
                    folder: Path | None) -> bool:
    """Score every version the sweep registered, and the model current before it, on the holdout;
    False when no run registered a version."""
    scored = [r for r in result.runs if r.status == "ok" and r.version]
    if not scored:
        return False
    X, y = holdout_frame(result.holdout, contract, folder)
    for r in scored:
        try:
            r.holdout = _score_holdout(r.version, X, y, home)
        except ChurnError as exc:
            r.error = f"not scored on the holdout: {exc}"
            log.warning("sweep version %s not scored on the holdout: %s", r.version, exc)
    if result.current_before:
        try:
            result.current_before["holdout"] = _score_holdout(result.current_before["version"], X, y, home)
        except ChurnError as exc:
            result.current_before["error"] = str(exc)
    return True


def select(result: SweepResult, home: Home, *, promote: bool, contract: _contract.Contract | None = None,
           folder: Path | None = None) -> None:
    """Score every registered sweep version on the holdout; promote the best that passed its gate."""
    scored = _score_versions(result, home, contract, folder)
    ranked = [r for r in result.ranking() if r.passed_gate]
    if not ranked:
        result.note = ("no version of the sweep passed the gate; nothing promoted" if scored
                       else "no run succeeded; nothing promoted")
        return
    best = ranked[0]
    result.winner = best.version
    if not promote:
        result.note = "promotion disabled: the current model is unchanged"
        return
    reason = (f"best of sweep {result.sweep_id} by holdout {result.metric} {best.holdout[result.metric]:.4f} "
              f"({len(ranked)} of {len(result.runs)} versions passed the gate)")
    try:
        registry.promote(best.version, home=home, reason=reason)
    except PromotionRefused as exc:
        result.note = f"winner {best.version} was not promoted: {exc}"
        log.warning("%s", result.note)
        return
    result.promoted = True
    stats = Path(best.data_dir) / "train_stats.json"
    if stats.is_file():  # the lab's file describes the current model's training data again
        atomic_write(home.train_stats_json, lambda tmp: shutil.copyfile(stats, tmp))
