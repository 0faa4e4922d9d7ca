"""The one row validator: :func:`check_frame` checks and parses a frame's columns against a contract.

The quality stage counts each rule's violations per column against its
thresholds (:meth:`FrameCheck.counts`, :class:`ColumnCheck`), batch scoring
rejects rows with the reason in words (:meth:`FrameCheck.reasons`), and the
prepare stage writes the kept rows in the processed format
(:meth:`FrameCheck.clean_frame`). The rule names (``RULE_*``) are the quality
stage's check names.

Why not pandera for the frame rules: batch scoring needs, per row, the reason
it was rejected, at a million rows a second, and the quality stage needs each
rule's count per column against a threshold. Both come straight out of the
boolean masks below (a few numpy passes per column); a schema library would
re-derive the same masks and then report them in a shape we would convert back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .spec import (BOOLEAN, CATEGORICAL, FLOAT, INTEGER, MAX_TEXT_LENGTH, Contract, Feature, Target,
                   _label_matcher, _text, number_text)

#: Rule names (the quality stage's check names).
RULE_TYPE = "numeric_type"
RULE_RANGE = "range"
RULE_CATEGORY = "allowed_categories"
RULE_TARGET = "target_values"
RULE_ID = "id_values"


@dataclass
class ColumnCheck:
    """What :func:`check_frame` found in one column.

    ``values`` is the parsed column: float64 (NaN where missing or invalid) for
    numbers and booleans (0/1), object (normalised text, None where missing)
    for categories and ids, int8 (1, 0; -1 missing or invalid) for the target.
    ``violations`` maps a rule to the mask of rows breaking it, ``what`` to the
    rule in words; ``changes`` counts what cleaning changed.
    """

    name: str
    role: str  # feature | target | id
    feature: Feature | None
    raw: pd.Series = field(repr=False)
    values: np.ndarray = field(repr=False)
    missing: np.ndarray = field(repr=False)
    violations: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    what: dict[str, str] = field(default_factory=dict)
    changes: dict[str, int] = field(default_factory=dict)
    #: a category column's ``(code per row, value per code)``: ``values == per_code[codes]``
    coded: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def categorical(self, keep: np.ndarray | None = None) -> pd.Categorical:
        """The rows ``keep`` (default all) of a category column as ``pandas.Categorical(values)``, made from
        :attr:`coded` when set: the rows' codes are mapped, not their values hashed again."""
        if self.coded is None:
            return pd.Categorical(self.values if keep is None else self.values[keep])
        codes, per_code = self.coded
        codes = codes if keep is None else codes[keep]
        present = np.bincount(codes, minlength=len(per_code)) > 0
        categories = sorted({v for v in per_code[present].tolist() if v is not None})
        position = {v: k for k, v in enumerate(categories)}
        mapped = np.array([position.get(v, -1) for v in per_code.tolist()], dtype=np.int64)  # absent: unused
        return pd.Categorical.from_codes(mapped[codes], categories=categories)

    @property
    def invalid(self) -> np.ndarray:
        """Rows breaking any rule of this column (missing values not counted)."""
        out = np.zeros(len(self.values), dtype=bool)
        for mask in self.violations.values():
            out |= mask
        return out

    @property
    def missing_is_invalid(self) -> bool:
        """A missing value makes the row unusable (drop features, the target, ids)."""
        return self.role != "feature" or not self.feature.imputed

    def messages(self, idx: np.ndarray) -> list[list[str]]:
        """Per row in ``idx``: what is wrong with this column's value, in words."""
        out: list[list[str]] = [[] for _ in range(len(idx))]
        if not len(idx):
            return out
        raw = self.raw.to_numpy()[idx]
        miss = self.missing[idx] & self.missing_is_invalid
        for k in np.flatnonzero(miss):
            out[k].append(f"{self.name} is missing")
        for rule, mask in self.violations.items():
            hit = mask[idx]
            for k in np.flatnonzero(hit):
                out[k].append(_message(self, rule, raw[k]))
        return out


def _value_text(v: Any) -> str:
    if isinstance(v, float):
        return format(v, ".10g")
    if isinstance(v, (int, np.integer)):
        return str(v)
    return repr(str(v)) if not isinstance(v, str) else repr(v)


def _message(col: ColumnCheck, rule: str, raw: Any) -> str:
    f = col.feature
    shown = _value_text(raw)
    if rule == RULE_TYPE:
        if f is not None and f.type == BOOLEAN:
            return f"{col.name}={shown} is not a boolean ({'/'.join(f.true_values[:3])} or {'/'.join(f.false_values[:3])})"
        try:
            x = float(raw)
            if math.isfinite(x) and f is not None and f.type == INTEGER and not x.is_integer():
                return f"{col.name}={format(x, '.10g')} is not a whole number"
        except (TypeError, ValueError):
            pass
        return f"{col.name}={shown} is not a number"
    if rule == RULE_RANGE:
        try:
            shown = format(float(raw), ".10g")
        except (TypeError, ValueError):
            pass
        return f"{col.name}={shown} is outside {f.range_text()}"
    if rule == RULE_CATEGORY:
        return f"{col.name}={shown} is not one of {', '.join(f.values)}"
    if rule == RULE_TARGET:
        return f"{col.name}={shown} is not a target label ({col.what.get('labels', '')})"
    if rule == RULE_ID:
        return f"{col.name}={shown[:40]} is longer than {MAX_TEXT_LENGTH} characters"
    return f"{col.name}={shown}: {col.what.get(rule, rule)}"


@dataclass
class FrameCheck:
    """The validator's result for one frame: a :class:`ColumnCheck` per contract column present."""

    contract: Contract
    n_rows: int
    columns: dict[str, ColumnCheck]
    missing_columns: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()

    def bad_rows(self) -> np.ndarray:
        """Rows that cannot be used: a violation anywhere, or a missing value where missing is not allowed."""
        bad = np.zeros(self.n_rows, dtype=bool)
        for col in self.columns.values():
            bad |= col.invalid
            if col.missing_is_invalid:
                bad |= col.missing
        return bad

    def reasons(self, idx: np.ndarray) -> list[str]:
        """Per row in ``idx``: every broken rule, joined by ``"; "`` (empty for a valid row)."""
        per_row: list[list[str]] = [[] for _ in range(len(idx))]
        for col in self.columns.values():
            for k, msgs in enumerate(col.messages(idx)):
                per_row[k].extend(msgs)
        return ["; ".join(m) for m in per_row]

    def counts(self) -> dict[str, int]:
        """Rows per ``"column: rule"`` (missing counted where it makes a row unusable)."""
        out: dict[str, int] = {}
        for col in self.columns.values():
            if col.missing_is_invalid and col.missing.any():
                out[f"{col.name}: missing"] = int(col.missing.sum())
            for rule, mask in col.violations.items():
                k = int(mask.sum())
                if k:
                    out[f"{col.name}: {_RULE_WORDS.get(rule, rule)}"] = k
        return out

    def features(self, keep: np.ndarray | None = None) -> dict[str, Any]:
        """Feature -> parsed column for the rows ``keep`` (all rows by default), as the scorer takes them.

        Numbers and booleans are float64 (NaN where missing); categories are a
        ``pandas.Categorical`` (missing as NaN).
        """
        out: dict[str, Any] = {}
        for f in self.contract.features:
            col = self.columns[f.name]
            values = col.values if keep is None else col.values[keep]
            if f.type == CATEGORICAL:
                out[f.name] = col.categorical(keep)
            else:
                out[f.name] = values
        return out

    def clean_frame(self, keep: np.ndarray) -> pd.DataFrame:
        """The kept rows in the processed format: ids as text, integers as integers (nullable when
        missing), booleans 0/1, categories as text, the target 0/1; in the contract's column order."""
        data: dict[str, Any] = {}
        for name in self.contract.id:
            data[name] = pd.Series(self.columns[name].values[keep], dtype="str")
        for f in self.contract.features:
            v = self.columns[f.name].values[keep]
            if f.type == FLOAT:
                data[f.name] = pd.Series(v, dtype="float64")
            elif f.type in (INTEGER, BOOLEAN):
                s = pd.Series(v, dtype="float64")
                data[f.name] = s.astype("int64") if not s.isna().any() else s.astype("Int64")
            else:
                data[f.name] = pd.Series(v, dtype="str")
        data[self.contract.target.column] = pd.Series(self.columns[self.contract.target.column].values[keep],
                                                      dtype="int64")
        return pd.DataFrame(data)


_RULE_WORDS = {RULE_TYPE: "not a number", RULE_RANGE: "out of range", RULE_CATEGORY: "unknown category",
               RULE_TARGET: "unknown target label", RULE_ID: "bad id"}


def check_frame(frame: pd.DataFrame, contract: Contract, *, target: bool = True, ids: bool = True,
                features: Sequence[str] | None = None, clip: bool = False) -> FrameCheck:
    """Validate and parse the contract's columns of ``frame``: the one implementation of the row rules.

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns as read (text, numbers or ``category``; missing as NaN or as the contract's tokens).
    contract : Contract
    target, ids : bool, default=True
        Check the target and id columns too (batch scoring checks features only).
    features : sequence of str, optional
        Only these features (default: all).
    clip : bool, default=False
        Apply the contract's cleaning clips before the range check (the prepare
        stage does; the API and batch scoring refuse a value outside the range).

    Returns
    -------
    FrameCheck

    Examples
    --------
    >>> frame = pd.DataFrame({"tenure_months": [6, 250], "num_complaints": [3, 0],
    ...     "avg_session_minutes": [12.5, 1.0], "plan_type": ["basic", "Gold"], "region": [" na", "EU"]})
    >>> from churn_lib.contract import lab
    >>> check = check_frame(frame, lab(), target=False)
    >>> check.bad_rows().tolist(), check.reasons(np.array([1]))
    ([False, True], ["tenure_months=250 is outside 0..200; plan_type='Gold' is not one of basic, premium"])
    """
    n = len(frame)
    wanted = [*(contract.id if ids else ()), *(contract.feature_names if features is None else features),
              *((contract.target.column,) if target else ())]
    missing_cols = tuple(c for c in wanted if c not in frame.columns)
    extra = tuple(c for c in frame.columns if c not in contract.known_columns)
    cols: dict[str, ColumnCheck] = {}
    for name in wanted:
        if name in missing_cols:
            continue
        s = frame[name]
        if name == contract.target.column:
            cols[name] = _check_target(s, contract.target)
        elif name in contract.id:
            cols[name] = _check_id(s, name)
        else:
            f = contract.feature(name)
            cols[name] = _check_categorical(s, f) if f.type == CATEGORICAL else _check_number(s, f, clip=clip)
    return FrameCheck(contract, n, cols, missing_cols, extra)


def _factorized(s: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Codes and uniques of a column (-1 for missing); a ``category`` column is mapped through its categories."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.codes.to_numpy(), list(s.cat.categories)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return codes, uniques.to_numpy(dtype=object).tolist()  # list(uniques) steps through a str column in Python


def _check_number(s: pd.Series, f: Feature, *, clip: bool) -> ColumnCheck:
    """Parse a number or boolean column, then apply the type rule, the cleaning clips and the range rule."""
    v, missing, unparsed = _parse_numbers(s, f)
    v[unparsed | missing] = np.nan
    if f.type == BOOLEAN:
        unparsed |= ~missing & np.isfinite(v) & ~np.isin(v, (0.0, 1.0))
    elif f.type == INTEGER:
        with np.errstate(invalid="ignore"):
            unparsed |= np.isfinite(v) & (v != np.round(v))
    v[unparsed] = np.nan
    violations: dict[str, np.ndarray] = {RULE_TYPE: unparsed}
    changes = {}
    if clip and f.clip_low is not None:
        below = v < f.clip_low
        changes[f"{f.name} clipped to {number_text(f.clip_low)}"] = int(below.sum())
        v[below] = f.clip_low
    if clip and f.clip_high is not None:
        above = v > f.clip_high
        changes[f"{f.name} clipped to {number_text(f.clip_high)}"] = int(above.sum())
        v[above] = f.clip_high
    if f.type != BOOLEAN:
        with np.errstate(invalid="ignore"):
            out = np.zeros(len(s), dtype=bool)
            if f.low is not None:
                out |= v < f.low
            if f.high is not None:
                out |= v > f.high
        violations[RULE_RANGE] = out
        v[out] = np.nan
    what = {RULE_TYPE: "values that are not " + ("booleans" if f.type == BOOLEAN else "whole numbers"
                                                 if f.type == INTEGER else "numbers"),
            RULE_RANGE: f"values outside [{f.range_text()}]" if f.low is not None and f.high is not None
            else f"values outside {f.range_text()}"}
    return ColumnCheck(f.name, "feature", f, s, v, missing, violations, what, changes)


def _parse_numbers(s: pd.Series, f: Feature) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The column as float64 (a copy), its missing mask and the mask of values that are no number."""
    if pd.api.types.is_bool_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan).copy()
        return v, np.isnan(v), np.zeros(len(s), dtype=bool)
    if pd.api.types.is_numeric_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan).copy()
        return v, np.isnan(v), np.isinf(v)
    # Few distinct spellings in most columns: parse each once.
    tokens = {t.strip() for t in f.missing}
    codes, uniques = _factorized(s)
    texts = np.array([str(u).strip() for u in uniques] + [""], dtype=object)  # "": the missing code, -1
    miss_u = np.zeros(len(texts), dtype=bool)
    for token in tokens:  # a vectorised comparison per token (a column has one or a few)
        miss_u |= texts == token
    miss_u[-1] = True
    if f.type == BOOLEAN:
        parsed = [f.boolean(t) for t in texts[:-1].tolist()]
        val_u = np.array([np.nan if p is None else float(p) for p in parsed] + [np.nan])
    else:
        val_u = np.append(np.asarray(pd.to_numeric(texts[:-1], errors="coerce"), dtype=np.float64), np.nan)
    v = val_u[codes].copy()
    missing = miss_u[codes]
    return v, missing, ~missing & ~np.isfinite(v)


def _check_categorical(s: pd.Series, f: Feature) -> ColumnCheck:
    tokens = {t.strip() for t in f.missing}
    codes, uniques = _factorized(s)
    raw_u = [str(u) for u in uniques]
    norm_u = [f.normalise(u) for u in raw_u]
    miss_u = np.array([r.strip() in tokens for r in raw_u] + [True])
    missing = miss_u[codes]
    changed_u = np.array([a != b for a, b in zip(raw_u, norm_u)] + [False])
    allowed = set(f.values)
    unknown_u = np.array([(not m) and (f.unseen == "reject") and (v not in allowed) and len(v) <= MAX_TEXT_LENGTH
                          for v, m in zip(norm_u, miss_u[:-1])] + [False])
    too_long_u = np.array([(not m) and len(v) > MAX_TEXT_LENGTH for v, m in zip(norm_u, miss_u[:-1])] + [False])
    values_u = np.array(norm_u + [None], dtype=object)
    values_u[np.flatnonzero(miss_u | unknown_u | too_long_u)] = None
    index = np.where(codes < 0, len(raw_u), codes).astype(np.intp, copy=False)  # missing: the last slot
    values = values_u[index]
    unknown = (unknown_u | too_long_u)[index]
    rows_u = np.bincount(index, minlength=len(values_u))  # rows per distinct value: one pass, not one per rule
    seen = sorted({norm_u[i] for i in np.flatnonzero(unknown_u & (rows_u > 0))})
    what = {RULE_CATEGORY: f"values outside {list(f.values)}" + (f" (seen: {seen[:5]})" if seen else "")}
    changes = {f"{f.name} normalised": int(rows_u[changed_u].sum()) if raw_u else 0}
    return ColumnCheck(f.name, "feature", f, s, values, missing, {RULE_CATEGORY: unknown}, what, changes,
                       coded=(index, values_u))


def _check_target(s: pd.Series, target: Target) -> ColumnCheck:
    codes, uniques = _factorized(s)
    texts = [_text(u).strip() if not isinstance(u, str) else u.strip() for u in uniques]
    pos, neg = _label_matcher(target.positive), _label_matcher(target.negative)
    label_u = np.array([1 if pos(t) else 0 if neg(t) else -2 for t in texts] + [-1], dtype=np.int8)
    miss_u = np.array([t == "" for t in texts] + [True])
    label_u[miss_u] = -1
    labels = label_u[codes]
    missing = labels == -1
    bad = labels == -2
    labels = np.where(bad, -1, labels).astype(np.int8)
    seen = sorted({texts[i] for i in np.unique(codes[bad])})
    what = {RULE_TARGET: f"values outside {list(target.positive) + list(target.negative)}"
                         + (f" (seen: {seen[:5]})" if seen else ""),
            "labels": target.label_text()}
    return ColumnCheck(target.column, "target", None, s, labels, missing, {RULE_TARGET: bad}, what)


def _check_id(s: pd.Series, name: str) -> ColumnCheck:
    codes, uniques = _factorized(s)
    texts = [_text(u).strip() if not isinstance(u, str) else u.strip() for u in uniques]
    miss_u = np.array([t == "" for t in texts] + [True])
    long_u = np.array([len(t) > MAX_TEXT_LENGTH for t in texts] + [False])
    values = np.array(texts + [None], dtype=object)[codes]
    missing = miss_u[codes]
    bad = long_u[codes]
    values[missing | bad] = None
    return ColumnCheck(name, "id", None, s, values, missing, {RULE_ID: bad},
                       {RULE_ID: f"ids longer than {MAX_TEXT_LENGTH} characters"})
