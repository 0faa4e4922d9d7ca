"""The ``churn`` command's parser: every command, its flags, their help and their checks.

A flag's default, help and constraint come from the one declaration of its
parameter (:mod:`churn_lib._params`): the stage commands' flags (``generate``,
``prepare``, ``train``) and ``churn drift``'s from the stage table's dataclasses
(:mod:`churn_lib.run.stages`), the other commands' from the :class:`Param`
objects declared here over the library's constants. A value is checked while
parsing by the same :meth:`Param.refusal` the library's dataclasses use, so a
refused value is a usage error (exit 2, ``churn <cmd>: error: argument
--flag: must be ...``), worded as the library words it.

Start-up: this module imports no library module at its top. A command whose
flags read the library (the stage table, a module's constants) declares them in
a function of its own, which :func:`build_parser` calls only for the command
being run (``command``) or for every command (``command=None``, the default), so
``churn --help`` and a command's parsing import only what that command needs.

Renamed flags keep their old spelling for one release, with a deprecation
message on stderr: ``--model V`` (a registered version) is ``--version V``,
``--min-rows`` of ``prepare`` and ``drift`` is ``--min-clean-rows`` and
``--min-window-rows``.
"""

from __future__ import annotations

import argparse
import sys
from functools import cache
from typing import Any, Callable, Sequence

from .. import __version__
from .._params import UNIT, Param, Range
from ..exceptions import ChurnError
from .commands import (cmd_challenger, cmd_compare, cmd_drift, cmd_evaluate, cmd_export, cmd_feedback, cmd_generate,
                       cmd_history, cmd_init, cmd_prepare, cmd_promote, cmd_registry_check, cmd_registry_list,
                       cmd_registry_show, cmd_rollback, cmd_run, cmd_score, cmd_performance, cmd_serve, cmd_simulate,
                       cmd_sweep, cmd_train, cmd_watch)

# The cli's own parameters (not a stage's): declared once here, checked as the stage parameters are.
PORT = Param("port", 8000, "port", int, range=Range(1, 65535))
SERVE_WORKERS = Param("workers", 1, "worker processes sharing the port", int, range=Range(1))
WORKERS = Param("workers", None, "workers of a local cluster; None: one per core", int, optional=True,
                range=Range(1))
PERFORMANCE_LAST = Param("last", None, "the last N logged predictions; None: all", int, optional=True,
                         range=Range(1))
FLOOR = Param("floor", None, "F1 below which the verdict is 'below floor'; None: the version's gate F1", float,
              optional=True, range=UNIT)
COMPARE_LAST = Param("last", None, "the last N paired requests; None: all", int, optional=True, range=Range(1))
SIMULATE_ROWS = Param("n_rows", 200, "requests to simulate", int, range=Range(1))
MEBIBYTES = Param("mib", None, "MiB", float, range=Range(0.001, 4096))


@cache
def _library_params() -> dict[str, Param]:
    """The cli's parameters over constants of heavy library modules: declared on first use (:func:`__getattr__`)."""
    from .. import scoring
    from ..drift import performance

    return {"PERFORMANCE_MIN_ROWS": Param("min_rows", performance.MIN_ROWS,
                                          "fewer rows of a kind give 'insufficient data'", int, range=Range(1)),
            "EXPLAIN": Param("explain", None, "reasons per row", int, optional=True,
                             range=Range(1, scoring.MAX_EXPLAIN))}


def __getattr__(name: str) -> Param:
    """``PERFORMANCE_MIN_ROWS`` and ``EXPLAIN``, declared when first read (PEP 562): importing the parser stays light."""
    if name not in ("PERFORMANCE_MIN_ROWS", "EXPLAIN"):  # e.g. the import system's __path__: no library import
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _library_params()[name]


#: What a flag's text is read as, before its constraint is checked.
_READ: dict[type, Callable[[str], Any]] = {int: int, float: float, str: str}
_READ_WORDS = {int: "an integer", float: "a number", str: "a string"}


def _checked(param: Param, convert: Callable[[Any], Any] = lambda v: v) -> Callable[[str], Any]:
    """An argparse ``type``: the text read as ``param``'s type, checked by its declaration, then ``convert``-ed."""
    def parse(text: str) -> Any:
        try:
            value = _READ[param.kind](text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {param.describe(none=False)}, got {text!r}") from None
        why = param.refusal(value, none=False)
        if why is not None:
            raise argparse.ArgumentTypeError(why)
        return convert(value)

    parse.__name__ = param.kind.__name__
    return parse


class _Renamed(argparse.Action):
    """A flag's old spelling: stores what the new one stores, with a deprecation message on stderr."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, new: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"churn: warning: {option_string} is deprecated and will be removed in the next release; "
              f"use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _renamed(p: Any, old: str, new: str, dest: str, **kwargs: Any) -> None:
    """Accept ``old`` as a hidden alias of flag ``new`` (same ``dest``, type and choices) for one release."""
    p.add_argument(old, dest=dest, action=_Renamed, new=new, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                   **kwargs)


def _flag(p: Any, param: Param, *, default: Any = None, help: str | None = None, metavar: str | None = None,
          **kwargs: Any) -> None:
    """One flag from a declared parameter (``n_rows`` -> ``--n-rows``), checked while parsing."""
    flag = "--" + param.name.replace("_", "-")
    default = param.default if default is None else default
    text = help or f"{param.help} (default {default})"
    if param.kind is bool:
        p.add_argument(flag, action="store_true", default=default, help=text)
        return
    metavar = metavar or ("RATE" if param.kind is float and param.range == UNIT else param.name.upper())
    p.add_argument(flag, type=_checked(param), default=default, metavar=metavar, help=text, **kwargs)
    if param.was:
        _renamed(p, "--" + param.was.replace("_", "-"), flag, param.name, type=_checked(param), metavar=metavar)


def add_stage_flags(p: argparse.ArgumentParser, stage: str, title: str) -> None:
    """One flag per user parameter of ``stage`` (``n_rows`` -> ``--n-rows``), checked by its declaration."""
    from ..run import stages

    g = p.add_argument_group(title)
    for param in stages.TABLE[stage].user_params.values():
        if param.name != "version":
            _flag(g, param)


def _version_flag(p: argparse.ArgumentParser, help: str, default: str | None = "current") -> None:
    """``--version V``: a registered version (``--model V``, its old name, still accepted for one release)."""
    p.add_argument("--version", default=default, metavar="VERSION", help=help)
    _renamed(p, "--model", "--version", "version", metavar="VERSION")


def _since(text: str) -> float:
    from .. import drift

    try:
        return drift.parse_since(text)
    except ChurnError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _age(text: str) -> float:
    from ..loop import policy as loop_policy  # read when the flag is given: the parser's import stays light

    try:
        return loop_policy.age_seconds(text, name="interval")
    except ChurnError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("interval ")) from None


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


def _window_flags(p: argparse.ArgumentParser, last: Param, last_help: str) -> None:
    """``--last N`` or ``--since TIME``: the window of logged predictions a check reads."""
    window = p.add_mutually_exclusive_group()
    window.add_argument("--last", type=_checked(last), metavar="N", help=last_help)
    window.add_argument("--since", type=_since, metavar="TIME",
                        help="predictions logged since TIME: an age (30m, 24h, 7d), Unix seconds, or an ISO "
                             "date/time (UTC unless it has an offset)")


Add = Callable[..., argparse.ArgumentParser]


def _add_setup_commands(add: Add) -> None:
    p = add("init", cmd_init, "create a home: its folders and dataset.yaml, the contract inferred from your CSV "
                              "or Parquet file (or the lab's without --data)")
    p.add_argument("--data", metavar="FILE", help="a CSV or Parquet file (or a quoted glob of them) of customers, "
                                                  "one row each, with the churn column")
    p.add_argument("--target", metavar="COLUMN", help="the churn column (two labels)")
    p.add_argument("--positive", metavar="VALUE", action="append",
                   help="the label meaning churned (default: recognised, e.g. Yes, 1, true); repeatable")
    p.add_argument("--id", metavar="COLUMN", action="append",
                   help="the column naming a customer (default: the first column whose values are all different); "
                        "repeatable")
    p.add_argument("--keep", metavar="COLUMN", action="append",
                   help="keep a column as a feature although init drops it as a leak (row number, unique key, "
                        "leaks the target); repeatable")
    p.add_argument("--name", help="the contract's name (default: the file's name)")
    p.add_argument("--force", action="store_true", help="replace an existing dataset.yaml")
    _dialect_flags(p, "the CSV's", "default: sniffed from the file's head")


def _dialect_flags(p: argparse.ArgumentParser, whose: str, default: str) -> None:
    """``--sep`` and ``--decimal``: a CSV's dialect (the contract's ``source.csv``)."""
    p.add_argument("--sep", type=lambda v: "\t" if v.lower() in ("tab", "\\t") else v, choices=[",", ";", "\t", "|"],
                   metavar="{',',';',tab,'|'}", help=f"{whose} column separator ({default})")
    p.add_argument("--decimal", choices=[".", ","], help=f"{whose} decimal mark ({default})")


def _add_stage_commands(add: Add) -> None:
    add("generate", cmd_generate, "stage 01: the contract's source (the lab's generator or your CSV) -> "
                                  "data/raw.csv", flags=lambda p: add_stage_flags(p, "generate", "data"))
    add("prepare", cmd_prepare, "stage 02: clean and check data/raw.csv -> data/processed.csv, "
                                "registry/train_stats.json",
        flags=lambda p: add_stage_flags(p, "prepare", "quality thresholds"))
    add("train", cmd_train, "stage 03: train, gate and register a model version", flags=_train_flags)
    p = add("evaluate", cmd_evaluate, "compare a version with every registered model on its test split")
    p.add_argument("--version", help="version label or model file (default: the latest registered)")


def _train_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", help="unique version label (default: the next vN)")
    add_stage_flags(p, "train", "training and gate")


def _add_registry_commands(add: Add, sub: Any) -> None:
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
    add("history", cmd_history, "every change of the current model and of the challenger")
    add("challenger", cmd_challenger, "set the challenger: a registered model the service also scores, in "
                                      "shadow, on a sample of requests (logged with role challenger, never "
                                      "returned); without VERSION: show it", flags=_challenger_flags)
    add("export", cmd_export, "write a registered model as an MLflow model folder (python_function: the churn "
                              "probability and the decision at its threshold)", flags=_export_flags)


def _challenger_flags(p: argparse.ArgumentParser) -> None:
    from .. import registry

    p.add_argument("target", metavar="VERSION", nargs="?", help="version label or model file name")
    sample = registry.SAMPLE
    _flag(p, sample, default=argparse.SUPPRESS, metavar="FRACTION",
          help=f"{sample.help}: {sample.describe(none=False)} (default {sample.default:g})")
    p.set_defaults(sample=None)
    p.add_argument("--clear", action="store_true", help="clear the challenger pointer")
    p.add_argument("--reason", help="why, for the history")


def _export_flags(p: argparse.ArgumentParser) -> None:
    from .. import export

    p.add_argument("target", metavar="VERSION", help="version label or model file name")
    p.add_argument("folder", metavar="DIR", help="the folder to write: new or empty (its parents are created)")
    _flag(p, export.FORMAT, metavar="FORMAT")
    p.add_argument("--force", action="store_true", help="replace DIR if it is not empty (atomically)")


def _add_run_command(add: Add) -> None:
    add("run", cmd_run, "run the stage notebooks for one model version (papermill), with HTML reports",
        flags=_run_flags)


def _run_flags(p: argparse.ArgumentParser) -> None:
    from ..run import stages

    p.add_argument("--version", help="version label of this run (default: the next vN)")
    p.add_argument("--stages", help=f"comma-separated stages (default {','.join(stages.DEFAULT_RUN)}; "
                                    f"all: {','.join(stages.TABLE)})")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="a notebook parameter (repeatable); checked before any kernel starts")
    p.add_argument("-f", "--params-file", metavar="FILE", help="YAML mapping of notebook parameters")
    p.add_argument("--log-output", action="store_true", help="stream cell output while the notebooks run")
    p.add_argument("--direct", action="store_true",
                   help="call the stages through the library instead: no notebooks, no reports")


def _add_serve_command(add: Add) -> None:
    p = add("serve", cmd_serve, "serve the current model over HTTP (/predict, /health, /docs ...) until stopped")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    _flag(p, PORT, metavar="PORT")
    _flag(p, SERVE_WORKERS, metavar="N")
    p.add_argument("--access-log", action="store_true", help="one line per request on stderr (default off)")
    p.add_argument("--token-file", metavar="FILE",
                   help="bearer tokens, one per line (several for rotation; re-read when it changes); default: "
                        "$CHURN_API_TOKEN, else no authentication")
    p.add_argument("--metrics-auth", action="store_true", help="/metrics needs a token too (default: open)")
    p.add_argument("--insecure", action="store_true",
                   help="allow a --host other machines can reach without a token")


def _add_monitor_commands(add: Add) -> None:
    add("drift", cmd_drift, "compare logged predictions with the reference profile of the model that served "
                            "them; exit 0 no drift, 4 drift, 5 insufficient data", flags=_drift_flags)
    p = add("feedback", cmd_feedback, "append outcomes (what became of scored customers) to logs/feedback.log; "
                                      "bad rows are counted, never written")
    p.add_argument("file", metavar="FILE.csv",
                   help="columns: request_id or the contract's id column; outcome (or the target column) in the "
                        "target's labels or 1/0; optional time (Unix seconds or ISO)")
    add("performance", cmd_performance, "realized metrics on predictions with outcomes, estimated ones (CBPE) "
                                        "on those without; exit 0 ok, 4 below the floor, 5 insufficient data",
        flags=_performance_flags)


def _drift_flags(p: argparse.ArgumentParser) -> None:
    from .. import drift
    from .._params import declared

    # the monitor_drift stage's parameters, from its dataclasses: the stage table would import every stage's
    # libraries (pandas, the models) into a drift check
    decl = {p.name: p for cls in (drift.Window, drift.Thresholds) for p in declared(cls)}
    _window_flags(p, decl["last"], f"the last N logged predictions of the model(s) (default {drift.DEFAULT_LAST})")
    _version_flag(p, "current (default), all (each model against its own profile), or a version / model file")
    _flag(p, decl["alpha"])
    _flag(p, decl["min_window_rows"], metavar="N")


def _performance_flags(p: argparse.ArgumentParser) -> None:
    _window_flags(p, PERFORMANCE_LAST, "the last N logged predictions (default: all)")
    _version_flag(p, "current (default), all, or a version / model file")
    _flag(p, FLOOR, metavar="F1", help="F1 below which the verdict is 'below floor' (default: the version's "
                                       "gate F1)")
    _flag(p, _library_params()["PERFORMANCE_MIN_ROWS"], metavar="N")


def _add_loop_commands(add: Add) -> None:
    p = add("compare", cmd_compare, "the challenger against the champion on the requests both answered (paired by "
                                    "request id): agreement, scores, latency, realized and estimated metrics, paired "
                                    "tests and a verdict; exit 0 a verdict, 5 insufficient evidence")
    _window_flags(p, COMPARE_LAST, "the last N paired requests (default: all)")
    p.add_argument("--promote", action="store_true",
                   help="promote the challenger when the verdict is challenger_better and the gate passes (the "
                        "comparison goes into the history line); exit 3 when the gate refuses it")
    p = add("watch", cmd_watch, "each tick: drift and performance of the current model on the newest predictions, "
                                "and a decision (ok, investigate, retrain, insufficient_data, cooldown, locked) by "
                                "churn.yaml's watch policy; a retrain registers the challenger, never the current "
                                "model; exit 0 ok/cooldown/locked, 4 investigate/retrain, 5 insufficient data")
    p.add_argument("--once", action="store_true", help="one tick, then exit with its status (for cron)")
    p.add_argument("--interval", type=_age, default=3600.0, metavar="AGE",
                   help="time between ticks without --once: an age such as 30m, 1h, 1d (default 1h); SIGINT or "
                        "SIGTERM end the watch between ticks")


def _add_simulate_command(add: Add) -> None:
    add("simulate", cmd_simulate, "write simulated predictions to the log (real scores of a registered model) "
                                  "or send them to a running service, from the training distribution or shifted",
        flags=_simulate_flags)


def _simulate_flags(p: argparse.ArgumentParser) -> None:
    from .. import simulate

    _flag(p, SIMULATE_ROWS, metavar="N")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _version_flag(p, "model whose scores are logged (default current)")
    p.add_argument("--shift", type=_assignment, action="append", metavar="FEATURE=K",
                   help="move a numeric feature's mean by K training std (repeatable)")
    p.add_argument("--scale", type=_assignment, action="append", metavar="FEATURE=S",
                   help="multiply a numeric feature's spread around its training mean by S (repeatable)")
    p.add_argument("--mix", type=_mix_item, action="append", metavar="FEATURE=CAT:SHARE,...",
                   help="draw a categorical feature with these shares, e.g. region=NA:0.6,EU:0.2,AF:0.1,AS:0.1")
    p.add_argument("--source", choices=simulate.SOURCES, default=None,
                   help="generator: fresh draws from the lab's generator (the default for the lab's contract); "
                        "data: rows resampled from the model's training split (the default for a file source)")
    p.add_argument("--url", help="send to this running service (loopback only, e.g. http://127.0.0.1:8000) "
                                 "instead of writing the log")


def _add_scale_out_commands(add: Add) -> None:
    p = add("sweep", cmd_sweep, "run one notebook run per parameter set of a sweep spec (YAML), in parallel on "
                                "Dask; promote the best version that passed the gate")
    p.add_argument("spec", metavar="SPEC", help="sweep spec: grid and/or sets of notebook parameters (YAML)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of a running Dask scheduler (tcp://HOST:8786); default: a local cluster")
    _flag(p, WORKERS, metavar="N", help="workers of the local cluster (default: one per core)")
    p.add_argument("--serial", action="store_true", help="run the sets one after the other in this process (no Dask)")
    p.add_argument("--no-promote", action="store_true", help="report the winner without promoting it")
    add("score", cmd_score, "score a CSV or Parquet file of any size with a registered model, in chunks; bad "
                            "rows go to a rejects file with the reason", flags=_score_flags)


def _score_flags(p: argparse.ArgumentParser) -> None:
    from .. import scoring
    from ..scale import batch

    p.add_argument("input", metavar="INPUT", help="CSV or Parquet (.parquet) with the model's features (other "
                                                  "columns kept)")
    p.add_argument("output", metavar="OUTPUT", help="CSV, or Parquet when named .parquet: the valid input rows, in "
                                                    "order, + probability, prediction, version")
    _version_flag(p, "version label or model file (default: the current model)", default=None)
    p.add_argument("--rejects", metavar="PATH", help="rejected rows with line (row for Parquet) and reason, in "
                                                     "INPUT's format (default: OUTPUT's name with .rejects and "
                                                     "INPUT's extension)")
    _dialect_flags(p, "a CSV INPUT's", "default: the model's contract's source.csv, else comma and dot")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="score on Dask: 'local' for a local cluster, or a scheduler address (its workers must "
                        "see INPUT and OUTPUT's folder); default: in this process")
    _flag(p, WORKERS, metavar="N", help="workers of a local cluster (default: one per core)")
    mib = _checked(MEBIBYTES, lambda v: int(v * (1 << 20)))
    p.add_argument("--chunk-mb", type=mib, default=batch.DEFAULT_CHUNK_BYTES, metavar="MIB",
                   help=f"input read per block, bounds memory (default {batch.DEFAULT_CHUNK_BYTES >> 20})")
    p.add_argument("--partition-mb", type=mib, default=batch.DEFAULT_PARTITION_BYTES, metavar="MIB",
                   help=f"input per Dask task (default {batch.DEFAULT_PARTITION_BYTES >> 20})")
    _flag(p, _library_params()["EXPLAIN"], metavar="N", help="add each row's top N reasons: explain_base, reason_k and contribution_k "
                                        f"(log-odds) for k = 1..N, explain_other (N at most {scoring.MAX_EXPLAIN})")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``churn`` parser: the common flags, then one small function per group of commands.

    Parameters
    ----------
    command : str, optional
        Build only this command's flags (what ``churn COMMAND ...`` parses); every command is still
        listed. None: every command's flags.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="project home (default: $CHURN_HOME, else the folder holding "
                                       ".churn-home at or above the working directory, else the working directory)")
    common.add_argument("--json", action="store_true", help="print JSON for programs")
    common.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")

    parser = argparse.ArgumentParser(
        prog="churn", description="Notebook-driven MLOps workflow for customer-churn models.",
        epilog="exit status: 0 ok, 1 error, 2 bad usage, 3 model registered but refused by the gate, "
               "4 drift detected, 5 insufficient data for a drift verdict, 6 some runs of a sweep failed")
    parser.set_defaults(_parser=parser)
    parser.add_argument("--version", action="version", version=f"churn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable, help: str, parent: Any = sub,
            flags: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.ArgumentParser:
        p = parent.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func, _parser=p)
        if flags is not None and command in (None, name):
            flags(p)  # flags that read the library: only for the command being run
        return p

    _add_setup_commands(add)
    _add_stage_commands(add)
    _add_registry_commands(add, sub)
    _add_run_command(add)
    _add_serve_command(add)
    _add_monitor_commands(add)
    _add_loop_commands(add)
    _add_simulate_command(add)
    _add_scale_out_commands(add)
    return parser
