"""The ``churn`` command's parser: every command, its flags, their help.

The flags of the stage commands (``generate``, ``prepare``, ``train``) come
from the stage table (:mod:`churn_lib.run.stages`): a parameter's name, default
and help are declared once, in its dataclass.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

from .. import __version__, drift, simulate
from ..run import stages
from ..exceptions import ChurnError
from .commands import (cmd_drift, cmd_evaluate, cmd_feedback, cmd_generate, cmd_history, cmd_init, cmd_prepare, cmd_promote,
                       cmd_registry_check, cmd_registry_list, cmd_registry_show, cmd_rollback, cmd_run, cmd_score,
                       cmd_performance, cmd_serve, cmd_simulate, cmd_sweep, cmd_train)


def add_stage_flags(p: argparse.ArgumentParser, stage: str, title: str) -> None:
    """One flag per user parameter of ``stage`` (``n_rows`` -> ``--n-rows``); values are checked by the stage."""
    g = p.add_argument_group(title)
    for param in stages.TABLE[stage].user_params.values():
        if param.name == "version":
            continue
        flag = "--" + param.name.replace("_", "-")
        default = "None" if param.default is None else param.default
        text = f"{param.help} (default {default})"
        if param.kind is bool:
            g.add_argument(flag, action="store_true", default=param.default, help=text)
        else:
            metavar = "RATE" if param.kind is float and 0 <= (param.default or 0) <= 1 and "rate" in param.name \
                else param.name.upper()
            g.add_argument(flag, type=_typed(param.kind), default=param.default, metavar=metavar, help=text)


def _typed(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'} "
                                             f"{'' if kind is str else ''}got {text!r}") from None

    parse.__name__ = kind.__name__
    return parse


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


def _since(text: str) -> float:
    try:
        return drift.parse_since(text)
    except ChurnError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _unit(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _open_rate(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {text}")
    return value


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


def _megabytes(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of MiB, got {text!r}") from None
    if not 0.001 <= value <= 4096:
        raise argparse.ArgumentTypeError(f"must be between 0.001 and 4096 MiB, got {text}")
    return int(value * (1 << 20))


def _add_scale_out_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    from ..scale import batch

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
    p.add_argument("input", metavar="INPUT", help="CSV with a header naming the model's features (other columns "
                                                  "kept)")
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
    p.add_argument("--explain", type=_positive_int, metavar="N",
                   help="add each row's top N reasons: explain_base, reason_k and contribution_k (log-odds) for "
                        "k = 1..N, explain_other")


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
    parser.set_defaults(_parser=parser)
    parser.add_argument("--version", action="version", version=f"churn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable, help: str, parent=sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func, _parser=p)
        return p

    p = add("init", cmd_init, "create a home: its folders and dataset.yaml, the contract inferred from your CSV "
                              "(or the lab's without --data)")
    p.add_argument("--data", metavar="FILE", help="a CSV of customers, one row each, with the churn column")
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
    p = add("generate", cmd_generate, "stage 01: the contract's source (the lab's generator or your CSV) -> "
                                      "data/raw.csv")
    add_stage_flags(p, "generate", "data")
    p = add("prepare", cmd_prepare, "stage 02: clean and check data/raw.csv -> data/processed.csv, "
                                    "registry/train_stats.json")
    add_stage_flags(p, "prepare", "quality thresholds")
    p = add("train", cmd_train, "stage 03: train, gate and register a model version")
    p.add_argument("--version", help="unique version label (default: the next vN)")
    add_stage_flags(p, "train", "training and gate")
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
    p.add_argument("--stages", help=f"comma-separated stages (default {','.join(stages.DEFAULT_RUN)}; "
                                    f"all: {','.join(stages.TABLE)})")
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
    p.add_argument("--token-file", metavar="FILE",
                   help="bearer tokens, one per line (several for rotation; re-read when it changes); default: "
                        "$CHURN_API_TOKEN, else no authentication")
    p.add_argument("--metrics-auth", action="store_true", help="/metrics needs a token too (default: open)")
    p.add_argument("--insecure", action="store_true",
                   help="allow a --host other machines can reach without a token")
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
    p = add("feedback", cmd_feedback, "append outcomes (what became of scored customers) to logs/feedback.log; "
                                      "bad rows are counted, never written")
    p.add_argument("file", metavar="FILE.csv",
                   help="columns: request_id or the contract's id column; outcome (or the target column) in the "
                        "target's labels or 1/0; optional time (Unix seconds or ISO)")
    p = add("performance", cmd_performance, "realized metrics on predictions with outcomes, estimated ones (CBPE) "
                                            "on those without; exit 0 ok, 4 below the floor, 5 insufficient data")
    window = p.add_mutually_exclusive_group()
    window.add_argument("--last", type=_positive_int, metavar="N", help="the last N logged predictions (default: all)")
    window.add_argument("--since", type=_since, metavar="TIME",
                        help="predictions logged since TIME: an age (30m, 24h, 7d), Unix seconds, or an ISO time")
    p.add_argument("--model", default="current", help="current (default), all, or a version / model file")
    p.add_argument("--floor", type=_unit, default=None, metavar="F1",
                   help="F1 below which the verdict is 'below floor' (default: the version's gate F1)")
    p.add_argument("--min-rows", type=_positive_int, default=100,
                   help="fewer rows of a kind give 'insufficient data' (default 100)")
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
    p.add_argument("--source", choices=simulate.SOURCES, default=None,
                   help="generator: fresh draws from the lab's generator (the default for the lab's contract); "
                        "data: rows resampled from the model's training split (the default for a file source)")
    p.add_argument("--url", help="send to this running service (loopback only, e.g. http://127.0.0.1:8000) "
                                 "instead of writing the log")
    _add_scale_out_commands(add)
    return parser


