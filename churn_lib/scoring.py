"""Scoring: load a registered model (integrity-checked) and score rows.

A :class:`Scorer` wraps a fitted pipeline with its registry entry and
decision threshold, so every caller predicts at the threshold that was stored
with the model, never at an implicit 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from . import registry, schema
from .exceptions import NoCurrentModel
from .home import Home


@dataclass
class Scorer:
    """A loaded model, its registry entry and its decision threshold."""

    entry: dict[str, Any]
    pipeline: Any = field(repr=False)

    @property
    def version(self) -> str:
        return self.entry["version"]

    @property
    def model_file(self) -> str:
        return self.entry["model_file"]

    @property
    def threshold(self) -> float:
        return float(self.entry.get("threshold", 0.5))

    def predict_proba(self, rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Churn probability per row (rows hold the normalised features)."""
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        return self.pipeline.predict_proba(frame[list(schema.FEATURES)])[:, 1]

    def predict(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """``(probability, prediction)`` per row, predictions at the stored threshold."""
        proba = self.predict_proba(rows)
        return proba, (proba >= self.threshold).astype(int)


def load(target: str | None = None, *, home: Home | str | None = None) -> Scorer:
    """A :class:`Scorer` for a registered version (default: the current model)."""
    home = Home.resolve(home)
    if target is None:
        entry = registry.current_entry(home=home)
        if entry is None:
            raise NoCurrentModel("no model is current: train one that passes the gate, or `churn promote VERSION`")
    else:
        entry = registry.get(target, home=home)
    return Scorer(entry=entry, pipeline=registry.load_model(entry, home=home))
