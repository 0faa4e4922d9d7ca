"""What a model family is, and the one check of declared parameter constraints.

A family is a module (see :class:`Family`) that declares its hyperparameters
once, as the fields of a ``Params`` dataclass made with :func:`hyperparameter`
(default, constraints, help). Everything else derives from that declaration:
the train parameters (:class:`churn_lib.learn.train.TrainParams`), the
``churn train`` flags and the notebook's parameters cell (the stage table), the
sweep's checks and the registry entry's ``model_params``.

:func:`check` is the one constraint check (in the manner of scikit-learn's
``_parameter_constraints``): a field's value must satisfy one of its declared
constraints, ``None``, an :class:`Interval` or an :class:`Options`. Training
parameters use it too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol

from ..exceptions import InvalidParameter


@dataclass(frozen=True)
class Interval:
    """Numbers (``kind`` int or float; a bool is neither) from ``low`` to ``high`` (None: unbounded).

    ``closed``: which ends belong to the interval, ``"both"``, ``"left"``, ``"right"`` or ``"neither"``.
    """

    kind: type
    low: float | None
    high: float | None
    closed: str = "both"

    def __call__(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if self.kind is int else (int, float)):
            return False
        if self.low is not None and (value < self.low or (value == self.low and self.closed in ("right", "neither"))):
            return False
        return not (self.high is not None
                    and (value > self.high or (value == self.high and self.closed in ("left", "neither"))))

    def __str__(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.low is not None and self.high is not None:
            return f"{what} in {'[' if left else '('}{self.low:g}, {self.high:g}{']' if right else ')'}"
        if self.low is not None:
            return f"{what} {'>=' if left else '>'} {self.low:g}"
        if self.high is not None:
            return f"{what} {'<=' if right else '<'} {self.high:g}"
        return what


@dataclass(frozen=True)
class Options:
    """One of a few values."""

    values: tuple[Any, ...]

    def __call__(self, value: Any) -> bool:
        return not isinstance(value, bool) and value in self.values

    def __str__(self) -> str:
        return f"one of {', '.join(map(str, self.values))}"


def hyperparameter(default: Any, *constraints: Interval | Options | None, help: str) -> Any:
    """A field of a ``Params`` dataclass: its default, the constraints its value meets (any one), its help.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Params:
    ...     C: float = hyperparameter(1.0, Interval(float, 0, None, closed="neither"), help="regularisation")
    >>> check(Params(C=0.5))
    """
    return dataclasses.field(default=default, metadata={"help": help, "constraints": constraints})


def constraints_of(field: dataclasses.Field) -> tuple[Any, ...]:
    """The constraints a field declares (none: any value)."""
    return tuple(field.metadata.get("constraints", ()))


def check(params: Any) -> None:
    """Refuse the first field of the dataclass ``params`` whose value meets none of its constraints.

    Raises
    ------
    InvalidParameter
        ``name=value is not one of ...`` (options) or ``name=value is out of range (an integer >= 1)``.
    """
    for field in dataclasses.fields(params):
        allowed = constraints_of(field)
        value = getattr(params, field.name)
        if not allowed or any(value is None if c is None else c(value) for c in allowed):
            continue
        rules = [c for c in allowed if c is not None]
        if all(isinstance(c, Options) for c in rules):
            options = ", ".join(str(v) for c in rules for v in c.values)
            raise InvalidParameter(f"{field.name}={value!r} is not one of {options}", name=field.name)
        rule = " or ".join(str(c) for c in rules) + (", or None" if None in allowed else "")
        raise InvalidParameter(f"{field.name}={value!r} is out of range ({rule})", name=field.name)


@dataclass(frozen=True)
class Engine:
    """How a family's models are scored, for :class:`churn_lib.scoring.Scorer`: the engine names and the
    notes saying so, compiled (``compiled``) and when the model scores itself (``itself``)."""

    compiled: str
    compiled_note: str
    itself: str
    itself_note: str


class Family(Protocol):
    """The interface of a family module (``logreg``, ``lightgbm``; :func:`churn_lib.models.register` adds one).

    Attributes
    ----------
    NAME : str
        The family's name (the train parameter ``family``, the entry's ``model_family``).
    Params : type
        A frozen dataclass of :func:`hyperparameter` fields.
    ENGINE : Engine
        What scores its models.
    LIBRARIES : tuple of str
        Libraries whose installed versions the registry entry records beside the common ones.
    """

    NAME: str
    Params: type
    ENGINE: Engine
    LIBRARIES: tuple[str, ...]

    def build(self, contract: Any, *, seed: int, params: Any) -> Any:
        """An unfitted scikit-learn-style estimator (``fit``, ``predict_proba``) for ``params`` (a ``Params``)."""

    def owns(self, model: Any) -> bool:
        """Whether ``model`` (uncalibrated) is one of this family's."""

    def compile(self, model: Any, contract: Any) -> Any:
        """A fast scorer with ``logit_one``/``proba_one``, ``logit``/``proba``, ``features``,
        ``known_categories`` and exact ``contributions_one``/``contributions`` in log-odds
        (``base + sum == log-odds``); ValueError when the model has another shape."""

    def importance(self, model: Any) -> Any:
        """What the model learned, as data: a DataFrame indexed by feature with one value column
        (its name says what it is) and ``attrs["title"]``; plots draw it."""
