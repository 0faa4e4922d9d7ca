"""Setting and clearing the challenger: the registered model the service scores in shadow.

:func:`set_challenger` and :func:`clear_challenger` change the challenger
pointer under the registry lock (``registry/challenger.txt`` with its settings
in ``challenger.json``, a ``history.jsonl`` line per change: see
:mod:`.store`). A challenger is refused, changing nothing, when it is not
registered, its file or contract copy is missing or altered, it is the current
model, no model is current, or its contract cannot read the current model's
requests (:func:`incompatibility`). :func:`sampled` is the one rule of which
requests a challenger scores: a hash of the request id against the sample, so
every process and every later reader agree.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .. import contract as _contract
from ..exceptions import IntegrityError, NoCurrentModel, PromotionRefused
from ..home import Home
from .store import (Challenger, _clear_challenger, _reconcile, _set_challenger, current_entry, find, load_contract,
                    load_entries, lock, read_challenger, verify)

_SPAN = float(1 << 64)


def sampled(request_id: str, sample: float) -> bool:
    """Whether the challenger scores the request ``request_id`` at ``sample`` (a share in (0, 1]).

    The first 8 bytes of the request id's BLAKE2b digest, read as a number in
    [0, 1), below ``sample``: the same answer in every worker, every rerun and
    every reader of the log.

    Examples
    --------
    >>> sampled("req-001", 1.0)
    True
    >>> [sampled(f"r{i}", 0.5) for i in range(6)]
    [True, False, False, False, True, True]
    """
    if sample >= 1.0:
        return True
    digest = hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < sample * _SPAN


def incompatibility(champion: _contract.Contract, challenger: _contract.Contract) -> str | None:
    """Why a model trained on ``challenger`` cannot score requests validated against ``champion`` (None: it can).

    Each of the challenger's features must be one of the champion's, of the
    same type (an integer where the challenger reads a float is fine), given
    whenever the champion requires it (a missing value the champion imputes must
    be imputed by the challenger too), and, for a category, with every value
    the champion accepts also accepted by the challenger (listed, or the
    challenger ignores unseen values). Ranges are not compared: a number outside
    the challenger's training range is still a number it scores.
    """
    theirs = {f.name: f for f in champion.features}
    for mine in challenger.features:
        f = theirs.get(mine.name)
        where = f"feature {mine.name!r}"
        if f is None:
            return f"{where} is not in the current model's contract {champion.name!r}"
        if f.type != mine.type and (f.type, mine.type) != (_contract.INTEGER, _contract.FLOAT):
            return f"{where} is {f.type} in the current model's requests but {mine.type} in the challenger's contract"
        if f.imputed and not mine.imputed:
            return f"{where} may be missing in the current model's requests (imputed) but the challenger requires it"
        if mine.type == _contract.CATEGORICAL and mine.unseen != "ignore":
            if f.unseen == "ignore":
                return f"{where} accepts any category in the current model's requests but the challenger rejects " \
                       "unseen ones"
            extra = sorted(set(f.values) - set(mine.values))
            if extra:
                return f"{where}: value(s) {', '.join(map(repr, extra[:5]))} of the current model's requests are " \
                       "not in the challenger's contract"
    return None


def _refusals(entry: dict[str, Any], home: Home) -> list[str]:
    """Why ``entry`` cannot be the challenger (empty when it can)."""
    current = current_entry(home=home)
    if current is None:
        raise NoCurrentModel("no model is current, so there is nothing for a challenger to shadow; "
                             "promote a model first")
    if current["model_file"] == entry["model_file"]:
        return [f"{entry['version']} is the current model"]
    reasons = []
    try:
        verify(entry, home=home)
        problem = incompatibility(load_contract(current, home=home), load_contract(entry, home=home))
        if problem:
            reasons.append(f"its contract cannot read the current model's ({current['version']}) requests: {problem}")
    except IntegrityError as exc:
        reasons.append(str(exc))
    return reasons


def set_challenger(target: str, *, sample: float = 1.0, home: Home | str | None = None,
                   reason: str | None = None) -> dict[str, Any] | None:
    """Make a registered model the challenger, scoring the share ``sample`` of requests in shadow.

    Parameters
    ----------
    target : str
        Version label or model file name.
    sample : float, default=1.0
        The share of requests it scores, in (0, 1] (picked by :func:`sampled`).
    home : Home or path, optional
    reason : str, optional
        Why, for the history.

    Returns
    -------
    dict or None
        The history record, or None when that model already is the challenger at that sample.

    Raises
    ------
    InvalidParameter
        ``sample`` outside (0, 1].
    ModelNotFound, NoCurrentModel, PromotionRefused
        Nothing changed: not registered, nothing current, or refused (``.reasons``).

    Examples
    --------
    >>> set_challenger("v3", sample=0.25, home=tmp_home)["action"]  # doctest: +SKIP
    'challenger'
    """
    home = Home.resolve(home)
    Challenger("-", sample=sample)  # the declaration's check, before anything is read
    with lock(home=home):
        _reconcile(home)
        entry = find(target, load_entries(home=home))
        refusals = _refusals(entry, home)
        if refusals:
            raise PromotionRefused(f"challenger {entry['version']} refused: " + "; ".join(refusals),
                                   reasons=refusals, version=entry["version"])
        before = read_challenger(home=home)
        if before is not None and before.settled and (before.model_file, before.sample) == (entry["model_file"],
                                                                                           float(sample)):
            return None
        return _set_challenger(home, entry, float(sample), target=target,
                               reason=reason or f"shadowing {sample:g} of the requests")


def clear_challenger(*, home: Home | str | None = None, reason: str | None = None) -> dict[str, Any] | None:
    """Clear the challenger pointer; the history record, or None when none was set."""
    home = Home.resolve(home)
    with lock(home=home):
        _reconcile(home)
        return _clear_challenger(home, reason=reason or "cleared by the operator")
