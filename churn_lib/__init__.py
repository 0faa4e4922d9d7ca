"""churn_lib: the shared library of churn-mlops.

All logic of the churn-model lifecycle lives here, one responsibility per
module: ``schema``, ``data``, ``quality``, ``training``, ``registry``,
``scoring``, ``evaluation``, ``runner``, ``cli``, ``exceptions``, ``home``.
Importing the package does no I/O.
"""

from .exceptions import (
    ChurnError,
    DataError,
    IntegrityError,
    InvalidParameter,
    LockTimeout,
    ModelNotFound,
    NoCurrentModel,
    PromotionRefused,
    QualityError,
    RegistryError,
    StageFailed,
)
from .home import Home, find_home

__version__ = "0.1.0"

__all__ = [
    "ChurnError",
    "DataError",
    "Home",
    "IntegrityError",
    "InvalidParameter",
    "LockTimeout",
    "ModelNotFound",
    "NoCurrentModel",
    "PromotionRefused",
    "QualityError",
    "RegistryError",
    "StageFailed",
    "__version__",
    "find_home",
]
