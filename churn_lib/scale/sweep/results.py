"""What a sweep reports: each run's outcome, progress events while it runs, and the sweep's result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .params import describe_params
from .spec import METRICS, Holdout


@dataclass
class RunOutcome:
    """One parameter set of a sweep: its run, its version and how it scored."""

    index: int
    params: dict[str, Any]
    data_dir: str
    status: str = "pending"  # pending | running | ok | failed
    version: str | None = None
    seconds: float | None = None
    passed_gate: bool | None = None
    gate_reasons: list[str] = field(default_factory=list)
    metrics: dict[str, Any] | None = None  # on the run's own test split
    holdout: dict[str, Any] | None = None  # on the sweep's common holdout
    report: str | None = None  # the run's reports folder, or the failed stage's report
    error: str | None = None


@dataclass
class SweepProgress:
    """Counts of a sweep in progress, and what just happened.

    ``event`` is ``"stage"`` (a stage of run ``index`` started or ended:
    ``stage``, ``status``, ``seconds``) or ``"finished"`` (run ``index`` ended:
    ``outcome``). ``done`` counts finished runs, failed ones included.
    """

    total: int
    done: int
    running: int
    failed: int
    event: str
    index: int
    stage: str | None = None
    status: str | None = None
    seconds: float | None = None
    outcome: RunOutcome | None = None

    @property
    def pending(self) -> int:
        return self.total - self.done - self.running


@dataclass
class SweepResult:
    """What a sweep did: every run, the holdout scores, the winner and whether it was promoted."""

    sweep_id: str
    name: str
    metric: str
    holdout: Holdout
    runs: list[RunOutcome]
    where: str
    started_at_utc: str
    finished_at_utc: str | None = None
    seconds: float | None = None
    status: str = "running"
    current_before: dict[str, Any] | None = None  # version and holdout scores of the model current before
    winner: str | None = None
    promoted: bool = False
    note: str = ""
    record_path: str | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    home: str = ""

    @property
    def failed(self) -> list[RunOutcome]:
        return [r for r in self.runs if r.status == "failed"]

    @property
    def passed(self) -> list[RunOutcome]:
        return [r for r in self.runs if r.status == "ok" and r.passed_gate]

    def ranking(self) -> list[RunOutcome]:
        """Runs scored on the holdout, best first by the sweep's metric (ties: ROC AUC, then set order)."""
        return sorted((r for r in self.runs if r.holdout), key=lambda r: _rank_key(r, self.metric))

    def summary(self) -> str:
        """The sweep in a few lines: counts, the winner and its fate, every failure with its report."""
        ok = sum(r.status == "ok" for r in self.runs)
        lines = [f"sweep {self.name} ({self.sweep_id}): {ok} of {len(self.runs)} runs ok, {len(self.failed)} failed, "
                 f"{len(self.passed)} passed the gate; {self.where}, {self.seconds or 0:.1f} s"]
        if self.winner:
            best = next(r for r in self.runs if r.version == self.winner)
            fate = "promoted, now current" if self.promoted else "not promoted"
            lines.append(f"winner: {self.winner} (set {best.index}: {describe_params(best.params)}), holdout "
                         f"{self.metric} {best.holdout[self.metric]:.4f}; {fate}")
        if self.note:
            lines.append(self.note)
        for r in self.failed:
            report = "" if r.report and r.report in (r.error or "") else f"; report: {r.report or '-'}"
            label = f" as {r.version}" if r.version else ""
            lines.append(f"failed: set {r.index} ({describe_params(r.params)}){label}: {r.error}{report}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["holdout"] = asdict(self.holdout) | {"description": self.holdout.describe()}
        return out


def _rank_key(r: RunOutcome, metric: str) -> tuple:
    value = r.holdout.get(metric)
    auc = r.holdout.get("roc_auc") or 0.0
    primary = float("inf") if value is None else (-value if METRICS[metric] else value)
    return (primary, -auc, r.index)
