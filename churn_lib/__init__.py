"""churn_lib: the shared library of churn-mlops.

All logic of the churn-model lifecycle lives here, one concept per package, in
layers checked by import-linter (docs/architecture.md):

* base: ``_io`` (atomic writes, hashing, the one clock), ``_params`` (parameter
  declarations and the one check), ``_duck``, ``home``, ``exceptions``
* ``contract`` - the dataset contract: spec, files, the frame validator, the log record rule, the lab's
* store: ``registry`` (versions, pointer, history, candidates, check), ``logs``
  (prediction and outcome records, the monitoring history, DuckDB reads)
* domain: ``data`` (the lab's generator, file sources, ``churn init``), ``models``
  (the families), ``learn`` (metrics, gate, train, evaluation, explain),
  ``quality``, ``drift`` (profile, statistics, monitor, performance),
  ``scoring``, ``plots``
* orchestration: ``run`` (stage table, papermill runner, kernel, reports
  index), ``scale`` (cluster, sweeps, batch scoring), ``serving``, ``simulate``
* ``cli`` - the ``churn`` command; ``notebooks/`` - the stage notebooks (package data)

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
