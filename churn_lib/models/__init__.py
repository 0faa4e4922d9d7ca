"""Model families behind one interface (the train parameter ``model``).

A family is a module with:

* ``NAME`` and ``PARAMS`` (its hyperparameters, which are train parameters, and their defaults);
* ``build(contract, *, seed, **params)`` - an unfitted scikit-learn-style estimator (``fit``,
  ``predict_proba``), so cross-validation works the same for every family;
* ``compile(model, contract)`` - a fast scorer with ``logit_one``/``proba_one``, ``logit``/``proba``
  and exact ``contributions_one``/``contributions`` in log-odds (``base + sum == log-odds``), or a
  ``ValueError`` when the model has another shape (then the model itself scores, and its
  contributions come from :func:`contributions`);
* ``describe(model, contract, ax=None)`` - the train report's plot of what the model learned.

Families: ``logreg`` (the default, the lab's pipeline) and ``lightgbm``. A family's module is
imported when first used (LightGBM costs its import only to who trains or serves it).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from ..exceptions import InvalidParameter

FAMILIES: tuple[str, ...] = ("logreg", "lightgbm")
#: Every family's hyperparameters -> their family (a parameter of another family is refused).
PARAM_FAMILY: dict[str, str] = {"C": "logreg", "n_estimators": "lightgbm", "learning_rate": "lightgbm",
                                "num_leaves": "lightgbm", "max_depth": "lightgbm",
                                "min_child_samples": "lightgbm"}


def family(name: str) -> ModuleType:
    """The module of family ``name``.

    Raises
    ------
    InvalidParameter
        Unknown family, or its library cannot be imported (the message names what to install).
    """
    if name not in FAMILIES:
        raise InvalidParameter(f"model={name!r} is not a model family; families: {', '.join(FAMILIES)}",
                               name="model")
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ImportError as exc:
        raise InvalidParameter(f"model={name} needs a library that cannot be imported ({exc}): reinstall the "
                               f"project (make install), or pip install {name}", name="model") from None
    except OSError as exc:  # LightGBM's wheel links the system's OpenMP runtime
        raise InvalidParameter(f"model={name}: its library cannot load ({exc}); install the OpenMP runtime "
                               "(Debian: apt-get install libgomp1, or make system-deps)", name="model") from None


def family_of(model: Any) -> str:
    """The family of a fitted (possibly calibrated) model, from its type."""
    from .calibration import Calibrated

    inner = model.model if isinstance(model, Calibrated) else model
    return "lightgbm" if type(inner).__module__.endswith(".lightgbm") else "logreg"


def defaults(name: str) -> dict[str, Any]:
    """Family ``name``'s hyperparameters and their defaults."""
    return dict(family(name).PARAMS)


def defaults_names(name: str) -> list[str]:
    """The hyperparameter names of family ``name`` (without importing it)."""
    return [p for p, owner in PARAM_FAMILY.items() if owner == name]
