"""churn_lib: the shared library of churn-mlops.

All logic of the churn-model lifecycle lives here, one responsibility per
module:

* ``contract`` - the dataset contract (``dataset.yaml``; the lab's when absent) and the one row validator
* ``infer`` - a contract inferred from a CSV file (``churn init``)
* ``stages`` - the stage table: each stage's notebook and parameters, declared once
* ``home`` - where every generated file lives; ``_io`` - atomic writes, hashing, the one clock
* ``data`` - stage 01: the lab's generator and faults, file sources, CSV that keeps ``NA``
* ``quality`` - cleaning and quality checks (the prepare stage)
* ``training`` - pipeline, honest threshold, metrics, baselines, gate
* ``registry`` - versions, current pointer, promotion, rollback, history, candidates, check
* ``evaluation`` - every registered model on one test split
* ``scoring`` - integrity-checked model loading and the compiled numpy scorer
* ``serving`` - what the API serves: the model holder, the prediction log writer
* ``predlog`` - the prediction log's format; robust, fast readers
* ``drift`` - reference profiles, drift statistics, the monitor
* ``simulate`` - synthetic traffic (training-like or shifted)
* ``plots`` - matplotlib displays for the notebooks
* ``runner`` - stage notebooks through papermill, HTML reports, run records
* ``reports`` - ``reports/index.html``
* ``sweep``, ``batch``, ``cluster`` - parameter sweeps and batch scoring on Dask
* ``cli`` - the ``churn`` command (parser, commands, render); ``exceptions`` - the error tree

Importing the package does no I/O.
"""

from .exceptions import (
    ChurnError,
    ContractError,
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
    "ContractError",
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
