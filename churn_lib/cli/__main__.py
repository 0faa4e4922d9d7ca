"""``python -m churn_lib.cli``: the ``churn`` command."""

import sys

from . import main

sys.exit(main())
