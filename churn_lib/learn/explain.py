"""What drives a model's answers over many customers: global importance and the riskiest customers' reasons.

Both come from the exact per-feature contributions of :meth:`churn_lib.scoring.Scorer.contributions`
(log-odds; see docs/explanations.md):

* ``importance``: the mean |contribution| of each feature over the rows, the
  average distance it moves a customer's log-odds from the base;
* ``top_decile``: for the riskiest tenth of the rows, how often each feature
  is among a customer's ``n`` largest |contributions|, how often it pushes
  towards churn there, and its mean contribution when it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class Reasons:
    """Global importance and the riskiest decile's most frequent top reasons."""

    version: str
    rows: int
    importance: dict[str, float]
    top_decile: pd.DataFrame = field(repr=False)
    n: int = 3

    def summary(self) -> str:
        ranked = sorted(self.importance, key=lambda k: -self.importance[k])[:3]
        head = ", ".join(f"{k} ({self.importance[k]:.3f})" for k in ranked)
        text = f"{self.version} on {self.rows} rows: the largest mean |contribution| (log-odds): {head}."
        if len(self.top_decile):
            first = self.top_decile.iloc[0]
            text += (f" In the riskiest tenth, {first['feature']} is among a customer's top {self.n} reasons "
                     f"for {first['share']:.0%} of them.")
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "rows": self.rows, "n": self.n, "importance": dict(self.importance),
                "top_decile": self.top_decile.to_dict(orient="records")}


def reasons(scorer: Any, rows: Any, *, n: int = 3) -> Reasons:
    """Importance and the riskiest decile's top-``n`` reasons of ``scorer`` on ``rows`` (a frame of features)."""
    proba, _, matrix = scorer.contributions(rows)
    names = list(scorer.features)
    importance = dict(zip(names, np.abs(matrix).mean(axis=0).tolist())) if len(matrix) else dict.fromkeys(names, 0.0)
    k = max(1, int(np.ceil(len(proba) / 10)))
    risky = np.argsort(-proba, kind="stable")[:k]
    sub = matrix[risky]
    n = min(n, len(names))
    top = np.argsort(-np.abs(sub), axis=1, kind="stable")[:, :n]
    picked = np.take_along_axis(sub, top, axis=1)
    records = []
    for j, name in enumerate(names):
        hit = top == j
        count = int(hit.any(axis=1).sum())
        if not count:
            continue
        values = picked[hit]
        records.append({"feature": name, "customers": count, "share": count / len(risky),
                        "towards_churn": float(np.mean(values > 0)), "mean_contribution": float(values.mean())})
    frame = pd.DataFrame(records, columns=["feature", "customers", "share", "towards_churn", "mean_contribution"])
    frame = frame.sort_values(["customers", "feature"], ascending=[False, True], ignore_index=True)
    return Reasons(version=scorer.version, rows=int(len(proba)), importance=importance, top_decile=frame, n=n)
