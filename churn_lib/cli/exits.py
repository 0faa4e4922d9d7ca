"""Exit statuses of the ``churn`` command (the table is in :mod:`churn_lib.cli`)."""

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_GATE_REFUSED = 0, 1, 2, 3
EXIT_DRIFT, EXIT_INSUFFICIENT_DATA = 4, 5
EXIT_BELOW_FLOOR = 4  # churn performance: below the floor
EXIT_ATTENTION = 4  # churn watch: investigate or retrain
EXIT_SWEEP_FAILURES = 6
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (128 + SIGPIPE, as a shell reports it)
