"""The file-based model registry: entries, the current pointer, promotion,
rollback and history.

Files (under ``registry/``, see DESIGN.md):

* ``metadata.json`` - a JSON list of entries, oldest first (the lab's fields
  plus threshold, hashes, gate reasons, parameters, library versions);
* ``current_model.txt`` - the bare file name of the active model;
* ``history.jsonl`` - one line per change of the current model;
* ``models/<file>.joblib`` - the artifacts.

Every update holds an exclusive lock (``registry/.lock``) and every write is
atomic, so concurrent runs and crashes leave a readable registry. The pointer
is the commit point of a change of the current model: it is replaced first,
then the history line is appended. A crash between the two (or a hand edit of
the pointer) leaves the history one step behind; the next update under the
lock notices and appends a ``reconcile`` record (:func:`reconcile`).
Targets given by a user are matched against registered labels and file names
only; no path is ever built from user input, and an artifact is unpickled only
after its sha256 matches the registry.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import joblib

from ._files import append_line, atomic_write, atomic_write_json, atomic_write_text, sha256_file
from .exceptions import (
    IntegrityError,
    InvalidParameter,
    LockTimeout,
    ModelNotFound,
    NoCurrentModel,
    PromotionRefused,
    RegistryError,
)
from .home import Home

log = logging.getLogger(__name__)

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.joblib$")
LOCK_TIMEOUT_S = 120.0
#: Suffix of a model's drift reference profile, beside ``<model>.joblib``.
PROFILE_SUFFIX = ".profile.json"


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


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@contextlib.contextmanager
def lock(*, home: Home | str | None = None, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the registry's exclusive lock (an OS file lock, released if the process dies)."""
    home = Home.resolve(home)
    home.registry_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(home.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
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
    """Every change of the current model, oldest first.

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
        if isinstance(rec, dict) and isinstance(rec.get("to"), str):
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
             profile: dict[str, Any] | None = None) -> tuple[dict[str, Any], bool]:
    """Save ``model`` and register it; make it current when ``fields['passed_gate']``.

    The artifact is written before the lock is taken; the version label, the
    final file name, the metadata entry and (if the gate passed) the pointer
    and history line are settled under the lock. ``profile`` (the drift
    reference, :func:`churn_lib.drift.build_profile`) is written the same way
    as a sidecar ``<model>.profile.json``; the entry records its name and sha256.

    Returns
    -------
    (entry, promoted)
    """
    home = Home.resolve(home)
    if version is not None:
        validate_label(version)
    home.models_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".incoming.", suffix=".joblib", dir=home.models_dir)
    os.close(fd)
    tmp_path = Path(tmp)
    side_path: Path | None = None
    try:
        joblib.dump(model, tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        digest = sha256_file(tmp_path)
        if profile is not None:
            fd, side = tempfile.mkstemp(prefix=".incoming.", suffix=PROFILE_SUFFIX, dir=home.models_dir)
            side_path = Path(side)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(profile, fh, indent=1, allow_nan=False)
                fh.flush()
                os.fsync(fh.fileno())
            side_digest = sha256_file(side_path)
        with lock(home=home):
            _reconcile(home)
            entries = load_entries(home=home)
            label = version or next_version(entries)
            if any(e["version"] == label for e in entries):
                raise InvalidParameter(f"version {label!r} is already registered; choose another label "
                                       f"or omit --version to get {next_version(entries)}", name="version")
            now = datetime.now(timezone.utc)
            stamp = now.strftime("%Y%m%d_%H%M%S")
            name = f"churn_model_{label}_{stamp}.joblib"
            if (home.models_dir / name).exists():  # an orphan of a crashed run with this label
                name = f"churn_model_{label}_{stamp}_{now.strftime('%f')}.joblib"
            os.replace(tmp_path, home.models_dir / name)
            sidecar = {}
            if side_path is not None:
                side_name = name[: -len(".joblib")] + PROFILE_SUFFIX
                os.replace(side_path, home.models_dir / side_name)
                sidecar = {"profile_file": side_name, "profile_sha256": side_digest}
            entry = {
                "model_file": name,
                "version": label,
                "trained_at_utc": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                **fields,
                "model_sha256": digest,
                **sidecar,
                "reports_dir": f"reports/{label}",
            }
            atomic_write_json(home.metadata_json, [*entries, entry])
            promoted = False
            if entry.get("passed_gate") and promote_if_passed:
                _set_current(home, entry, action="register", reason="passed the gate at training")
                promoted = True
    finally:
        tmp_path.unlink(missing_ok=True)
        if side_path is not None:
            side_path.unlink(missing_ok=True)
    return entry, promoted


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
    return record


def _reconcile(home: Home) -> dict[str, Any] | None:
    current = current_file(home=home)
    if current is None:
        return None
    records = history(home=home)
    last = records[-1]["to"] if records else None
    if last == current:
        return None
    entry = next((e for e in load_entries(home=home) if e["model_file"] == current), None)
    if entry is None:  # a damaged pointer: nothing true to record (`churn promote` rewrites it)
        return None
    record = {"ts": utc_now(), "action": "reconcile", "from": last, "to": current,
              "version": entry["version"] if entry else None, "target": None, "forced": False,
              "reason": "current_model.txt changed without a history line (an interrupted command "
                        "or a hand edit); recorded afterwards"}
    append_line(home.history_jsonl, json.dumps(record))
    return record


def reconcile(*, home: Home | str | None = None) -> dict[str, Any] | None:
    """Record a change of the pointer that has no history line yet; None when they agree."""
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
    for rec in records:
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


# --- candidates: trained in a run, registered only when the whole run succeeded

def _candidate_paths(version: str, home: Home) -> tuple[Path, Path]:
    validate_label(version)
    return home.candidates_dir / f"{version}.joblib", home.candidates_dir / f"{version}.json"


def stage_candidate(version: str, *, home: Home | str | None = None, **register_kwargs: Any) -> Path:
    """Keep the arguments of a later :func:`register` call as candidate ``version``.

    The payload's sha256 is kept beside it and checked before it is loaded.
    """
    home = Home.resolve(home)
    blob, meta = _candidate_paths(version, home)
    blob.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(blob, lambda tmp: joblib.dump(register_kwargs, tmp))
    atomic_write_json(meta, {"version": version, "sha256": sha256_file(blob), "staged_at_utc": utc_now()})
    return blob


def load_candidate(version: str, *, home: Home | str | None = None) -> dict[str, Any]:
    """The staged arguments of candidate ``version`` (``model``, ``fields``, ...), hash-checked."""
    home = Home.resolve(home)
    blob, meta = _candidate_paths(version, home)
    try:
        expected = json.loads(meta.read_text(encoding="utf-8"))["sha256"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        raise ModelNotFound(f"no candidate {version!r} is staged", target=version) from None
    if not blob.is_file() or sha256_file(blob) != expected:
        raise IntegrityError(f"candidate {version} is missing or altered: {blob}", version=version)
    return joblib.load(blob)


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
    kwargs = load_candidate(version, home=home)
    result = register(home=home, version=version, promote_if_passed=promote_if_passed, **kwargs)
    discard_candidate(version, home=home)
    return result


def discard_candidate(version: str, *, home: Home | str | None = None) -> None:
    """Remove staged candidate ``version`` (no error when there is none)."""
    home = Home.resolve(home)
    for path in _candidate_paths(version, home):
        path.unlink(missing_ok=True)


def history_frame(*, home: Home | str | None = None):
    """:func:`history` as a table, oldest first."""
    import pandas as pd

    columns = ["ts", "action", "version", "from", "to", "forced", "reason"]
    return pd.DataFrame(history(home=home)).reindex(columns=columns)


# --- checking and repairing --------------------------------------------------

#: Temporary files younger than this may belong to a registration in progress.
INCOMING_GRACE_S = 60.0


@dataclass
class Problem:
    """One thing wrong in the registry: the file, what is wrong, how to repair it."""

    file: str
    problem: str
    repair: str
    repairable: bool = False
    repaired: bool = False


@dataclass
class CheckReport:
    """The result of :func:`check`: ``ok`` when no problem is left."""

    registry_dir: str
    entries: int = 0
    current: str | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(not p.repaired for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def check(*, home: Home | str | None = None, repair: bool = False,
          incoming_grace_s: float = INCOMING_GRACE_S) -> CheckReport:
    """Verify every artifact's sha256 and the agreement of metadata, pointer and history.

    With ``repair``, fixes only what needs no guessing: a history that lags the
    pointer gets its ``reconcile`` line; an empty pointer is restored from the
    history's last record (when that model is registered and intact); damaged
    history lines are dropped (the original is saved as
    ``history.jsonl.damaged-<time>``); temporary ``.incoming.*`` files older
    than ``incoming_grace_s`` are removed. Everything else is reported with
    what to do.

    Examples
    --------
    >>> check(home=tmp_home).ok  # doctest: +SKIP
    True
    """
    home = Home.resolve(home)
    report = CheckReport(registry_dir=str(home.registry_dir))
    if not home.registry_dir.is_dir():
        report.notes.append("no registry yet")
        return report
    with lock(home=home):
        _check(home, report, repair=repair, grace=incoming_grace_s)
    return report


def _check(home: Home, report: CheckReport, *, repair: bool, grace: float) -> None:
    add = report.problems.append
    meta = str(home.metadata_json)
    try:
        entries = load_entries(home=home)
    except RegistryError as exc:
        add(Problem(meta, str(exc).split(";")[0], "restore metadata.json from a backup; it cannot be rebuilt "
                                                  "without guessing (the model files stay untouched)"))
        entries = None
    known: set[str] = set()
    for e in entries or []:
        report.entries += 1
        version = e.get("version")
        try:
            path = model_path(e, home=home)
        except IntegrityError as exc:
            add(Problem(meta, str(exc), f"fix or remove the entry of {version} in metadata.json"))
            continue
        known.add(path.name)
        try:
            verify(e, home=home)
        except IntegrityError as exc:
            add(Problem(str(path), str(exc), f"restore the file of {version} from a backup, or retrain it; "
                                             "it will never be loaded as it is"))
        side = e.get("profile_file")
        if side:
            side_path = home.models_dir / str(side)
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.profile\.json", str(side)) or ".." in str(side):
                add(Problem(meta, f"entry {version} names an unsafe profile file {side!r}",
                            f"fix the entry of {version} in metadata.json"))
                continue
            known.add(side_path.name)
            if not side_path.is_file() or sha256_file(side_path) != e.get("profile_sha256"):
                add(Problem(str(side_path), f"drift profile of {version} is missing or does not match its sha256",
                            f"restore it from a backup or retrain {version}"))
    try:
        current = current_file(home=home)
    except RegistryError as exc:
        add(Problem(str(home.current_txt), str(exc).split(";")[0], "run `churn promote VERSION` to rewrite it"))
        current = "?"
    records, bad = _read_history(home)
    if bad:
        p = Problem(str(home.history_jsonl), f"lines {', '.join(map(str, bad[:10]))} are not history records",
                    "`churn registry check --repair` keeps the readable lines and saves the file aside",
                    repairable=True)
        add(p)
        if repair:
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            aside = home.history_jsonl.with_name(f"history.jsonl.damaged-{stamp}")
            os.replace(home.history_jsonl, aside)
            atomic_write_text(home.history_jsonl, "".join(json.dumps(r) + "\n" for r in records))
            p.repaired = True
            report.notes.append(f"the damaged history was saved as {aside}")
    last = records[-1]["to"] if records else None
    by_file = {e["model_file"]: e for e in entries or []}
    if current not in (None, "?") and entries is not None:
        report.current = current
        if current not in by_file:
            add(Problem(str(home.current_txt), f"names {current!r}, which is not registered",
                        "run `churn promote VERSION` to rewrite it"))
        elif last != current:
            p = Problem(str(home.history_jsonl), f"the last record ({last}) lags the pointer ({current}), "
                                                 "an interrupted command or a hand edit",
                        "`churn registry check --repair` appends the missing `reconcile` line", repairable=True)
            add(p)
            if repair:
                p.repaired = _reconcile(home) is not None
    elif current is None and last is not None and entries is not None:
        target = by_file.get(last)
        ok = target is not None and not _refusals(target, home, force=True)
        p = Problem(str(home.current_txt), f"is missing or empty, but the history's last record made {last} current",
                    "`churn registry check --repair` restores it" if ok else "run `churn promote VERSION`",
                    repairable=ok)
        add(p)
        if repair and ok:
            atomic_write_text(home.current_txt, last + "\n")
            p.repaired = True
    if current is not None and current != "?":
        report.current = current
    if home.models_dir.is_dir():
        now = time.time()
        for path in sorted(home.models_dir.iterdir()):
            if path.name in known or not path.is_file():
                continue
            if path.name.startswith(".incoming."):
                old = now - path.stat().st_mtime >= grace
                p = Problem(str(path), "a temporary file of an interrupted registration",
                            "`churn registry check --repair` removes it" if old
                            else "a registration may be writing it; check again in a minute", repairable=old)
                add(p)
                if repair and old:
                    path.unlink(missing_ok=True)
                    p.repaired = True
            elif entries is not None:
                report.notes.append(f"{path} is not registered (left by an interrupted registration or copied in); "
                                    "delete it if you do not need it")
