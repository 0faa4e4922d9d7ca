"""The dataset contract: the one source of truth about the data (the package's face).

A contract (``dataset.yaml`` at the home's root, :func:`load`) says where the
data comes from, which column(s) name a customer, which column is the target
and which of its labels mean "churned", and, per feature, its type, missing
tokens, valid range or allowed values, normalisation and what an unseen
category gets; dropped columns are listed with the reason, and the gate's
dataset-specific floors live here too. A home without the file is the lab's
home (:func:`lab`). Every stage derives what it checks from here, and nothing
else in the code names a column.

The modules, one job each:

* :mod:`.spec`: the definitions (:class:`Feature`, :class:`Target`,
  :class:`Source` with its :class:`CsvDialect`, :class:`Dropped`, :class:`Gate`, :class:`Contract`) and the
  check that a contract is consistent;
* :mod:`.files`: ``dataset.yaml`` and the JSON copy read and written
  (:func:`from_dict`, :func:`load_file`, :func:`load`, :func:`to_json`,
  :func:`from_json`, :func:`path_in`);
* :mod:`.frame`: :func:`check_frame`, the one row validator (the quality rules
  and the batch-scoring rejects), and its rule names;
* :mod:`.lab`: the lab's contract and example requests.

Other packages use the names below (``from churn_lib import contract``), never a
module's private ones.
"""

from __future__ import annotations

from .files import from_dict, from_json, load, load_file, path_in, to_json
from .lab import LAB_EXAMPLES, is_lab, lab
from .spec import (BOOLEAN, CATEGORICAL, FLOAT, FORMAT, INTEGER, MAX_TEXT_LENGTH, MISSING_CATEGORY, NUMERIC_TYPES,
                   Contract, Dropped, Feature, Gate, Source, Target, number_text)
from .spec import SEPARATORS, CsvDialect, is_parquet_name

__all__ = [
    # definitions
    "Contract", "Feature", "Target", "Source", "Dropped", "Gate",
    "INTEGER", "FLOAT", "BOOLEAN", "CATEGORICAL", "NUMERIC_TYPES", "MISSING_CATEGORY", "MAX_TEXT_LENGTH", "FORMAT",
    "number_text",
    # sources' formats
    "CsvDialect", "SEPARATORS", "is_parquet_name",
    # files
    "load", "load_file", "from_dict", "to_json", "from_json", "path_in",
    # the row validator
    "check_frame", "RULE_TYPE", "RULE_RANGE", "RULE_CATEGORY", "RULE_TARGET", "RULE_ID",
    # the lab
    "lab", "is_lab", "LAB_EXAMPLES",
]

#: The row validator's names: :mod:`.frame` imports pandas, so it is imported when one is first used.
_FRAME = ("check_frame", "RULE_TYPE", "RULE_RANGE", "RULE_CATEGORY", "RULE_TARGET", "RULE_ID")


def __getattr__(name: str) -> object:
    """:func:`check_frame` and the rule names, from :mod:`.frame` on first use (PEP 562): reading a
    contract (``churn history``, ``churn feedback``) imports no pandas."""
    if name in _FRAME:
        from . import frame

        globals().update({n: getattr(frame, n) for n in _FRAME})  # found directly from now on
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_FRAME})
