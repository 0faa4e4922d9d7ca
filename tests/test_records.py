"""One rule for a log record (churn_lib.contract.records), three readers derived from it.

The same corpus of lines (good, torn, hostile, hand-edited) goes to the Python
reader (``iter_records``), the msgspec reader (``read_tail``) and the DuckDB
reader (``query.windows``): each line must be kept or skipped by all three,
for the same reason, and that reason is the one the rule names. Drift's two
paths (the tail for a small window, DuckDB for a large one) give the same
counts on the same log.
"""

import dataclasses
import json
from collections import Counter

import pytest

from churn_lib import contract as _contract
from churn_lib.contract import records
from churn_lib.logs import query as logquery, predictions as predlog

LAB = _contract.lab()
OTHER = dataclasses.replace(
    LAB, name="other", id=("customer_id",), examples=(),
    features=(_contract.Feature("tenure_months", _contract.INTEGER, low=0, high=200),
              _contract.Feature("paperless", _contract.BOOLEAN),
              _contract.Feature("charges", _contract.FLOAT, on_missing="impute"),
              _contract.Feature("plan", _contract.CATEGORICAL, values=("basic", "premium"), on_missing="impute")))

FEATURES = {"tenure_months": 6, "num_complaints": 3, "avg_session_minutes": 12.5, "plan_type": "basic",
            "region": "NA"}
OTHER_FEATURES = {"tenure_months": 6, "paperless": True, "charges": 70.5, "plan": "basic"}


def rec(features=None, drop=(), base=FEATURES, **changes):
    out = {"request_id": "r1", "model_version": "churn_model_v1_20250101_000000.joblib", "prediction": 1,
           "probability": 0.42, "latency_ms": 1.5, "features": dict(base), "ts": 1_700_000_000.5,
           "threshold": 0.5, "version": "v1"}
    out["features"].update(features or {})
    out.update(changes)
    for key in drop:
        if key in out["features"]:
            del out["features"][key]
        else:
            del out[key]
    return out


def line(*args, **kwargs) -> bytes:
    return json.dumps(rec(*args, **kwargs), separators=(",", ":")).encode()


def utf8(*args, **kwargs) -> bytes:
    """A line as a writer that does not escape non-ASCII text writes it (the text's length read without unescaping)."""
    return json.dumps(rec(*args, **kwargs), separators=(",", ":"), ensure_ascii=False).encode()


def raw(text: str) -> bytes:
    """A hand-made line: ``@`` is replaced by a good record's body (without its braces)."""
    return text.replace("@", line().decode()[1:-1]).encode()


GOOD = line()
HUGE = records.MAX_LINE_BYTES + 10

#: (line without its newline, the rule's reason or None for a record), on the lab's contract.
LAB_CORPUS = [
    # good, and edited by hand
    (GOOD, None),
    (json.dumps(rec()).encode(), None),  # json.dumps' spaces
    (json.dumps(dict(reversed(list(rec().items())))).encode(), None),  # keys reordered
    (b"  \t" + GOOD + b"  ", None),
    (GOOD + b"\r", None),  # CRLF
    (b"\x0b" + GOOD + b"\x0c", None),  # whitespace to Python and DuckDB
    (line(explanation={"base": -1.2, "contributions": {"region": 0.1}}, role="challenger", x=[1, [2]]), None),
    (line({"extra_feature": [1, 2], "region": "ZZ"}), None),  # extra key; a category the model never saw
    (line(model_version=None), None),
    (line(drop=("model_version",)), None),
    (line(drop=("request_id",)), None),
    (line(request_id=None), None),
    (line(request_id="r" * records.MAX_KEY_LENGTH), None),
    (line(probability=0), None),
    (line(probability=1), None),
    (line(ts=1_700_000_000), None),
    (line({"tenure_months": 10 ** 30}), None),
    (line({"region": "Ré😀"}), None),
    (line({"region": "a\u0000b"}), None),  # an escaped NUL is text
    (line({"region": "r" * _contract.MAX_TEXT_LENGTH}), None),
    (utf8({"region": "Ré😀"}), None),
    (utf8({"region": "é" * _contract.MAX_TEXT_LENGTH}), None),  # 128 characters, 256 bytes
    (utf8({"region": "\u0301" * _contract.MAX_TEXT_LENGTH}), None),  # combining marks: characters, not graphemes
    (utf8(request_id="😀" * records.MAX_KEY_LENGTH), None),
    (utf8({"region": "nan", "plan_type": "Infinity, ]"}), None),  # lenient syntax, but in strings
    (utf8({"region": "a\\b"}), None),  # a backslash: the text read unescaped
    (raw('{@,"x":1e400}'), None),  # beyond float range where nobody reads it
    (raw('{@,"x":[' + "[]," * 59 + "[]]}"), None),  # 63 containers
    # torn: a line cut short, alone or glued to the next
    (GOOD[:40], "malformed"),
    (GOOD[:40] + GOOD, "malformed"),
    (GOOD + GOOD, "malformed"),  # two records, one line
    # hostile
    (b"x" * HUGE, "malformed"),
    (line(request_id="y" * HUGE), "malformed"),  # too long, though JSON
    (line(x="y" * (HUGE - len(GOOD))), "malformed"),
    (raw('{"features":' + "[" * 5000 + "]" * 5000 + ",@}"), "malformed"),
    (raw('{@,"x":' + "[" * 100 + "]" * 100 + "}"), "malformed"),
    (raw('{@,"x":[' + "[]," * 61 + "[]]}"), "malformed"),  # 65 containers
    (raw('{@,"x":"a\x00b"}'), "malformed"),  # a raw NUL
    (b"\x00", "malformed"),
    (b"\xff\xfe\x00garbage", "malformed"),
    (line({"region": "\udcff"}).replace(b"\\udcff", b"\xff"), "malformed"),  # not UTF-8, in a value read
    (raw('{@,"x":"\xff"}'.replace("\xff", "\\udcff")).replace(b"\\udcff", b"\xff"), "malformed"),  # where not read
    (line({"region": "\ud800"}), "malformed"),  # a lone surrogate
    (b"\xef\xbb\xbf" + GOOD, "malformed"),  # a byte order mark, but for the one that starts a file
    (raw('{@,"x":NaN}'), "malformed"),
    (line({"avg_session_minutes": float("nan")}), "malformed"),
    (line(ts=float("inf")), "malformed"),
    (line(probability=float("-inf")), "malformed"),
    (raw('{@,"x":nan}'), "malformed"),
    (raw('{@,"x":[1,2,]}'), "malformed"),
    (raw('{@,"x":[1,2 \t ]}'), None),
    (raw('{@,"x":[1,2, \t ]}'), "malformed"),
    (raw('{@,"x":{"a":1 ,  }}'), "malformed"),
    (raw('{@,"x":-Infinity}'), "malformed"),
    (raw('{@,"x":-inf}'), "malformed"),
    (raw('{@,"x":nAn}'), "malformed"),
    (raw('{@,"x":"\x0c"}').replace(b"\x0c", b"\\f"), None),  # an escaped form feed is text
    (raw("{@,}"), "malformed"),
    (raw('{@,"x":\x0b1}'), "malformed"),
    (raw("{@} // a comment"), "malformed"),
    (raw("{'a': 1}"), "malformed"),
    (b"not json at all", "malformed"),
    (b"[1, 2, 3]", "not an object"),
    (b'"text"', "not an object"),
    (b"5", "not an object"),
    (b"1e400", "not an object"),
    (b"true", "not an object"),
    (b"null", "not an object"),
    (b"{}", "no features"),
    (b'{"hello": "world"}', "no features"),
    (line(drop=("features",)), "no features"),
    (json.dumps({**rec(), "features": None}).encode(), "no features"),
    (json.dumps({**rec(), "features": [FEATURES]}).encode(), "no features"),
    (json.dumps({**rec(), "features": json.dumps(FEATURES)}).encode(), "no features"),
    (line({"tenure_months": "6"}), "bad feature value"),  # numbers as text
    (line({"tenure_months": True}), "bad feature value"),  # a boolean where a number belongs
    (line({"avg_session_minutes": [1.0]}), "bad feature value"),
    (line({"avg_session_minutes": {"v": 1}}), "bad feature value"),
    (line({"tenure_months": None}), "bad feature value"),
    (line(drop=("region",)), "bad feature value"),
    (line({"region": 4}), "bad feature value"),  # a number where a category belongs
    (line({"region": True}), "bad feature value"),
    (line({"region": ""}), "bad feature value"),
    (line({"region": "r" * (_contract.MAX_TEXT_LENGTH + 1)}), "bad feature value"),
    (utf8({"region": "é" * (_contract.MAX_TEXT_LENGTH + 1)}), "bad feature value"),
    (utf8({"region": "\u0301" * (_contract.MAX_TEXT_LENGTH + 1)}), "bad feature value"),
    (utf8({"region": "\\" * (_contract.MAX_TEXT_LENGTH + 1)}), "bad feature value"),  # 129 characters, escaped
    (utf8({"region": "\\" * _contract.MAX_TEXT_LENGTH, "plan_type": "x"}, request_id="é" * 129), "bad key"),
    (line({"tenure_months": 10 ** 400}), "bad feature value"),
    (raw('{@,"x":1}').replace(b'"avg_session_minutes":12.5', b'"avg_session_minutes":1e400'), "bad feature value"),
    (line(ts="1700000000"), "no timestamp"),
    (line(ts="yesterday"), "no timestamp"),
    (line(ts=False), "no timestamp"),
    (line(ts=None), "no timestamp"),
    (line(drop=("ts",)), "no timestamp"),
    (line(ts=[1]), "no timestamp"),
    (line().replace(b'"ts":1700000000.5', b'"ts":1e400'), "no timestamp"),
    (line(probability="0.5"), "bad probability"),
    (line(probability=True), "bad probability"),
    (line(probability=1.5), "bad probability"),
    (line(probability=-0.1), "bad probability"),
    (line(probability=None), "bad probability"),
    (line(drop=("probability",)), "bad probability"),
    (line(probability=1.5, ts="x"), "no timestamp"),  # the first failure in the rule's order
    (line(model_version=None, version=None), "no model"),
    (line(drop=("model_version", "version")), "no model"),
    (line(model_version=5), "no model"),
    (line(version=["v1"]), "no model"),
    (line(model_version=None, version=None, request_id=""), "no model"),
    (line(request_id=""), "bad key"),
    (line(request_id=5), "bad key"),
    (line(request_id=["r1"]), "bad key"),
    (line(request_id="r" * (records.MAX_KEY_LENGTH + 1)), "bad key"),  # overlong id
    # a challenger's shadow answer is a record; a role nobody writes is not
    (line(role="challenger"), None),
    (line(role="champion"), None),
    (json.dumps({**rec(), "role": "challenger", "id": {"customer_id": "C-1"}}).encode(), None),
    (line(role="Challenger"), "bad role"),
    (line(role="shadow"), "bad role"),
    (line(role=None), "bad role"),
    (line(role=1), "bad role"),
    (line(role=["challenger"]), "bad role"),
    (line(request_id="", role="shadow"), "bad key"),  # the first failure in the rule's order
]

#: On a contract with an id column, a boolean and features the model fills in.
OTHER_CORPUS = [
    (line(base=OTHER_FEATURES, id={"customer_id": "C-1"}), None),
    (line(base=OTHER_FEATURES), None),
    (line(base=OTHER_FEATURES, id=None), None),
    (line(base=OTHER_FEATURES, id={"customer_id": None, "other": 5}), None),
    (line(base=OTHER_FEATURES, id={"customer_id": "c" * records.MAX_KEY_LENGTH}), None),
    (line({"charges": None, "plan": None}, base=OTHER_FEATURES), None),
    (line({"paperless": False}, base=OTHER_FEATURES), None),
    (line({"plan": "gold"}, base=OTHER_FEATURES), None),
    (line(base=OTHER_FEATURES, drop=("charges",)), "bad feature value"),  # null where imputed, but present
    (line(base=OTHER_FEATURES, drop=("plan",)), "bad feature value"),
    (line({"paperless": 1}, base=OTHER_FEATURES), "bad feature value"),  # a number where a boolean belongs
    (line({"paperless": "true"}, base=OTHER_FEATURES), "bad feature value"),
    (line({"paperless": None}, base=OTHER_FEATURES), "bad feature value"),
    (line({"charges": "70"}, base=OTHER_FEATURES), "bad feature value"),
    (line({"plan": 1}, base=OTHER_FEATURES), "bad feature value"),
    (line(base=OTHER_FEATURES, id="C-1"), "bad key"),
    (line(base=OTHER_FEATURES, id=["C-1"]), "bad key"),
    (line(base=OTHER_FEATURES, id={"customer_id": 5}), "bad key"),
    (line(base=OTHER_FEATURES, id={"customer_id": ""}), "bad key"),
    (line(base=OTHER_FEATURES, id={"customer_id": "c" * (records.MAX_KEY_LENGTH + 1)}), "bad key"),
    (line(base=OTHER_FEATURES, id={"customer_id": "C-1"}, role="challenger"), None),
    (line(base=OTHER_FEATURES, id={"customer_id": "C-1"}, role="rival"), "bad role"),
]

CORPORA = [(LAB, LAB_CORPUS), (OTHER, OTHER_CORPUS)]


def _write(path, lines, *, end=b""):
    path.write_bytes(b"".join(x + b"\n" for x in lines) + end)


def read_all(path, contract, chunk_bytes=predlog.CHUNK_BYTES):
    """(kept rows' timestamps, ReadStats) of each reader."""
    out = {}
    stats = predlog.ReadStats()
    out["python"] = ([float(r["ts"]) for r in predlog.iter_records([path], stats, contract=contract)], stats)
    stats = predlog.ReadStats()
    batch = predlog.read_tail([path], 10 ** 6, stats=stats, chunk_bytes=chunk_bytes, dec=predlog.decoder(contract))
    out["msgspec"] = (batch.ts.tolist(), stats)
    stats = predlog.ReadStats()
    out["duckdb"] = (logquery.read_window([path], contract, stats=stats).ts.tolist(), stats)
    return out


@pytest.mark.parametrize("contract,corpus", CORPORA, ids=["lab", "other"])
def test_the_rule_names_the_reason_of_every_line(contract, corpus):
    rule = records.rule(contract)
    assert [rule.judge(text) for text, _ in corpus] == [reason for _, reason in corpus]


def duckdb_reasons(paths, contract):
    """The reason DuckDB's SQL (from the rule) gives the last line of each file, in one query."""
    from churn_lib import _duck

    source = ("read_json_objects($files, format='newline_delimited', ignore_errors=true, filename=true, "
              f"maximum_object_size={2 * records.MAX_LINE_BYTES})")
    con = _duck.connect()
    try:
        rows = con.execute(f"{records.rule(contract).sql(source)} SELECT filename, list(reason) FROM judged "
                           "GROUP BY filename", {"files": [str(p) for p in paths]}).fetchall()
    finally:
        con.close()
    found = {name: [r for r in reasons if r is not None] for name, reasons in rows}
    return [(found[str(p)] or [None])[-1] for p in paths]


@pytest.mark.parametrize("contract,corpus", CORPORA, ids=["lab", "other"])
def test_each_line_is_kept_or_skipped_alike_by_the_three_readers(tmp_path, contract, corpus):
    paths = []
    wrong = []
    for k, (text, reason) in enumerate(corpus):
        path = tmp_path / f"line{k}.log"
        _write(path, [corpus[0][0], text])  # after a record, as a line of a log
        paths.append(path)
        seen = {}
        stats = predlog.ReadStats()
        kept = list(predlog.iter_records([path], stats, contract=contract))
        seen["python"] = (len(kept), stats.lines, next(iter(stats.skipped), None))
        stats = predlog.ReadStats()
        batch = predlog.read_tail([path], 10, stats=stats, dec=predlog.decoder(contract))
        seen["msgspec"] = (len(batch), stats.lines, next(iter(stats.skipped), None))
        expected = (2, 2, None) if reason is None else (1, 2, reason)
        if set(seen.values()) != {expected}:
            wrong.append((k, text[:60], expected, seen))
    assert not wrong
    assert duckdb_reasons(paths, contract) == [reason for _, reason in corpus]


@pytest.mark.parametrize("chunk_bytes", [1000, predlog.CHUNK_BYTES])
@pytest.mark.parametrize("contract,corpus", CORPORA, ids=["lab", "other"])
def test_the_whole_corpus_gives_the_same_rows_and_counts(tmp_path, contract, corpus, chunk_bytes):
    path = tmp_path / "predictions.log"
    lines = []
    for k, (text, _) in enumerate(corpus):
        lines += [text, b"", b"  \r"]  # blank lines are no lines
    torn = corpus[0][0][:50]
    _write(path, lines, end=torn)  # a last line being written
    expected = Counter(reason for _, reason in corpus if reason)
    expected["truncated"] = 1
    kept = sum(reason is None for _, reason in corpus)
    results = read_all(path, contract, chunk_bytes=chunk_bytes)
    for name, (ts, stats) in results.items():
        assert (name, stats.skipped) == (name, dict(expected))
        assert (name, stats.records, stats.lines) == (name, kept, len(corpus) + 1)
        assert len(ts) == kept
    assert Counter(results["python"][0]) == Counter(results["msgspec"][0]) == Counter(results["duckdb"][0])


@pytest.mark.parametrize("last", [b"", b"   ", GOOD, b"{", line(ts="x")])
def test_a_last_line_without_its_newline_is_truncated_whatever_it_holds(tmp_path, last):
    path = tmp_path / "predictions.log"
    _write(path, [GOOD, GOOD], end=last)
    for name, (ts, stats) in read_all(path, LAB).items():
        assert (name, len(ts), stats.skipped) == (name, 2, {"truncated": 1} if last.strip() else {})


@pytest.mark.parametrize("first", [[], [GOOD]])
def test_a_byte_order_mark_that_starts_a_file_is_no_part_of_its_first_line(tmp_path, first):
    path = tmp_path / "predictions.log"
    path.write_bytes(records.BOM + b"\n".join(first + [GOOD, b""]) if first else records.BOM + GOOD)
    for name, (ts, stats) in read_all(path, LAB).items():
        assert (name, len(ts), stats.skipped) == ((name, 2, {}) if first else (name, 0, {"truncated": 1}))


def test_the_msgspec_struct_is_derived_from_the_rule():
    struct = records.rule(OTHER).struct()
    fields = {f.encode_name for f in __import__("msgspec").structs.fields(struct)}
    assert {"features", "ts", "probability", "model_version", "version", "request_id", "id", "role"} <= fields


def test_a_key_of_the_limit_is_accepted_and_one_more_is_refused():
    assert records.MAX_KEY_LENGTH == 128
    assert records.key_problem("k" * 128) is None
    assert records.key_problem("k" * 129) == "longer than 128 characters"
    assert records.key_problem("") == "empty"


def test_the_role_of_a_line_is_read_alike_by_python_and_sql(tmp_path):
    """A challenger's line carries its role to every reader; absent means the champion."""
    from churn_lib import _duck

    path = tmp_path / "predictions.log"
    _write(path, [line(), line(role="challenger", model_version="churn_model_v2_20250101_000000.joblib")])
    roles = [r.get("role", records.CHAMPION) for r in predlog.iter_records([path])]
    rule = records.rule(LAB)
    source = "read_json_objects($files, format='newline_delimited', ignore_errors=true)"
    con = _duck.connect()
    try:
        sql = con.execute(f"{rule.sql(source)} SELECT coalesce({records.sql_text(rule.sql_value(('role',)))}, "
                          f"'{records.CHAMPION}') FROM judged WHERE reason IS NULL", {"files": [str(path)]}).fetchall()
    finally:
        con.close()
    assert roles == [r for (r,) in sql] == ["champion", "challenger"]
    struct = __import__("msgspec").json.decode(line(role="challenger"), type=rule.struct())
    assert struct.role == "challenger"


def _pairing_verdict(text: bytes, reason: str | None) -> str | None:
    """What compare must make of a line by the rule: skipped for the rule's reason, or, a record without a request
    id, for pairing's own (``no request_id``); else used."""
    if reason is not None:
        return reason
    return "no request_id" if json.loads(text.strip(records.WHITESPACE)).get("request_id") is None else None


@pytest.mark.parametrize("contract,corpus", CORPORA, ids=["lab", "other"])
def test_compare_uses_a_line_exactly_when_the_rule_keeps_it(tmp_path, contract, corpus):
    """Each line of the corpus, with a good answer of the other role to the same request: ``pairs.read`` uses it,
    or skips it for the rule's reason (a record without a request id: ``no request_id``), as drift does."""
    from churn_lib.loop import pairs

    base = FEATURES if contract is LAB else OTHER_FEATURES
    wrong = []
    for k, (text, reason) in enumerate(corpus):
        shadow = b'"role":"challenger"' in text.replace(b" ", b"")
        partner = line(base=base) if shadow else line(base=base, role="challenger", version="v2",
                                                      model_version="churn_model_v2_20250101_000000.joblib")
        path = tmp_path / f"line{k}.log"
        _write(path, [partner, text])  # the partner first: the line is no file's first (a BOM stays its own)
        for cache in (None, tmp_path / ".judged"):
            got = pairs.read([path], [], records.rule(contract), cache=cache)
            expected = _pairing_verdict(text, reason)
            seen = (got.read["lines"], got.read["skipped"])
            want = (2, {} if expected is None else {expected: 1})
            paired = expected is None and json.loads(text.strip(records.WHITESPACE))["request_id"] == "r1"
            if seen != want or len(got) != paired:
                wrong.append((k, text[:60], cache is not None, want, paired, seen, len(got)))
    assert not wrong
