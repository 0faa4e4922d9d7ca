"""churn_lib: the shared library of churn-mlops.

All logic of the churn-model lifecycle lives here, one responsibility per
module:

* ``schema`` - features, types, categories, ranges (the single source of truth)
* ``home`` - where every generated file lives
* ``data`` - generation (the lab's draws), fault injection, CSV that keeps ``NA``
* ``quality`` - cleaning and quality checks (the prepare stage)
* ``training`` - pipeline, honest threshold, metrics, baselines, gate
* ``registry`` - versions, current pointer, promotion, rollback, history
* ``evaluation`` - every registered model on one test split
* ``scoring`` - integrity-checked model loading and the compiled numpy scorer
* ``serving`` - what the API serves: the model holder, the prediction log writer
* ``predlog`` - the prediction log's format; robust, fast readers
* ``drift`` - reference profiles and drift statistics
* ``simulate`` - synthetic traffic (training-like or shifted)
* ``plots`` - matplotlib displays for the notebooks
* ``runner`` - stage notebooks through papermill, HTML reports, run records
* ``reports`` - ``reports/index.html``
* ``sweep``, ``batch``, ``cluster`` - parameter sweeps and batch scoring on Dask
* ``cli`` - the ``churn`` command; ``exceptions`` - the error tree

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
