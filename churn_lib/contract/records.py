"""The one rule for a prediction log record and for a key, written once as data.

A line of the prediction log counts as a record when the :class:`Rule` of the
contract it was served under says so. The rule is a list of :class:`Field`
checks, in the order they are judged, each naming the reason a line is
skipped when it fails; three readers are derived from it, not written by hand:

* :meth:`Rule.judge`: the Python check of one line (the dict reader, and the
  reason of every line the fast decoder refuses);
* :meth:`Rule.struct`: the msgspec struct the fast columnar reader decodes
  chunks into (types, ranges and lengths as ``msgspec.Meta``);
* :meth:`Rule.sql`: the DuckDB predicates over ``read_json_objects``, which
  look at each value's JSON kind before casting it.

What a line must be, in the order it is judged (the first failure is its reason):

* ``truncated``: the last line of a file without its newline (a write in
  progress); judged by the readers, not here. A line of whitespace only is no
  line at all: it is neither counted nor skipped (as JSON Lines readers do),
  and a byte order mark (:data:`BOM`) that starts a file is no part of its first line.
* ``malformed``: one strict JSON value (RFC 8259, UTF-8) of at most
  :data:`MAX_LINE_BYTES` bytes (surrounding whitespace aside), with no more
  than :data:`MAX_CONTAINERS` objects and arrays. DuckDB's parser also takes
  NaN, Infinity, trailing commas and vertical tabs: those are looked for on the
  line's text with its strings blanked out (:data:`STRING_PATTERN`,
  :data:`LENIENT_PATTERN`), the same regular expressions in Python and SQL.
* ``not an object``: the value is not a JSON object.
* ``no features``: ``features`` is absent or not an object.
* ``bad feature value``: each of the contract's features is present; a number
  feature (integer, float) is a finite JSON number (not ``true``), a boolean
  is ``true``/``false`` (not 1/0), a category is a text of 1 to
  :data:`churn_lib.contract.MAX_TEXT_LENGTH` characters (not a number); null
  only where the model fills the value in. Ranges and allowed categories are
  not checked: the API checks them on the way in, and drift is there to see
  values move.
* ``no timestamp``: ``ts`` is a finite JSON number.
* ``bad probability``: ``probability`` is a JSON number in [0, 1].
* ``no model``: ``model_version`` and ``version`` are texts or absent, and at
  least one is a text.
* ``bad key``: ``request_id``, when given, is a text of 1 to
  :data:`MAX_KEY_LENGTH` characters; ``id``, when given, an object whose
  values for the contract's id columns are such texts (or null).
* ``bad role``: ``role``, when given, is one of :data:`ROLES`. Absent means
  the champion (the model the answer came from: the lab's lines have no role);
  ``"challenger"`` marks a challenger's shadow answer to the champion's request
  of the same ``request_id``, which was never returned.

Other keys are ignored, at the top and in ``features``. One difference is
left: a key given twice in one object is read as its last value by msgspec
and Python, as its first by DuckDB (JSON leaves this open; no writer of ours
repeats a key).

:data:`MAX_KEY_LENGTH` is also the longest key the API and the outcome log
accept: a request id or a customer id of 128 characters, everywhere.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Sequence

import msgspec

from . import BOOLEAN, CATEGORICAL, MAX_TEXT_LENGTH, Contract

#: Longest key (a ``request_id`` or a customer id): the API, the outcome log and the log reader's limit.
MAX_KEY_LENGTH = MAX_TEXT_LENGTH
#: Longest line (JSON text, surrounding whitespace aside); a longer one is malformed. The API's lines are ~300
#: bytes; the tail reader drops a longer line without holding it.
MAX_LINE_BYTES = 1 << 20
#: Most objects and arrays in one line (a record has three or four): deeper input is refused before any parser
#: recurses into it.
MAX_CONTAINERS = 64
#: The bytes a line may be surrounded by (Python's ``bytes.strip``, DuckDB's line reader).
WHITESPACE = b" \t\n\r\x0b\x0c"
#: A UTF-8 byte order mark: at the very start of a file it is no part of the first line (as DuckDB reads it).
BOM = b"\xef\xbb\xbf"

#: A JSON string token (blanked out before the lexical checks).
STRING_PATTERN = r'"(?:[^"\\]|\\.)*"'
#: What DuckDB's parser accepts outside strings and strict JSON does not: NaN, Inf(inity), trailing commas,
#: vertical tab and form feed.
LENIENT_PATTERN = r"[nN][aA][nN]|[iI][nN][fF]|,[ \t\r\n\x0b\x0c]*[\]}]|[\x0b\x0c]"

TRUNCATED = "truncated"
MALFORMED = "malformed"
NOT_OBJECT = "not an object"
NO_FEATURES = "no features"
BAD_FEATURE = "bad feature value"
NO_TIMESTAMP = "no timestamp"
BAD_PROBABILITY = "bad probability"
NO_MODEL = "no model"
BAD_KEY = "bad key"
BAD_ROLE = "bad role"
#: Every reason a line is skipped, in the order lines are judged.
REASONS = (TRUNCATED, MALFORMED, NOT_OBJECT, NO_FEATURES, BAD_FEATURE, NO_TIMESTAMP, BAD_PROBABILITY, NO_MODEL,
           BAD_KEY, BAD_ROLE)

#: Who answered a logged request: the champion (the served model; a line without ``role``) or a challenger
#: (in shadow, never returned).
CHAMPION, CHALLENGER = "champion", "challenger"
ROLES = (CHAMPION, CHALLENGER)

NUMBER, TEXT, FLAG, OBJECT = "number", "text", "boolean", "object"
#: The JSON types DuckDB gives a number.
_SQL_NUMBERS = ("BIGINT", "UBIGINT", "DOUBLE", "HUGEINT")
_SQL_TYPE = {TEXT: ("VARCHAR",), FLAG: ("BOOLEAN",), OBJECT: ("OBJECT",), NUMBER: _SQL_NUMBERS}

_STRING = re.compile(STRING_PATTERN.encode())
_LENIENT = re.compile(LENIENT_PATTERN.encode())


@dataclass(frozen=True)
class Field:
    """One value of a record: where it is, its JSON kind, its limits, and the reason a line fails it.

    ``path`` is ``(key,)`` at the top of the record or ``(parent, key)`` inside
    an object field (``features``, ``id``). ``required``: absent fails;
    ``nullable``: JSON null passes. ``values``: the texts allowed (empty: any).
    """

    path: tuple[str, ...]
    kind: str
    reason: str
    required: bool = True
    nullable: bool = False
    low: float | None = None
    high: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class OneOf:
    """At least one of the top-level text fields ``names`` is given (else ``reason``)."""

    names: tuple[str, ...]
    reason: str


def _key(path: tuple[str, ...]) -> Field:
    return Field(path, TEXT, BAD_KEY, required=False, nullable=True, min_length=1, max_length=MAX_KEY_LENGTH)


class Rule:
    """The rule of one contract's log records: :attr:`checks` in judging order, and what derives from them.

    Build with :func:`rule` (cached per contract); the constructor only derives the checks.
    """

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        features = [Field(("features",), OBJECT, NO_FEATURES)]
        for f in contract.features:
            kind = {CATEGORICAL: TEXT, BOOLEAN: FLAG}.get(f.type, NUMBER)
            length = {"min_length": 1, "max_length": MAX_TEXT_LENGTH} if kind == TEXT else {}
            features.append(Field(("features", f.name), kind, BAD_FEATURE, nullable=f.imputed, **length))
        model = [Field((name,), TEXT, NO_MODEL, required=False, nullable=True) for name in ("model_version", "version")]
        keys = [_key(("request_id",))]
        if contract.id:
            keys.append(Field(("id",), OBJECT, BAD_KEY, required=False, nullable=True))
            keys += [_key(("id", name)) for name in contract.id]
        self.checks: tuple[Field | OneOf, ...] = (
            *features, Field(("ts",), NUMBER, NO_TIMESTAMP), Field(("probability",), NUMBER, BAD_PROBABILITY,
                                                                   low=0.0, high=1.0),
            *model, OneOf(("model_version", "version"), NO_MODEL), *keys,
            Field(("role",), TEXT, BAD_ROLE, required=False, values=ROLES))
        self.fields = tuple(c for c in self.checks if isinstance(c, Field))
        self.objects = tuple(f.path[0] for f in self.fields if f.kind == OBJECT)
        top = [f.path[0] for f in self.fields if len(f.path) == 1]
        self._outline = msgspec.defstruct("_Outline", [(f"k{i}", msgspec.Raw, msgspec.UNSET) for i in range(len(top))],
                                          rename=dict(zip((f"k{i}" for i in range(len(top))), top)))
        self._top = top
        self._inner = {parent: self._raw_struct([f.path[1] for f in self.fields if f.path[:1] == (parent,)
                                                 and len(f.path) == 2]) for parent in self.objects}

    @staticmethod
    def _raw_struct(names: list[str]) -> Any:
        attrs = [f"k{i}" for i in range(len(names))]
        return msgspec.defstruct("_Inner", [(a, msgspec.Raw, msgspec.UNSET) for a in attrs],
                                 rename=dict(zip(attrs, names)))

    # --- the Python check ---------------------------------------------------------------------

    def judge(self, line: bytes) -> str | None:
        """Why ``line`` (one log line, its newline aside) is not a record, or None when it is one.

        A blank line gives None too: see :func:`blank`.
        """
        text = line.strip(WHITESPACE)
        if not text:
            return None
        if not lexically_json(text):
            return MALFORMED
        try:
            outline = msgspec.json.decode(text, type=self._outline)
        except msgspec.DecodeError:
            if text[:1] == b"{":
                return MALFORMED
            try:
                msgspec.json.decode(text, type=msgspec.Raw)
            except msgspec.DecodeError:
                return MALFORMED
            return NOT_OBJECT
        top = {name: getattr(outline, f"k{i}") for i, name in enumerate(self._top)}
        inner: dict[str, dict[str, Any]] = {}
        values: dict[tuple[str, ...], Any] = {}
        for check in self.checks:
            if isinstance(check, OneOf):
                if not any(isinstance(values.get((n,)), str) for n in check.names):
                    return check.reason
                continue
            raw = top[check.path[0]] if len(check.path) == 1 else inner.get(check.path[0], {}).get(check.path[1],
                                                                                                    msgspec.UNSET)
            ok, value = self._value(check, raw)
            if not ok:
                return check.reason
            values[check.path] = value
            if check.kind == OBJECT and value is not None:
                inner[check.path[0]] = value
        return None

    def _value(self, field: Field, raw: Any) -> tuple[bool, Any]:
        """(passes?, the value) of one field given its raw JSON (UNSET when absent)."""
        if raw is msgspec.UNSET:
            return not field.required, None
        if bytes(raw) == b"null":
            return field.nullable, None
        if field.kind == OBJECT:
            struct = self._inner[field.path[0]]
            try:
                found = msgspec.json.decode(raw, type=struct)
            except msgspec.DecodeError:
                return False, None
            names = [f.path[1] for f in self.fields if f.path[:1] == field.path and len(f.path) == 2]
            return True, {n: getattr(found, f"k{i}") for i, n in enumerate(names)}
        try:
            value = msgspec.json.decode(raw)
        except msgspec.DecodeError:  # a number beyond float range, a lone surrogate
            return False, None
        return _fits(field, value), value

    # --- the msgspec struct -------------------------------------------------------------------

    def struct(self) -> Any:
        """The msgspec struct of a record: one attribute per field (``f<k>`` in ``features``, ``i<k>`` in ``id``).

        Decoding a line into it succeeds exactly when the line passes every
        field check; :class:`OneOf` is left to the caller (both names may be None).
        """
        inner = {}
        for parent in self.objects:
            children = [f for f in self.fields if f.path[:1] == (parent,) and len(f.path) == 2]
            prefix = parent[0]
            inner[parent] = msgspec.defstruct(
                f"_{parent.title()}", [(f"{prefix}{k}", *_annotation(f)) for k, f in enumerate(children)],
                rename={f"{prefix}{k}": f.path[1] for k, f in enumerate(children)}, gc=False)
        fields = []
        for f in self.fields:
            if len(f.path) != 1:
                continue
            if f.kind == OBJECT:
                kind: Any = inner[f.path[0]] | None if f.nullable else inner[f.path[0]]
                fields.append((f.path[0], kind) if f.required else (f.path[0], kind, None))
            else:
                fields.append((f.path[0], *_annotation(f)))
        return msgspec.defstruct("_Record", fields, gc=False)

    # --- the SQL predicates -------------------------------------------------------------------

    def sql(self, source: str, extra: Sequence[tuple[str, ...]] = ()) -> str:
        """A ``WITH`` clause whose relation ``judged`` has every non-blank line of ``source`` with ``reason``.

        ``source`` is a relation with one JSON column ``json`` per line (NULL for
        a line DuckDB cannot parse), as ``read_json_objects(..., ignore_errors=true)``
        gives; its other columns (``filename``) are passed on. ``judged`` has
        ``reason`` (NULL for a record), ``model``, ``ts``, ``p``, the line's
        ``text``, and the value ``v<k>`` of every field (JSON), in :attr:`fields`
        order, then of each path of ``extra`` (values no check reads, such as a
        line's ``threshold``, taken in the same parse); :meth:`sql_value` names
        them, :func:`sql_number`, :func:`sql_flag` and :func:`sql_text` read them.

        Each line is parsed once more after DuckDB's reader: one ``json_extract``
        of every path. A value's JSON kind is read from its first character
        (``y<k>``), a number is cast once (``d<k>``), a text is unquoted only
        where it is read (``s<k>``), and one without a backslash is as long as
        its quoted form less two characters (``n<k>``). The lexical checks run
        their regular expressions on the line's text with its strings blanked
        out only where cheap searches of the raw text find something they
        could match (a case-insensitive ``nan`` or ``inf``, a comma before a
        closing bracket, a vertical tab or form feed; more than
        :data:`MAX_CONTAINERS` brackets). Columns no one selects are not computed.
        """
        paths = [f.path for f in self.fields] + [tuple(p) for p in extra]
        where = {p: f"v{k}" for k, p in reversed(list(enumerate(paths)))}
        cases = []
        for check in self.checks:
            if isinstance(check, OneOf):
                given = " OR ".join(f"y{where[(n,)][1:]} = 'VARCHAR'" for n in check.names)
                cases.append(f"WHEN NOT coalesce({given}, false) THEN {_sql_text(check.reason)}")
            else:
                cases.append(f"WHEN NOT ({_sql_check(check, where[check.path])}) THEN {_sql_text(check.reason)}")
        mv, ver = where[("model_version",)][1:], where[("version",)][1:]
        # a value at a top-level path means the line is an object: json_type only where the first is absent
        first = next(where[f.path] for f in self.fields if len(f.path) == 1)
        lenient, deep = _sql_lexical()
        extract = f"json_extract(j, [{', '.join(_sql_text(_path(*p)) for p in paths)}])"
        return f"""
        WITH lines AS (
            SELECT * EXCLUDE (json), json AS j, json::VARCHAR AS text FROM {source}),
        vals AS (
            SELECT *, {', '.join(f'e[{k + 1}] AS v{k}' for k in range(len(paths)))}
            FROM (SELECT *, {extract} AS e FROM lines)),
        kinds AS (
            SELECT *, {', '.join(f'{_sql_kind(f"v{k}")} AS y{k}' for k in range(len(paths)))} FROM vals),
        typed AS (
            SELECT *, {', '.join(f'{_sql_cast(k)}' for k in range(len(paths)))} FROM kinds),
        judged AS (
            SELECT *, CASE
                WHEN j IS NULL OR strlen(text) > {MAX_LINE_BYTES} THEN {_sql_text(MALFORMED)}
                WHEN {lenient} THEN {_sql_text(MALFORMED)}
                WHEN {deep} THEN {_sql_text(MALFORMED)}
                WHEN CASE WHEN {first} IS NULL THEN json_type(j) <> 'OBJECT' ELSE false END
                    THEN {_sql_text(NOT_OBJECT)}
                {' '.join(cases)}
            END AS reason,
            CASE WHEN y{mv} = 'VARCHAR' THEN s{mv} ELSE s{ver} END AS model,
            {sql_number(where[("ts",)])} AS ts, {sql_number(where[("probability",)])} AS p
            FROM typed)"""

    def sql_value(self, path: tuple[str, ...], extra: Sequence[tuple[str, ...]] = ()) -> str:
        """The column of :meth:`sql`'s ``judged`` (given the same ``extra``) holding the JSON value at ``path``."""
        paths = [f.path for f in self.fields] + [tuple(p) for p in extra]
        return f"v{paths.index(tuple(path))}"


def _annotation(f: Field) -> tuple[Any, ...]:
    """(type, default?) of a scalar field in the msgspec struct."""
    base: Any = Literal[f.values] if f.values else {NUMBER: float, TEXT: str, FLAG: bool}[f.kind]
    meta = {k: v for k, v in (("ge", f.low), ("le", f.high), ("min_length", f.min_length),
                              ("max_length", f.max_length)) if v is not None}
    kind: Any = Annotated[base, msgspec.Meta(**meta)] if meta else base
    if f.nullable:
        kind = kind | None
    return (kind,) if f.required else (kind, None)


def _fits(f: Field, value: Any) -> bool:
    """Whether a decoded JSON value is of ``f``'s kind and within its limits (None: see the caller)."""
    if value is None:
        return f.nullable
    if f.kind == NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        try:
            number = float(value)
        except OverflowError:
            return False
        return math.isfinite(number) and (f.low is None or number >= f.low) and (f.high is None or number <= f.high)
    if f.kind == FLAG:
        return isinstance(value, bool)
    if f.kind == TEXT:
        return isinstance(value, str) and (f.min_length or 0) <= len(value) <= (f.max_length or len(value)) \
            and (not f.values or value in f.values)
    return False


def _path(*names: str) -> str:
    return "$" + "".join('."' + n.replace("\\", "\\\\").replace('"', '\\"') + '"' for n in names)


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_kind(v: str) -> str:
    """SQL: the JSON kind of the value ``v`` (NULL when absent) as ``json_type`` names it, every number DOUBLE.

    ``v`` comes out of ``json_extract``, which writes it compactly: its first
    character tells its kind, with no second parse. (``n`` starts ``null``
    only: a NaN makes the line malformed before any value is looked at.)
    """
    return (f"CASE WHEN {v} IS NULL THEN NULL ELSE CASE left({v}::VARCHAR, 1) WHEN '\"' THEN 'VARCHAR' "
            "WHEN '{' THEN 'OBJECT' WHEN '[' THEN 'ARRAY' WHEN 't' THEN 'BOOLEAN' WHEN 'f' THEN 'BOOLEAN' "
            "WHEN 'n' THEN 'NULL' ELSE 'DOUBLE' END END")


def _sql_cast(k: int) -> str:
    """SQL of ``d<k>``, the number ``v<k>`` as a DOUBLE (NULL if not a number, or beyond its range), ``s<k>``,
    the text ``v<k>`` as VARCHAR, and ``n<k>``, its length in characters (without a backslash, the quoted
    text's length less its two quotes: no second parse)."""
    v, y = f"v{k}", f"y{k}"
    return (f"CASE WHEN {y} = 'DOUBLE' THEN TRY_CAST({v}::VARCHAR AS DOUBLE) END AS d{k}, "
            f"CASE WHEN {y} = 'VARCHAR' THEN {v} ->> '$' END AS s{k}, "
            f"CASE WHEN {y} = 'VARCHAR' THEN CASE WHEN contains({v}::VARCHAR, '\\') THEN length({v} ->> '$') "
            f"ELSE length({v}::VARCHAR) - 2 END END AS n{k}")


#: Cheap searches of a line's raw text: where none matches, :data:`LENIENT_PATTERN` cannot match it with its strings
#: blanked out (blanking never joins two characters), so the exact check is skipped.
_LENIENT_HINTS = (r"(?i)nan", r"(?i)inf", r",[ \t\r\n\x0b\x0c]*[\]}]")


def _sql_lexical() -> tuple[str, str]:
    """SQL of the two lexical checks of ``text``: true when lenient syntax (:data:`LENIENT_PATTERN`), or more than
    :data:`MAX_CONTAINERS` objects and arrays, are found with its strings blanked out. Each runs only on the lines a
    cheap search of the raw text cannot clear (DuckDB's CASE evaluates a branch on the rows that take it only)."""
    skeleton = f"regexp_replace(text, {_sql_text(STRING_PATTERN)}, '\"\"', 'g')"
    hints = " OR ".join([*(f"regexp_matches(text, {_sql_text(h)})" for h in _LENIENT_HINTS),
                         "contains(text, chr(11))", "contains(text, chr(12))"])
    brackets = "strlen(text) - strlen(replace(replace(text, '{', ''), '[', ''))"
    return (f"CASE WHEN {hints} THEN regexp_matches({skeleton}, {_sql_text(LENIENT_PATTERN)}) ELSE false END",
            f"CASE WHEN {brackets} > {MAX_CONTAINERS} "
            f"THEN strlen(regexp_replace({skeleton}, '[^\\[{{]', '', 'g')) > {MAX_CONTAINERS} ELSE false END")


def sql_number(v: str) -> str:
    """SQL over :meth:`Rule.sql`'s ``judged`` (``v`` from :meth:`Rule.sql_value`): the JSON value ``v`` as a
    DOUBLE when it is a number, else NULL (never a cast of text or true)."""
    return f"d{v[1:]}"


def sql_flag(v: str) -> str:
    """SQL: the JSON boolean ``v`` as 1.0/0.0, else NULL."""
    return f"CASE WHEN y{v[1:]} = 'BOOLEAN' THEN ({v}::VARCHAR = 'true')::DOUBLE END"


def sql_text(v: str) -> str:
    """SQL: the JSON text ``v`` as VARCHAR, else NULL."""
    return f"s{v[1:]}"


def _sql_check(f: Field, v: str) -> str:
    """SQL: true when the JSON value ``v`` (NULL when absent; for ``v<k>``, its kind ``y<k>``, number ``d<k>``
    and text length ``n<k>``) passes ``f``."""
    k = v[1:]
    absent = "true" if not f.required else "false"
    null = "true" if f.nullable else "false"
    kinds = ", ".join(_sql_text(t) for t in _SQL_TYPE[f.kind])
    limits = ["true"]  # DuckDB does not short-circuit AND: a value is read under the CASE on its JSON kind
    if f.kind == NUMBER:
        limits = [f"isfinite(d{k})"]
        if f.low is not None:
            limits.append(f"d{k} >= {float(f.low)!r}")
        if f.high is not None:
            limits.append(f"d{k} <= {float(f.high)!r}")
    elif f.kind == TEXT and (f.min_length is not None or f.max_length is not None):
        limits = [f"n{k} BETWEEN {f.min_length or 0} AND {f.max_length or 2 ** 31}"]
    if f.kind == TEXT and f.values:
        limits.append(f"s{k} IN ({', '.join(map(_sql_text, f.values))})")
    return (f"CASE WHEN {v} IS NULL THEN {absent} WHEN y{k} = 'NULL' THEN {null} "
            f"WHEN y{k} IN ({kinds}) THEN coalesce({' AND '.join(limits)}, false) ELSE false END")


def lexically_json(text: bytes) -> bool:
    """Whether ``text`` (a stripped line) passes the checks every reader makes before parsing it.

    At most :data:`MAX_LINE_BYTES` bytes, UTF-8, and, strings blanked out, no
    NaN, Infinity, trailing comma, vertical tab or form feed, and at most
    :data:`MAX_CONTAINERS` objects and arrays.
    """
    if len(text) > MAX_LINE_BYTES:
        return False
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    skeleton = _STRING.sub(b'""', text)
    return not _LENIENT.search(skeleton) and skeleton.count(b"{") + skeleton.count(b"[") <= MAX_CONTAINERS


def blank(line: bytes) -> bool:
    """Whether ``line`` holds only whitespace: no line at all, to every reader."""
    return not line.strip(WHITESPACE)


_RULES: dict[str, Rule] = {}


def rule(contract: Contract) -> Rule:
    """The :class:`Rule` of ``contract``'s log records, built once per contract."""
    key = contract.sha256()
    found = _RULES.get(key)
    if found is None:
        found = _RULES[key] = Rule(contract)
    return found


def key_problem(text: str) -> str | None:
    """Why ``text`` (stripped) cannot be a key (a request id or a customer id), or None.

    Examples
    --------
    >>> key_problem("req-001") is None
    True
    >>> key_problem("x" * 129)
    'longer than 128 characters'
    """
    if not text:
        return "empty"
    if len(text) > MAX_KEY_LENGTH:
        return f"longer than {MAX_KEY_LENGTH} characters"
    return None
