"""The ``churn`` command: thin over churn_lib; parses, calls, prints.

Exit status:

* 0 - success;
* 1 - error (one line on stderr: ``churn: error: <message>``);
* 2 - bad usage (unknown flag, bad value);
* 3 - a model was trained and registered but refused by the gate.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from typing import Any, Callable, Sequence

import pandas as pd

from . import __version__, data, evaluation, quality, registry, runner, training
from .exceptions import ChurnError, QualityError
from .home import Home

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_GATE_REFUSED = 0, 1, 2, 3


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
    current = registry.current_file(home=home)
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


def _change_text(rec: dict[str, Any] | None, what: str) -> str:
    if rec is None:
        return f"{what} is already the current model; nothing changed"
    return f"current model: {rec['from'] or 'none'} -> {rec['to']} ({rec['reason']})"


def cmd_promote(args: argparse.Namespace, home: Home) -> int:
    rec = registry.promote(args.target, home=home, force=args.force, reason=args.reason)
    _emit(args, {"changed": rec is not None, "record": rec}, _change_text(rec, args.target))
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace, home: Home) -> int:
    rec = registry.rollback(home=home, to=args.to, force=args.force)
    _emit(args, {"changed": rec is not None, "record": rec}, _change_text(rec, args.to or ""))
    return EXIT_OK


def cmd_history(args: argparse.Namespace, home: Home) -> int:
    recs = registry.history(home=home)
    rows = [r | {"ts": r.get("ts", "")[:19], "forced": "yes" if r.get("forced") else ""} for r in recs]
    _emit(args, recs, _table(rows, ["ts", "action", "version", "from", "to", "forced", "reason"]))
    return EXIT_OK


def cmd_run(args: argparse.Namespace, home: Home) -> int:
    stages = tuple(s.strip() for s in args.stages.split(",")) if args.stages else runner.STAGES
    unknown = [s for s in stages if s not in runner.STAGES]
    if unknown:
        raise ChurnError(f"unknown stages {unknown}; stages are {', '.join(runner.STAGES)}")
    params = _train_params(args)
    result = runner.run_direct(home=home, n_rows=args.n_rows, seed=args.seed, version=args.version,
                               params=params, faults=_faults(args), thresholds=_thresholds(args), stages=stages)
    lines = [f"{stage:<9} {sec:7.2f} s" for stage, sec in result.seconds.items()]
    if result.entry:
        lines.append(_train_text(result.entry, result.promoted))
    lines.append(f"results: {home.data_dir}, {home.registry_dir} (`churn registry list`, `churn evaluate`)")
    _emit(args, asdict(result), "\n".join(lines))
    return EXIT_OK if result.passed_gate in (None, True) else EXIT_GATE_REFUSED


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


def _add_train_flags(p: argparse.ArgumentParser, *, seed: bool = True) -> None:
    d = training.TrainParams()
    g = p.add_argument_group("training and gate")
    g.add_argument("--version", help="unique version label (default: the next vN)")
    if seed:
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
        epilog="exit status: 0 ok, 1 error, 2 bad usage, 3 model registered but refused by the gate")
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
    p = add("promote", cmd_promote, "make a registered model current")
    p.add_argument("target", metavar="VERSION", help="version label or model file name")
    p.add_argument("--force", action="store_true", help="activate a model that failed the gate (recorded)")
    p.add_argument("--reason", help="why, for the history")
    p = add("rollback", cmd_rollback, "make the previously current model current again")
    p.add_argument("--to", metavar="VERSION", help="roll back to this registered model instead")
    p.add_argument("--force", action="store_true", help="activate a model that failed the gate (recorded)")
    add("history", cmd_history, "every change of the current model")
    p = add("run", cmd_run, "run the stages generate -> prepare -> train -> evaluate on one version")
    p.add_argument("--stages", help=f"comma-separated subset of {','.join(runner.STAGES)}")
    _add_generate_flags(p)
    _add_prepare_flags(p)
    _add_train_flags(p, seed=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
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
