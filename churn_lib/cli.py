"""The ``churn`` command: thin over churn_lib; parses, calls, prints.

Exit status:

* 0 - success;
* 1 - error (one line on stderr: ``churn: error: <message>``);
* 2 - bad usage (unknown flag, bad value);
* 3 - a model was trained and registered but refused by the gate;
* 4 - ``churn drift``: drift detected (at least one statistic alerts);
* 5 - ``churn drift``: insufficient data (fewer rows in the window than
  ``--min-rows``, or no log yet): no verdict, not an alarm;
* 6 - ``churn sweep``: at least one run of the sweep failed (the others
  completed; the summary lists each failure with its report). A sweep in
  which no version passed the gate exits 3.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from typing import Any, Callable, Sequence

import pandas as pd

from . import __version__, data, evaluation, quality, registry, reports, runner, training
from . import drift, simulate
from .exceptions import ChurnError, QualityError, StageFailed
from .home import Home

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_GATE_REFUSED = 0, 1, 2, 3
EXIT_DRIFT, EXIT_INSUFFICIENT_DATA = 4, 5
EXIT_SWEEP_FAILURES = 6


# --- output ------------------------------------------------------------------

def _emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        print(text)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    frame = pd.DataFrame(rows).reindex(columns=columns)
    return frame.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4f}")


def _entry_row(e: dict[str, Any], current: str | None) -> dict[str, Any]:
    m = e.get("metrics", {})
    return {"current": "*" if e["model_file"] == current else "", "version": e["version"],
            "trained_at_utc": e.get("trained_at_utc", "")[:19], "f1": m.get("f1"),
            "roc_auc": m.get("roc_auc"), "threshold": e.get("threshold", 0.5),
            "gate": "passed" if e.get("passed_gate") else "refused", "model_file": e["model_file"]}


def _gate_text(entry: dict[str, Any]) -> str:
    rows = [{"criterion": c["name"], "verdict": "pass" if c["passed"] else "FAIL", "reason": c["reason"]}
            for c in entry.get("gate", {}).get("criteria", [])]
    return _table(rows, ["criterion", "verdict", "reason"])


# --- commands ----------------------------------------------------------------

def _faults(args: argparse.Namespace) -> data.Faults:
    return data.Faults(missing=args.missing, negative_session=args.negative_session,
                       category_variants=args.category_variants, unknown_categories=args.unknown_categories,
                       duplicates=args.duplicates, out_of_range=args.out_of_range, bad_target=args.bad_target)


def _thresholds(args: argparse.Namespace) -> quality.Thresholds:
    return quality.Thresholds(max_missing_rate=args.max_missing_rate, max_invalid_rate=args.max_invalid_rate,
                              max_duplicate_rate=args.max_duplicate_rate, drop_duplicates=args.drop_duplicates,
                              min_rows=args.min_rows)


def _train_params(args: argparse.Namespace) -> training.TrainParams:
    return training.TrainParams(seed=args.seed, C=args.C, test_size=args.test_size, cv_folds=args.cv_folds,
                                gate_f1=args.gate_f1, baseline_margin=args.baseline_margin,
                                regression_tolerance=args.regression_tolerance)


def cmd_generate(args: argparse.Namespace, home: Home) -> int:
    df = data.generate(args.n_rows, seed=args.seed, faults=_faults(args))
    path = data.write_raw(df, home=home)
    churn = pd.to_numeric(df["churn"], errors="coerce")
    payload = {"path": str(path), "rows": len(df), "churn_rate": float(churn.mean())}
    _emit(args, payload, f"wrote {len(df)} rows to {path} (churn rate {payload['churn_rate']:.1%})")
    return EXIT_OK


def _quality_text(report: dict[str, Any]) -> str:
    rows = [{"check": c["name"], "column": c["column"] or "", "verdict": c["verdict"], "detail": c["detail"]}
            for c in report["checks"] if c["verdict"] != "PASS"]
    head = f"quality checks {'passed' if report['passed'] else 'FAILED'}: {report['rows_out']} of {report['rows_in']} rows kept"
    changes = ", ".join(f"{k}: {v}" for k, v in report["changes"].items() if v)
    return "\n".join(filter(None, [head, f"cleaning changed {changes}" if changes else "",
                                   _table(rows, ["check", "column", "verdict", "detail"]) if rows else
                                   "every check passed"]))


def cmd_prepare(args: argparse.Namespace, home: Home) -> int:
    try:
        report = quality.prepare(home=home, thresholds=_thresholds(args)).to_dict()
    except QualityError as exc:
        if not args.json:
            print(_quality_text(exc.report.to_dict()), file=sys.stderr)
        raise
    _emit(args, report, _quality_text(report) + f"\nwrote {home.processed_csv} and {home.train_stats_json}")
    return EXIT_OK


def _train_text(entry: dict[str, Any], promoted: bool) -> str:
    m, m5 = entry["metrics"], entry.get("metrics_at_0_5", {})
    verdict = ("passed the gate and is now current" if promoted else
               "passed the gate" if entry["passed_gate"] else "was REFUSED by the gate (registered, not current)")
    return "\n".join([
        f"{entry['version']} ({entry['model_file']}) {verdict}",
        f"threshold {entry['threshold']:.2f} ({entry['threshold_source']})",
        f"test F1 {m['f1']:.4f} at the threshold, {m5.get('f1', float('nan')):.4f} at 0.5; "
        f"ROC AUC {m['roc_auc']:.4f}; Brier {m['brier']:.4f}",
        _gate_text(entry),
    ])


def cmd_train(args: argparse.Namespace, home: Home) -> int:
    result = training.train(home=home, version=args.version, params=_train_params(args))
    _emit(args, {"entry": result.entry, "promoted": result.promoted}, _train_text(result.entry, result.promoted))
    return EXIT_OK if result.passed_gate else EXIT_GATE_REFUSED


def cmd_evaluate(args: argparse.Namespace, home: Home) -> int:
    ev = evaluation.evaluate(args.version, home=home)
    cols = ["version", "current", "evaluated", "same_split", "passed_gate", "threshold", "f1", "precision",
            "recall", "roc_auc", "brier"]
    lines = [f"{ev.version} against every registered model on its test split "
             f"(current: {ev.current_version or 'none'})",
             _table(ev.table.to_dict(orient="records"), cols)]
    if not ev.data_matches:
        lines.append(f"note: {home.processed_csv} changed since {ev.version} was trained")
    lines += [f"could not score {v}: {msg}" for v, msg in ev.errors.items()]
    _emit(args, ev.to_dict(), "\n".join(lines))
    return EXIT_OK


def cmd_registry_list(args: argparse.Namespace, home: Home) -> int:
    entries = registry.load_entries(home=home)
    try:
        current = registry.current_file(home=home)
    except ChurnError as exc:  # still list the versions: the repair is `churn promote VERSION`
        print(f"churn: warning: {exc}", file=sys.stderr)
        current = None
    rows = [_entry_row(e, current) for e in entries]
    _emit(args, {"current_model": current, "entries": entries},
          _table(rows, ["current", "version", "trained_at_utc", "f1", "roc_auc", "threshold", "gate", "model_file"]))
    return EXIT_OK


def cmd_registry_show(args: argparse.Namespace, home: Home) -> int:
    entry = registry.get(args.target, home=home)
    current = registry.current_file(home=home) == entry["model_file"]
    text = "\n".join([f"{entry['version']}{' (current)' if current else ''}: {entry['model_file']}",
                      f"trained {entry.get('trained_at_utc')} on {entry.get('data_file')} (seed {entry.get('seed')})",
                      training.metrics_frame(entry).to_string(float_format=lambda v: f"{v:.4f}"),
                      _gate_text(entry)])
    _emit(args, entry | {"current": current}, text)
    return EXIT_OK


def cmd_registry_check(args: argparse.Namespace, home: Home) -> int:
    report = registry.check(home=home, repair=args.repair)
    lines = [f"{report.registry_dir}: {report.entries} entries, current {report.current or 'none'}"]
    for p in report.problems:
        state = "repaired" if p.repaired else "PROBLEM"
        lines.append(f"{state}: {p.file}: {p.problem}" + ("" if p.repaired else f" -> {p.repair}"))
    lines += [f"note: {n}" for n in report.notes]
    lines.append("ok" if report.ok else "problems found")
    _emit(args, report.to_dict(), "\n".join(lines))
    return EXIT_OK if report.ok else EXIT_ERROR


def _change_text(rec: dict[str, Any] | None, what: str) -> str:
    if rec is None:
        return f"{what} is already the current model; nothing changed"
    return f"current model: {rec['from'] or 'none'} -> {rec['to']} ({rec['reason']})"


def _refresh_index(home: Home) -> None:
    if home.reports_dir.is_dir():
        reports.write_index(home=home)


def cmd_promote(args: argparse.Namespace, home: Home) -> int:
    rec = registry.promote(args.target, home=home, force=args.force, reason=args.reason)
    _refresh_index(home)
    _emit(args, {"changed": rec is not None, "record": rec}, _change_text(rec, args.target))
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace, home: Home) -> int:
    rec = registry.rollback(home=home, to=args.to, force=args.force)
    _refresh_index(home)
    _emit(args, {"changed": rec is not None, "record": rec}, _change_text(rec, args.to or ""))
    return EXIT_OK


def cmd_history(args: argparse.Namespace, home: Home) -> int:
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
    params = _run_params(args)
    if args.direct:
        result = runner.run_direct(home=home, version=args.version, stages=args.stages, params=params)
        lines = [f"{stage:<9} {sec:7.2f} s" for stage, sec in result.seconds.items()]
        if result.entry:
            lines.append(_train_text(result.entry, result.promoted))
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
    from .sweep import describe_params

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
    from . import sweep

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


def _megabytes(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of MiB, got {text!r}") from None
    if not 0.001 <= value <= 4096:
        raise argparse.ArgumentTypeError(f"must be between 0.001 and 4096 MiB, got {text}")
    return int(value * (1 << 20))


def cmd_score(args: argparse.Namespace, home: Home) -> int:
    import time

    from . import batch

    _quiet_dask(args)
    last = [0.0]

    def progress(p: Any) -> None:
        now = time.monotonic()
        if args.json or now - last[0] < 2.0:
            return
        last[0] = now
        print(f"scored {p.rows_scored:,} rows, rejected {p.rows_rejected:,} ({p.fraction:.0%} of the input)",
              file=sys.stderr, flush=True)

    result = batch.score_file(args.input, args.output, home=home, model=args.model, rejects=args.rejects,
                              chunk_bytes=args.chunk_mb, scheduler=args.scheduler, n_workers=args.workers,
                              partition_bytes=args.partition_mb, on_progress=progress)
    _emit(args, result.to_dict(), result.summary())
    return EXIT_OK


def _add_scale_out_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    from . import batch

    p = add("sweep", cmd_sweep, "run one notebook run per parameter set of a sweep spec (YAML), in parallel on "
                                "Dask; promote the best version that passed the gate")
    p.add_argument("spec", metavar="SPEC", help="sweep spec: grid and/or sets of notebook parameters (YAML)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of a running Dask scheduler (tcp://HOST:8786); default: a local cluster")
    p.add_argument("--workers", type=_positive_int, help="workers of the local cluster (default: one per core)")
    p.add_argument("--serial", action="store_true", help="run the sets one after the other in this process (no Dask)")
    p.add_argument("--no-promote", action="store_true", help="report the winner without promoting it")
    p = add("score", cmd_score, "score a CSV file of any size with a registered model, in chunks; bad rows go to "
                                "a rejects file with the reason")
    p.add_argument("input", metavar="INPUT", help="CSV with a header naming the five features (other columns kept)")
    p.add_argument("output", metavar="OUTPUT", help="CSV: the valid input rows, in order, + probability, "
                                                    "prediction, version")
    p.add_argument("--model", metavar="VERSION", help="version label or model file (default: the current model)")
    p.add_argument("--rejects", metavar="PATH", help="rejected rows with line and reason (default: "
                                                     "OUTPUT with .rejects before its extension)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="score on Dask: 'local' for a local cluster, or a scheduler address (its workers must "
                        "see INPUT and OUTPUT's folder); default: in this process")
    p.add_argument("--workers", type=_positive_int, help="workers of a local cluster (default: one per core)")
    p.add_argument("--chunk-mb", type=_megabytes, default=batch.DEFAULT_CHUNK_BYTES, metavar="MIB",
                   help=f"input read per block, bounds memory (default {batch.DEFAULT_CHUNK_BYTES >> 20})")
    p.add_argument("--partition-mb", type=_megabytes, default=batch.DEFAULT_PARTITION_BYTES, metavar="MIB",
                   help=f"input per Dask task (default {batch.DEFAULT_PARTITION_BYTES >> 20})")


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def cmd_serve(args: argparse.Namespace, home: Home) -> int:
    from . import serving  # uvicorn is imported only by this command

    serving.run(home=home, host=args.host, port=args.port, workers=args.workers, access_log=args.access_log,
                log_level="debug" if args.verbose else "info")
    return EXIT_OK


# --- drift and simulation ------------------------------------------------------

def _since(text: str) -> float:
    try:
        return drift.parse_since(text)
    except ChurnError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _open_rate(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {text}")
    return value


def _drift_text(result: drift.DriftResult) -> str:
    lines = [result.summary()]
    for m in result.models:
        if not m.statistics:
            continue
        rows = [{"feature": s.feature, "statistic": s.name, "value": f"{s.value:.4g}",
                 "p_value": "-" if s.p_value is None else f"{s.p_value:.2g}", "alert": "ALERT" if s.alert else ""}
                for s in m.statistics]
        lines += ["", f"{m.version}: {m.n_rows} rows; each of {m.n_tests} tests at p < {m.alpha_per_test:.2g} "
                      f"(Bonferroni for a family-wise false-alarm rate of {result.thresholds['alpha']:g})",
                  _table(rows, ["feature", "statistic", "value", "p_value", "alert"])]
    return "\n".join(lines)


def cmd_drift(args: argparse.Namespace, home: Home) -> int:
    result = drift.check(home=home, last=args.last, since=args.since, model=args.model,
                         thresholds=drift.Thresholds(alpha=args.alpha, min_rows=args.min_rows))
    _emit(args, result.to_dict(), _drift_text(result))
    return {drift.DRIFT: EXIT_DRIFT, drift.NO_DRIFT: EXIT_OK}.get(result.verdict, EXIT_INSUFFICIENT_DATA)


def _assignment(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FEATURE=NUMBER, got {text!r}") from None


def _mix_item(text: str) -> tuple[str, dict[str, float]]:
    name, _, spec = text.partition("=")
    try:
        shares = {cat.strip(): float(share) for cat, share in (part.split(":") for part in spec.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FEATURE=CAT:SHARE,CAT:SHARE..., got {text!r}") from None
    return name.strip(), shares


def cmd_simulate(args: argparse.Namespace, home: Home) -> int:
    shift = simulate.Shift(mean=dict(args.shift or []), scale=dict(args.scale or []), mix=dict(args.mix or []))
    result = simulate.simulate(args.n_rows, home=home, seed=args.seed, shift=shift, model=args.model,
                               url=args.url, source=args.source)
    _emit(args, result.to_dict(), result.summary())
    return EXIT_OK


# --- parser ------------------------------------------------------------------

def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _add_generate_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("generation")
    g.add_argument("--n-rows", type=int, default=1200, help="rows to generate (default 1200)")
    g.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    for flag, what in (("missing", "empty values in every feature"), ("negative-session", "negative session times"),
                       ("category-variants", "categories in other case / with spaces"),
                       ("unknown-categories", "categories outside the schema"),
                       ("duplicates", "rows replaced by copies of others"),
                       ("out-of-range", "numbers far outside the valid ranges"),
                       ("bad-target", "churn values other than 0/1")):
        g.add_argument(f"--{flag}", type=_rate, default=0.0, metavar="RATE", help=f"share of rows with {what}")


def _add_prepare_flags(p: argparse.ArgumentParser) -> None:
    t = quality.Thresholds()
    g = p.add_argument_group("quality thresholds")
    g.add_argument("--max-missing-rate", type=_rate, default=t.max_missing_rate, metavar="RATE",
                   help=f"block when a column has more empty values (default {t.max_missing_rate})")
    g.add_argument("--max-invalid-rate", type=_rate, default=t.max_invalid_rate, metavar="RATE",
                   help=f"block when a rule drops more rows of a column (default {t.max_invalid_rate})")
    g.add_argument("--max-duplicate-rate", type=_rate, default=t.max_duplicate_rate, metavar="RATE",
                   help=f"block above this share of duplicate rows (default {t.max_duplicate_rate}: never)")
    g.add_argument("--drop-duplicates", action="store_true", help="drop exact duplicate rows (default: keep)")
    g.add_argument("--min-rows", type=int, default=t.min_rows, help=f"rows needed after cleaning (default {t.min_rows})")


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    d = training.TrainParams()
    g = p.add_argument_group("training and gate")
    g.add_argument("--version", help="unique version label (default: the next vN)")
    g.add_argument("--seed", type=int, default=d.seed, help=f"split / model seed (default {d.seed})")
    g.add_argument("--C", type=float, default=d.C, help=f"inverse regularisation strength (default {d.C})")
    g.add_argument("--test-size", type=float, default=d.test_size, help=f"test share (default {d.test_size})")
    g.add_argument("--cv-folds", type=int, default=d.cv_folds,
                   help=f"folds for choosing the threshold (default {d.cv_folds})")
    g.add_argument("--gate-f1", type=_rate, default=d.gate_f1, help=f"minimum test F1 (default {d.gate_f1})")
    g.add_argument("--baseline-margin", type=_rate, default=d.baseline_margin,
                   help=f"F1 margin over each trivial baseline (default {d.baseline_margin})")
    g.add_argument("--regression-tolerance", type=_rate, default=d.regression_tolerance,
                   help=f"allowed F1 drop against the current model (default {d.regression_tolerance})")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="project home (default: $CHURN_HOME, else the folder holding "
                                       ".churn-home at or above the working directory, else the working directory)")
    common.add_argument("--json", action="store_true", help="print JSON for programs")
    common.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")

    parser = argparse.ArgumentParser(
        prog="churn", description="Notebook-driven MLOps workflow for customer-churn models.",
        epilog="exit status: 0 ok, 1 error, 2 bad usage, 3 model registered but refused by the gate, "
               "4 drift detected, 5 insufficient data for a drift verdict, 6 some runs of a sweep failed")
    parser.add_argument("--version", action="version", version=f"churn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable, help: str, parent=sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add("generate", cmd_generate, "generate the synthetic data set -> data/raw.csv")
    _add_generate_flags(p)
    p = add("prepare", cmd_prepare, "clean and check data/raw.csv -> data/processed.csv, registry/train_stats.json")
    _add_prepare_flags(p)
    p = add("train", cmd_train, "train, gate and register a model version")
    _add_train_flags(p)
    p = add("evaluate", cmd_evaluate, "compare a version with every registered model on its test split")
    p.add_argument("--version", help="version label or model file (default: the latest registered)")
    reg = sub.add_parser("registry", help="inspect the registry").add_subparsers(dest="registry_command",
                                                                                required=True, metavar="COMMAND")
    add("list", cmd_registry_list, "list registered models (* marks the current one)", reg)
    p = add("show", cmd_registry_show, "show one registered model", reg)
    p.add_argument("target", metavar="VERSION", help="version label or model file name")
    p = add("check", cmd_registry_check, "verify every model file's sha256 and that metadata, pointer and history "
                                         "agree; exit 0 healthy, 1 problems found", reg)
    p.add_argument("--repair", action="store_true",
                   help="repair what needs no guessing (history behind the pointer, leftover temporary files)")
    p = add("promote", cmd_promote, "make a registered model current")
    p.add_argument("target", metavar="VERSION", help="version label or model file name")
    p.add_argument("--force", action="store_true", help="activate a model that failed the gate (recorded)")
    p.add_argument("--reason", help="why, for the history")
    p = add("rollback", cmd_rollback, "make the previously current model current again")
    p.add_argument("--to", metavar="VERSION", help="roll back to this registered model instead")
    p.add_argument("--force", action="store_true", help="activate a model that failed the gate (recorded)")
    add("history", cmd_history, "every change of the current model")
    p = add("run", cmd_run, "run the stage notebooks for one model version (papermill), with HTML reports")
    p.add_argument("--version", help="version label of this run (default: the next vN)")
    p.add_argument("--stages", help=f"comma-separated stages (default {','.join(runner.STAGES)}; "
                                    f"all: {','.join(runner.NOTEBOOKS)})")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="a notebook parameter (repeatable); checked before any kernel starts")
    p.add_argument("-f", "--params-file", metavar="FILE", help="YAML mapping of notebook parameters")
    p.add_argument("--log-output", action="store_true", help="stream cell output while the notebooks run")
    p.add_argument("--direct", action="store_true",
                   help="call the stages through the library instead: no notebooks, no reports")
    p = add("serve", cmd_serve, "serve the current model over HTTP (/predict, /health, /docs ...) until stopped")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=_positive_int, default=1, help="worker processes sharing the port (default 1)")
    p.add_argument("--access-log", action="store_true", help="one line per request on stderr (default off)")
    th = drift.Thresholds()
    p = add("drift", cmd_drift, "compare logged predictions with the reference profile of the model that served "
                                "them; exit 0 no drift, 4 drift, 5 insufficient data")
    window = p.add_mutually_exclusive_group()
    window.add_argument("--last", type=_positive_int, metavar="N",
                        help=f"the last N logged predictions of the model(s) (default {drift.DEFAULT_LAST})")
    window.add_argument("--since", type=_since, metavar="TIME",
                        help="predictions logged since TIME: an age (30m, 24h, 7d), Unix seconds, or an ISO "
                             "date/time (UTC unless it has an offset)")
    p.add_argument("--model", default="current",
                   help="current (default), all (each model against its own profile), or a version / model file")
    p.add_argument("--alpha", type=_open_rate, default=th.alpha,
                   help=f"family-wise false-alarm rate of one model's tests (default {th.alpha})")
    p.add_argument("--min-rows", type=_positive_int, default=th.min_rows,
                   help=f"fewer rows give 'insufficient data' (default {th.min_rows})")
    p = add("simulate", cmd_simulate, "write simulated predictions to the log (real scores of a registered model) "
                                      "or send them to a running service, from the training distribution or shifted")
    p.add_argument("--n-rows", type=_positive_int, default=200, help="requests to simulate (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--model", default="current", help="model whose scores are logged (default current)")
    p.add_argument("--shift", type=_assignment, action="append", metavar="FEATURE=K",
                   help="move a numeric feature's mean by K training std (repeatable)")
    p.add_argument("--scale", type=_assignment, action="append", metavar="FEATURE=S",
                   help="multiply a numeric feature's spread around its training mean by S (repeatable)")
    p.add_argument("--mix", type=_mix_item, action="append", metavar="FEATURE=CAT:SHARE,...",
                   help="draw a categorical feature with these shares, e.g. region=NA:0.6,EU:0.2,AF:0.1,AS:0.1")
    p.add_argument("--source", choices=simulate.SOURCES, default="generator",
                   help="generator: fresh draws from the training population (default); data: rows resampled "
                        "from data/processed.csv")
    p.add_argument("--url", help="send to this running service (loopback only, e.g. http://127.0.0.1:8000) "
                                 "instead of writing the log")
    _add_scale_out_commands(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    if not args.verbose:  # nbconvert's note that report images lack alt text, once per export
        logging.getLogger("traitlets").setLevel(logging.ERROR)
    try:
        home = Home.resolve(args.home)
        return args.func(args, home)
    except ChurnError as exc:
        print(f"churn: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("churn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
