"""Unit tests of the core contract (``_core.pyi``), run against both implementations."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from durable_streams._errors import (
    Base64DecodeError,
    EventTooLargeError,
    JSONParseError,
    ParseError,
    SSEParseError,
)

from .conftest import same


def feed_all(dec: Any, *chunks: bytes) -> list[Any]:
    out: list[Any] = []
    for c in chunks:
        out.extend(dec.feed(c))
    return out


def raises_at(exc: type[ParseError], position: int, fn: Any, *args: Any) -> ParseError:
    with pytest.raises(exc) as info:
        fn(*args)
    assert type(info.value) is exc
    assert info.value.position == position
    return info.value


# --- module ---------------------------------------------------------------------------------


def test_module_surface(core: ModuleType) -> None:
    for name in (
        "BatchBuilder",
        "Control",
        "SseDecoder",
        "encode_json",
        "parse_json_array",
        "split_json_array",
    ):
        assert hasattr(core, name)
    assert isinstance(core.__version__, str)


def test_native_version_matches_cargo(native: ModuleType) -> None:
    assert native.__version__ == "0.1.0"


def test_pure_does_not_import_native() -> None:
    import durable_streams._core._pure as pure

    root = Path(pure.__file__).parent
    for src in root.glob("*.py"):
        for node in ast.walk(ast.parse(src.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(a.name for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(n.split(".")[-1] == "_core" for n in names), src


# --- parse_json_array / split_json_array ----------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"  \r\n\t", b"[]", b" [ ] "])
def test_empty_bodies(core: ModuleType, body: bytes) -> None:
    assert core.parse_json_array(body) == []
    assert core.split_json_array(body) == []


def test_parse_values(core: ModuleType) -> None:
    body = (
        b'[1, -0, -0.0, 2.5, 1e400, -1e400, 1e-400, 123456789012345678901234567890, "a\\u00e9\\n",'
        b' "\\ud83d\\ude00", true, false, null, {"k": 1, "k": 2, "j": [{}]}, "\xc3\xa9"]'
    )
    got = core.parse_json_array(body)
    assert got == [
        1,
        0,
        -0.0,
        2.5,
        float("inf"),
        float("-inf"),
        0.0,
        123456789012345678901234567890,
        "aé\n",
        "\U0001f600",
        True,
        False,
        None,
        {"k": 2, "j": [{}]},
        "é",
    ]
    assert type(got[1]) is int and type(got[2]) is float
    assert list(got[13]) == ["k", "j"]


TRICKY_VALUES = [
    # strings: escapes, surrogate pairs, raw UTF-8 of every length, long and empty
    r'"\" \\ \/ \b \f \n \r \t"',
    r'"\u0000\u001f\u0041\u00e9\u07ff\u0800\uffff\uFFFD"',
    r'"\ud83d\ude00 \uD83D\uDE00 \udbff\udfff \ud800\udc00"',
    '"\u00e9 \u20ac \U0001f600 mixed \\n with raw é€😀"',
    '"é€😀"',
    '""',
    '"' + "x" * 300 + '"',
    '"' + "é" * 100 + '\\u0041"',
    r'"a\"b\\"',
    # integers around every fast-path edge
    "0",
    "-0",
    "7",
    "-5",
    "256",
    "257",
    "999999999999999999",
    "-999999999999999999",
    "1000000000000000000",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "123456789012345678901234567890",
    "-" + "9" * 4300,
    # floats: signs of zero, rounding, the ends of the range, out of range
    "0.0",
    "-0.0",
    "0e0",
    "-0e-0",
    "-0E+5",
    "0.1",
    "1.5",
    "-2.5e-3",
    "1E400",
    "-1e400",
    "1e-400",
    "-1e-400",
    "5e-324",
    "2.2250738585072011e-308",
    "1.7976931348623157e308",
    "1.7976931348623159e308",
    "9007199254740993",
    "9007199254740993.0",
    "1.00000000000000011102230246251565404236316680908203125",
    "0.30000000000000004",
    "123456789012345678901234567890.5e-10",
    "1" * 4300 + ".5",
    "1e" + "9" * 30,
    "1" + "0" * 400 + "e-400",
    # literals and containers
    "true",
    "false",
    "null",
    "[]",
    "{}",
    "[[]]",
    "[{}]",
    '{"":{}}',
    "[ ]",
    "{ }",
    '{"a":1,"a":2,"b":3,"a":4}',
    '{"\u00e9":1,"é":2}',
    r'{"k\"q":1,"k\\":2}',
    '{"' + "k" * 100 + '":1,"' + "k" * 100 + '":2}',
    ' { "x" : [ 1 , { "y" : null } ] , "z" : "w" } ',
]


@pytest.mark.parametrize("text", TRICKY_VALUES)
def test_parse_matches_json_loads(core: ModuleType, text: str) -> None:
    body = b"[" + text.encode() + b"," + text.encode() + b"]"
    assert same(core.parse_json_array(body), json.loads(body))
    reader = core.JsonArrayReader(min_group_bytes=1)  # one element a group
    assert same(reader.feed(body) + reader.finish(), json.loads(body))


def test_parse_many_keys(core: ModuleType) -> None:
    # More distinct keys than any cache holds, keys nested under keys, keys met again.
    obj = {f"k{i}": {f"k{i + 1}": i, "k0": [i]} for i in range(700)}
    body = json.dumps([obj, obj, {"k3": "a", "k300": "b"}]).encode()
    got = core.parse_json_array(body)
    assert same(got, json.loads(body))
    assert list(got[0]) == list(obj)


def test_parse_keys_of_a_small_body(core: ModuleType) -> None:
    # A small body gets a small key cache: more keys than its slots, each met again.
    obj = {k: i for i, k in enumerate("abcdefghijkl")}
    body = json.dumps([obj, obj, {"l": 0, "a": 1}]).encode()
    got = core.parse_json_array(body)
    assert same(got, json.loads(body))
    assert got[0] is not got[1] and list(got[1]) == list(obj)


def test_parse_nesting_limits(core: ModuleType) -> None:
    for opener, closer in ((b"[", b"]"), (b'{"a":', b"}")):
        ok = b"[" + opener * 199 + b"1" + closer * 199 + b"]"
        assert same(core.parse_json_array(ok), json.loads(ok))
        deep = b"[" + opener * 200 + b"1" + closer * 200 + b"]"
        err = raises_at(JSONParseError, 1 + 200 * len(opener), core.parse_json_array, deep)
        assert err.message == "JSON nested deeper than 200 levels"


@pytest.mark.parametrize(
    ("body", "position", "message"),
    [
        (rb'["\ud83d\u0041"]', 2, "lone surrogate in \\u escape"),
        (rb'["\ude00\ud83d"]', 2, "lone surrogate in \\u escape"),
        (rb'["\ud83d"]', 2, "lone surrogate in \\u escape"),
        (rb'["\ud83d\"]', 2, "lone surrogate in \\u escape"),
        (rb'["\u00"]', 6, "invalid hex digit in \\u escape"),
        (rb'["abc\\\q"]', 8, "invalid escape in JSON string"),
        (b'["a\xc3"]', 3, "invalid UTF-8"),
        (b'["\\n\xe2\x82"]', 4, "invalid UTF-8"),
        (b'["\xf4\x90\x80\x80"]', 2, "invalid UTF-8"),
        (b'[{"\xc0\x80":1}]', 3, "invalid UTF-8"),
        (b'["a\tb"]', 3, "control character in JSON string"),
        (b'[{"a":1}\xc3]', 8, "invalid UTF-8"),
        (b'[{"a":1 "b":2}]', 8, "expected ',' or '}'"),
        (b"[-]", 2, "invalid JSON number"),
        (b"[-01]", 3, "expected ',' or ']'"),
        (b"[1.5e]", 5, "invalid JSON number"),
        (b"[.5]", 1, "expected a JSON value"),
        (b"[+1]", 1, "expected a JSON value"),
        (b"[1]   ]", 6, "trailing data after JSON value"),
        (b"[truex]", 5, "expected ',' or ']'"),
        (b'[{"a":1},]', 9, "expected a JSON value"),
        (b'["' + b"a" * 70 + b'\x01"]', 72, "control character in JSON string"),
    ],
)
def test_parse_errors_more(core: ModuleType, body: bytes, position: int, message: str) -> None:
    err = raises_at(JSONParseError, position, core.parse_json_array, body)
    assert err.message == message


def test_split_exact_bytes(core: ModuleType) -> None:
    body = b' [ 1 ,"a,]" ,{"k": [1, {}]},\n null\t] '
    assert core.split_json_array(body) == [b"1", b'"a,]"', b'{"k": [1, {}]}', b"null"]


@pytest.mark.parametrize(
    ("body", "position", "message"),
    [
        (b"{}", 0, "expected a JSON array"),
        (b"  1", 2, "expected a JSON array"),
        (b"[", 1, "unexpected end of JSON input"),
        (b"[1,]", 3, "expected a JSON value"),
        (b"[1 2]", 3, "expected ',' or ']'"),
        (b"[1] x", 4, "trailing data after JSON value"),
        (b"[1][2]", 3, "trailing data after JSON value"),
        (b"[NaN]", 1, "expected a JSON value"),
        (b"[Infinity]", 1, "expected a JSON value"),
        (b"[-Infinity]", 2, "invalid JSON number"),
        (b"[01]", 2, "expected ',' or ']'"),
        (b"[1.]", 3, "invalid JSON number"),
        (b"[1e+]", 4, "invalid JSON number"),
        (b"[tru]", 4, "expected a JSON value"),
        (b"[nul", 4, "unexpected end of JSON input"),
        (b'["\\x"]', 3, "invalid escape in JSON string"),
        (b'["\\u12g4"]', 6, "invalid hex digit in \\u escape"),
        (b'["\\ud800"]', 2, "lone surrogate in \\u escape"),
        (b'["\\udc00"]', 2, "lone surrogate in \\u escape"),
        (b'["\\ud800\\u0041"]', 2, "lone surrogate in \\u escape"),
        (b'["a\x01"]', 3, "control character in JSON string"),
        (b'[{"a" 1}]', 6, "expected ':'"),
        (b"[{1:1}]", 2, "expected a string key"),
        (b'[{"a":1,}]', 8, "expected a string key"),
        (b'[{"a":1]', 7, "expected ',' or '}'"),
        (b"[1,\xff]", 3, "invalid UTF-8"),
        (b'["\xed\xa0\x80"]', 2, "invalid UTF-8"),
        (b"\xef\xbb\xbf[]", 0, "expected a JSON array"),
        (b"[" + b"1" * 4301 + b"]", 4301, "integer part longer than 4300 digits"),
        (b"[" * 201 + b"1" + b"]" * 201, 201, "JSON nested deeper than 200 levels"),
    ],
)
def test_parse_errors(core: ModuleType, body: bytes, position: int, message: str) -> None:
    for fn in (core.parse_json_array, core.split_json_array):
        err = raises_at(JSONParseError, position, fn, body)
        assert err.message == message
        assert isinstance(err, ValueError)


def test_limits_accepted(core: ModuleType) -> None:
    assert core.parse_json_array(b"[" * 200 + b"1" + b"]" * 200) is not None
    assert core.parse_json_array(b"[" + b"9" * 4300 + b"]") == [int("9" * 4300)]


# --- encode_json ----------------------------------------------------------------------------


def dumps(v: Any) -> bytes:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        2**64,
        -(2**200),
        0.0,
        -0.0,
        1.5,
        1e16,
        1e-5,
        0.1,
        5e-324,
        "",
        'a"\\\n\r\t\b\f\x01\x1f\x7fé\u2028\U0001f600',
        [],
        (),
        {},
        {"a": [1, (2, 3)], "b": {"c": None}},
        [[[]]],
    ],
)
def test_encode_like_json_dumps(core: ModuleType, value: Any) -> None:
    assert core.encode_json(value) == dumps(value)


def test_encode_errors(core: ModuleType) -> None:
    bad: Any
    for bad in (float("nan"), float("inf"), [float("-inf")]):
        with pytest.raises(ValueError):
            core.encode_json(bad)
    for bad in ({1: 2}, {None: 1}, {(1,): 2}, b"x", {1, 2}, object()):
        with pytest.raises(TypeError):
            core.encode_json(bad)
    with pytest.raises(UnicodeEncodeError):
        core.encode_json("\ud800")
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError):
        core.encode_json(cyclic)


# --- SSE ------------------------------------------------------------------------------------


def test_sse_json_data_and_control(core: ModuleType) -> None:
    dec = core.SseDecoder("json")
    stream = (
        b'event: data\ndata: [\ndata: {"k":"v"},\ndata: {"k":"w"}\ndata: ]\n\n'
        b'event: control\ndata: {"streamNextOffset":"123_789","streamCursor":"abc"}\n\n'
        b'event: control\ndata: {"streamNextOffset":"9","streamClosed":true,"upToDate":true}\n\n'
    )
    assert dec.feed(stream) == [
        [{"k": "v"}, {"k": "w"}],
        core.Control("123_789", "abc"),
        core.Control("9", None, True, True),
    ]
    c = core.Control("1", cursor="c", up_to_date=True, closed=False)
    assert (c.next_offset, c.cursor, c.up_to_date, c.closed) == ("1", "c", True, False)
    assert hash(c) == hash(core.Control("1", "c", True, False))
    assert repr(c) == "Control(next_offset='1', cursor='c', up_to_date=True, closed=False)"


def test_sse_modes(core: ModuleType) -> None:
    text = b"event: data\ndata: a\ndata: \xc3\xa9\n\n"
    assert core.SseDecoder("text").feed(text) == ["a\n\u00e9"]
    raw = b'event: data\ndata: [ 1 ,\ndata: {"a": 2} ]\n\n'
    assert core.SseDecoder("json-raw").feed(raw) == [[b"1", b'{"a": 2}']]
    b64 = b"event: data\ndata: AQIDBAUG\ndata: BwgJCg==\n\nevent: data\ndata:\n\n"
    assert core.SseDecoder("base64").feed(b64) == [bytes(range(1, 11)), b""]
    assert core.SseDecoder("json").feed(b"event: data\ndata:\n\n") == [[]]


def test_sse_line_endings_split_everywhere(core: ModuleType) -> None:
    stream = (
        b"\xef\xbb\xbfevent: data\r\ndata: [1,\rdata:2]\r\n\r\n"
        b'event:control\ndata: {"streamNextOffset":"x"}\r\r'
    )
    want = [[1, 2], core.Control("x")]
    assert feed_all(core.SseDecoder("json"), stream) == want
    for cut in range(len(stream) + 1):
        dec = core.SseDecoder("json")
        assert feed_all(dec, stream[:cut], stream[cut:]) == want, cut
    dec = core.SseDecoder("json")
    assert feed_all(dec, *(stream[i : i + 1] for i in range(len(stream)))) == want


def test_sse_field_rules(core: ModuleType) -> None:
    dec = core.SseDecoder("text")
    assert dec.last_event_id == "" and dec.retry_ms is None
    assert dec.max_event_bytes == 16_777_216
    out = dec.feed(
        b": comment\n\nid: 7\n\n"  # neither dispatches
        b"event: data\ndata\nretry: 12x\nretry: 0015\nid: a\x00b\n\n"
        b"event:data\ndata:  two spaces\nunknown: x\nevent\n\n"  # bare `event` resets the type
        b"data: default type\n\n"
        b"event: other\ndata: skipped\n\n"
        b"event: data\nretry: 99999999999999999999\ndata: x\n"
    )
    assert out == [""]
    assert dec.last_event_id == "7"
    assert dec.retry_ms == 15
    assert dec.flush() == []
    assert dec.feed(b"event: data\nid: \xc3\xa9\ndata: y\n\n") == ["y"]
    assert dec.last_event_id == "\u00e9"


def test_sse_id_commits_at_blank_line(core: ModuleType) -> None:
    dec = core.SseDecoder("text")
    assert dec.feed(b"id: 5\nevent: data\ndata: a\n") == []
    assert dec.last_event_id == ""
    assert dec.feed(b"\n") == ["a"]
    assert dec.last_event_id == "5"


def test_sse_bom_only_at_start(core: ModuleType) -> None:
    dec = core.SseDecoder("text")
    assert dec.feed(b"\xef\xbb") == []
    assert dec.feed(b"\xbfevent: data\ndata: a\n\n\xef\xbb\xbfevent: data\ndata: b\n\n") == ["a"]


def test_sse_flush_discards_and_resets(core: ModuleType) -> None:
    dec = core.SseDecoder("text")
    assert dec.feed(b"event: data\ndata: partial") == []
    assert dec.flush() == []
    assert dec.feed(b"\xef\xbb\xbfevent: data\ndata: b\n\n") == ["b"]


def test_sse_max_event_bytes(core: ModuleType) -> None:
    dec = core.SseDecoder("text", max_event_bytes=11)
    assert dec.feed(b"event: data\ndata: 1234\n\n") == ["1234"]  # each line fits
    raises_at(EventTooLargeError, 10, core.SseDecoder("text", 10).feed, b"data: 12345")
    dec = core.SseDecoder("text", 10)
    assert dec.feed(b"data: 1234") == []
    raises_at(EventTooLargeError, 10, dec.feed, b"5")
    raises_at(EventTooLargeError, 16, core.SseDecoder("text", 10).feed, b"data: 123\ndata: 45\n")
    raises_at(EventTooLargeError, 20, core.SseDecoder("text", 10).feed, b": comment\n" + b":" * 11)
    err = raises_at(EventTooLargeError, 10, core.SseDecoder("text", 10).feed, b"x" * 1000)
    assert isinstance(err, SSEParseError)


def test_sse_constructor_validation(core: ModuleType) -> None:
    with pytest.raises(ValueError):
        core.SseDecoder("binary")
    with pytest.raises(ValueError):
        core.SseDecoder("json", 0)
    with pytest.raises(TypeError):
        core.SseDecoder(b"json")
    with pytest.raises(TypeError):
        core.SseDecoder("json").feed("text")


@pytest.mark.parametrize(
    ("mode", "stream", "exc", "position"),
    [
        # positions are stream bytes: "event: data\n" is 12 bytes, "data: " 6 more
        ("json", b"event: data\ndata: [1,\ndata: x]\n\n", JSONParseError, 28),
        ("json", b"event: data\ndata: [1,\n\n", JSONParseError, 21),
        ("json", b"event: data\ndata: {}\n\n", JSONParseError, 18),
        ("json", b"event: data\ndata: [\xff]\n\n", JSONParseError, 19),
        ("json-raw", b"event: data\ndata: [1 2]\n\n", JSONParseError, 21),
        ("text", b"event: data\ndata: ok\ndata: \xe9\n\n", SSEParseError, 27),
        ("base64", b"event: data\ndata: AQ=\n\n", Base64DecodeError, 21),
        ("base64", b"event: data\ndata: AQ\ndata: -A==\n\n", Base64DecodeError, 27),
        ("base64", b"event: data\ndata: A===\n\n", Base64DecodeError, 19),
        ("base64", b"event: data\ndata: A=A=\n\n", Base64DecodeError, 20),
        ("text", b"event: control\ndata: [1]\n\n", SSEParseError, 21),
        ("text", b"event: control\ndata: {}\n\n", SSEParseError, 21),
        ("text", b'event: control\ndata: {"streamNextOffset":1}\n\n', SSEParseError, 21),
        (
            "text",
            b'event: control\ndata: {"streamNextOffset":"1","upToDate":1}\n\n',
            SSEParseError,
            21,
        ),
        (
            "text",
            b'event: control\ndata: {"streamNextOffset":"1","streamCursor":2}\n\n',
            SSEParseError,
            21,
        ),
        ("text", b"event: control\ndata: {\n\n", SSEParseError, 22),
        ("text", b"event: control\ndata: {\xff}\n\n", SSEParseError, 22),
        ("text", b"event: d\xffta\n", SSEParseError, 8),
        ("text", b"id: \xff\n", SSEParseError, 4),
    ],
)
def test_sse_errors(
    core: ModuleType, mode: str, stream: bytes, exc: type[ParseError], position: int
) -> None:
    raises_at(exc, position, core.SseDecoder(mode).feed, stream)
    # The position counts every byte fed before, across feeds.
    dec = core.SseDecoder(mode)
    assert dec.feed(b": pad\n") == []
    raises_at(exc, position + 6, dec.feed, stream)


def test_sse_control_defaults_and_nulls(core: ModuleType) -> None:
    dec = core.SseDecoder("json")
    got = dec.feed(
        b'event: control\ndata: {"streamNextOffset":"a","streamCursor":null,"upToDate":null,'
        b'"extra":[1,{"x":2}],"streamNextOffset":"b"}\n\n'
    )
    assert got == [core.Control("b", None, False, False)]


def test_sse_invalid_utf8_in_skipped_events_is_ignored(core: ModuleType) -> None:
    assert core.SseDecoder("text").feed(b"data: \xff\n\nevent: x\ndata: \xfe\n\n:\xff\n") == []


# --- BatchBuilder ---------------------------------------------------------------------------


def test_batch_json(core: ModuleType) -> None:
    b = core.BatchBuilder(True, 24)
    assert (b.json_mode, b.max_batch_bytes, b.nbytes, len(b)) == (True, 24, 0, 0)
    assert b.take() == b""
    assert b.push(" 123\n")
    assert b.nbytes == 5
    assert b.push(b'"ab"')
    assert b.push({"k": [1, 2.5]})
    assert b.nbytes == len(b'[123,"ab",{"k":[1,2.5]}]')
    assert not b.push("1")
    assert len(b) == 3
    body = b.take()
    assert body == b'[123,"ab",{"k":[1,2.5]}]'
    assert (len(b), b.nbytes) == (0, 0)
    assert b.push("[" + "1," * 50 + "1]")  # larger than the cap, alone
    assert not b.push("2")
    assert b.take() == b"[[" + b"1," * 50 + b"1]]"
    assert b.push(bytearray(b"true")) and b.push(memoryview(b"null"))
    assert b.take() == b"[true,null]"


def test_batch_json_exact_fit(core: ModuleType) -> None:
    b = core.BatchBuilder(True, 7)
    assert b.push("1") and b.push("2") and b.push("3")  # [1,2,3] is 7 bytes
    assert b.nbytes == 7
    assert not b.push("4")
    assert b.push_many(["5"]) == 0


def test_batch_json_rejects_invalid_texts(core: ModuleType) -> None:
    b = core.BatchBuilder(True, 100)
    raises_at(JSONParseError, 2, b.push, "1 2")
    raises_at(JSONParseError, 3, b.push, "[1,")
    raises_at(JSONParseError, 2, b.push, "  ")
    raises_at(JSONParseError, 0, b.push, "NaN")
    raises_at(JSONParseError, 1, b.push, '"\\udc00"')
    raises_at(JSONParseError, 1, b.push, b"[\xff]")
    assert len(b) == 0
    with pytest.raises(TypeError):
        b.push({1: 2})
    with pytest.raises(UnicodeEncodeError):
        b.push("\ud800")


def test_batch_raw(core: ModuleType) -> None:
    b = core.BatchBuilder(False, 4)
    assert b.push_many(["ab", b"c", bytearray(b"d"), b"e"]) == 3
    assert b.nbytes == 4 and len(b) == 3
    assert b.take() == b"abcd"
    assert b.push("é" * 5)
    assert b.take() == "é".encode() * 5
    with pytest.raises(TypeError):
        b.push(1)
    with pytest.raises(TypeError):
        b.push({"a": 1})


def test_batch_push_many_stops_at_first_misfit(core: ModuleType) -> None:
    b = core.BatchBuilder(True, 10)
    assert b.push_many(["1", "22", "333", "4"]) == 3  # [1,22,333] is 10 bytes
    assert b.take() == b"[1,22,333]"
    assert b.push_many(iter(["4"])) == 1


def test_batch_add_calls_on_outcome_only_when_something_is_left_to_do(core: ModuleType) -> None:
    b = core.BatchBuilder(True, 12)
    with pytest.raises(ValueError, match="on_outcome"):
        b.add({"a": 1})  # the first message opens the batch: something to do, nobody to do it
    assert b.take() == b'[{"a":1}]'
    calls: list[tuple[Any, int]] = []
    b.on_outcome = lambda item, outcome: calls.append((item, outcome))
    b.max_items = 3
    for item in (1, 2, 3, 4444444444):
        b.add(item)
    b.accepting = False
    b.add(5)
    assert calls == [(1, 1), (3, 2), (4444444444, 3), (5, 3)]  # opened, filled, no fit, refused
    assert b.take() == b"[1,2,3]"
    b.accepting = True
    with pytest.raises(JSONParseError):
        b.add("[1,")  # a refused message raises before anything is called
    assert len(calls) == 5 - 1


def test_a_producer_dropped_without_closing_is_collected(core: ModuleType) -> None:
    """The builder calls back into its producer (a reference cycle the collector must see)."""
    import asyncio
    import gc
    import weakref

    import durable_streams as ds
    from durable_streams import _core

    async def make() -> weakref.ref[Any]:
        producer = ds.IdempotentProducer(
            "http://127.0.0.1:9/s", producer_id="p", epoch=0, content_type="application/json"
        )
        assert isinstance(producer._core._builder, core.BatchBuilder)
        return weakref.ref(producer)

    before = _core.impl
    _core.use("native" if core.__name__.endswith("_native") else "pure")
    try:
        gone = asyncio.run(make())
    finally:
        _core.impl = before
    gc.collect()
    assert gone() is None


def test_batch_constructor_validation(core: ModuleType) -> None:
    for bad in (0, -1):
        with pytest.raises(ValueError):
            core.BatchBuilder(True, bad)


def test_sse_events_before_bad_bytes_in_one_chunk_come_out_first(core: ModuleType) -> None:
    """A read that completes good events and then meets bad bytes returns the good ones; the
    error is held for take_error(), or raised by the next feed if nobody took it."""
    good = b'event: data\ndata: [1]\n\nevent: control\ndata: {"streamNextOffset":"0_1"}\n\n'
    bad = b"event: data\ndata: [nope\n\n"
    decoder = core.SseDecoder("json")
    events = decoder.feed(good + bad)
    assert events[0] == [1] and events[1].next_offset == "0_1" and len(events) == 2
    error = decoder.take_error()
    assert type(error).__name__ == "JSONParseError" and error.position is not None
    assert decoder.take_error() is None
    again = core.SseDecoder("json")
    assert len(again.feed(good + bad)) == 2
    with pytest.raises(JSONParseError):
        again.feed(b"")
    with pytest.raises(JSONParseError):  # bad bytes alone raise at once, as before
        core.SseDecoder("json").feed(bad)
