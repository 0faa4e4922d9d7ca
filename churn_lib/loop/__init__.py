"""The loop: a challenger's answers compared with the champion's on the same customers, under the home's policy.

* :mod:`.policy` - ``churn.yaml`` (its ``compare`` and ``watch`` sections), declared once, read and checked;
* :mod:`.pairs` - champion and challenger lines paired by request id, with their outcomes, in one DuckDB pass;
* :mod:`.stats` - the paired statistics (McNemar, PSI, paired bootstrap of the metrics' differences);
* :mod:`.compare` - the pairs described, each model's metrics, the paired tests and the verdict
  (``compare.compare(home=...)``; the module keeps its name, the function is not re-exported over it);
* :mod:`.watch` - a tick: drift and performance on the newest window, a decision from a closed set, a retrain
  that registers a challenger (``watch.tick(home=...)``, ``watch.watch(...)`` ticks until stopped).
"""

from .compare import VERDICTS, Comparison
from .pairs import Pairs
from .policy import ComparePolicy, Policy, WatchPolicy
from .watch import DECISIONS, Tick

__all__ = ["Comparison", "ComparePolicy", "DECISIONS", "Pairs", "Policy", "Tick", "VERDICTS", "WatchPolicy"]
