"""The loop: a challenger's answers compared with the champion's on the same customers, under the home's policy.

* :mod:`.policy` - ``churn.yaml`` (its ``compare`` and ``watch`` sections), declared once, read and checked;
* :mod:`.pairs` - champion and challenger lines paired by request id, with their outcomes, in one DuckDB pass;
* :mod:`.stats` - the paired statistics (McNemar, PSI, paired bootstrap of the metrics' differences);
* :mod:`.compare` - the pairs described, each model's metrics, the paired tests and the verdict
  (``compare.compare(home=...)``; the module keeps its name, the function is not re-exported over it).
"""

from .compare import VERDICTS, Comparison
from .pairs import Pairs
from .policy import ComparePolicy, Policy

__all__ = ["Comparison", "ComparePolicy", "Pairs", "Policy", "VERDICTS"]
