"""Errors a user of churn-mlops can cause, and how callers tell them apart.

Every failure a user can provoke (bad flag, missing file, damaged registry,
blocked quality check, refused promotion) is a :class:`ChurnError`. The
``churn`` command prints it as one line and exits with ``exit_code``; the API
maps it to a status code. Anything else escaping the library is a bug.

Tree::

    ChurnError                      exit 1
    ├── InvalidParameter            a flag / parameter / label is not acceptable
    ├── DataError                   input data missing or unreadable
    │   ├── QualityError            a blocking quality check failed (.report)
    │   └── ContractError           dataset.yaml (or a model's copy) is not a valid contract (.path, .key)
    ├── RegistryError               registry files damaged or inconsistent
    │   ├── ModelNotFound           no registered model by that name
    │   ├── NoCurrentModel          nothing is current yet
    │   ├── IntegrityError          artifact missing or its sha256 differs
    │   ├── PromotionRefused        promote / rollback refused (.reasons)
    │   └── LockTimeout             another process holds the registry lock
    └── StageFailed                 a stage (notebook) failed (.report_path)

Errors carry their data as attributes and pickle (they cross process
boundaries in papermill and Dask runs).
"""

from __future__ import annotations

__all__ = [
    "ChurnError",
    "InvalidParameter",
    "DataError",
    "QualityError",
    "ContractError",
    "RegistryError",
    "ModelNotFound",
    "NoCurrentModel",
    "IntegrityError",
    "PromotionRefused",
    "LockTimeout",
    "StageFailed",
]


class ChurnError(Exception):
    """Base of every error a user can cause; ``str()`` is the one-line message."""

    exit_code = 1

    def __init__(self, message: str, **data: object) -> None:
        super().__init__(message)
        self.message = message
        for key, value in data.items():
            setattr(self, key, value)

    def __reduce__(self):
        # Keyword data lives in __dict__; rebuild from message, then restore it.
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls, message, state):
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class InvalidParameter(ChurnError):
    """A flag, notebook parameter or label is not acceptable (``.name``)."""


class DataError(ChurnError):
    """Input data is missing, unreadable or not in the expected shape (``.path``)."""


class QualityError(DataError):
    """A blocking quality check failed; nothing was written (``.report``)."""


class ContractError(DataError):
    """The dataset contract is not valid or cannot be read (``.path``, ``.key``: the offending key)."""


class RegistryError(ChurnError):
    """Registry files are damaged or disagree (``.path``)."""


class ModelNotFound(RegistryError):
    """No registered model has that version label or file name (``.target``)."""


class NoCurrentModel(RegistryError):
    """No model is current yet: train one that passes the gate, or promote one."""


class IntegrityError(RegistryError):
    """A model artifact is missing or its sha256 differs from the registry."""


class PromotionRefused(RegistryError):
    """A promotion or rollback was refused; nothing changed (``.reasons``)."""


class LockTimeout(RegistryError):
    """Another process held the registry lock for too long."""


class StageFailed(ChurnError):
    """A stage failed; its executed report is at ``.report_path``."""
