"""The file-based model registry: versions, the current and challenger pointers, promotion, rollback, history.

* :mod:`.store` - entries, the two pointers, history and the lock; register,
  promote, rollback; artifacts and their sidecars (drift profile, contract copy);
* :mod:`.challenger` - setting and clearing the challenger (the model scored in
  shadow), which requests it scores;
* :mod:`.candidates` - a run's model, registered once the whole run succeeded;
* :mod:`.check` - ``churn registry check [--repair]``.

Every update holds an exclusive lock (``registry/.lock``) and every write is
atomic, so concurrent runs and crashes leave a readable registry.
"""

from .candidates import discard_candidate, has_candidate, load_candidate, register_candidate, stage_candidate
from .challenger import clear_challenger, incompatibility, sampled, set_challenger
from .check import INCOMING_GRACE_S, CheckReport, Problem, check
from .store import (CHALLENGER_ACTIONS, CHALLENGER_TXT, LOCK_TIMEOUT_S, SAMPLE, SIDECARS, Challenger,
                    challenger_file, current_entry, current_file, find, get, history, history_frame, load_contract,
                    load_entries, load_model, lock, model_path, next_version, pointer_records, promote,
                    read_challenger, read_sidecar, reconcile, register, rollback, sidecar_path, validate_label,
                    verify)

__all__ = [
    "CHALLENGER_ACTIONS", "CHALLENGER_TXT", "Challenger", "CheckReport", "INCOMING_GRACE_S", "LOCK_TIMEOUT_S",
    "Problem", "SAMPLE", "SIDECARS",
    "challenger_file", "check", "clear_challenger", "current_entry", "current_file", "discard_candidate", "find",
    "get", "has_candidate", "history", "history_frame", "incompatibility", "load_candidate", "load_contract",
    "load_entries", "load_model", "lock", "model_path", "next_version", "pointer_records", "promote",
    "read_challenger", "read_sidecar", "reconcile", "register", "register_candidate", "rollback", "sampled",
    "set_challenger", "sidecar_path", "stage_candidate", "validate_label", "verify",
]
