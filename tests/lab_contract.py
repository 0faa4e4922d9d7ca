"""The lab's contract, in the names the tests use for its facts (columns, ranges, categories)."""

from churn_lib import contract

LAB = contract.lab()
FEATURES = LAB.feature_names
NUMERIC = tuple(f.name for f in LAB.numeric)
INTEGER = tuple(f.name for f in LAB.features if f.type == contract.INTEGER)
CATEGORICAL = tuple(f.name for f in LAB.categorical)
CATEGORIES = {f.name: f.values for f in LAB.categorical}
RANGES = {f.name: f for f in LAB.numeric}  # .low, .high
TARGET = LAB.target.column
COLUMNS = LAB.columns
LAB_EXAMPLES = contract.LAB_EXAMPLES


def normalise_category(feature: str, value: str) -> str:
    return LAB.feature(feature).normalise(value)
