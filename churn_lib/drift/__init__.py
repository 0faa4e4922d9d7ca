"""Drift: a reference profile saved with each model version at training time, and drift
statistics on a window of logged predictions against the profile of the model that served them.

* :mod:`.profile` - :class:`Profile`, :func:`build_profile`, :func:`load_profile`;
* :mod:`.stats` - the statistics and their alert rules (:class:`Thresholds`), per model;
* :mod:`.monitor` - :func:`check` over the prediction log, :class:`DriftResult`, :func:`write_result`.
"""

from .monitor import DEFAULT_LAST, DriftResult, Window, check, parse_since, write_result
from .profile import CategoricalReference, NumericReference, Profile, build_profile, load_profile
from .stats import (DRIFT, INSUFFICIENT, NO_DRIFT, NO_PROFILE, PREDICTION, FeatureDrift, ModelDrift, Statistic,
                    Thresholds, compare)

__all__ = ["CategoricalReference", "DEFAULT_LAST", "DRIFT", "DriftResult", "FeatureDrift", "INSUFFICIENT",
           "ModelDrift", "NO_DRIFT", "NO_PROFILE", "NumericReference", "PREDICTION", "Profile", "Statistic",
           "Thresholds", "Window", "build_profile", "check", "compare", "load_profile", "parse_since",
           "write_result"]
