"""Candidates: a model trained in a notebook run, registered only once every stage of the run succeeded.

The train stage of ``churn run`` stages its model (the arguments of a later
:func:`churn_lib.registry.store.register` call) under ``registry/candidates/``;
the runner registers it at the end of a successful run, or discards it, so a
failed run leaves the registry unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import contract as _contract
from .._io import atomic_write, atomic_write_json, sha256_file, utc_now
from ..exceptions import IntegrityError, ModelNotFound
from ..home import Home
from .store import register, validate_label


def _candidate_paths(version: str, home: Home) -> tuple[Path, Path]:
    validate_label(version)
    return home.candidates_dir / f"{version}.joblib", home.candidates_dir / f"{version}.json"


def stage_candidate(version: str, *, home: Home | str | None = None, model: Any, fields: dict[str, Any],
                    profile: dict[str, Any] | None = None, contract: _contract.Contract | None = None) -> Path:
    """Stage candidate ``version``: its artifact (the model, serialised here, once) and what
    :func:`register` will need, with the artifact's sha256, checked when it is registered or loaded."""
    import joblib  # here: the registry's readers need no joblib

    home = Home.resolve(home)
    blob, meta = _candidate_paths(version, home)
    blob.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(blob, lambda tmp: joblib.dump(model, tmp))
    atomic_write_json(meta, {"version": version, "sha256": sha256_file(blob), "staged_at_utc": utc_now(),
                             "fields": fields, "profile": profile,
                             "contract": contract.to_dict() if contract is not None else None})
    return blob


def _staged(version: str, home: Home) -> tuple[Path, dict[str, Any]]:
    blob, meta = _candidate_paths(version, home)
    try:
        staged = json.loads(meta.read_text(encoding="utf-8"))
        staged["sha256"], staged["fields"]  # noqa: B018 - the keys a staged candidate has
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        raise ModelNotFound(f"no candidate {version!r} is staged", target=version) from None
    if not blob.is_file() or sha256_file(blob) != staged["sha256"]:
        raise IntegrityError(f"candidate {version} is missing or altered: {blob}", version=version)
    return blob, staged


def load_candidate(version: str, *, home: Home | str | None = None) -> dict[str, Any]:
    """Candidate ``version``: ``model`` (unpickled after its sha256 matched), ``fields``, ``profile``, ``contract``."""
    import joblib

    home = Home.resolve(home)
    blob, staged = _staged(version, home)
    contract = _contract.from_dict(staged["contract"]) if staged.get("contract") else None
    return {"model": joblib.load(blob), "fields": staged["fields"], "profile": staged.get("profile"),
            "contract": contract}


def has_candidate(version: str, *, home: Home | str | None = None) -> bool:
    home = Home.resolve(home)
    return _candidate_paths(version, home)[1].exists()


def register_candidate(version: str, *, home: Home | str | None = None,
                       promote_if_passed: bool = True) -> tuple[dict[str, Any], bool]:
    """Register staged candidate ``version`` (see :func:`register`), then discard it.

    ``promote_if_passed=False`` registers without touching the current model
    (a sweep promotes only its winner, once every run is done).
    """
    home = Home.resolve(home)
    blob, staged = _staged(version, home)  # the artifact is moved, never unpickled here
    contract = _contract.from_dict(staged["contract"]) if staged.get("contract") else None
    result = register(None, staged["fields"], home=home, version=version, promote_if_passed=promote_if_passed,
                      profile=staged.get("profile"), contract=contract, artifact=blob)
    discard_candidate(version, home=home)
    return result


def discard_candidate(version: str, *, home: Home | str | None = None) -> None:
    """Remove staged candidate ``version`` (no error when there is none)."""
    home = Home.resolve(home)
    for path in _candidate_paths(version, home):
        path.unlink(missing_ok=True)


