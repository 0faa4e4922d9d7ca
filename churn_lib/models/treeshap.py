"""Exact TreeSHAP contributions (and the log-odds) of a LightGBM model from tables made once per model, vectorised.

LightGBM's ``pred_contrib`` runs TreeSHAP's recursion for every row and tree
(O(leaves x depth^2) a tree). Here what depends only on the trees is done once
per model, in the manner of Fast TreeSHAP v2 (Yang, 2021), and a row costs a
few table look-ups per tree:

* **a leaf**: its value's share for each feature on its path depends on the row
  only through which of the path's m (unique) features the row satisfies (a
  feature split twice on the path is satisfied when both conditions are, as
  TreeSHAP merges them). For each of those 2^m patterns the shares have a closed
  form: feature i gets ``v (o_i - z_i) sum_k k!(m-k-1)!/m! e_k``, where ``o_j``
  is 1 when the row satisfies feature j's conditions, ``z_j`` the share of the
  training rows that do (the product of the path's count ratios: the cover
  LightGBM's own TreeSHAP uses), and ``e_k`` the k-th elementary symmetric sum of
  the other features' ``(o_j, z_j)`` products (a polynomial product);
* **a group** of leaves (a whole tree, or a subtree when the tree's table would
  be too big): its table holds, for each combination of what its leaves can
  see of the row, the sum of their shares over the group's features. What a
  leaf sees of feature f is whether the row satisfies the path's conditions
  on f, so per feature the combinations are the distinct vectors of those
  answers over the group's leaves (a few: an ordered threshold list cuts the
  line into intervals), and a group's row index is a mixed-radix number of
  per-feature digits;
* **a row**: each feature's value falls in a bin of that feature's thresholds
  over the whole model (numbers: ``searchsorted``, with LightGBM's missing and
  zero rules as bins of their own; categories: the code, anything else the
  "right" bin); a bin gives each group its digit (one table per feature),
  the digits add up to the row's row of every group's table, and the gathered
  rows are summed per feature (one matrix product).

The decisions follow LightGBM's ``NumericalDecision`` and ``CategoricalDecision``
(``include/LightGBM/tree.h``): left when ``x <= threshold``; a missing value
goes the default way for a ``NaN`` split, counts as 0 for a ``None`` split, and
for a ``Zero`` split 0 and missing go the default way; a category goes left when
its code (truncated) is in the split's set, missing and negative codes right;
and LightGBM's dense input drops values within ``1e-35f`` of zero (they become 0).
The base is the sum of each tree's expected value (its leaves weighted by their
training counts), the last column of ``pred_contrib``.

The same row indices give the log-odds (:meth:`Tables.raw`): each group's
table also holds the value of the leaf each combination reaches (0.0 when it
is another group's), added tree by tree from 0.0 as LightGBM's ``predict``
adds them, so the sum is the same float; it skips the shares, and costs about a
third of ``predict``'s time on depth-4 trees.

:func:`tables` builds the tables from ``Booster.dump_model()`` and refuses
(:class:`Unsupported`) what it does not reproduce: linear trees, more than one
tree per iteration, a table over its memory budget. The caller checks the
result against ``pred_contrib`` before trusting it (the lightgbm family does).
This module imports numpy only.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

#: Most rows of one group's table: a tree whose table would be bigger is split into subtrees.
GROUP_ROWS = 1024
#: Most rows of a single leaf's table (2^12: a path of 12 distinct features); beyond it, :class:`Unsupported`.
LEAF_ROWS = 1 << 12
#: Most numbers in one batch of leaf polynomials (see :func:`_leaf_tables`): 32 MiB.
_POLY_SIZE = 1 << 22
#: Most bytes of all tables together; beyond it, :class:`Unsupported`.
MAX_TABLE_BYTES = 256 << 20
#: Rows scored together: their temporaries stay in the cache.
BLOCK_ROWS = 1024
#: LightGBM's ``kZeroThreshold`` (``1e-35f``, a float: 1.0000000180025095e-35): its dense input treats
#: magnitudes up to it as 0.
ZERO_THRESHOLD = 1.0000000180025095e-35


class Unsupported(ValueError):
    """The model has a shape these tables do not reproduce (use LightGBM's own ``pred_contrib``)."""


class _Split:
    __slots__ = ("feature", "categorical", "threshold", "categories", "default_left", "missing", "left", "right",
                 "count")

    def __init__(self, d: dict[str, Any], left: Any, right: Any) -> None:
        self.feature = int(d["split_feature"])
        self.categorical = d["decision_type"] == "=="
        if self.categorical:
            self.categories = frozenset(int(c) for c in str(d["threshold"]).split("||"))
            self.threshold = math.nan
        elif d["decision_type"] == "<=":
            self.categories = frozenset()
            self.threshold = float(d["threshold"])
        else:
            raise Unsupported(f"unknown decision_type {d['decision_type']!r}")
        if d["missing_type"] not in ("None", "Zero", "NaN"):
            raise Unsupported(f"unknown missing_type {d['missing_type']!r}")
        self.missing = d["missing_type"]
        self.default_left = bool(d["default_left"])
        self.count = float(d["internal_count"])
        self.left, self.right = left, right


class _Leaf:
    __slots__ = ("value", "count", "path", "features", "shares", "answers")

    def __init__(self, d: dict[str, Any]) -> None:
        if "leaf_coeff" in d or "leaf_features" in d:
            raise Unsupported("linear trees (linear_tree=true)")
        self.value = float(d["leaf_value"])
        self.count = float(d.get("leaf_count", 0))
        self.path: list[tuple[_Split, bool]] = []  # (split, went left) from the root
        self.features: list[int] = []  # the path's features, each once (see _leaf_tables)
        self.shares = np.zeros((1, 0))  # its shares per pattern (see _leaf_tables)
        self.answers: dict[int, np.ndarray] = {}  # feature -> whether each of its bins satisfies the path


def _parse(d: dict[str, Any]) -> Any:
    """A tree of :class:`_Split` and :class:`_Leaf` from ``dump_model``'s ``tree_structure`` (iteratively:
    an unlimited tree may be deeper than Python's recursion limit)."""
    made: dict[int, Any] = {}
    stack = [(d, False)]
    while stack:
        node, expanded = stack.pop()
        if "leaf_value" in node:
            made[id(node)] = _Leaf(node)
        elif expanded:
            made[id(node)] = _Split(node, made[id(node["left_child"])], made[id(node["right_child"])])
        else:
            stack += [(node, True), (node["left_child"], False), (node["right_child"], False)]
    return made[id(d)]


def _leaves(root: Any) -> list[_Leaf]:
    """The tree's leaves, each with its path filled in."""
    out, stack = [], [(root, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Leaf):
            node.path = path
            out.append(node)
        else:
            stack += [(node.right, path + [(node, False)]), (node.left, path + [(node, True)])]
    return out


def _subtrees(root: Any) -> list[Any]:
    """Every node of the tree, the root first."""
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, _Split):
            stack += [node.right, node.left]
    return out


# --- per feature: the bins of its values and each split's decision per bin -------------------

class _Bins:
    """A feature's bins over the whole model: numbers by the sorted thresholds of its splits (plus a bin
    for missing and, when a ``Zero`` split needs it, one for 0); categories by code (plus "other")."""

    def __init__(self, splits: list[_Split]) -> None:
        self.categorical = splits[0].categorical
        if any(s.categorical != self.categorical for s in splits):
            raise Unsupported("a feature split both as a number and as a category")
        if self.categorical:
            self.n_codes = 1 + max(max(s.categories, default=0) for s in splits)
            self.size = self.n_codes + 1
        else:
            self.thresholds = np.unique(np.array([s.threshold for s in splits], dtype=np.float64))
            k = len(self.thresholds)
            self.nan_bin = k + 1
            self.zero_bin = k + 2 if any(s.missing == "Zero" for s in splits) else -1
            self.size = k + 3 if self.zero_bin >= 0 else k + 2

    def left(self, s: _Split) -> np.ndarray:
        """Whether split ``s`` sends each bin's values left."""
        if self.categorical:
            out = np.zeros(self.size, dtype=bool)
            out[[c for c in s.categories if c < self.n_codes]] = True
            return out  # the "other" bin (missing, negative, unknown codes) goes right
        rank = int(np.searchsorted(self.thresholds, s.threshold))
        out = np.arange(self.size) <= rank
        zero_left = s.default_left if s.missing == "Zero" else 0.0 <= s.threshold
        out[self.nan_bin] = s.default_left if s.missing in ("NaN", "Zero") else 0.0 <= s.threshold
        if self.zero_bin >= 0:
            out[self.zero_bin] = zero_left
        return out

    def of(self, x: np.ndarray) -> np.ndarray:
        """Each value's bin."""
        if self.categorical:
            valid = (x > -1.0) & (x < self.n_codes)  # false for NaN; (-1, 0) truncates to code 0, as in C
            return np.where(valid, x, self.n_codes).astype(np.intp)
        x = np.where(np.abs(x) <= ZERO_THRESHOLD, 0.0, x)
        b = np.searchsorted(self.thresholds, x)
        b[np.isnan(x)] = self.nan_bin
        if self.zero_bin >= 0:
            b[x == 0.0] = self.zero_bin
        return b


# --- a leaf's shares for every pattern, closed form -----------------------------------------------

def _shapley_weights(m: int) -> np.ndarray:
    """``k! (m-k-1)! / m!`` for k = 0 .. m-1."""
    return np.array([math.factorial(k) * math.factorial(m - k - 1) / math.factorial(m) for k in range(m)])


def _leaf_tables(leaves: list[_Leaf]) -> None:
    """Set each leaf's unique path features (first-seen order, :attr:`_Leaf.features`) and its shares
    (:attr:`_Leaf.shares`: ``shares[q, i]`` for the pattern ``q``, bit j set when the row satisfies
    feature j's conditions); leaves with paths of equal length are computed together."""
    by_m: dict[int, list[tuple[_Leaf, np.ndarray]]] = {}
    for leaf in leaves:
        zero: dict[int, float] = {}
        for split, went_left in leaf.path:
            child = split.left if went_left else split.right
            zero[split.feature] = zero.get(split.feature, 1.0) * (child.count / split.count)
        leaf.features = list(zero)
        by_m.setdefault(len(zero), []).append((leaf, np.array(list(zero.values()))))
    for m, same in by_m.items():
        step = max(1, _POLY_SIZE // ((1 << m) * m * m))
        for start in range(0, len(same), step):
            _leaf_batch(m, same[start:start + step])


def _leaf_batch(m: int, batch: list[tuple[_Leaf, np.ndarray]]) -> None:
    """:func:`_leaf_tables` for leaves whose paths have m features each, with their cover fractions."""
    q = np.arange(1 << m)
    o = ((q[:, None] >> np.arange(m)) & 1).astype(np.float64)  # (patterns, m)
    z = np.array([zz for _, zz in batch]).reshape(len(batch), m)  # (leaves, m)
    value = np.array([leaf.value for leaf, _ in batch])
    # poly[l, p, i, k]: the k-th elementary symmetric sum of the (o_j, z_j) products over j != i
    poly = np.zeros((len(batch), 1 << m, m, m))
    poly[..., 0] = 1.0
    eye = np.eye(m, dtype=bool)
    for j in range(m):
        zz = np.where(eye[j], 1.0, z[:, j:j + 1])[:, None, :]  # j == i leaves feature i's polynomial alone
        oo = np.where(eye[j], 0.0, o[:, j:j + 1])[None, :, :]
        poly[..., 1:] = poly[..., 1:] * zz[..., None] + poly[..., :-1] * oo[..., None]
        poly[..., 0] *= zz
    shares = value[:, None, None] * (o[None] - z[:, None, :]) * (poly @ _shapley_weights(m))
    for (leaf, _), table in zip(batch, shares):
        leaf.shares = table


# --- a group of leaves: one table over the combinations its leaves can see ----------------------

class _Group:
    """A group of leaves' table: ``table[c]`` the sum of their shares (over :attr:`features`) for the
    combination ``c``, whose digit for feature f is :attr:`digits` [f] [bin] times :attr:`strides` [f]."""

    def __init__(self, leaves: list[_Leaf], bins: dict[int, _Bins], left: dict[int, np.ndarray]) -> None:
        self.leaves = leaves
        seen: dict[int, list[int]] = {}  # feature -> the leaves (positions) whose path splits on it
        for k, leaf in enumerate(leaves):
            if not leaf.answers:
                for split, went_left in leaf.path:
                    answer = left[id(split)] == went_left
                    previous = leaf.answers.get(split.feature)
                    leaf.answers[split.feature] = answer if previous is None else previous & answer
            for f in leaf.answers:
                seen.setdefault(f, []).append(k)
        self.features = sorted(seen)
        self.digits: dict[int, np.ndarray] = {}
        self.patterns: dict[int, tuple[list[int], np.ndarray]] = {}  # feature -> (leaves, answers per digit)
        self.rows = 1
        for f in self.features:
            answers = np.column_stack([leaves[k].answers[f] for k in seen[f]])
            distinct, inverse = _distinct_rows(answers)
            self.digits[f] = inverse
            self.patterns[f] = (seen[f], distinct)
            self.rows *= len(distinct)

    def table(self) -> np.ndarray:
        """The shares for every combination, ``(rows, len(features))``; sets :attr:`strides`."""
        self.strides, stride = {}, 1
        for f in self.features:
            self.strides[f] = stride
            stride *= len(self.patterns[f][1])
        combo = np.arange(self.rows)
        answer: dict[tuple[int, int], np.ndarray] = {}  # (leaf, feature) -> its answer per combination
        for f in self.features:
            leaves, distinct = self.patterns[f]
            digit = (combo // self.strides[f]) % len(distinct)
            for col, k in enumerate(leaves):
                answer[(k, f)] = distinct[digit, col]
        column = {f: j for j, f in enumerate(self.features)}
        out = np.zeros((self.rows, len(self.features)))
        self.values = np.zeros(self.rows)  # the value of the leaf a combination reaches (0.0: none of these)
        for k, leaf in enumerate(self.leaves):
            q = np.zeros(self.rows, dtype=np.intp)
            for j, f in enumerate(leaf.features):
                q |= answer[(k, f)].astype(np.intp) << j
            out[:, [column[f] for f in leaf.features]] += leaf.shares[q]
            self.values[q == (1 << len(leaf.features)) - 1] = leaf.value  # every condition on its path holds
        return out


def _distinct_rows(answers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a boolean matrix and each row's position among them."""
    if answers.shape[1] <= 62:  # a row as the bits of one integer: a 1-d unique, much faster than axis=0
        keys = answers.astype(np.int64) @ (np.int64(1) << np.arange(answers.shape[1], dtype=np.int64))
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        return answers[first], inverse.reshape(-1)
    distinct, inverse = np.unique(answers, axis=0, return_inverse=True)
    return distinct, inverse.reshape(-1)


def _groups(root: Any, bins: dict[int, _Bins], left: dict[int, np.ndarray], group_rows: int) -> list[_Group]:
    """The tree's leaves in groups: the whole tree when its table has at most ``group_rows`` rows,
    else its subtrees, down to single leaves."""
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        group = _Group(_leaves_under(node), bins, left)
        if isinstance(node, _Leaf) or group.rows <= group_rows:
            if group.rows > LEAF_ROWS:
                raise Unsupported(f"a leaf's path has {len(group.features)} features (at most 12)")
            out.append(group)
        else:
            stack += [node.right, node.left]
    return out


def _leaves_under(node: Any) -> list[_Leaf]:
    return [n for n in _subtrees(node) if isinstance(n, _Leaf)]


# --- the model's tables and the row computation --------------------------------------------------

class Tables:
    """A model's contribution tables (made by :func:`tables`): :meth:`contributions` of float rows.

    Attributes
    ----------
    n_features : int
        Columns of the rows (LightGBM's ``max_feature_idx + 1``).
    base : float
        The model's expected log-odds (the sum of its trees' expected values).
    n_trees, n_groups : int
        Trees used and the groups their leaves form (a table each).
    nbytes : int
        Memory the tables take.
    """

    def __init__(self, n_features: int, base: float, n_trees: int, bins: dict[int, _Bins],
                 groups: list[_Group], terms: list[int | float]) -> None:
        self.n_features = n_features
        self.base = base
        self.n_trees = n_trees
        self.n_groups = len(groups)
        width = max((len(g.features) for g in groups), default=1)
        offsets = np.cumsum([0] + [g.rows for g in groups])
        table = np.zeros((int(offsets[-1]) or 1, width))
        values = np.zeros(len(table))
        slot_feature = np.full(len(groups) * width, -1)  # (group, slot) flattened -> its feature (-1: padding)
        lookup = {f: np.zeros((b.size, len(groups)), dtype=np.int32) for f, b in bins.items()}
        for g, group in enumerate(groups):
            t = group.table()
            table[offsets[g]:offsets[g + 1], :t.shape[1]] = t
            values[offsets[g]:offsets[g + 1]] = group.values
            slot_feature[g * width:g * width + len(group.features)] = group.features
            for f in group.features:
                lookup[f][:, g] = group.digits[f] * group.strides[f]
        self._width = width
        self._table = table
        self._rows_of = table.view(np.dtype((np.void, 8 * width))).reshape(-1)  # one look-up: a table row
        self._offsets = offsets[:-1].astype(np.int32)
        self._digits = [(f, bins[f], lookup[f]) for f in sorted(bins)]
        # the slots sorted by feature, and where each feature's run starts: a sum per feature is a reduceat
        used = np.flatnonzero(slot_feature >= 0)
        self._order = used[np.argsort(slot_feature[used], kind="stable")]
        ordered = slot_feature[self._order]
        self._starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(ordered) else ordered
        self._columns = ordered[self._starts]
        self._values = values
        self._terms = terms
        self.nbytes = table.nbytes + values.nbytes + sum(t.nbytes for _, _, t in self._digits)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_rows_of"}  # a view: pickled, it would be a copy

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._rows_of = self._table.view(np.dtype((np.void, 8 * self._width))).reshape(-1)

    def _index(self, rows: np.ndarray) -> np.ndarray:
        """Each row's row of every group's table, ``(rows, groups)``, as positions in the stacked tables."""
        index = np.broadcast_to(self._offsets, (len(rows), len(self._offsets))).copy()
        for f, bins, lookup in self._digits:
            index += np.take(lookup, bins.of(rows[:, f]), axis=0)
        return index

    def _block(self, rows: np.ndarray, out: np.ndarray) -> None:
        index = self._index(rows)
        shares = np.take(self._rows_of, index).view(np.float64).reshape(len(rows), -1)  # (rows, groups x width)
        sums = np.add.reduceat(np.take(shares, self._order, axis=1), self._starts, axis=1)
        if len(self._columns) == self.n_features:
            out[:] = sums
        else:
            out[:] = 0.0
            out[:, self._columns] = sums

    def contributions(self, rows: np.ndarray, *, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(base per row, matrix)``: each feature's TreeSHAP value for each row, in log-odds.

        Parameters
        ----------
        rows : ndarray of shape (n, n_features)
            Float rows as LightGBM takes them (categories as their codes, NaN missing).
        threads : int, optional
            Threads over blocks of rows (default: the CPUs this process may use).

        Returns
        -------
        tuple of ndarray
            The base (n,) and the contributions (n, n_features); ``base + matrix.sum(1)`` is the log-odds.
        """
        rows = self._checked(rows)
        out = np.empty((len(rows), self.n_features))
        _by_blocks(self._block, rows, out, threads)
        return np.full(len(rows), self.base), out

    def raw(self, rows: np.ndarray, *, threads: int | None = None) -> np.ndarray:
        """The log-odds of each row as LightGBM's ``predict(raw_score=True)`` sums it: its trees' leaf values,
        tree by tree from 0.0, so the same float (the lightgbm family checks that it is, bit for bit).

        Parameters
        ----------
        rows : ndarray of shape (n, n_features)
            Float rows as for :meth:`contributions`.
        threads : int, optional
            Threads over blocks of rows (default: the CPUs this process may use).

        Returns
        -------
        ndarray of shape (n,)
        """
        rows = self._checked(rows)
        out = np.empty(len(rows))
        _by_blocks(self._raw_block, rows, out, threads)
        return out

    def _raw_block(self, rows: np.ndarray, out: np.ndarray) -> None:
        leaf = np.take(self._values, self._index(rows).T)  # (groups, rows): a group's leaf values, contiguous
        out[:] = 0.0
        for term in self._terms:  # in tree order, as LightGBM adds them (a sum in another order could differ)
            if isinstance(term, int):
                out += leaf[term]  # 0.0 for a group the row's leaf is not in
            else:
                out += term

    def _checked(self, rows: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(f"rows must have {self.n_features} columns, got shape {rows.shape}")
        return rows


def _by_blocks(block: Any, rows: np.ndarray, out: np.ndarray, threads: int | None) -> None:
    """``block(rows[s:e], out[s:e])`` for blocks of :data:`BLOCK_ROWS` rows, on ``threads`` threads."""
    starts = range(0, len(rows), BLOCK_ROWS)
    threads = min(threads or _cpus(), len(starts)) or 1
    if threads == 1:
        for s in starts:
            block(rows[s:s + BLOCK_ROWS], out[s:s + BLOCK_ROWS])
    else:
        with ThreadPoolExecutor(threads) as pool:  # numpy releases the GIL in the heavy steps
            list(pool.map(lambda s: block(rows[s:s + BLOCK_ROWS], out[s:s + BLOCK_ROWS]), starts))


def probe_rows(t: Tables, *, n_rows: int = 512, seed: int = 0) -> np.ndarray:
    """Rows that reach every bin of every split feature (each threshold, just above and below it, 0,
    values within 1e-35 of 0, missing; every category code, negative, fractional and unknown codes),
    drawn at random per feature: the rows to check the tables against LightGBM's ``pred_contrib`` on."""
    rng = np.random.default_rng(seed)
    out = rng.uniform(-1e3, 1e3, size=(n_rows, t.n_features))
    for f, bins, _ in t._digits:
        if bins.categorical:
            codes = np.arange(bins.n_codes + 2, dtype=np.float64)
            values = np.r_[codes, -1.0, -0.5, 0.5, bins.n_codes - 0.5, np.nan, 2.0**31, 1e10]
        else:
            th = bins.thresholds
            values = np.r_[th, np.nextafter(th, np.inf), np.nextafter(th, -np.inf), th[0] - 1.0, th[-1] + 1.0,
                           0.0, -0.0, ZERO_THRESHOLD, -ZERO_THRESHOLD, np.nextafter(ZERO_THRESHOLD, 1.0), 1e-36,
                           np.nan, np.nan]
        out[:, f] = rng.choice(values, size=n_rows)
    return out


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover
        return max(1, os.cpu_count() or 1)


def tables(dump: dict[str, Any], *, group_rows: int = GROUP_ROWS) -> Tables:
    """The contribution tables of a LightGBM model.

    Parameters
    ----------
    dump : dict
        ``Booster.dump_model(num_iteration=...)`` of a binary (one tree per iteration) model.
    group_rows : int, default=GROUP_ROWS
        Most rows of a group's table (bigger: fewer, larger look-ups).

    Returns
    -------
    Tables

    Raises
    ------
    Unsupported
        Linear trees, several trees per iteration, a path of more than 12 features, tables over
        :data:`MAX_TABLE_BYTES`.
    """
    if int(dump.get("num_tree_per_iteration", 1)) != 1:
        raise Unsupported("more than one tree per iteration")
    n_features = int(dump["max_feature_idx"]) + 1
    roots = [_parse(t["tree_structure"]) for t in dump["tree_info"]]
    splits: dict[int, list[_Split]] = {}
    base = 0.0
    for root in roots:
        leaves = _leaves(root)
        if isinstance(root, _Leaf):
            base += root.value
            continue
        base += sum(leaf.value * (leaf.count / root.count) for leaf in leaves)
        for node in _subtrees(root):
            if isinstance(node, _Split):
                splits.setdefault(node.feature, []).append(node)
    bins = {f: _Bins(s) for f, s in splits.items()}
    left = {id(s): bins[f].left(s) for f, ss in splits.items() for s in ss}
    groups: list[_Group] = []
    terms: list[int | float] = []  # tree by tree: its groups' positions, or a one-leaf tree's value
    for root in roots:
        if isinstance(root, _Leaf):
            terms.append(root.value)
            continue
        made = _groups(root, bins, left, group_rows)
        terms += range(len(groups), len(groups) + len(made))
        groups += made
    _leaf_tables([leaf for g in groups for leaf in g.leaves])
    size = sum(g.rows for g in groups) * max((len(g.features) for g in groups), default=1) * 8
    if size > MAX_TABLE_BYTES:
        raise Unsupported(f"the tables would take {size / 2**20:.0f} MiB (at most {MAX_TABLE_BYTES >> 20})")
    return Tables(n_features, base, len(roots), bins, groups, terms)
