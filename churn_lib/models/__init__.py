"""The registry of model families (the train parameter ``family``), behind one interface.

A family is a module offering :class:`churn_lib.models.base.Family`: ``NAME``,
its hyperparameters declared once in ``Params`` (default, constraints, help),
``ENGINE``, ``LIBRARIES``, ``build``, ``owns``, ``compile`` and ``importance``
(what the model learned, as data: plots draw it).

Families: ``logreg`` (the default, the lab's pipeline) and ``lightgbm``, one
line each in :data:`_MODULES`. Another is added with :func:`register` (a
module, or any object offering the interface). A family's module is imported
when first used; it is light (its library is imported when it builds or scores).
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..exceptions import InvalidParameter
from .._params import Range, param  # what a family declares its hyperparameters with
from .base import Engine, Family

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT", "Engine", "Family", "Range", "defaults", "family", "family_of",
           "param", "importance", "names", "owner_of", "params", "register"]

#: The registry of families: name -> module (a family is one module plus one line here).
_MODULES: dict[str, str] = {
    "logreg": f"{__name__}.logreg",
    "lightgbm": f"{__name__}.lightgbm",
}
#: Families registered at run time (:func:`register`), by name.
_REGISTERED: dict[str, Any] = {}
#: The family of models no family claims (a plain scikit-learn pipeline is the lab's logistic regression).
DEFAULT = "logreg"


def register(module: Any) -> Any:
    """Add a family (a module or object offering :class:`~churn_lib.models.base.Family`); returns it.

    Raises
    ------
    InvalidParameter
        It lacks part of the interface, its name is taken, or a hyperparameter's name is another
        family's (a flat train parameter names one family).
    """
    missing = [a for a in ("NAME", "Params", "ENGINE", "LIBRARIES", "build", "owns", "compile", "importance")
               if not hasattr(module, a)]
    if missing:
        raise InvalidParameter(f"a family needs {', '.join(missing)} (see churn_lib.models.base.Family)",
                               name="family")
    name = module.NAME
    if name in _MODULES or name in _REGISTERED:
        raise InvalidParameter(f"family={name!r} is already registered", name="family")
    for p in dataclasses.fields(module.Params):
        taken = owner_of(p.name)
        if taken is not None:
            raise InvalidParameter(f"{p.name} is already a hyperparameter of family={taken}", name=p.name)
    _REGISTERED[name] = module
    return module


def unregister(name: str) -> None:
    """Remove a family added by :func:`register` (the built-in ones stay)."""
    _REGISTERED.pop(name, None)


def names() -> tuple[str, ...]:
    """Every family's name, the built-in ones first."""
    return (*_MODULES, *_REGISTERED)


def family(name: str) -> ModuleType:
    """The module (or registered object) of family ``name``.

    Raises
    ------
    InvalidParameter
        Unknown family, or its module cannot be imported.
    """
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in _MODULES:
        raise InvalidParameter(f"family must be one of {', '.join(names())}, got {name!r}", name="family")
    return importlib.import_module(_MODULES[name])


def params(name: str) -> type:
    """Family ``name``'s ``Params`` dataclass."""
    return family(name).Params


def defaults(name: str) -> dict[str, Any]:
    """Family ``name``'s hyperparameters and their defaults."""
    return dataclasses.asdict(params(name)())


def owner_of(hyperparameter_name: str) -> str | None:
    """The family that declares a hyperparameter of that name (None: no family)."""
    for name in names():
        if any(f.name == hyperparameter_name for f in dataclasses.fields(params(name))):
            return name
    return None


def fields() -> tuple[dataclasses.Field, ...]:
    """Every family's hyperparameters as optional train parameters (default None: the family's own),
    each help saying its family and default: what the stage table adds to the train parameters."""
    spec = []
    for name in names():
        cls = params(name)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            metadata = {**f.metadata, "help": f"{name}: {f.metadata.get('help', '')}; None: {f.default!r}",
                        "family": name}
            spec.append((f.name, typing.Optional[hints[f.name]], dataclasses.field(default=None, metadata=metadata)))
    return dataclasses.fields(dataclasses.make_dataclass("Hyperparameters", spec, frozen=True))


def _inner(model: Any) -> Any:
    from .calibration import Calibrated

    return model.model if isinstance(model, Calibrated) else model


def family_of(model: Any) -> str:
    """The family of a fitted (possibly calibrated) model: the one that owns it, else :data:`DEFAULT`."""
    inner = _inner(model)
    return next((name for name in reversed(names()) if family(name).owns(inner)), DEFAULT)


def importance(model: Any) -> pd.DataFrame:
    """What a fitted (possibly calibrated) model learned, as its family gives it (coefficients, gain
    shares ...): a frame indexed by feature with one value column, its title in ``attrs["title"]``.

    Examples
    --------
    >>> plots.importance(models.importance(result.model))   # doctest: +SKIP
    """
    return family(family_of(model)).importance(_inner(model))
