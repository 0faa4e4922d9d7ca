"""Response models of the API that do not depend on the dataset contract, and the body limits.

The prediction routes' request and response models are generated from the
served model's contract: see :mod:`serve.schemas`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .schemas import MAX_BATCH_ROWS

__all__ = ["MAX_BATCH_BODY_BYTES", "MAX_BATCH_ROWS", "MAX_BODY_BYTES", "ChallengerStatus", "ErrorItem",
           "HealthResponse",
           "MessageResponse", "ModelResponse", "PredictionLogStatus", "ValidationErrorResponse"]

#: Largest request body of ``POST /predict`` and the other routes (one request is about 150 bytes).
MAX_BODY_BYTES = 16 * 1024
#: Largest request body of ``POST /predict/batch`` (1000 rows with 128-character ids is about 300 KB).
MAX_BATCH_BODY_BYTES = 1024 * 1024
#: Body limit and most records of one POST /feedback.
MAX_FEEDBACK_BODY_BYTES = 1024 * 1024
MAX_FEEDBACK_ROWS = 10_000


class PredictionLogStatus(BaseModel):
    path: str
    ok: bool
    failures: int
    last_error: str | None
    last_error_at: str | None


class ChallengerStatus(BaseModel):
    """The challenger (``registry/challenger.txt``): ``status`` none (no pointer), ok (scored in shadow) or
    degraded (dropped: it cannot be loaded or failed while served, ``reason`` says why). The counts are this
    worker's since it started (``/metrics`` sums every worker's)."""

    status: Literal["none", "ok", "degraded"]
    reason: str | None
    pointer: str | None = Field(description="what registry/challenger.txt names")
    model_file: str | None
    version: str | None
    threshold: float | None
    sample: float | None = Field(description="the share of requests it scores, picked by a hash of request_id")
    loaded_at: str | None
    predictions: int = Field(description="its answers logged (role challenger)")
    failures: int = Field(description="rows it did not score or log")
    last_error: str | None


class HealthResponse(BaseModel):
    """``status``: ok (200), degraded (200: a model is served, see ``reason``) or unavailable (503)."""

    status: Literal["ok", "degraded", "unavailable"]
    current_model: str | None = Field(description="file name of the served model, as in the lab")
    version: str | None
    threshold: float | None
    reason: str | None
    pointer: str | None = Field(description="what registry/current_model.txt names")
    scorer: Literal["numpy", "booster", "sklearn", "lightgbm"] | None = Field(
        description="what scores: numpy (the compiled logistic regression), booster (LightGBM row by row), or the "
                    "model itself (sklearn, lightgbm) when it could not be compiled; scorer_note says why")
    scorer_note: str | None
    loaded_at: str | None
    contract: str | None = Field(default=None, description="the served model's dataset contract (name)")
    prediction_log: PredictionLogStatus
    pid: int = Field(description="the worker process that answered")
    challenger: ChallengerStatus


class ModelResponse(BaseModel):
    """The served model's registry entry (every field of metadata.json is passed through)."""

    model_config = ConfigDict(extra="allow")

    model_file: str
    version: str
    trained_at_utc: str | None = None
    threshold: float = 0.5
    passed_gate: bool | None = None
    metrics: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None


class ErrorItem(BaseModel):
    """One validation error: FastAPI's ``loc``/``msg``/``type`` plus the field and batch row."""

    loc: list[str | int]
    field: str
    row: int | None = None
    msg: str = Field(description="names the field, what is wrong and what is allowed")
    type: str


class ValidationErrorResponse(BaseModel):
    detail: list[ErrorItem]


class MessageResponse(BaseModel):
    detail: str


class RejectExample(BaseModel):
    line: int = Field(description="position of the record in the array (0-based)")
    reason: str
    value: str = ""


class FeedbackResponse(BaseModel):
    """What POST /feedback stored: every accepted outcome is one line of logs/feedback.log."""

    source: str
    rows: int
    accepted: int
    rejected_total: int
    rejected: dict[str, int] = Field(description="rejected records by reason (never written)")
    examples: list[RejectExample] = Field(description="up to 10 rejected records and why")
    repeated: int = Field(description="records repeating a key given earlier in the same request (the last counts)")
    ignored_columns: list[str]
    key: str = Field(description="what names the prediction: request_id or the contract's id column")
    matched: int | None = None
    unmatched: int | None = None
    log: str
