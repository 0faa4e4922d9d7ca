"""Soak: many connections against a multi-worker `churn serve` while the current model (or the challenger) keeps
changing.

    .venv/bin/python bench/soak.py [--connections 50] [--duration 60] [--workers 2] [--switch-every 3]
                                   [--challenger] [--home PATH] [--json]

Loopback only and bounded: the service listens on 127.0.0.1 (a free port) in
a temporary project home with v1 and v2 trained (or a copy of ``--home``,
which needs at least two registered versions that passed the gate); the
clients stop after ``--duration`` seconds and the server is always stopped.
Every ``--switch-every`` seconds the current model changes, alternately a
rollback and a promotion (through the library, under the registry lock).

Prints requests, failures, log lines, torn lines, lines per successful
prediction, the versions logged and the versions ever current; exits 1 when
a promise is broken:

* zero failed requests (every answer 200 with ``logged: true``);
* zero torn log lines (every line whole JSON, ending with a newline);
* exactly one log line per successful prediction (by ``request_id``);
* every logged version one that was current at some point.

With ``--challenger`` the current model stays put and the challenger pointer
changes instead (the other version at sample 0.5, at 1.0, cleared, in turn),
while a fifth of the connections post outcomes (``POST /feedback``) for the
predictions already answered. The promises then also include:

* every answer from the champion (the current version, no ``role``);
* exactly one challenger line per sampled champion line, paired by
  ``request_id``: none without its champion line, none twice, and, away from
  the moments the pointer changed (1 s either side), one exactly for each
  champion line the challenger's sample picks (:func:`churn_lib.registry.sampled`);
* zero challenger failures (``churn_role_failures_total{role="challenger"}``);
* every accepted outcome on disk once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROW = {"tenure_months": 30, "num_complaints": 1, "avg_session_minutes": 35.0, "plan_type": "premium",
       "region": "NA"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_home(root: Path, source: Path | None) -> None:
    """A home with two passing versions (v2 current), or a copy of ``source``."""
    from churn_lib import registry
    from churn_lib.run import runner
    from churn_lib.learn import train as training

    if source is not None:
        shutil.copytree(source, root, ignore=shutil.ignore_patterns("logs", "reports"))
    else:
        root.mkdir(parents=True)
        runner.run_direct(home=root, stages=("generate", "prepare", "train"))
        training.train(home=root, params=training.TrainParams(seed=7))
    passing = [e for e in registry.load_entries(home=root) if e.get("passed_gate")]
    if len(passing) < 2:
        raise SystemExit("soak: the home needs at least two registered versions that passed the gate")
    (root / "logs").mkdir(exist_ok=True)
    for old in (root / "logs").glob("predictions*.log*"):
        old.unlink()


def start_server(root: Path, workers: int, timeout: float = 60.0) -> tuple[subprocess.Popen, str]:
    import httpx2 as httpx

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")}
    proc = subprocess.Popen([sys.executable, "-m", "churn_lib.cli", "serve", "--home", str(root), "--port",
                             str(port), "--workers", str(workers)], env=env, start_new_session=True,
                            stdout=open(root / "server.log", "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    pids: set[int] = set()
    while len(pids) < workers:
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc)
            raise SystemExit("soak: the server did not start: " + (root / "server.log").read_text()[-2000:])
        try:
            r = httpx.get(url + "/health", timeout=2)
            if r.status_code == 200:
                pids.add(r.json()["pid"])
        except httpx.TransportError:
            time.sleep(0.1)
    return proc, url


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def switcher(root: Path, every: float, stop: threading.Event, out: dict) -> None:
    """Alternately roll back and promote the other version until ``stop``."""
    from churn_lib import registry

    passing = [e["version"] for e in registry.load_entries(home=root) if e.get("passed_gate")]
    n = 0
    while not stop.wait(every):
        try:
            if n % 2 == 0:
                registry.rollback(home=root)
                out["rollbacks"] += 1
            else:
                current = registry.current_entry(home=root)["version"]
                registry.promote(next(v for v in reversed(passing) if v != current), home=root)
                out["promotions"] += 1
        except Exception as exc:  # reported, and counts as a broken promise
            out["switch_errors"].append(f"{type(exc).__name__}: {exc}")
        n += 1


#: Seconds either side of a change of the challenger pointer in which a request may see either state.
CHALLENGER_MARGIN = 1.0


def challenger_switcher(root: Path, every: float, stop: threading.Event, out: dict) -> None:
    """Set the non-current version as challenger at 0.5, at 1.0, then clear it, in turn, until ``stop``;
    record each change as ``(started, ended, sample or None)`` (Unix seconds)."""
    from churn_lib import registry

    current = registry.current_entry(home=root)["version"]
    other = next(e["version"] for e in registry.load_entries(home=root) if e["version"] != current
                 and e.get("passed_gate"))
    out["challenger"] = other
    n = 0
    while not stop.wait(every):
        sample = (0.5, 1.0, None)[n % 3]
        started = time.time()
        try:
            if sample is None:
                registry.clear_challenger(home=root)
            else:
                registry.set_challenger(other, sample=sample, home=root)
        except Exception as exc:  # reported, and counts as a broken promise
            out["switch_errors"].append(f"{type(exc).__name__}: {exc}")
        out["changes"].append((started, time.time(), sample))
        n += 1


async def clients(url: str, connections: int, duration: float, *, feedback: bool = False) -> dict:
    import httpx2 as httpx

    ok_ids: list[str] = []
    failures: Counter = Counter()
    versions: Counter = Counter()
    roles: Counter = Counter()
    outcomes: dict[str, int] = {}
    taken = [0]  # how many answered predictions the senders have taken (each outcome is sent once)
    deadline = time.monotonic() + duration

    async def outcome_sender(k: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=1)) as c:
            while time.monotonic() < deadline:
                start = taken[0]
                batch = ok_ids[start:start + 20]
                if not batch:
                    await asyncio.sleep(0.05)
                    continue
                taken[0] = start + len(batch)
                body = [{"request_id": rid, "outcome": (start + i) % 2} for i, rid in enumerate(batch)]
                try:
                    r = await c.post("/feedback", json=body)
                except httpx.HTTPError as exc:
                    failures[f"feedback {type(exc).__name__}"] += 1
                    continue
                if r.status_code != 200 or r.json().get("accepted") != len(body):
                    failures[f"feedback status {r.status_code}"] += 1
                else:
                    outcomes.update((b["request_id"], b["outcome"]) for b in body)

    async def one(k: int) -> None:
        if feedback and k % 5 == 4:
            await outcome_sender(k)
            return
        async with httpx.AsyncClient(base_url=url, timeout=30,
                                     limits=httpx.Limits(max_connections=1)) as c:
            i = 0
            while time.monotonic() < deadline:
                rid = f"soak-{k}-{i}"
                i += 1
                try:
                    r = await c.post("/predict", json=ROW | {"request_id": rid})
                except httpx.HTTPError as exc:
                    failures[type(exc).__name__] += 1
                    continue
                body = r.json() if r.status_code == 200 else {}
                if r.status_code != 200:
                    failures[f"status {r.status_code}"] += 1
                elif not body.get("logged"):
                    failures["logged false"] += 1
                else:
                    ok_ids.append(rid)
                    versions[body["version"]] += 1
                    roles[body.get("role", "champion")] += 1

    await asyncio.gather(*(one(k) for k in range(connections)))
    return {"ok_ids": ok_ids, "failures": failures, "versions_answered": versions, "roles_answered": roles,
            "outcomes": outcomes}


def read_logs(root: Path) -> dict:
    lines, torn = [], 0
    for path in sorted((root / "logs").glob("predictions*.log*")):
        raw = path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            torn += 1
        for line in raw.splitlines():
            try:
                rec = json.loads(line)
                assert isinstance(rec, dict) and "request_id" in rec
            except (ValueError, AssertionError):
                torn += 1
                continue
            lines.append(rec)
    return {"records": lines, "torn": torn}


def soak(*, connections: int = 50, duration: float = 60.0, workers: int = 2, switch_every: float = 3.0,
         home: Path | None = None, challenger: bool = False) -> dict:
    """Run the soak; return its figures and the list of broken promises (empty when all held).

    ``challenger``: the challenger pointer changes instead of the current model, and outcomes are posted too.
    """
    from churn_lib import registry

    tmp = Path(tempfile.mkdtemp(prefix="churn-soak-"))
    root = tmp / "home"
    try:
        prepare_home(root, home)
        first = registry.current_entry(home=root)["version"]
        proc, url = start_server(root, workers)
        stop = threading.Event()
        switches = {"rollbacks": 0, "promotions": 0, "switch_errors": [], "changes": []}
        thread = threading.Thread(target=challenger_switcher if challenger else switcher,
                                  args=(root, switch_every, stop, switches), daemon=True)
        try:
            started = time.monotonic()
            thread.start()
            result = asyncio.run(clients(url, connections, duration, feedback=challenger))
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            thread.join(timeout=30)
            shadow_failures = _challenger_failures(url) if challenger else 0
            stop_server(proc)
        logs = read_logs(root)
        ever_current = {first} | {h["version"] for h in registry.pointer_records(registry.history(home=root))}
        shadow_lines = [r for r in logs["records"] if r.get("role") == "challenger"]
        logs["records"] = [r for r in logs["records"] if "role" not in r]
        logged_ids = Counter(r["request_id"] for r in logs["records"])
        ok_ids = Counter(result["ok_ids"])
        logged_versions = Counter(r.get("version") for r in logs["records"])
        figures = {
            "connections": connections, "duration_s": round(elapsed, 1), "workers": workers,
            "requests": len(ok_ids) + sum(result["failures"].values()),
            "successes": len(ok_ids),
            "requests_per_s": round(len(ok_ids) / elapsed, 1),
            "failures": sum(result["failures"].values()), "failure_kinds": dict(result["failures"]),
            "log_lines": len(logs["records"]) + logs["torn"], "torn_lines": logs["torn"],
            "lines_per_success": round(len(logs["records"]) / max(len(ok_ids), 1), 6),
            "successes_without_exactly_one_line": sum(1 for rid in ok_ids if logged_ids[rid] != 1),
            "lines_without_a_success": sum(1 for rid in logged_ids if rid not in ok_ids),
            "rollbacks": switches["rollbacks"], "promotions": switches["promotions"],
            "switch_errors": switches["switch_errors"],
            "versions_answered": dict(result["versions_answered"]),
            "versions_logged": dict(logged_versions), "versions_ever_current": sorted(ever_current),
        }
        broken = []
        if figures["failures"]:
            broken.append(f"{figures['failures']} failed requests {figures['failure_kinds']}")
        if figures["torn_lines"]:
            broken.append(f"{figures['torn_lines']} torn log lines")
        if figures["successes_without_exactly_one_line"] or figures["lines_without_a_success"]:
            broken.append("not exactly one log line per successful prediction")
        if not set(logged_versions) <= ever_current:
            broken.append(f"logged versions {sorted(set(logged_versions) - ever_current)} were never current")
        if switches["switch_errors"]:
            broken.append(f"{len(switches['switch_errors'])} rollbacks/promotions failed")
        if not figures["successes"]:
            broken.append("no request succeeded")
        if challenger:
            broken += _challenger_promises(root, figures, result, logs["records"], shadow_lines, switches, first,
                                           shadow_failures)
        figures["broken_promises"] = broken
        return figures
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _challenger_failures(url: str) -> float:
    """``churn_role_failures_total{role="challenger"}`` of every worker (the server still running)."""
    import httpx2 as httpx

    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('churn_role_failures_total{role="challenger"}'))


def _expected_shadow(ts: float, rid: str, changes: list[tuple[float, float, float | None]]) -> bool | None:
    """Whether the challenger had to score the request logged at ``ts`` (None: too close to a change to say)."""
    from churn_lib import registry

    sample = None
    for started, ended, value in changes:
        if started - CHALLENGER_MARGIN <= ts <= ended + CHALLENGER_MARGIN:
            return None
        if ended < ts:
            sample = value
    return sample is not None and registry.sampled(rid, sample)


def _challenger_promises(root: Path, figures: dict, result: dict, champion: list[dict], shadow: list[dict],
                         switches: dict, first: str, shadow_failures: float) -> list[str]:
    """The challenger's and the outcomes' promises; adds their figures to ``figures``."""
    from churn_lib import Home, registry

    broken = []
    by_rid = {r["request_id"]: r for r in champion}
    shadow_ids = Counter(r["request_id"] for r in shadow)
    other_file = registry.get(switches["challenger"], home=root)["model_file"]
    checked = mismatched = 0
    for rid, line in by_rid.items():
        expected = _expected_shadow(line["ts"], rid, switches["changes"])
        if expected is not None:
            checked += 1
            mismatched += (shadow_ids[rid] == 1) != expected
    stored = Counter()
    feedback_log = Home(root).feedback_log
    if feedback_log.exists():
        stored = Counter(json.loads(line)["request_id"] for line in feedback_log.read_bytes().splitlines())
    figures.update({
        "challenger_changes": len(switches["changes"]), "challenger_lines": len(shadow),
        "challenger_lines_checked_against_the_sample": checked, "challenger_lines_mismatched": mismatched,
        "challenger_failures": shadow_failures, "roles_answered": dict(result["roles_answered"]),
        "outcomes_accepted": len(result["outcomes"]),
        "outcomes_not_on_disk_once": sum(1 for rid in result["outcomes"] if stored[rid] != 1)})
    if set(result["roles_answered"]) != {"champion"} or set(result["versions_answered"]) != {first}:
        broken.append(f"answers not all from the champion {first}: {dict(result['versions_answered'])}")
    if any(rid not in by_rid for rid in shadow_ids) or any(n != 1 for n in shadow_ids.values()):
        broken.append("a challenger line without its champion line, or twice")
    if any(r["model_version"] != other_file for r in shadow):
        broken.append("a challenger line of another model than the challenger")
    if mismatched or not checked:
        broken.append(f"{mismatched} of {checked} champion lines without exactly the challenger lines their "
                      "sample asks for")
    if shadow_failures:
        broken.append(f"{shadow_failures:g} challenger failures")
    if figures["outcomes_not_on_disk_once"] or not result["outcomes"]:
        broken.append(f"{figures['outcomes_not_on_disk_once']} accepted outcomes not on disk exactly once "
                      f"(of {len(result['outcomes'])})")
    return broken


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--switch-every", type=float, default=3.0, help="seconds between model changes (default 3)")
    p.add_argument("--challenger", action="store_true",
                   help="change the challenger pointer (not the current model) and post outcomes too")
    p.add_argument("--home", type=Path, help="copy this home instead of training v1 and v2")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not (1 <= args.connections <= 500 and 0 < args.duration <= 3600):
        p.error("--connections 1-500 and --duration up to 3600 s")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    figures = soak(connections=args.connections, duration=args.duration, workers=args.workers,
                   switch_every=args.switch_every, home=args.home, challenger=args.challenger)
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        width = max(map(len, figures))
        for key, value in figures.items():
            print(f"{key:<{width}}  {value}")
        print("all promises held" if not figures["broken_promises"] else "BROKEN: " + "; ".join(
            figures["broken_promises"]))
    return 1 if figures["broken_promises"] else 0


if __name__ == "__main__":
    sys.exit(main())
