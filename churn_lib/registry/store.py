"""The registry's store: entries, the two pointers (current and challenger),
promotion, rollback and history, and the artifacts with their sidecars.

Files (under ``registry/``, see DESIGN.md):

* ``metadata.json`` - a JSON list of entries, oldest first (the lab's fields
  plus threshold, hashes, gate reasons, parameters, library versions);
* ``current_model.txt`` - the bare file name of the active model;
* ``challenger.txt`` - the bare file name of the challenger (absent: none), the
  model the service also scores in shadow; ``challenger.json`` beside it holds its
  settings (file, version, ``sample``), written just before the pointer. Setting
  it is :mod:`.challenger`'s job; making the challenger current clears it in the
  same locked update;
* ``history.jsonl`` - one line per change of either pointer (the challenger's
  have the actions in :data:`CHALLENGER_ACTIONS`; a ``challenger_clear`` line's
  ``to`` is null);
* ``models/<file>.joblib`` - the artifacts; beside each, ``.profile.json``
  (its drift reference) and ``.contract.json`` (a copy of the dataset contract
  it was trained on), each with its sha256 in the entry.

Every update holds an exclusive lock (``registry/.lock``) and every write is
atomic, so concurrent runs and crashes leave a readable registry. The pointer
is the commit point of a change of the current model: it is replaced first,
then the history line is appended. A crash between the two (or a hand edit of
the pointer) leaves the history one step behind; the next update under the
lock notices and appends a ``reconcile`` record (:func:`reconcile`); the
challenger pointer is reconciled the same way (``challenger_reconcile``).
Targets given by a user are matched against registered labels and file names
only; no path is ever built from user input, and an artifact is unpickled only
after its sha256 matches the registry.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from .. import contract as _contract
from .._io import (TIMESTAMP_FORMAT, _fsync_dir, append_line, atomic_write_json, atomic_write_text, commit,
                   file_stamp, incoming, now, sha256_file, utc_now)
from .._params import Param, Range
from ..exceptions import (
    ChurnError,
    IntegrityError,
    InvalidParameter,
    LockTimeout,
    ModelNotFound,
    NoCurrentModel,
    PromotionRefused,
    RegistryError,
)
from ..home import Home

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.joblib$")
LOCK_TIMEOUT_S = 120.0
#: Sidecar files beside ``<model>.joblib``: kind -> suffix. The entry names each as
#: ``<kind>_file`` with its ``<kind>_sha256``.
SIDECARS: dict[str, str] = {"profile": ".profile.json", "contract": ".contract.json"}
#: Prefix of a file being registered (written before the lock, named under it); `churn registry check` knows it.
INCOMING = ".incoming."
SIDECAR_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.(profile|contract)\.json$")
#: The challenger pointer and its settings, in ``registry/``.
CHALLENGER_TXT, CHALLENGER_JSON = "challenger.txt", "challenger.json"
#: History actions that change the challenger pointer; every other action changes the current one.
CHALLENGER_ACTIONS = ("challenger", "challenger_clear", "challenger_reconcile")
#: The share of requests a challenger scores: more than none, at most all (``churn challenger --sample``).
SAMPLE = Param("sample", 1.0, "the share of requests the challenger also scores, picked by request id", float,
               range=Range(0, 1, open_low=True))


@dataclass(frozen=True)
class Challenger:
    """The challenger pointer: the model the service also scores, on the requests :attr:`sample` picks.

    ``settled`` is False when ``challenger.json`` does not name the pointer's file
    (a hand edit of the pointer, or a crash between the two writes): the sample
    is then the default, 1.0.
    """

    model_file: str
    version: str | None = None
    sample: float = SAMPLE.default
    set_at: str | None = None
    settled: bool = True

    def __post_init__(self) -> None:
        SAMPLE.check(self.sample)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_label(label: str) -> str:
    """Refuse version labels that could be paths or confuse a reader.

    Examples
    --------
    >>> validate_label("v2")
    'v2'
    """
    if not isinstance(label, str) or not _LABEL.fullmatch(label) or ".." in label:
        raise InvalidParameter(
            f"version label {label!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit", name="version")
    return label


@contextlib.contextmanager
def lock(*, home: Home | str | None = None, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the registry's exclusive lock (an OS file lock, released if the process dies)."""
    home = Home.resolve(home)
    home.registry_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(home.lock_file, os.O_RDWR | os.O_CREAT, 0o666)  # less the umask
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(f"the registry at {home.registry_dir} stayed locked for {timeout:.0f} s; "
                                      "another churn command is running - retry when it ends") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# --- reading -----------------------------------------------------------------

def load_entries(*, home: Home | str | None = None) -> list[dict[str, Any]]:
    """All registered entries, oldest first ([] when nothing is registered yet)."""
    home = Home.resolve(home)
    path = home.metadata_json
    try:
        text = _read_text(path)
    except FileNotFoundError:
        return []
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path} is damaged ({exc.msg} at line {exc.lineno}); restore it from a backup "
                            "or run `churn registry check`", path=str(path)) from None
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and "version" in e and "model_file" in e for e in entries):
        raise RegistryError(f"{path} is not a list of registry entries; restore it or run `churn registry check`",
                            path=str(path))
    return entries


def current_file(*, home: Home | str | None = None) -> str | None:
    """The bare file name in ``current_model.txt``, or None when none is current."""
    home = Home.resolve(home)
    try:
        name = _read_text(home.current_txt).strip()
    except FileNotFoundError:
        return None
    if name and (not _FILE.fullmatch(name) or ".." in name):
        raise RegistryError(f"{home.current_txt} is damaged (it holds {name[:40]!r}, not a model file name); "
                            "run `churn registry check --repair` or `churn promote VERSION` to rewrite it",
                            path=str(home.current_txt))
    return name or None


def challenger_file(*, home: Home | str | None = None) -> str | None:
    """The bare file name in ``challenger.txt``, or None when no challenger is set."""
    home = Home.resolve(home)
    path = home.registry_dir / CHALLENGER_TXT
    try:
        name = _read_text(path).strip()
    except FileNotFoundError:
        return None
    if name and (not _FILE.fullmatch(name) or ".." in name):
        raise RegistryError(f"{path} is damaged (it holds {name[:40]!r}, not a model file name); "
                            "run `churn challenger --clear` or `churn challenger VERSION` to rewrite it",
                            path=str(path))
    return name or None


def read_challenger(*, home: Home | str | None = None) -> Challenger | None:
    """The challenger pointer with its settings (None when none is set).

    Raises
    ------
    RegistryError
        The pointer is damaged.
    """
    home = Home.resolve(home)
    name = challenger_file(home=home)
    if name is None:
        return None
    try:
        settings = json.loads(_read_text(home.registry_dir / CHALLENGER_JSON))
        if settings.get("model_file") == name:
            return Challenger(name, settings.get("version"), float(settings["sample"]), settings.get("set_at"))
    except (OSError, ValueError, TypeError, KeyError, AttributeError, ChurnError):
        pass  # missing or unreadable settings: the pointer alone counts
    return Challenger(name, settled=False)


def _read_text(path: Path) -> str:
    """A registry file's text; bytes that are not UTF-8 mean the file is damaged."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RegistryError(f"{path} is damaged (not UTF-8 text); restore it from a backup "
                            "or run `churn registry check` to see what can be repaired", path=str(path)) from None


def find(target: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The entry whose version label or model file name is exactly ``target``."""
    for e in entries:
        if target in (e["version"], e["model_file"]):
            return e
    known = ", ".join(e["version"] for e in entries) or "none"
    raise ModelNotFound(f"no registered model named {target!r} (registered versions: {known})", target=target)


def get(target: str, *, home: Home | str | None = None) -> dict[str, Any]:
    """The registered entry for a version label or model file name."""
    return find(target, load_entries(home=home))


def current_entry(*, home: Home | str | None = None) -> dict[str, Any] | None:
    """The entry of the current model, or None when no model is current."""
    home = Home.resolve(home)
    name = current_file(home=home)
    if name is None:
        return None
    try:
        return find(name, load_entries(home=home))
    except ModelNotFound:
        raise RegistryError(f"{home.current_txt} names {name!r}, which is not registered; "
                            "run `churn promote VERSION` to repair it", path=str(home.current_txt)) from None


def history(*, home: Home | str | None = None) -> list[dict[str, Any]]:
    """Every change of the current model and of the challenger, oldest first.

    Raises
    ------
    RegistryError
        When a line is not a history record (naming the file, the line and the repair).
    """
    home = Home.resolve(home)
    records, bad = _read_history(home)
    if bad:
        raise RegistryError(f"{home.history_jsonl} is damaged (line {bad[0]} is not a history record); run "
                            "`churn registry check --repair` to keep the readable lines (the file is saved aside)",
                            path=str(home.history_jsonl))
    return records


def _read_history(home: Home) -> tuple[list[dict[str, Any]], list[int]]:
    """The history's records and the numbers of its damaged lines."""
    try:
        raw = home.history_jsonl.read_bytes()
    except FileNotFoundError:
        return [], []
    out, bad = [], []
    for i, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            rec = None
        if isinstance(rec, dict) and (isinstance(rec.get("to"), str) or (
                rec.get("to") is None and rec.get("action") in CHALLENGER_ACTIONS)):
            out.append(rec)
        else:
            bad.append(i)
    return out, bad


def model_path(entry: dict[str, Any], *, home: Home | str | None = None) -> Path:
    """Path of an entry's artifact; refuses file names that are not plain names."""
    home = Home.resolve(home)
    name = entry.get("model_file", "")
    if not isinstance(name, str) or not _FILE.fullmatch(name) or ".." in name:
        raise IntegrityError(f"registry entry {entry.get('version')!r} names an unsafe model file {name!r}",
                             version=entry.get("version"))
    return home.models_dir / name


def verify(entry: dict[str, Any], *, home: Home | str | None = None) -> Path:
    """Check that an entry's artifact exists and matches its sha256; return its path."""
    path = model_path(entry, home=home)
    version = entry.get("version")
    if not path.is_file():
        raise IntegrityError(f"model file of {version} is missing: {path}", version=version, path=str(path))
    digest = sha256_file(path)
    if digest != entry.get("model_sha256"):
        raise IntegrityError(f"model file of {version} does not match its registered sha256 "
                             f"(file {digest[:12]}..., registry {str(entry.get('model_sha256'))[:12]}...): {path}",
                             version=version, path=str(path))
    return path


def load_model(entry: dict[str, Any], *, home: Home | str | None = None):
    """Load an entry's fitted pipeline, only after its sha256 matched."""
    import joblib  # here: reading the registry (`churn history`, `churn registry list`) needs no joblib

    path = verify(entry, home=home)
    try:
        return joblib.load(path)
    except Exception as exc:  # a hash-matching file that still fails to load
        raise IntegrityError(f"model file of {entry.get('version')} cannot be loaded: {exc}",
                             version=entry.get("version"), path=str(path)) from None


# --- writing -----------------------------------------------------------------

def next_version(entries: list[dict[str, Any]]) -> str:
    """``v{N+1}`` where N is the largest ``vN`` label registered (v1 when none)."""
    numbers = [int(m.group(1)) for e in entries if (m := re.fullmatch(r"v(\d+)", str(e["version"])))]
    return f"v{max(numbers, default=0) + 1}"


def register(model: Any, fields: dict[str, Any], *, home: Home | str | None = None,
             version: str | None = None, promote_if_passed: bool = True,
             profile: dict[str, Any] | None = None, contract: _contract.Contract | None = None,
             artifact: Path | None = None) -> tuple[dict[str, Any], bool]:
    """Save ``model`` and register it; make it current when ``fields['passed_gate']``.

    The artifact is written before the lock is taken; the version label, the
    final file name, the metadata entry and (if the gate passed) the pointer
    and history line are settled under the lock. ``profile`` (the drift
    reference, :func:`churn_lib.drift.build_profile`) and ``contract`` (the
    dataset contract the model was trained on) are written the same way as
    sidecars ``<model>.profile.json`` and ``<model>.contract.json``; the entry
    records each one's name and sha256. ``artifact``, a file already holding
    the serialised model (a staged candidate), is copied instead of ``model``.

    Returns
    -------
    (entry, promoted)
    """
    home = Home.resolve(home)
    if version is not None:
        validate_label(version)
    payloads = {}
    if profile is not None:
        payloads["profile"] = json.dumps(profile, indent=1, allow_nan=False)
    if contract is not None:
        payloads["contract"] = _contract.to_json(contract)

    def write_model(tmp: Path) -> None:
        if artifact is not None:
            shutil.copyfile(artifact, tmp)
        else:
            import joblib

            joblib.dump(model, tmp)

    with contextlib.ExitStack() as files:  # every file not committed under the lock is removed
        written = {"model": files.enter_context(incoming(home.models_dir, write_model, prefix=INCOMING,
                                                         suffix=".joblib"))}
        for kind, text in payloads.items():
            written[kind] = files.enter_context(incoming(
                home.models_dir, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"), prefix=INCOMING,
                suffix=SIDECARS[kind]))
        digests = {kind: sha256_file(path) for kind, path in written.items()}
        with lock(home=home):
            entry = _add_entry(home, version, fields, written, digests)
            promoted = bool(entry.get("passed_gate") and promote_if_passed)
            if promoted:
                _set_current(home, entry, action="register", reason="passed the gate at training")
    return entry, promoted


def _add_entry(home: Home, version: str | None, fields: dict[str, Any], written: dict[str, Path],
               digests: dict[str, str]) -> dict[str, Any]:
    """Under the lock: settle the label and file names, move the written files there, append the entry."""
    _reconcile(home)
    entries = load_entries(home=home)
    label = version or next_version(entries)
    if any(e["version"] == label for e in entries):
        raise InvalidParameter(f"version {label!r} is already registered; choose another label "
                               f"or omit --version to get {next_version(entries)}", name="version")
    when = now()
    name = f"churn_model_{label}_{file_stamp(when)}.joblib"
    if (home.models_dir / name).exists():  # an orphan of a crashed run with this label
        name = f"churn_model_{label}_{file_stamp(when, micro=True)}.joblib"
    commit(written["model"], home.models_dir / name)
    sidecars = {}
    for kind in SIDECARS:
        if kind in written:
            side_name = name[: -len(".joblib")] + SIDECARS[kind]
            commit(written[kind], home.models_dir / side_name)
            sidecars.update({f"{kind}_file": side_name, f"{kind}_sha256": digests[kind]})
    entry = {
        "model_file": name,
        "version": label,
        "trained_at_utc": when.strftime(TIMESTAMP_FORMAT),
        **fields,
        "model_sha256": digests["model"],
        **sidecars,
        "reports_dir": f"reports/{label}",
    }
    atomic_write_json(home.metadata_json, [*entries, entry])
    return entry


def sidecar_path(entry: dict[str, Any], kind: str, *, home: Home | str | None = None) -> Path | None:
    """Path of an entry's sidecar of ``kind`` (None when the entry has none); refuses unsafe names."""
    home = Home.resolve(home)
    name = entry.get(f"{kind}_file")
    if not name:
        return None
    if not isinstance(name, str) or not SIDECAR_FILE.fullmatch(name) or ".." in name \
            or not name.endswith(SIDECARS[kind]):
        raise IntegrityError(f"registry entry {entry.get('version')!r} names an unsafe {kind} file {name!r}",
                             version=entry.get("version"))
    return home.models_dir / name


def read_sidecar(entry: dict[str, Any], kind: str, *, home: Home | str | None = None) -> str | None:
    """The text of an entry's sidecar after its sha256 matched (None when the entry has none).

    Raises
    ------
    IntegrityError
        The file is missing or altered.
    """
    path = sidecar_path(entry, kind, home=home)
    if path is None:
        return None
    version = entry.get("version")
    if not path.is_file():
        raise IntegrityError(f"{kind} file of {version} is missing: {path}", version=version, path=str(path))
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry.get(f"{kind}_sha256"):
        raise IntegrityError(f"{kind} file of {version} does not match its registered sha256: {path}",
                             version=version, path=str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise IntegrityError(f"{kind} file of {version} is not UTF-8 text: {path}", version=version,
                             path=str(path)) from None


def load_contract(entry: dict[str, Any], *, home: Home | str | None = None) -> _contract.Contract:
    """The dataset contract a registered model was trained on (its sha256-checked copy).

    Entries registered before contracts existed were trained on the lab's data: they get the lab's contract.

    Raises
    ------
    IntegrityError
        The copy is missing, altered or unreadable.
    """
    text = read_sidecar(entry, "contract", home=home)
    if text is None:
        return _contract.lab()
    try:
        return _contract.from_json(text, where=f"the contract copy of {entry.get('version')}")
    except ChurnError as exc:
        raise IntegrityError(f"the contract copy of {entry.get('version')} cannot be read: {exc}",
                             version=entry.get("version")) from None


def _set_current(home: Home, entry: dict[str, Any], *, action: str, reason: str,
                 forced: bool = False, target: str | None = None) -> dict[str, Any]:
    record = {
        "ts": utc_now(),
        "action": action,
        "from": current_file(home=home),
        "to": entry["model_file"],
        "version": entry["version"],
        "target": target,
        "forced": forced,
        "reason": reason,
    }
    atomic_write_text(home.current_txt, entry["model_file"] + "\n")
    append_line(home.history_jsonl, json.dumps(record))
    if challenger_file(home=home) == entry["model_file"]:  # the challenger won: it shadows itself no more
        _clear_challenger(home, reason=f"{entry['version']} became the current model ({action})")
    return record


def pointer_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history records that changed the current pointer (not the challenger's)."""
    return [r for r in records if r.get("action") not in CHALLENGER_ACTIONS]


def _challenger_record(home: Home, *, action: str, to: dict[str, Any] | None, reason: str,
                       sample: float | None = None, target: str | None = None) -> dict[str, Any]:
    """A history line of the challenger pointer (the shape of the current pointer's, plus ``sample``)."""
    before = read_challenger(home=home)
    return {"ts": utc_now(), "action": action, "from": before.model_file if before else None,
            "to": to["model_file"] if to else None,
            "version": to["version"] if to else (before.version if before else None),
            "target": target, "forced": False, "reason": reason, "sample": sample}


def _set_challenger(home: Home, entry: dict[str, Any], sample: float, *, reason: str,
                    target: str | None = None) -> dict[str, Any]:
    """Under the lock: the settings, then the pointer (the commit point), then the history line."""
    record = _challenger_record(home, action="challenger", to=entry, reason=reason, sample=sample, target=target)
    settings = Challenger(entry["model_file"], entry["version"], sample, record["ts"])
    atomic_write_json(home.registry_dir / CHALLENGER_JSON,
                      {k: v for k, v in settings.to_dict().items() if k != "settled"})
    atomic_write_text(home.registry_dir / CHALLENGER_TXT, entry["model_file"] + "\n")
    append_line(home.history_jsonl, json.dumps(record))
    return record


def _clear_challenger(home: Home, *, reason: str) -> dict[str, Any] | None:
    """Under the lock: remove the pointer (the commit point), then its settings; append the history line."""
    if challenger_file(home=home) is None:
        return None
    record = _challenger_record(home, action="challenger_clear", to=None, reason=reason)
    for name in (CHALLENGER_TXT, CHALLENGER_JSON):
        (home.registry_dir / name).unlink(missing_ok=True)
    _fsync_dir(home.registry_dir)
    append_line(home.history_jsonl, json.dumps(record))
    return record


def _reconcile(home: Home) -> dict[str, Any] | None:
    record = _reconcile_current(home)
    _reconcile_challenger(home)
    return record


def _reconcile_current(home: Home) -> dict[str, Any] | None:
    current = current_file(home=home)
    if current is None:
        return None
    records = pointer_records(history(home=home))
    last = records[-1]["to"] if records else None
    if last == current:
        return None
    entry = next((e for e in load_entries(home=home) if e["model_file"] == current), None)
    if entry is None:  # a damaged pointer: nothing true to record (`churn promote` rewrites it)
        return None
    record = {"ts": utc_now(), "action": "reconcile", "from": last, "to": current,
              "version": entry["version"], "target": None, "forced": False,
              "reason": "current_model.txt changed without a history line (an interrupted command "
                        "or a hand edit); recorded afterwards"}
    append_line(home.history_jsonl, json.dumps(record))
    return record


def _reconcile_challenger(home: Home) -> dict[str, Any] | None:
    """The challenger pointer against its last history line; a challenger that is the current model is cleared."""
    try:
        pointer = challenger_file(home=home)
    except RegistryError:  # a damaged pointer: `churn registry check` says so, `churn challenger` rewrites it
        return None
    if pointer is not None and pointer == current_file(home=home):  # a promotion interrupted before its clear
        return _clear_challenger(home, reason="the challenger is the current model")
    records = [r for r in history(home=home) if r.get("action") in CHALLENGER_ACTIONS]
    last = records[-1]["to"] if records else None
    if last == pointer:
        return None
    entry = next((e for e in load_entries(home=home) if e["model_file"] == pointer), None)
    if pointer is not None and entry is None:  # names no registered model: nothing true to record
        return None
    settings = read_challenger(home=home)
    record = {"ts": utc_now(), "action": "challenger_reconcile", "from": last, "to": pointer,
              "version": entry["version"] if entry else None, "target": None, "forced": False,
              "reason": f"{CHALLENGER_TXT} changed without a history line (an interrupted command or a hand "
                        "edit); recorded afterwards", "sample": settings.sample if settings else None}
    append_line(home.history_jsonl, json.dumps(record))
    return record


def reconcile(*, home: Home | str | None = None) -> dict[str, Any] | None:
    """Record a change of a pointer that has no history line yet; the current pointer's record (None when
    they agree)."""
    home = Home.resolve(home)
    with lock(home=home):
        return _reconcile(home)


def _refusals(entry: dict[str, Any], home: Home, *, force: bool) -> list[str]:
    reasons = []
    if not entry.get("passed_gate") and not force:
        why = "; ".join(entry.get("gate_reasons") or []) or "see its gate criteria"
        reasons.append(f"{entry['version']} failed the gate ({why}); use --force to activate it anyway")
    try:
        verify(entry, home=home)
    except IntegrityError as exc:
        reasons.append(str(exc))
    return reasons


def promote(target: str, *, home: Home | str | None = None, force: bool = False,
            reason: str | None = None) -> dict[str, Any] | None:
    """Make a registered model current.

    Refused (nothing changes) when the model failed the gate (unless
    ``force``, recorded as such), or its file is missing or altered.

    Returns
    -------
    dict or None
        The history record, or None when the model was already current.
    """
    home = Home.resolve(home)
    with lock(home=home):
        _reconcile(home)
        entry = find(target, load_entries(home=home))
        if current_file(home=home) == entry["model_file"]:
            return None
        refusals = _refusals(entry, home, force=force)
        if refusals:
            raise PromotionRefused(f"promotion of {entry['version']} refused: " + "; ".join(refusals),
                                   reasons=refusals, version=entry["version"])
        forced = force and not entry.get("passed_gate")
        return _set_current(home, entry, action="promote", forced=forced, target=target,
                            reason=reason or ("forced by the operator" if forced else "promoted by the operator"))


def _activation_stack(records: list[dict[str, Any]]) -> list[str]:
    """Replay history into the stack of activations: a plain rollback pops, anything else pushes."""
    stack: list[str] = []
    for rec in pointer_records(records):
        if rec.get("action") == "rollback" and rec.get("target") is None:
            if stack:
                stack.pop()
            if not stack or stack[-1] != rec["to"]:
                stack.append(rec["to"])
        else:
            stack.append(rec["to"])
    return stack


def rollback(*, home: Home | str | None = None, to: str | None = None,
             force: bool = False) -> dict[str, Any] | None:
    """Roll back the current model.

    With no target: to the model that was current before the present one;
    repeated calls walk further back. With ``to``: to that registered model
    (label or file name). Refused, changing nothing, when the target failed
    the gate (unless ``force``), or its file is missing or altered.

    Returns
    -------
    dict or None
        The history record written, or None when ``to`` is already current.
    """
    home = Home.resolve(home)
    with lock(home=home):
        _reconcile(home)
        entries = load_entries(home=home)
        current = current_file(home=home)
        if current is not None and all(e["model_file"] != current for e in entries):
            raise RegistryError(f"{home.current_txt} names {current!r}, which is not registered; "
                                "run `churn promote VERSION` to repair it", path=str(home.current_txt))
        if to is not None:
            entry = find(to, entries)
            if entry["model_file"] == current:
                return None
        else:
            if current is None:
                raise NoCurrentModel("no model is current, so there is nothing to roll back from")
            stack = _activation_stack(history(home=home))
            while stack and stack[-1] == current:
                stack.pop()
            if not stack:
                raise PromotionRefused("there is no earlier current model to roll back to; "
                                       "use `churn rollback --to VERSION`", reasons=[])
            try:
                entry = find(stack[-1], entries)
            except ModelNotFound:
                raise PromotionRefused(f"the previous model {stack[-1]} is no longer registered; "
                                       "use `churn rollback --to VERSION`", reasons=[]) from None
        refusals = _refusals(entry, home, force=force)
        if refusals:
            raise PromotionRefused(f"rollback to {entry['version']} refused: " + "; ".join(refusals)
                                   + ("" if to else "; choose another with `churn rollback --to VERSION`"),
                                   reasons=refusals, version=entry["version"])
        forced = force and not entry.get("passed_gate")
        return _set_current(home, entry, action="rollback", forced=forced, target=to,
                            reason="rollback to " + (to if to else "the previous model")
                            + (" (forced)" if forced else ""))


def history_frame(*, home: Home | str | None = None):
    """:func:`history` as a table, oldest first."""
    import pandas as pd

    columns = ["ts", "action", "version", "from", "to", "forced", "reason"]
    return pd.DataFrame(history(home=home)).reindex(columns=columns)


