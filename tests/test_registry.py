import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from churn_lib import (IntegrityError, InvalidParameter, ModelNotFound, NoCurrentModel, PromotionRefused,
                       RegistryError, registry)
from churn_lib._io import sha256_file
from churn_lib.contract import lab as contract_lab


def _register(home, passed=True, version=None, model=None):
    entry, _ = registry.register(model or {"model": version}, {"passed_gate": passed, "gate_reasons":
                                 [] if passed else ["F1 too low"]}, home=home, version=version)
    return entry


def _snapshot(home):
    return {p.name: p.read_bytes() for p in home.registry_dir.iterdir() if p.is_file() and p.name != ".lock"}


def assert_consistent(home):
    """metadata, pointer, history and artifacts agree."""
    entries = registry.load_entries(home=home)
    versions = [e["version"] for e in entries]
    files = [e["model_file"] for e in entries]
    assert len(set(versions)) == len(versions) and len(set(files)) == len(files)
    for e in entries:
        assert sha256_file(registry.model_path(e, home=home)) == e["model_sha256"]
    current = registry.current_file(home=home)
    hist = registry.pointer_records(registry.history(home=home))  # the challenger's lines: tests/test_challenger.py
    if current is not None:
        assert current in files
        assert hist and hist[-1]["to"] == current
    for rec in hist:
        assert rec["to"] in files


def test_versions_are_sequential_and_unique(home):
    assert [_register(home)["version"] for _ in range(3)] == ["v1", "v2", "v3"]
    assert _register(home, version="exp-a")["version"] == "exp-a"
    assert _register(home)["version"] == "v4"
    with pytest.raises(InvalidParameter, match="'v2' is already registered"):
        _register(home, version="v2")
    assert_consistent(home)


def test_registry_files_get_the_umask_mode_and_a_refused_registration_leaves_no_temporary_file(home):
    old = os.umask(0o027)
    try:
        entry, _ = registry.register({"m": 1}, {"passed_gate": True}, home=home, profile={"columns": {}},
                                     contract=contract_lab())
        with pytest.raises(InvalidParameter, match="already registered"):
            registry.register({"m": 2}, {"passed_gate": True}, home=home, version="v1", profile={"columns": {}})
    finally:
        os.umask(old)
    files = [entry["model_file"], entry["profile_file"], entry["contract_file"]]
    assert sorted(p.name for p in home.models_dir.iterdir()) == sorted(files)  # no .incoming.* left behind
    written = [home.models_dir / f for f in files] + [home.metadata_json, home.current_txt, home.history_jsonl]
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in written} == {p.name: "0o640" for p in written}


def test_two_registrations_in_the_same_second_get_distinct_files(home):
    files = {_register(home)["model_file"] for _ in range(5)}
    assert len(files) == 5 and all((home.models_dir / f).exists() for f in files)


@pytest.mark.parametrize("label", ["../../etc/passwd", "/abs", "a/b", "a\\b", "bad\nname", "", ".hidden",
                                   "x" * 65, "..", "v1\x00", "v1\n"])
def test_hostile_labels_are_refused(home, label):
    with pytest.raises(InvalidParameter, match="not allowed"):
        _register(home, version=label)
    assert not home.metadata_json.exists()


def test_only_passing_models_become_current_and_history_records_it(home):
    v1 = _register(home)
    _register(home, passed=False)
    assert registry.current_file(home=home) == v1["model_file"]
    (rec,) = registry.history(home=home)
    assert rec["action"] == "register" and rec["from"] is None and rec["to"] == v1["model_file"]
    assert_consistent(home)


def test_rollback_walks_back_on_repeated_calls(home):
    e = [_register(home) for _ in range(3)]
    assert registry.rollback(home=home)["to"] == e[1]["model_file"]
    assert registry.rollback(home=home)["to"] == e[0]["model_file"]
    with pytest.raises(PromotionRefused, match="no earlier current model"):
        registry.rollback(home=home)
    e4 = _register(home)  # v4 becomes current; rolling back returns to v1, which was current before it
    assert registry.current_file(home=home) == e4["model_file"]
    assert registry.rollback(home=home)["to"] == e[0]["model_file"]
    assert_consistent(home)


def test_rollback_to_a_target_by_label_or_file_name(home):
    e = [_register(home) for _ in range(3)]
    assert registry.rollback(home=home, to="v1")["to"] == e[0]["model_file"]
    assert registry.rollback(home=home, to=e[1]["model_file"])["to"] == e[1]["model_file"]
    assert registry.rollback(home=home, to="v2") is None  # already current: nothing to do
    assert registry.rollback(home=home)["to"] == e[0]["model_file"]  # walks back through the targets


def test_rollback_with_nothing_current(home):
    with pytest.raises(NoCurrentModel):
        registry.rollback(home=home)


def test_refused_operations_change_nothing(home):
    _register(home)
    failed = _register(home, passed=False)
    _register(home)
    before = _snapshot(home)
    with pytest.raises(PromotionRefused, match="failed the gate.*--force"):
        registry.promote("v2", home=home)
    with pytest.raises(PromotionRefused, match="failed the gate"):
        registry.rollback(home=home, to="v2")
    with pytest.raises(ModelNotFound, match="registered versions: v1, v2, v3"):
        registry.promote("../../etc/passwd", home=home)
    (home.models_dir / _register(home, version="gone")["model_file"]).unlink()
    _register(home)
    before = _snapshot(home)
    with pytest.raises(PromotionRefused, match="missing"):
        registry.promote("gone", home=home)
    assert _snapshot(home) == before
    assert registry.current_file(home=home) != failed["model_file"]


def test_a_model_whose_hash_differs_is_refused_and_never_loaded(home):
    e1 = _register(home)
    _register(home)
    registry.model_path(e1, home=home).write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    before = _snapshot(home)
    with pytest.raises(PromotionRefused, match="does not match its registered sha256"):
        registry.rollback(home=home)
    assert _snapshot(home) == before
    with pytest.raises(IntegrityError):
        registry.load_model(e1, home=home)


def test_forced_promotion_of_a_failed_model_is_recorded(home):
    _register(home)
    _register(home, passed=False)
    rec = registry.promote("v2", home=home, force=True)
    assert rec["forced"] is True and "forced" in rec["reason"]
    assert registry.history(home=home)[-1]["forced"] is True


def test_promote_twice_is_a_no_op(home):
    _register(home)
    assert registry.promote("v1", home=home) is None
    assert len(registry.history(home=home)) == 1


def test_damaged_metadata_is_named_with_a_way_out(home):
    _register(home)
    home.metadata_json.write_text('[{"version": "v1", "mod')
    with pytest.raises(RegistryError, match="metadata.json is damaged"):
        registry.load_entries(home=home)


def test_pointer_to_an_unknown_model_is_named(home):
    _register(home)
    home.current_txt.write_text("nope.joblib\n")
    with pytest.raises(RegistryError, match="names 'nope.joblib', which is not registered"):
        registry.current_entry(home=home)


def test_unsafe_file_names_in_hand_edited_metadata_are_never_opened(home):
    with pytest.raises(IntegrityError, match="unsafe"):
        registry.model_path({"version": "x", "model_file": "../../etc/passwd"}, home=home)


# The one outcome a rollback racing other registrations and rollbacks may meet besides success:
# the others already walked the history back to its first activation. Only models that passed
# the gate are ever current here and nothing is deleted, so a refusal for any other reason (and
# any other exception) is a bug, and the worker dies of it with a traceback and exit code 1.
_ROLLBACK = textwrap.dedent("""
    from churn_lib import PromotionRefused, registry

    NOTHING_EARLIER = "no earlier current model"

    def roll_back(home):  # the file name rolled back to, or None when there was nothing earlier
        try:
            return registry.rollback(home=home)["to"]
        except PromotionRefused as exc:
            if NOTHING_EARLIER not in str(exc):
                raise
            return None
""")

_WORKER = _ROLLBACK + textwrap.dedent("""
    import json, sys
    home, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    outcomes = []
    for i in range(n):
        registry.register({"tag": tag, "i": i}, {"passed_gate": i % 2 == 0}, home=home)
        if i % 3 == 2:
            outcomes.append(roll_back(home))
    print(json.dumps(outcomes))
""")


def test_concurrent_processes_lose_no_entry(home):
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(home.root), f"p{k}", "6"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(4)]
    done = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err for _, err in done]
    entries = registry.load_entries(home=home)
    assert len(entries) == 24
    assert sorted(int(e["version"][1:]) for e in entries) == list(range(1, 25))
    assert_consistent(home)
    # every rollback a worker saw succeed is a history line naming the model it went to
    rolled = sorted(to for out, _ in done for to in json.loads(out) if to is not None)
    assert rolled == sorted(r["to"] for r in registry.history(home=home) if r["action"] == "rollback")


def test_concurrent_training_runs_lose_no_entry(trained_home):
    procs = [subprocess.Popen([sys.executable, "-m", "churn_lib.cli", "train", "--seed", str(s),
                               "--home", str(trained_home.root)], stdout=subprocess.DEVNULL)
             for s in (1, 2, 3)]
    assert all(p.wait(timeout=120) in (0, 3) for p in procs)
    assert [e["version"] for e in registry.load_entries(home=trained_home)] == ["v1", "v2", "v3", "v4"]
    assert_consistent(trained_home)


_CHURNER = _ROLLBACK + textwrap.dedent("""
    import sys
    home = sys.argv[1]
    i = 0
    while True:
        i += 1
        registry.register({"i": i, "pad": "x" * 200_000}, {"passed_gate": True}, home=home)
        roll_back(home)
""")


@pytest.mark.parametrize("delay", [0.4, 0.7, 1.0, 1.3])
def test_a_process_killed_mid_write_leaves_a_readable_registry(home, delay):
    proc = subprocess.Popen([sys.executable, "-c", _CHURNER, str(home.root)], stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    assert proc.poll() is None, f"the churner died of an error before the kill: {proc.stderr.read()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    # The pointer is the commit point; a kill between it and the history line
    # leaves the history one step behind, which the next update records.
    hist, current = registry.history(home=home), registry.current_file(home=home)
    assert current is None or current in {e["model_file"] for e in registry.load_entries(home=home)}
    last = hist[-1]["to"] if hist else None  # a kill before the very first history line leaves none
    if current is not None and last != current:
        assert registry.reconcile(home=home)["action"] == "reconcile"
    assert_consistent(home)
    # and the next command works
    registry.register({"after": True}, {"passed_gate": True}, home=home)
    assert_consistent(home)
