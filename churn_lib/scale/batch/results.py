"""What a batch run reports: its progress while it runs, and its result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class BatchProgress:
    """Where a batch run is: bytes of the input done, rows scored and rejected so far."""

    bytes_done: int
    bytes_total: int
    rows_scored: int
    rows_rejected: int

    @property
    def fraction(self) -> float:
        return self.bytes_done / self.bytes_total if self.bytes_total else 1.0


@dataclass
class BatchResult:
    """What :func:`score_file` did.

    Attributes
    ----------
    rows_in, rows_scored, rows_rejected : int
        Data rows read, written to the output, written to the rejects file.
    reasons : dict
        Rejected rows per rule (``"region: unknown category"``); a row
        breaking several rules counts under each.
    engine : str
        ``"numpy"`` (compiled scorer) or ``"sklearn"``; ``engine_note`` says why.
    partitions : int
        Partitions scored on a Dask cluster (0 when scored in this process).
    """

    input: str
    output: str
    rejects: str
    version: str
    model_file: str
    threshold: float
    engine: str
    engine_note: str
    rows_in: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    partitions: int = 0
    scheduler: str | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One paragraph: what was scored with which model, where it went, what was rejected."""
        where = (f"on {self.scheduler} ({self.partitions} partitions)" if self.scheduler else "in this process")
        text = (f"scored {self.rows_scored:,} of {self.rows_in:,} rows with {self.version} ({self.model_file}, "
                f"threshold {self.threshold:.2f}, {self.engine} scorer) {where} in {self.seconds:.1f} s "
                f"({self.rows_per_second:,.0f} rows/s) -> {self.output}")
        if self.rows_rejected:
            top = ", ".join(f"{k}: {v:,}" for k, v in sorted(self.reasons.items(), key=lambda kv: -kv[1])[:5])
            text += f"; rejected {self.rows_rejected:,} rows ({top}) -> {self.rejects}"
        else:
            text += "; no row rejected"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"rows_per_second": round(self.rows_per_second, 1)}
