"""Parameter sets of a sweep: their shape (scalar values by name), expansion of a grid, a one-line
description, and the check of every set against the notebooks' parameter cells."""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

from ...exceptions import InvalidParameter
from ...run import runner

_SCALARS = (int, float, bool, str)


def scalar_list(name: str, values: Any, where: str) -> list[Any]:
    """``values`` of ``grid.<name>``, checked: a non-empty list of numbers, texts, booleans or nulls."""
    if not isinstance(values, list) or not values:
        raise InvalidParameter(f"{where}: grid.{name} must be a non-empty list of values, got {values!r}",
                               name=name)
    for v in values:
        if not isinstance(v, _SCALARS) and v is not None:
            raise InvalidParameter(f"{where}: grid.{name} holds {v!r}; values must be numbers, strings, "
                                   "booleans or null", name=name)
    return values


def mapping(value: Any, what: str, where: str) -> dict[str, Any]:
    """``value`` (``params`` or a set), checked: a mapping of names to scalars (None: empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidParameter(f"{where}: {what} must be a mapping of name: value, got {value!r}", name=what)
    for k, v in value.items():
        if not isinstance(v, _SCALARS) and v is not None:
            raise InvalidParameter(f"{where}: {what}.{k} is {v!r}; values must be numbers, strings, booleans "
                                   "or null", name=k)
    return dict(value)


def expand(*, params: Mapping[str, Any] | None = None, grid: Mapping[str, Sequence[Any]] | None = None,
           sets: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The parameter sets of a sweep: listed ``sets``, then every combination of ``grid``, each over ``params``.

    Examples
    --------
    >>> expand(params={"n_rows": 500}, grid={"C": [0.1, 1.0], "seed": [1]})
    [{'n_rows': 500, 'C': 0.1, 'seed': 1}, {'n_rows': 500, 'C': 1.0, 'seed': 1}]
    """
    base = dict(params or {})
    out = [{**base, **s} for s in (sets or [])]
    if grid:
        names = list(grid)
        out += [{**base, **dict(zip(names, combo))} for combo in itertools.product(*(grid[n] for n in names))]
    return out


def describe_params(params: Mapping[str, Any]) -> str:
    """``C=0.1, seed=2`` (or ``defaults``): a parameter set in one line."""
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"


def check_sets(stages: tuple[str, ...], sets: Sequence[Mapping[str, Any]]) -> None:
    """Every set's parameters against the notebooks' parameter cells, before any kernel starts."""
    for i, params in enumerate(sets):
        try:
            runner.check_parameters(stages, params)
        except InvalidParameter as exc:
            raise InvalidParameter(f"set {i} ({describe_params(params)}): {exc}",
                                   name=getattr(exc, "name", None)) from None
