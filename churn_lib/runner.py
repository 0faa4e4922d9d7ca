"""Runner: execute the lifecycle stages for one model version.

:func:`run_direct` calls the stages straight through churn_lib (generate ->
prepare -> train -> evaluate). It is the reference the notebook runner is
measured against.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from . import data, evaluation, quality, training
from .home import Home

log = logging.getLogger(__name__)

STAGES = ("generate", "prepare", "train", "evaluate")


@dataclass
class RunResult:
    """What a run did: per-stage seconds, the registered entry, the gate verdict."""

    version: str | None = None
    passed_gate: bool | None = None
    promoted: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    entry: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None


def run_direct(*, home: Home | str | None = None, n_rows: int = 1200, seed: int = 42,
               version: str | None = None, params: training.TrainParams | None = None,
               faults: data.Faults | None = None, thresholds: quality.Thresholds | None = None,
               stages: tuple[str, ...] = STAGES) -> RunResult:
    """Run ``stages`` in order through the library; raises the first stage's error."""
    home = Home.resolve(home).ensure()
    params = params or training.TrainParams(seed=seed)
    result = RunResult()
    for stage in STAGES:
        if stage not in stages:
            continue
        start = time.perf_counter()
        if stage == "generate":
            data.write_raw(data.generate(n_rows, seed=seed, faults=faults), home=home)
        elif stage == "prepare":
            result.quality = quality.prepare(home=home, thresholds=thresholds).to_dict()
        elif stage == "train":
            trained = training.train(home=home, version=version, params=params)
            result.entry, result.promoted = trained.entry, trained.promoted
            result.version, result.passed_gate = trained.version, trained.passed_gate
        elif stage == "evaluate":
            result.evaluation = evaluation.evaluate(result.version or version, home=home).to_dict()
        result.seconds[stage] = round(time.perf_counter() - start, 3)
        log.info("stage %s done in %.2f s", stage, result.seconds[stage])
    return result
