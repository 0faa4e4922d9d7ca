"""Checking and repairing the registry: ``churn registry check [--repair]``.

Every artifact's sha256 (models and their sidecars), and the agreement of
metadata, the two pointers (current and challenger) and history; repairs only
what needs no guessing.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .._io import atomic_write_text, file_stamp, sha256_file
from ..exceptions import IntegrityError, RegistryError
from ..home import Home
from .store import (CHALLENGER_ACTIONS, CHALLENGER_JSON, CHALLENGER_TXT, INCOMING, SIDECARS, _read_history,
                    _reconcile, _reconcile_challenger, _refusals, challenger_file, current_file, load_entries, lock,
                    model_path, pointer_records, read_challenger, sidecar_path, verify)


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
    challenger: str | None = None
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
    """Every check in turn, under the lock; problems are listed in this order."""
    entries, known = _check_entries(home, report)
    try:
        current = current_file(home=home)
    except RegistryError as exc:
        report.problems.append(Problem(str(home.current_txt), str(exc).split(";")[0],
                                       "run `churn promote VERSION` to rewrite it"))
        current = "?"
    records = _check_history(home, report, repair=repair)
    if current not in (None, "?"):
        report.current = current
    if entries is not None:
        _check_pointer(home, report, entries, current, pointer_records(records), repair=repair)
        _check_challenger(home, report, entries, current, records, repair=repair)
    _check_leftovers(home, report, known, registered=entries is not None, repair=repair, grace=grace)


def _check_entries(home: Home, report: CheckReport) -> tuple[list[dict[str, Any]] | None, set[str]]:
    """The entries (None when metadata.json is unreadable) and the file names they account for."""
    try:
        entries = load_entries(home=home)
    except RegistryError as exc:
        report.problems.append(Problem(str(home.metadata_json), str(exc).split(";")[0],
                                       "restore metadata.json from a backup; it cannot be rebuilt without "
                                       "guessing (the model files stay untouched)"))
        return None, set()
    known: set[str] = set()
    for entry in entries:
        report.entries += 1
        known |= _check_entry(home, report, entry)
    return entries, known


def _check_entry(home: Home, report: CheckReport, entry: dict[str, Any]) -> set[str]:
    """One entry's artifact and sidecars against their sha256; returns the file names it names safely."""
    add, meta, version = report.problems.append, str(home.metadata_json), entry.get("version")
    try:
        path = model_path(entry, home=home)
    except IntegrityError as exc:
        add(Problem(meta, str(exc), f"fix or remove the entry of {version} in metadata.json"))
        return set()
    known = {path.name}
    try:
        verify(entry, home=home)
    except IntegrityError as exc:
        add(Problem(str(path), str(exc), f"restore the file of {version} from a backup, or retrain it; "
                                         "it will never be loaded as it is"))
    for kind in SIDECARS:
        try:
            side_path = sidecar_path(entry, kind, home=home)
        except IntegrityError as exc:
            add(Problem(meta, str(exc), f"fix the entry of {version} in metadata.json"))
            continue
        if side_path is None:
            continue
        known.add(side_path.name)
        if not side_path.is_file() or sha256_file(side_path) != entry.get(f"{kind}_sha256"):
            what = "drift profile" if kind == "profile" else "contract copy"
            add(Problem(str(side_path), f"{what} of {version} is missing or does not match its sha256",
                        f"restore it from a backup or retrain {version}"))
    return known


def _check_history(home: Home, report: CheckReport, *, repair: bool) -> list[dict[str, Any]]:
    """The history's readable records; damaged lines are a problem (repair: kept aside, the rest rewritten)."""
    records, bad = _read_history(home)
    if bad:
        p = Problem(str(home.history_jsonl), f"lines {', '.join(map(str, bad[:10]))} are not history records",
                    "`churn registry check --repair` keeps the readable lines and saves the file aside",
                    repairable=True)
        report.problems.append(p)
        if repair:
            aside = home.history_jsonl.with_name(f"history.jsonl.damaged-{file_stamp()}")
            os.replace(home.history_jsonl, aside)  # saved aside whole, not a temporary file
            atomic_write_text(home.history_jsonl, "".join(json.dumps(r) + "\n" for r in records))
            p.repaired = True
            report.notes.append(f"the damaged history was saved as {aside}")
    return records


def _check_pointer(home: Home, report: CheckReport, entries: list[dict[str, Any]], current: str | None,
                   records: list[dict[str, Any]], *, repair: bool) -> None:
    """The pointer names a registered model, and the history's last record agrees with it."""
    add = report.problems.append
    last = records[-1]["to"] if records else None
    by_file = {e["model_file"]: e for e in entries}
    if current not in (None, "?"):
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
    elif current is None and last is not None:
        target = by_file.get(last)
        ok = target is not None and not _refusals(target, home, force=True)
        p = Problem(str(home.current_txt), f"is missing or empty, but the history's last record made {last} current",
                    "`churn registry check --repair` restores it" if ok else "run `churn promote VERSION`",
                    repairable=ok)
        add(p)
        if repair and ok:
            atomic_write_text(home.current_txt, last + "\n")
            p.repaired = True


def _check_challenger(home: Home, report: CheckReport, entries: list[dict[str, Any]], current: str | None,
                      records: list[dict[str, Any]], *, repair: bool) -> None:
    """The challenger pointer names a registered, intact model that is not the current one; history agrees."""
    add, path = report.problems.append, str(home.registry_dir / CHALLENGER_TXT)
    try:
        pointer = challenger_file(home=home)
    except RegistryError as exc:
        add(Problem(path, str(exc).split(";")[0], "run `churn challenger --clear` or `churn challenger VERSION`"))
        return
    report.challenger = pointer
    mine = [r for r in records if r.get("action") in CHALLENGER_ACTIONS]
    last = mine[-1]["to"] if mine else None
    by_file = {e["model_file"]: e for e in entries}
    if pointer is not None:
        if pointer not in by_file:
            add(Problem(path, f"names {pointer!r}, which is not registered",
                        "run `churn challenger --clear` or `churn challenger VERSION`"))
            return
        if _refusals(by_file[pointer], home, force=True):
            add(Problem(path, f"names {by_file[pointer]['version']}, whose model file is missing or altered "
                              "(the service drops it)", "run `churn challenger --clear` or restore the file"))
        settings = read_challenger(home=home)
        if settings is not None and not settings.settled:
            add(Problem(str(home.registry_dir / CHALLENGER_JSON), "does not hold the settings of the challenger "
                                                                   "(the service scores every request)",
                        f"run `churn challenger {by_file[pointer]['version']} --sample FRACTION` to set them"))
    if pointer is not None and pointer == current or last != pointer:
        what = ("names the current model" if pointer is not None and pointer == current
                else f"the history's last challenger record ({last}) lags the pointer ({pointer})")
        p = Problem(path, what, "`churn registry check --repair` records it (and clears a challenger that is "
                                "the current model)", repairable=True)
        add(p)
        if repair:
            p.repaired = _reconcile_challenger(home) is not None
            report.challenger = challenger_file(home=home)


def _check_leftovers(home: Home, report: CheckReport, known: set[str], *, registered: bool, repair: bool,
                     grace: float) -> None:
    """Files in models/ no entry names: an interrupted registration's temporary files, or strays."""
    if not home.models_dir.is_dir():
        return
    now = time.time()
    for path in sorted(home.models_dir.iterdir()):
        if path.name in known or not path.is_file():
            continue
        if path.name.startswith(INCOMING):
            old = now - path.stat().st_mtime >= grace
            p = Problem(str(path), "a temporary file of an interrupted registration",
                        "`churn registry check --repair` removes it" if old
                        else "a registration may be writing it; check again in a minute", repairable=old)
            report.problems.append(p)
            if repair and old:
                path.unlink(missing_ok=True)
                p.repaired = True
        elif registered:
            report.notes.append(f"{path} is not registered (left by an interrupted registration or copied in); "
                                "delete it if you do not need it")
