"""The ``churn`` commands: one function per command, from parsed arguments to an exit status.

A command takes the parsed arguments (each value already checked by the
parser against its parameter's declaration) and the project home, calls the
library (one call for most; ``promote`` and ``rollback`` also refresh the
reports index, the registry views also read the current pointer), prints the
result through :mod:`.render` or as JSON (``--json``), and returns its exit
status (:mod:`.exits`; the table is in :mod:`churn_lib.cli`). ``run``,
``sweep`` and ``score`` print progress lines as they go, ``watch`` a line per tick.

Stage parameters arrive as the stage table's dataclasses (:func:`stage_params`),
so a flag and a notebook parameter are checked by the same declaration; a
value refused only in combination with another (a hyperparameter of the
other family) is a :class:`UsageError`, exit 2 like any bad flag.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict
from typing import Any, Callable

from ..exceptions import ChurnError, InvalidParameter, QualityError, StageFailed
from ..home import Home
from . import render
from .exits import (EXIT_BELOW_FLOOR, EXIT_DRIFT, EXIT_ERROR, EXIT_GATE_REFUSED, EXIT_INSUFFICIENT_DATA, EXIT_OK,  # noqa: F401
                    EXIT_SWEEP_FAILURES, EXIT_USAGE)
from .exits import EXIT_ATTENTION

_table = render.table

# Each command imports the library modules it calls inside its function: a command (and `churn --help`)
# pays for the libraries it uses, not for every command's (tests/test_startup.py holds the lists).


class UsageError(Exception):
    """A flag value the stage refuses: printed by argparse's usage error, exit 2."""


def _emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        print(text)


def stage_params(args: argparse.Namespace, stage: str) -> tuple[Any, ...]:
    """The stage's dataclasses from its flags (the stage table's checks; a refusal is a usage error)."""
    from ..run import stages

    values = {name: getattr(args, name) for name in stages.TABLE[stage].user_params if hasattr(args, name)}
    values.pop("version", None)
    try:
        return stages.TABLE[stage].build(values)
    except InvalidParameter as exc:
        raise UsageError(str(exc)) from None


def cmd_init(args: argparse.Namespace, home: Home) -> int:
    from ..data import infer

    from ..home import ENV_VAR

    # a home is made where --home says, else $CHURN_HOME (as every other command reads it), else here
    result = infer.init_home(args.home or os.environ.get(ENV_VAR) or ".", data=args.data, target=args.target, positive=args.positive or None,
                             ids=args.id or (), keep=args.keep or (), name=args.name, force=args.force,
                             sep=args.sep, decimal=args.decimal)
    payload = {"home": result.home, "contract_path": result.contract_path, "contract": result.contract.to_dict(),
               "decisions": result.inferred.table().to_dict(orient="records") if result.inferred else None}
    _emit(args, payload, render.init(result))
    return EXIT_OK


def cmd_generate(args: argparse.Namespace, home: Home) -> int:
    from .. import data

    data_params, faults = stage_params(args, "generate")
    raw = data.make_raw(home=home, params=data_params, faults=faults)
    payload = {"path": str(raw.path), "rows": raw.rows, "sha256": raw.sha256, "source": raw.source}
    _emit(args, payload, raw.summary())
    return EXIT_OK


def cmd_prepare(args: argparse.Namespace, home: Home) -> int:
    from .. import quality

    (thresholds,) = stage_params(args, "prepare")
    try:
        report = quality.prepare(home=home, thresholds=thresholds).to_dict()
    except QualityError as exc:
        if not args.json:
            print(render.quality(exc.report.to_dict()), file=sys.stderr)
        raise
    _emit(args, report, render.quality(report) + f"\nwrote {home.processed_csv} and {home.train_stats_json}")
    return EXIT_OK


def cmd_train(args: argparse.Namespace, home: Home) -> int:
    from ..learn import train as training

    (params,) = stage_params(args, "train")
    result = training.train(home=home, version=args.version, params=params)
    _emit(args, {"entry": result.entry, "promoted": result.promoted}, render.trained(result.entry, result.promoted))
    return EXIT_OK if result.passed_gate else EXIT_GATE_REFUSED


def cmd_evaluate(args: argparse.Namespace, home: Home) -> int:
    from ..learn import evaluation

    ev = evaluation.evaluate(args.version, home=home)
    cols = ["version", "model", "current", "evaluated", "same_split", "passed_gate", "threshold", "f1",
            "precision", "recall", "roc_auc", "brier", "lift_top_decile"]
    lines = [f"{ev.version} against every registered model on its test split "
             f"(current: {ev.current_version or 'none'})",
             _table(ev.table.to_dict(orient="records"), cols)]
    if not ev.data_matches:
        lines.append(f"note: {home.processed_csv} changed since {ev.version} was trained")
    lines += [f"could not score {v}: {msg}" for v, msg in ev.errors.items()]
    _emit(args, ev.to_dict(), "\n".join(lines))
    return EXIT_OK


def cmd_registry_list(args: argparse.Namespace, home: Home) -> int:
    from .. import registry

    entries = registry.load_entries(home=home)
    try:
        current = registry.current_file(home=home)
    except ChurnError as exc:  # still list the versions: the repair is `churn promote VERSION`
        print(f"churn: warning: {exc}", file=sys.stderr)
        current = None
    rows = [render.entry_row(e, current) for e in entries]
    _emit(args, {"current_model": current, "entries": entries},
          _table(rows, ["current", "version", "trained_at_utc", "contract", "model", "f1", "roc_auc", "threshold", "gate",
                        "model_file"]))
    return EXIT_OK


def cmd_registry_show(args: argparse.Namespace, home: Home) -> int:
    from .. import registry
    from ..learn import metrics

    entry = registry.get(args.target, home=home)
    current = registry.current_file(home=home) == entry["model_file"]
    text = "\n".join([f"{entry['version']}{' (current)' if current else ''}: {entry['model_file']}",
                      f"trained {entry.get('trained_at_utc')} on {entry.get('data_file')} (seed {entry.get('seed')})",
                      metrics.metrics_frame(entry).to_string(float_format=lambda v: f"{v:.4f}"),
                      render.gate(entry)])
    _emit(args, entry | {"current": current}, text)
    return EXIT_OK


def cmd_registry_check(args: argparse.Namespace, home: Home) -> int:
    from .. import registry

    report = registry.check(home=home, repair=args.repair)
    lines = [f"{report.registry_dir}: {report.entries} entries, current {report.current or 'none'}"]
    for p in report.problems:
        state = "repaired" if p.repaired else "PROBLEM"
        lines.append(f"{state}: {p.file}: {p.problem}" + ("" if p.repaired else f" -> {p.repair}"))
    lines += [f"note: {n}" for n in report.notes]
    lines.append("ok" if report.ok else "problems found")
    _emit(args, report.to_dict(), "\n".join(lines))
    return EXIT_OK if report.ok else EXIT_ERROR


def cmd_export(args: argparse.Namespace, home: Home) -> int:
    from ..export import export

    result = export(args.target, args.folder, home=home, format=args.format, force=args.force)
    _emit(args, result.to_dict(), result.summary())
    return EXIT_OK


def _refresh_index(home: Home) -> None:
    from ..run import reports

    if home.reports_dir.is_dir():
        reports.write_index(home=home)


def cmd_promote(args: argparse.Namespace, home: Home) -> int:
    from .. import registry

    rec = registry.promote(args.target, home=home, force=args.force, reason=args.reason)
    _refresh_index(home)
    _emit(args, {"changed": rec is not None, "record": rec}, render.change(rec, args.target))
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace, home: Home) -> int:
    from .. import registry

    rec = registry.rollback(home=home, to=args.to, force=args.force)
    _refresh_index(home)
    _emit(args, {"changed": rec is not None, "record": rec}, render.change(rec, args.to or ""))
    return EXIT_OK


def cmd_challenger(args: argparse.Namespace, home: Home) -> int:
    from .. import registry

    if args.clear and (args.target or args.sample is not None):
        raise UsageError("--clear takes no VERSION and no --sample")
    if args.target is None and not args.clear:
        if args.sample is not None:
            raise UsageError("--sample needs a VERSION")
        found = registry.read_challenger(home=home)
        _emit(args, {"challenger": found.to_dict() if found else None}, render.challenger_state(found))
        return EXIT_OK
    if args.clear:
        rec = registry.clear_challenger(home=home, reason=args.reason)
    else:
        sample = 1.0 if args.sample is None else args.sample
        rec = registry.set_challenger(args.target, sample=sample, home=home, reason=args.reason)
    _refresh_index(home)
    _emit(args, {"changed": rec is not None, "record": rec}, render.challenger_change(rec, args.target))
    return EXIT_OK


def cmd_history(args: argparse.Namespace, home: Home) -> int:
    from .. import registry

    recs = registry.history(home=home)
    rows = [r | {"ts": r.get("ts", "")[:19], "forced": "yes" if r.get("forced") else ""} for r in recs]
    _emit(args, recs, _table(rows, ["ts", "action", "version", "from", "to", "forced", "reason"]))
    return EXIT_OK


def _run_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.params_file:
        params.update(_load_params_file(args.params_file))
    for item in args.param or []:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise ChurnError(f"-p expects name=value, got {item!r}")
        params[name.strip()] = _parse_value(raw)
    return params


def _parse_value(raw: str) -> Any:
    """A -p value as YAML would read it (0.5 -> float, true -> bool), but NA stays a string."""
    import yaml

    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    return value if isinstance(value, (int, float, bool, str)) or value is None else raw


def _load_params_file(path: str) -> dict[str, Any]:
    import yaml

    try:
        loaded = yaml.safe_load(open(path, encoding="utf-8"))
    except OSError as exc:
        raise ChurnError(f"cannot read parameters file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ChurnError(f"parameters file {path} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ChurnError(f"parameters file {path} must be a mapping of name: value")
    return loaded


def cmd_run(args: argparse.Namespace, home: Home) -> int:
    from ..run import runner

    params = _run_params(args)
    if args.direct:
        result = runner.run_direct(home=home, version=args.version, stages=args.stages, params=params)
        lines = [f"{stage:<9} {sec:7.2f} s" for stage, sec in result.seconds.items()]
        if result.entry:
            lines.append(render.trained(result.entry, result.promoted))
        lines.append(f"results: {home.data_dir}, {home.registry_dir} (`churn registry list`, `churn evaluate`)")
        _emit(args, asdict(result), "\n".join(lines))
        return EXIT_OK if result.passed_gate in (None, True) else EXIT_GATE_REFUSED

    def progress(stage: str, status: str, seconds: float | None) -> None:
        if args.json:
            return
        if status == "start":
            print(f"{stage:<13} ...", flush=True)
        else:
            print(f"{stage:<13} {status} in {seconds:.1f} s", flush=True)

    if args.log_output:
        logging.getLogger("papermill").setLevel(logging.INFO)
    try:
        record = runner.run(home=home, version=args.version, stages=args.stages, params=params,
                            log_output=args.log_output, on_event=progress)
    except StageFailed:
        if not args.json:
            print(f"run record: {home.reports_dir}", file=sys.stderr)
        raise
    entry = record.get("entry")
    lines = []
    if entry:
        gate = ("passed the gate and is now current" if entry["promoted"] else "passed the gate"
                if entry["passed_gate"] else "was REFUSED by the gate: " + "; ".join(entry["gate_reasons"]))
        lines.append(f"{entry['version']} ({entry['model_file']}) {gate}; test F1 {entry['metrics']['f1']:.4f} "
                     f"at threshold {entry['threshold']:.2f}")
    folder = home.reports_dir / record["version"]
    lines += [f"reports: {folder} ({len(record['stages'])} stage(s), {record['seconds']:.1f} s)",
              f"index:   {home.reports_dir / 'index.html'}"]
    _emit(args, record, "\n".join(lines))
    return EXIT_GATE_REFUSED if entry and not entry["passed_gate"] else EXIT_OK


# --- scale-out: sweeps and batch scoring (Dask) ---------------------------------------

def _sweep_progress(args: argparse.Namespace, first_stage: str) -> Callable[[Any], None]:
    from ..scale.sweep import describe_params

    def progress(p: Any) -> None:
        if args.json:
            return
        head = f"[{p.done}/{p.total} done, {p.running} running, {p.failed} failed]"
        if p.event == "finished":
            o = p.outcome
            what = (f"-> {o.version} ok, gate {'passed' if o.passed_gate else 'refused'}, "
                    f"test F1 {(o.metrics or {}).get('f1', float('nan')):.4f}" if o.status == "ok"
                    else f"FAILED{' (' + o.version + ')' if o.version else ''}")
            print(f"{head} set {p.index} ({describe_params(o.params)}) {what} in {o.seconds or 0:.1f} s", flush=True)
        elif p.status == "start" and p.stage == first_stage:
            print(f"{head} set {p.index} started", flush=True)
        elif p.status != "start":
            print(f"{head} set {p.index}: {p.stage} {p.status} in {p.seconds or 0:.1f} s", flush=True)

    return progress


def _quiet_dask(args: argparse.Namespace) -> None:
    """Dask logs every worker start at INFO; show that only with --verbose."""
    logging.getLogger("distributed").setLevel(logging.INFO if args.verbose else logging.WARNING)


def cmd_sweep(args: argparse.Namespace, home: Home) -> int:
    from ..scale import sweep

    _quiet_dask(args)

    spec = sweep.load_spec(args.spec)
    if not args.json:
        where = "this process" if args.serial else (args.scheduler or f"a local cluster ({args.workers or 'one worker per core'})")
        print(f"sweep {spec.name}: {len(spec.sets)} run(s) of {','.join(spec.stages)} on {where}", flush=True)
    result = sweep.run_sweep(spec, home=home, scheduler=args.scheduler, n_workers=args.workers, serial=args.serial,
                             promote=False if args.no_promote else None,
                             on_progress=_sweep_progress(args, spec.stages[0]))
    rows = [{"set": r.index, "version": r.version or "-", "run": r.status,
             "gate": {True: "passed", False: "refused"}.get(r.passed_gate, "-"),
             "params": sweep.describe_params(r.params), "test_f1": (r.metrics or {}).get("f1"),
             f"holdout_{result.metric}": (r.holdout or {}).get(result.metric),
             "winner": "*" if r.version and r.version == result.winner else ""}
            for r in sorted(result.runs, key=lambda r: r.index)]
    text = "\n".join([_table(rows, list(rows[0])), result.summary(),
                      f"record: {result.record_path}", f"index:  {home.reports_dir / 'index.html'}"])
    _emit(args, result.to_dict(), text)
    if result.failed:
        return EXIT_SWEEP_FAILURES
    return EXIT_OK if result.winner else EXIT_GATE_REFUSED


def cmd_score(args: argparse.Namespace, home: Home) -> int:
    import time

    from ..scale import batch

    _quiet_dask(args)
    last = [0.0]

    def progress(p: Any) -> None:
        now = time.monotonic()
        if args.json or now - last[0] < 2.0:
            return
        last[0] = now
        print(f"scored {p.rows_scored:,} rows, rejected {p.rows_rejected:,} ({p.fraction:.0%} of the input)",
              file=sys.stderr, flush=True)

    result = batch.score_file(args.input, args.output, home=home, model=args.version, rejects=args.rejects,
                              chunk_bytes=args.chunk_mb, scheduler=args.scheduler, n_workers=args.workers,
                              partition_bytes=args.partition_mb, explain=args.explain, on_progress=progress,
                              sep=args.sep, decimal=args.decimal)
    _emit(args, result.to_dict(), result.summary())
    return EXIT_OK


def cmd_serve(args: argparse.Namespace, home: Home) -> int:
    from importlib.metadata import entry_points

    # serve/ depends on churn_lib, never the reverse: its launcher is found through the entry point it declares.
    found = entry_points(group="churn_mlops.launchers", name="serve")
    if not found:
        raise ChurnError("the HTTP service is not installed (no churn_mlops.launchers entry point 'serve'): "
                         "reinstall the project (make install)")
    launch = next(iter(found)).load()
    launch(home=home, host=args.host, port=args.port, workers=args.workers, access_log=args.access_log,
           log_level="debug" if args.verbose else "info", token_file=args.token_file, insecure=args.insecure,
           metrics_auth=args.metrics_auth)
    return EXIT_OK


# --- drift and simulation ------------------------------------------------------

def cmd_drift(args: argparse.Namespace, home: Home) -> int:
    from .. import drift

    result = drift.check(home=home, last=args.last, since=args.since, model=args.version,
                         thresholds=drift.Thresholds(alpha=args.alpha, min_window_rows=args.min_window_rows))
    _emit(args, result.to_dict(), render.drift(result))
    return {drift.DRIFT: EXIT_DRIFT, drift.NO_DRIFT: EXIT_OK}.get(result.verdict, EXIT_INSUFFICIENT_DATA)


def cmd_feedback(args: argparse.Namespace, home: Home) -> int:
    from ..logs import outcomes

    result = outcomes.ingest_file(args.file, home=home)
    _emit(args, result.to_dict(), result.summary())
    return EXIT_OK


def cmd_performance(args: argparse.Namespace, home: Home) -> int:
    from ..drift import performance

    result = performance.check(home=home, last=args.last, since=args.since, model=args.version, floor=args.floor,
                               min_rows=args.min_rows)
    _emit(args, result.to_dict(), render.performance(result))
    return {performance.OK: EXIT_OK, performance.BELOW_FLOOR: EXIT_BELOW_FLOOR}.get(result.verdict,
                                                                                   EXIT_INSUFFICIENT_DATA)


def cmd_compare(args: argparse.Namespace, home: Home) -> int:
    from ..loop import compare

    # with --promote the comparison is written once the promotion was tried, with what it did
    result = compare.compare(home=home, since=args.since, last=args.last, record=not args.promote)
    done = None
    if args.promote:
        done = compare.promote(result, home=home)
        compare.write(result, home=home, promotion=done)
    _refresh_index(home)  # the index shows the latest comparison
    view = ""
    if not args.json:  # --json prints the dict: no table is drawn (nor pandas imported to draw it)
        view = render.comparison(result)
        if done is not None:
            view += "\n" + (f"promoted {done['version']}: it is now current" if done["promoted"]
                            else f"not promoted: {done['why']}")
    _emit(args, {**result.to_dict(), **({"promotion": done} if done is not None else {})}, view)
    if result.verdict == compare.INSUFFICIENT_EVIDENCE:
        return EXIT_INSUFFICIENT_DATA
    refused = done is not None and not done["promoted"] and result.verdict == compare.CHALLENGER_BETTER
    return EXIT_GATE_REFUSED if refused else EXIT_OK


def cmd_watch(args: argparse.Namespace, home: Home) -> int:
    """One tick (``--once``) or a tick every ``--interval`` until SIGINT or SIGTERM, which end it between ticks."""
    import signal
    import threading

    from ..loop import watch

    codes = {watch.OK: EXIT_OK, watch.COOLDOWN: EXIT_OK, watch.LOCKED: EXIT_OK, watch.INVESTIGATE: EXIT_ATTENTION,
             watch.RETRAIN: EXIT_ATTENTION, watch.INSUFFICIENT_DATA: EXIT_INSUFFICIENT_DATA}

    def show(t: Any) -> None:
        _refresh_index(home)  # the index shows the latest decision
        _emit(args, t.to_dict(), t.summary())
        sys.stdout.flush()

    if args.once:
        result = watch.tick(home=home)
        show(result)
        return codes[result.decision]
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = watch.watch(home=home, interval=args.interval, stop=stop, on_tick=show)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return EXIT_OK if result is None else codes[result.decision]


def cmd_simulate(args: argparse.Namespace, home: Home) -> int:
    from .. import simulate

    shift = simulate.Shift(mean=dict(args.shift or []), scale=dict(args.scale or []), mix=dict(args.mix or []))
    result = simulate.simulate(args.n_rows, home=home, seed=args.seed, shift=shift, model=args.version,
                               url=args.url, source=args.source)
    _emit(args, result.to_dict(), result.summary())
    return EXIT_OK


