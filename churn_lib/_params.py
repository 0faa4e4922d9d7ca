"""Parameter declarations: a dataclass field's default, help and constraint, and the one check of a value.

A parameter is declared once, as a dataclass field made by :func:`param`: its
default, its help, and what it accepts (a :class:`Range`, a set of choices, or
just its type) in the field's metadata. :func:`declared` reads a dataclass's
declarations back as :class:`Param` objects, and every range or choice check
goes through :meth:`Param.check`: a dataclass's ``__post_init__`` calls
:func:`check_fields`, and the ``churn`` parser calls :meth:`Param.refusal` on
a flag's value, so a refused value reads the same in both
(``min_window_rows must be an integer >= 2, got 1``).

A renamed parameter names its old spelling in ``was``; the stage table and the
parser accept it for one release, with a deprecation message.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Callable

from .exceptions import InvalidParameter


@dataclass(frozen=True)
class Range:
    """An interval of numbers: ``low`` and ``high`` (None: unbounded), each end included unless ``open``.

    ``also`` lists values accepted outside the interval (``max_depth``'s -1: no limit).

    Examples
    --------
    >>> Range(0, 1).describe(), 0.5 in Range(0, 1), 0 in Range(0, 1, open_low=True)
    ('between 0 and 1', True, False)
    """

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    also: tuple[Any, ...] = ()

    def __contains__(self, value: Any) -> bool:
        if value in self.also:
            return True
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)

    def describe(self) -> str:
        """``between 0 and 1``, ``>= 2``, ``> 0 and < 1``, ``> 0``: what the interval accepts, in words."""
        low = None if self.low is None else f"{'>' if self.open_low else '>='} {self.low:g}"
        high = None if self.high is None else f"{'<' if self.open_high else '<='} {self.high:g}"
        if low and high and not (self.open_low or self.open_high):
            text = f"between {self.low:g} and {self.high:g}"
        else:
            text = " and ".join(filter(None, (low, high))) or "any number"
        return text + "".join(f" or {v!r}" for v in self.also)


#: A share of rows, a rate, a probability: 0 to 1, both included.
UNIT = Range(0, 1)


def param(default: Any, help: str, *, range: Range | None = None,
          choices: tuple[Any, ...] | Callable[[], tuple[Any, ...]] | None = None,
          was: str | None = None, stage: bool = True) -> Any:
    """A dataclass field declaring one parameter: its default, help and what it accepts.

    Parameters
    ----------
    default : object
    help : str
        One line: what the parameter does (the notebook comment and the flag's help).
    range : Range, optional
        The numbers accepted.
    choices : tuple or callable returning a tuple, optional
        The values accepted (a callable for a set that grows, such as the registered families).
    was : str, optional
        The parameter's previous name, accepted for one release with a deprecation message.
    stage : bool, default=True
        False: a field that is not a stage parameter (no notebook parameter, no flag).

    Examples
    --------
    >>> @dataclass(frozen=True)
    ... class Knobs:
    ...     rate: float = param(0.5, "a share of rows", range=UNIT)
    ...     def __post_init__(self):
    ...         check_fields(self)
    >>> Knobs(rate=2.0)
    Traceback (most recent call last):
    ...
    churn_lib.exceptions.InvalidParameter: rate must be a number between 0 and 1, got 2.0
    """
    metadata = {"help": help, "range": range, "choices": choices, "was": was, "stage": stage}
    return field(default=default, metadata=metadata)


_KIND_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


@dataclass(frozen=True)
class Param:
    """One declared parameter: name, default, help, type, constraint and the dataclass it feeds (None: none)."""

    name: str
    default: Any
    help: str
    kind: type
    optional: bool = False
    owner: type | None = None
    range: Range | None = None
    choices: tuple[Any, ...] | Callable[[], tuple[Any, ...]] | None = None
    was: str | None = None
    stage: bool = True

    @property
    def type_name(self) -> str:
        return f"{self.kind.__name__} or None" if self.optional else self.kind.__name__

    def options(self) -> tuple[Any, ...] | None:
        """The values accepted, when the parameter has choices."""
        return self.choices() if callable(self.choices) else self.choices

    def accepts(self, value: Any) -> bool:
        """True when ``value`` has this parameter's type (an int is a float; a bool is not a number)."""
        if value is None:
            return self.optional
        if self.kind is bool:
            return isinstance(value, bool)
        if isinstance(value, bool):
            return False
        if self.kind is float:
            return isinstance(value, (int, float))
        return isinstance(value, self.kind)

    def coerce(self, value: Any) -> Any:
        return float(value) if self.kind is float and value is not None else value

    def literal(self) -> str:
        return repr(self.default)

    def describe(self, *, none: bool = True) -> str:
        """What the parameter accepts, in words: ``an integer >= 2``, ``one of f1, profit``, ``a number or None``.

        ``none=False`` leaves out "or None" (a flag cannot be given None).
        """
        options = self.options()
        if options is not None:
            text = "one of " + ", ".join(str(o) for o in options)
        else:
            text = _KIND_WORDS.get(self.kind, f"a {self.kind.__name__}")
            if self.range is not None:
                text += " " + self.range.describe()
        return text + (" or None" if self.optional and none else "")

    def refusal(self, value: Any, *, none: bool = True) -> str | None:
        """None when ``value`` is accepted, else why not: ``must be an integer >= 2, got 1`` (``none``: as in
        :meth:`describe`)."""
        ok = self.accepts(value)
        if ok and value is not None:
            options = self.options()
            ok = (value in options) if options is not None else (self.range is None or value in self.range)
        return None if ok else f"must be {self.describe(none=none)}, got {value!r}"

    def check(self, value: Any) -> Any:
        """``value`` when accepted; else raise :class:`InvalidParameter` naming the parameter and what it accepts."""
        why = self.refusal(value)
        if why is not None:
            raise InvalidParameter(f"{self.name} {why}", name=self.name)
        return value


def declared(cls: type) -> tuple[Param, ...]:
    """The parameters dataclass ``cls`` declares, as :class:`Param` objects, in order.

    Its fields, or, when the class composes parameters declared elsewhere, what its
    ``stage_fields()`` returns (the train parameters add every model family's
    hyperparameters, which change when a family is registered, so those are read anew).
    """
    composed = getattr(cls, "stage_fields", None)
    if composed is None:
        return _declared(cls)
    return tuple(_param_of(f, typing.get_type_hints(cls).get(f.name, f.type), cls) for f in composed())


@cache
def _declared(cls: type) -> tuple[Param, ...]:
    hints = typing.get_type_hints(cls)
    return tuple(_param_of(f, hints[f.name], cls) for f in dataclasses.fields(cls))


def _param_of(f: dataclasses.Field, hint: Any, owner: type) -> Param:
    args = typing.get_args(hint)
    optional = type(None) in args
    kind = next((a for a in args if a is not type(None)), hint) if optional else hint
    kind = typing.get_origin(kind) or kind
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    m = f.metadata
    return Param(f.name, default, m.get("help", ""), kind, optional, owner, m.get("range"), m.get("choices"),
                 m.get("was"), m.get("stage", True))


def check_fields(obj: Any) -> None:
    """Check every field of dataclass instance ``obj`` against its declaration (its ``__post_init__`` calls this).

    Raises
    ------
    InvalidParameter
        The first field whose value is of the wrong type or outside its range or choices.
    """
    for p in _declared(type(obj)):  # its own fields (a composed class checks its parts itself)
        if p.kind is not Any:  # a field holding an object (the train parameters' ``hyperparameters``)
            p.check(getattr(obj, p.name))
