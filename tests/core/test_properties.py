"""Property tests: the same random inputs, split at random chunk boundaries, through both
cores must give identical outputs and identical errors (class, message and position)."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import durable_streams._core._native as native
import durable_streams._core._pure as pure
from durable_streams._errors import ParseError

from .conftest import same

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    """What a call produced: its value, or the error's class, message and position."""
    try:
        return ("ok", fn(*args))
    except ParseError as e:
        return ("error", (type(e).__name__, e.message, e.position))
    except (TypeError, ValueError) as e:
        return ("error", (type(e).__name__,))


def normalize(value: Any) -> Any:
    """Controls of the two cores are different classes; compare them as tuples."""
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, (native.Control, pure.Control)):
        return ("Control", value.next_offset, value.cursor, value.up_to_date, value.closed)
    return value


# --- JSON -----------------------------------------------------------------------------------

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
WS = st.sampled_from(["", " ", "\n", "\t", "\r\n "])


@st.composite
def json_texts(draw: st.DrawFn) -> bytes:
    """A JSON array text with random spacing, sometimes corrupted."""
    items = draw(st.lists(json_values, max_size=5))
    sep = draw(WS)
    text = (
        draw(WS)
        + "["
        + sep
        + ("," + sep).join(json.dumps(v, ensure_ascii=draw(st.booleans())) for v in items)
        + sep
        + "]"
        + draw(WS)
    )
    raw = text.encode()
    if draw(st.booleans()):
        pos = draw(st.integers(0, len(raw)))
        junk = draw(
            st.sampled_from(
                [
                    b"",
                    b",",
                    b"]",
                    b"[",
                    b'"',
                    b"\\",
                    b"\\u",
                    b"\\ud800",
                    b"NaN",
                    b"\xff",
                    b"-",
                    b"1e",
                    b".",
                    b"\x01",
                    b"}",
                    b"{",
                    b":",
                    b"tru",
                    b" x",
                    b"\xc3",
                ]
            )
        )
        cut = draw(st.integers(pos, min(len(raw), pos + 3)))
        raw = raw[:pos] + junk + raw[cut:]
    return raw


@SETTINGS
@given(json_texts())
def test_json_bodies_agree(body: bytes) -> None:
    for name in ("parse_json_array", "split_json_array"):
        a = outcome(getattr(native, name), body)
        b = outcome(getattr(pure, name), body)
        assert a == b, (name, body)
    parsed = outcome(native.parse_json_array, body)
    if parsed[0] == "ok":
        try:
            expected = json.loads(body)
        except ValueError:
            expected = None
        if expected is not None and body.strip():
            assert parsed[1] == expected


@SETTINGS
@given(st.lists(json_values, max_size=5), st.booleans())
def test_parsed_values_are_json_loads_values(items: list[Any], ascii: bool) -> None:
    # Same types and, for floats, the same bits (`==` alone takes 1 for 1.0 and 0.0 for -0.0).
    body = json.dumps(items, ensure_ascii=ascii).encode()
    assert same(native.parse_json_array(body), json.loads(body))


@SETTINGS
@given(json_values)
@example(562949953421312.2)  # halfway between two shortest spellings: CPython takes the even
def test_encode_agrees_with_json_dumps(value: Any) -> None:
    want = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        encoded = want.encode()
    except UnicodeEncodeError:
        encoded = None
    for core in (native, pure):
        if encoded is None:
            assert outcome(core.encode_json, value)[0] == "error"
        else:
            assert core.encode_json(value) == encoded
            assert core.parse_json_array(b"[" + encoded + b"]") == [value]


# --- SSE ------------------------------------------------------------------------------------

EOL = st.sampled_from([b"\n", b"\r", b"\r\n"])


def data_payloads(mode: str) -> st.SearchStrategy[str]:
    if mode in ("json", "json-raw"):
        return st.lists(json_values, max_size=4).map(lambda v: json.dumps(v, ensure_ascii=False))
    if mode == "base64":
        import base64

        return st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode())
    return st.text(max_size=20).map(lambda t: t.replace("\r", "").replace("\n", ""))


@st.composite
def sse_streams(draw: st.DrawFn, mode: str) -> bytes:
    out = []
    if draw(st.booleans()):
        out.append(b"\xef\xbb\xbf")
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["data", "control", "comment", "other", "fields", "junk"]))
        eol = draw(EOL)
        lines: list[bytes] = []
        if kind == "data":
            lines.append(b"event: data")
            text = draw(data_payloads(mode)).encode("utf-8", "surrogatepass")
            # split the payload over several data lines at random points
            cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=3)))
            prev = 0
            for c in [*cuts, len(text)]:
                lines.append(b"data:" + draw(st.sampled_from([b"", b" "])) + text[prev:c])
                prev = c
        elif kind == "control":
            obj: dict[str, Any] = {"streamNextOffset": draw(st.text(max_size=6))}
            if draw(st.booleans()):
                obj["streamCursor"] = draw(st.one_of(st.text(max_size=4), st.none(), st.integers()))
            if draw(st.booleans()):
                obj["upToDate"] = draw(st.one_of(st.booleans(), st.none(), st.integers(0, 1)))
            if draw(st.booleans()):
                obj["streamClosed"] = draw(st.booleans())
            if draw(st.integers(0, 9)) == 0:
                del obj["streamNextOffset"]
            lines += [b"event:control", b"data: " + json.dumps(obj).encode()]
        elif kind == "comment":
            lines.append(
                b":" + draw(st.text(max_size=10)).encode().replace(b"\r", b"").replace(b"\n", b"")
            )
        elif kind == "other":
            lines += [b"event: message", b"data: hello"]
        elif kind == "fields":
            lines.append(
                draw(
                    st.sampled_from(
                        [
                            b"id: 42",
                            b"id",
                            b"id: a\x00b",
                            b"retry: 1500",
                            b"retry: x1",
                            b"retry",
                            b"data",
                            b"event",
                            b"unknown: 1",
                        ]
                    )
                )
            )
        else:
            lines.append(draw(st.binary(max_size=8)).replace(b"\r", b"").replace(b"\n", b""))
        for line in lines:
            out.append(line + draw(EOL))
        if draw(st.integers(0, 4)) > 0:
            out.append(eol)
    return b"".join(out)


def run_decoder(core: ModuleType, mode: str, cap: int, chunks: list[bytes]) -> Any:
    dec = core.SseDecoder(mode, cap)
    results: list[Any] = []
    for c in chunks:
        r = outcome(dec.feed, c)
        results.append(normalize(r[1]) if r[0] == "ok" else r)
        if r[0] == "error":
            break
    else:
        results.append(dec.flush())
    return results, dec.last_event_id, dec.retry_ms


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    chunks, prev = [], 0
    for c in [*cuts, len(data)]:
        chunks.append(data[prev:c])
        prev = c
    return chunks


@SETTINGS
@given(st.data())
def test_sse_streams_agree(data: st.DataObject) -> None:
    mode = data.draw(st.sampled_from(["json", "json-raw", "text", "base64"]))
    stream = data.draw(sse_streams(mode))
    if data.draw(st.integers(0, 5)) == 0 and stream:
        pos = data.draw(st.integers(0, len(stream) - 1))
        stream = stream[:pos] + data.draw(st.binary(min_size=1, max_size=3)) + stream[pos + 1 :]
    chunks = data.draw(chunked(stream))
    cap = data.draw(st.sampled_from([16_777_216, 64, 24]))
    a = run_decoder(native, mode, cap, chunks)
    b = run_decoder(pure, mode, cap, chunks)
    assert a == b
    # Chunking never changes the result (as long as nothing failed).
    whole = run_decoder(native, mode, cap, [stream])
    if all(r[0] != "error" for r in a[0] if isinstance(r, tuple)):
        flat_a = [x for r in a[0][:-1] for x in r]
        assert flat_a == whole[0][0]


# --- BatchBuilder ---------------------------------------------------------------------------

batch_items = st.one_of(
    json_values.map(lambda v: json.dumps(v)),
    json_values.map(lambda v: (" " + json.dumps(v) + "\n").encode()),
    json_values,
    st.sampled_from(["", "[1,", "1 2", "NaN", b"\xff", '"\\ud800"']),
)


@SETTINGS
@given(st.booleans(), st.integers(1, 120), st.lists(batch_items, max_size=20))
def test_batches_agree(json_mode: bool, cap: int, items: list[Any]) -> None:
    builders: list[Any] = [native.BatchBuilder(json_mode, cap), pure.BatchBuilder(json_mode, cap)]
    for item in items:
        results = [outcome(b.push, item) for b in builders]
        assert results[0] == results[1], item
        assert [b.nbytes for b in builders] == [builders[0].nbytes] * 2
        assert len(builders[0]) == len(builders[1])
        assert builders[0].nbytes <= cap or len(builders[0]) == 1
        if results[0] == ("ok", False):
            bodies = [b.take() for b in builders]
            assert bodies[0] == bodies[1]
    nbytes = builders[0].nbytes
    bodies = [b.take() for b in builders]
    assert bodies[0] == bodies[1]
    assert len(bodies[0]) == nbytes
    if json_mode and bodies[0]:
        json.loads(bodies[0])


@SETTINGS
@given(st.integers(1, 200), st.lists(st.sampled_from(["1", "[2,3]", '"x"', "{}"]), max_size=60))
def test_push_many_agrees(cap: int, items: list[str]) -> None:
    a, b = native.BatchBuilder(True, cap), pure.BatchBuilder(True, cap)
    while items:
        na, nb = a.push_many(items), b.push_many(items)
        assert na == nb
        body = a.take()
        assert body == b.take()
        assert len(body) <= cap or na == 1
        items = items[max(na, 1) :]


offer_steps = st.lists(
    st.one_of(
        batch_items.map(lambda item: ("offer", item)),
        st.integers(-5, 200).map(lambda room: ("room", room)),
        st.integers(0, 4).map(lambda n: ("max_items", n)),
        st.booleans().map(lambda on: ("accepting", on)),
        st.just(("take", None)),
    ),
    max_size=30,
)


@SETTINGS
@given(st.booleans(), st.integers(1, 120), offer_steps)
def test_offers_agree(json_mode: bool, cap: int, steps: list[tuple[str, Any]]) -> None:
    builders: list[Any] = [native.BatchBuilder(json_mode, cap), pure.BatchBuilder(json_mode, cap)]
    for step, value in steps:
        if step == "offer":
            before = builders[0].nbytes, len(builders[0])
            results = [outcome(b.offer, value) for b in builders]
            assert results[0] == results[1], value
            kind, answer = results[0]
            taken = kind == "ok" and answer != 3
            assert (len(builders[0]) == before[1] + 1) == taken
            if taken:
                assert before[0] < builders[0].room and builders[0].accepting
                assert (answer == 2) == (len(builders[0]) == builders[0].max_items)
                assert answer == 2 or (answer == 1) == (len(builders[0]) == 1)
            elif kind == "ok":
                assert builders[0].nbytes == before[0]
        elif step == "take":
            assert builders[0].take() == builders[1].take()
        else:
            for b in builders:
                setattr(b, step, value)
        assert [b.nbytes for b in builders] == [builders[0].nbytes] * 2
        assert len(builders[0]) == len(builders[1])
    assert builders[0].take() == builders[1].take()


# --- JSON bodies read as they arrive ----------------------------------------------------------


def read_in_parts(
    core: ModuleType, raw: bool, min_group: int, chunks: list[bytes], drain: bool = True
) -> Any:
    """A body fed chunk by chunk: the elements of each group, or the error it ended in.
    After each chunk every group ready is taken (``drain``), or only the first."""
    reader = core.JsonArrayReader(raw, min_group)
    groups: list[Any] = []

    def run() -> list[Any]:
        for chunk in chunks:
            group = reader.feed(chunk)
            while group:
                groups.append(group)
                group = reader.next_group() if drain else []
        groups.append(reader.finish())
        return [g for g in groups if g]

    return outcome(run), reader.saw_array


@SETTINGS
@given(st.data())
def test_json_bodies_read_in_parts_agree(data: st.DataObject) -> None:
    """Any cut into chunks and groups gives both cores the same elements, and the same error
    (at the same body byte) for a broken body; a whole body gives what it gives whole."""
    body = data.draw(json_texts())
    raw = data.draw(st.booleans())
    min_group = data.draw(st.sampled_from([0, 1, 4, 16, 1 << 20]))
    chunks = data.draw(chunked(body))
    drain = data.draw(st.booleans())
    got_native = read_in_parts(native, raw, min_group, chunks, drain)
    assert got_native == read_in_parts(pure, raw, min_group, chunks, drain), (body, chunks)
    (status, groups), saw_array = got_native
    assert got_native == read_in_parts(native, raw, min_group, [body]) or min_group < 1 << 20
    if got_native[0][0] == "ok" and drain:
        # Groups end where the body says (at the first comma min_group bytes into each), not
        # where its chunks do.
        assert got_native == read_in_parts(native, raw, min_group, [body])
    if status == "error":
        assert outcome(native.split_json_array, body)[0] == "error", body
        return
    whole = native.split_json_array(body) if raw else native.parse_json_array(body)
    assert [item for group in groups for item in group] == whole
    assert saw_array == bool(body.strip())
    assert len(groups) <= 1 or min_group < len(body)


@SETTINGS
@given(st.data())
def test_json_body_errors_do_not_depend_on_the_cut(data: st.DataObject) -> None:
    body = data.draw(json_texts())
    one = read_in_parts(native, False, 0, [body])[0]
    for _ in range(3):
        chunks = data.draw(chunked(body))
        min_group = data.draw(st.sampled_from([0, 3, 1 << 20]))
        got = read_in_parts(native, False, min_group, chunks)[0]
        if one[0] == "error":
            assert got == one, (body, chunks, min_group)
        else:
            assert got[0] == "ok"
