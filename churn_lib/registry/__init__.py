"""The file-based model registry: versions, the current pointer, promotion, rollback, history.

* :mod:`.store` - entries, pointer, history and the lock; register, promote,
  rollback; artifacts and their sidecars (drift profile, contract copy);
* :mod:`.candidates` - a run's model, registered once the whole run succeeded;
* :mod:`.check` - ``churn registry check [--repair]``.

Every update holds an exclusive lock (``registry/.lock``) and every write is
atomic, so concurrent runs and crashes leave a readable registry.
"""

from .candidates import discard_candidate, has_candidate, load_candidate, register_candidate, stage_candidate
from .check import INCOMING_GRACE_S, CheckReport, Problem, check
from .store import (LOCK_TIMEOUT_S, SIDECARS, current_entry, current_file, find, get, history,
                    history_frame, load_contract, load_entries, load_model, lock, model_path, next_version, promote,
                    read_sidecar, reconcile, register, rollback, sidecar_path, validate_label, verify)

__all__ = [
    "CheckReport", "INCOMING_GRACE_S", "LOCK_TIMEOUT_S", "Problem", "SIDECARS", "check",
    "current_entry", "current_file", "discard_candidate", "find", "get", "has_candidate", "history", "history_frame",
    "load_candidate", "load_contract", "load_entries", "load_model", "lock", "model_path", "next_version", "promote",
    "read_sidecar", "reconcile", "register", "register_candidate", "rollback", "sidecar_path", "stage_candidate",
    "validate_label", "verify",
]
