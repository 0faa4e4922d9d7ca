"""The ``churn`` command: thin over churn_lib; parses, calls one library function, prints.

* :mod:`.parser` - every command and its flags, each checked while parsing by its parameter's
  declaration (the stage commands' and ``drift``'s from the stage table);
* :mod:`.commands` - one function per command;
* :mod:`.render` - the text views of results (``--json`` prints the results as JSON).

Exit status:

* 0 - success;
* 1 - error (one line on stderr: ``churn: error: <message>``);
* 2 - bad usage (unknown flag, a value its declaration refuses: ``churn <command>: error: ...``);
* 3 - a model was trained and registered but refused by the gate;
* 4 - ``churn drift``: drift detected (at least one statistic alerts); ``churn performance``: below the
  floor; ``churn watch``: ``investigate`` or ``retrain`` (``ok``, ``cooldown`` and ``locked`` are 0);
* 5 - ``churn drift``: insufficient data (fewer rows in the window than
  ``--min-window-rows``, or no log yet): no verdict, not an alarm; ``churn compare``: insufficient
  evidence (fewer labelled pairs or churners than ``churn.yaml``'s minimums); ``churn watch``:
  ``insufficient_data``;
* 6 - ``churn sweep``: at least one run of the sweep failed (the others
  completed; the summary lists each failure with its report). A sweep in
  which no version passed the gate exits 3;
* 141 - the reader of the output went away (``churn ... | head -1``), as for a
  process killed by SIGPIPE; nothing is printed.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Sequence

from ..run import kernels
from ..exceptions import ChurnError
from ..home import Home
from .exits import (EXIT_BROKEN_PIPE, EXIT_DRIFT, EXIT_ERROR, EXIT_GATE_REFUSED, EXIT_INSUFFICIENT_DATA, EXIT_OK,
                    EXIT_SWEEP_FAILURES, EXIT_USAGE)

# The parser and the commands import the library modules a command uses inside its functions, only
# when main() runs (after `churn run` has started its kernel): `churn --help` imports no pandas.


def build_parser(command: str | None = None):
    """The ``churn`` argument parser (see :mod:`churn_lib.cli.parser`); ``command``: build only its flags."""
    from .parser import build_parser as build

    return build(command)

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_DRIFT", "EXIT_ERROR", "EXIT_GATE_REFUSED", "EXIT_INSUFFICIENT_DATA", "EXIT_OK",
           "EXIT_SWEEP_FAILURES", "EXIT_USAGE", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:  # the reader went away (`churn ... | head -1`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's last flush does not fail again
        return EXIT_BROKEN_PIPE


def _main(argv: list[str]) -> int:
    if argv[:1] == ["run"] and not {"--direct", "-h", "--help"} & set(argv):
        kernels.start_early()  # the notebooks' kernel starts on the other core while this command prepares
    from .commands import UsageError

    # only the named command's flags are built ("": none, for `churn --help`): its parsing imports what it uses
    parser = build_parser(next((a for a in argv if not a.startswith("-")), ""))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    if not args.verbose:  # nbconvert's note that report images lack alt text, once per export
        logging.getLogger("traitlets").setLevel(logging.ERROR)
    try:
        home = Home.resolve(args.home)
        return args.func(args, home)
    except UsageError as exc:
        args._parser.error(str(exc))  # exits 2, with the command's usage line
        return EXIT_USAGE  # pragma: no cover
    except ChurnError as exc:
        print(f"churn: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("churn: interrupted", file=sys.stderr)
        return 130
