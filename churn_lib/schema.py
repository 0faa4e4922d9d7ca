"""The churn data's schema: the single source of truth for features.

Generation, quality checks, training, the API's request model and drift all
read the feature names, types, allowed categories and valid ranges from here.
"""

from __future__ import annotations

from dataclasses import dataclass

NUMERIC: tuple[str, ...] = ("tenure_months", "num_complaints", "avg_session_minutes")
CATEGORICAL: tuple[str, ...] = ("plan_type", "region")
FEATURES: tuple[str, ...] = NUMERIC + CATEGORICAL
TARGET = "churn"
COLUMNS: tuple[str, ...] = FEATURES + (TARGET,)

#: Integer-valued numeric features (the rest are floats).
INTEGER: tuple[str, ...] = ("tenure_months", "num_complaints")

#: Allowed values after normalisation. ``NA`` is North America, never "missing".
CATEGORIES: dict[str, tuple[str, ...]] = {
    "plan_type": ("basic", "premium"),
    "region": ("NA", "EU", "AF", "AS"),
}

TARGET_VALUES: tuple[int, ...] = (0, 1)


@dataclass(frozen=True)
class Range:
    """Inclusive valid range of a numeric feature (the lab API's bounds)."""

    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


RANGES: dict[str, Range] = {
    "tenure_months": Range(0, 200),
    "num_complaints": Range(0, 50),
    "avg_session_minutes": Range(0.0, 500.0),
}

#: Free text fields of an API request.
REQUEST_ID_MAX_LENGTH = 128


def normalise_category(feature: str, value: str) -> str:
    """The lab's normalisation: plan lower-cased, region upper-cased, both stripped.

    Examples
    --------
    >>> normalise_category("region", " na ")
    'NA'
    >>> normalise_category("plan_type", "Premium ")
    'premium'
    """
    value = str(value).strip()
    return value.upper() if feature == "region" else value.lower()


#: The lab's example requests (features + request id), used as API examples and in demos.
LAB_EXAMPLES: tuple[dict, ...] = (
    {"tenure_months": 6, "num_complaints": 3, "avg_session_minutes": 12.5, "plan_type": "basic",
     "region": "AF", "request_id": "req-001"},
    {"tenure_months": 48, "num_complaints": 0, "avg_session_minutes": 60.0, "plan_type": "premium",
     "region": "EU", "request_id": "req-safe"},
    {"tenure_months": 180, "num_complaints": 30, "avg_session_minutes": 1.0, "plan_type": "basic",
     "region": "AF"},
)
