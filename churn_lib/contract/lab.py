"""The lab's contract: the embedded default of a home without ``dataset.yaml``, and its example requests.

:func:`lab` is the lab's five features, bit for bit the product's behaviour
before contracts existed; :func:`is_lab` tells whether a contract (a home's,
or a registered model's copy) is that one.
"""

from __future__ import annotations

from typing import Any

from .spec import CATEGORICAL, FLOAT, INTEGER, Contract, Feature, Gate, Source, Target

#: The lab's example requests (features + request id): API examples and demos.
LAB_EXAMPLES: tuple[dict[str, Any], ...] = (
    {"tenure_months": 6, "num_complaints": 3, "avg_session_minutes": 12.5, "plan_type": "basic",
     "region": "AF", "request_id": "req-001"},
    {"tenure_months": 48, "num_complaints": 0, "avg_session_minutes": 60.0, "plan_type": "premium",
     "region": "EU", "request_id": "req-safe"},
    {"tenure_months": 180, "num_complaints": 30, "avg_session_minutes": 1.0, "plan_type": "basic",
     "region": "AF"},
)

_LAB: Contract | None = None


def lab() -> Contract:
    """The lab's contract: five features, ``churn`` 0/1, the generator, the lab's gate floor 0.65.

    ``NA`` is North America, never "missing": only the empty field is missing.
    Built once, on the first call (nothing happens at import).

    Returns
    -------
    Contract

    Examples
    --------
    >>> lab().columns
    ('tenure_months', 'num_complaints', 'avg_session_minutes', 'plan_type', 'region', 'churn')
    """
    global _LAB
    if _LAB is None:
        _LAB = Contract(
            name="lab",
            description="The Lab 1 MLOps synthetic churn data (the embedded default).",
            source=Source(generator="lab"),
            target=Target("churn", ("1",), ("0",)),
            features=(
                Feature("tenure_months", INTEGER, low=0, high=200, description="months as a customer"),
                Feature("num_complaints", INTEGER, low=0, high=50, description="complaints filed"),
                Feature("avg_session_minutes", FLOAT, low=0.0, high=500.0, clip_low=0.0,
                        description="average session length; negative values are clipped to 0"),
                Feature("plan_type", CATEGORICAL, values=("basic", "premium"), case="lower"),
                Feature("region", CATEGORICAL, values=("NA", "EU", "AF", "AS"), case="upper",
                        description="NA is North America"),
            ),
            gate=Gate(min_f1=0.65, baseline_margin=0.0, regression_tolerance=0.02),
            examples=LAB_EXAMPLES,
        )
    return _LAB


def is_lab(contract: Contract) -> bool:
    """True when ``contract`` is the lab's (equal in every field, so a registered model's copy counts too).

    Examples
    --------
    >>> is_lab(lab())
    True
    """
    return contract == lab()
