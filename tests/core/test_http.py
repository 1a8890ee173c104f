"""The HTTP/1.1 response decoder of both cores: framing, hostile bytes, and agreement between
the native and pure twins on random (and randomly corrupted) responses cut at random points."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable_streams._core._native as native
import durable_streams._core._pure as pure
from durable_streams import HTTPParseError, TransportError

CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def decode(core: ModuleType, chunks: list[bytes], *, eof: bool = True, cap: int = 65536) -> Any:
    """(head, body, done) of feeding ``chunks``; the bytes after the response end are kept."""
    decoder = core.HttpResponseDecoder(cap)
    head = None
    body = b""
    rest = b""
    for chunk in chunks:
        got, part, taken = decoder.feed(chunk)
        head = head or got
        body += part
        rest += chunk[taken:]
    if eof:
        decoder.finish()
    return head, body, decoder.done, rest


def error(core: ModuleType, chunks: list[bytes], cap: int = 65536) -> tuple[str, int]:
    with pytest.raises(HTTPParseError) as info:
        decode(core, chunks, cap=cap)
    assert isinstance(info.value, TransportError) and isinstance(info.value, ValueError)
    assert info.value.position is not None
    return info.value.message, info.value.position


def test_content_length_and_repeated_fields(core: ModuleType) -> None:
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a:  2 \r\n\r\nhelloNEXT"
    for at in range(len(wire) + 1):
        head, body, done, rest = decode(core, [wire[:at], wire[at:]], eof=False)
        assert head == (200, {"content-length": "5", "x-a": "1, 2"})
        assert (body, done, rest) == (b"hello", True, b"NEXT")


def test_chunked_with_extensions_and_trailers(core: ModuleType) -> None:
    wire = CHUNKED + b"5;a=b\r\nhello\r\n1\r\n!\r\n0\r\nTrailer: x\r\n\r\n"
    for at in range(len(wire) + 1):
        head, body, done, _ = decode(core, [wire[:at], wire[at:]])
        assert head is not None and head[0] == 200 and (body, done) == (b"hello!", True)


def test_close_delimited_body_ends_with_the_connection(core: ModuleType) -> None:
    decoder = core.HttpResponseDecoder()
    head, body, _ = decoder.feed(b"HTTP/1.0 200 OK\r\n\r\nab")
    assert head == (200, {}) and body == b"ab" and decoder.close_delimited
    decoder.finish()
    assert decoder.done


def test_interim_answers_are_skipped_and_204_has_no_body(core: ModuleType) -> None:
    head, body, done, rest = decode(
        core, [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nX"], eof=False
    )
    assert (head, body, done, rest) == ((204, {}), b"", True, b"X")


def test_the_answer_to_a_head_request_has_no_body_whatever_its_head_says(
    core: ModuleType,
) -> None:
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: 512\r\nTransfer-Encoding: gzip\r\n\r\nNEXT"
    for at in range(len(wire) + 1):
        decoder = core.HttpResponseDecoder(65536, True)
        head, body, taken = decoder.feed(wire[:at])
        if head is None:
            head, body, more = decoder.feed(wire[at:])
            taken = at + more
        assert head == (200, {"content-length": "512", "transfer-encoding": "gzip"})
        assert (body, decoder.done, wire[taken:]) == (b"", True, b"NEXT")
    assert not core.HttpResponseDecoder(65536, no_body=True).done  # nothing fed yet


def test_a_whole_body_read_comes_back_without_a_copy(core: ModuleType) -> None:
    decoder = core.HttpResponseDecoder()
    decoder.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    chunk = bytes(range(256)) * 64
    assert decoder.feed(chunk)[1] is chunk


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"HTTP/1.1 2000 OK\r\n\r\n", "malformed HTTP response head"),
        (b"HTTP/2 200 OK\r\n\r\n", "malformed HTTP response head"),
        (b"\r\nHTTP/1.1 200 OK\r\n\r\n", "malformed HTTP response head"),
        (b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", "malformed HTTP response head"),
        (b"HTTP/1.1 200 OK\r\nA: b\x00c\r\n\r\n", "malformed HTTP response head"),
        (b"HTTP/1.1 200 OK\r\nA b\r\n\r\n", "malformed HTTP response head"),
        (b"HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", "malformed HTTP response head"),
        (b"HTTP/1.1 101 Switching\r\n\r\n", "unexpected 101 Switching Protocols"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n", "invalid Content-Length"),
    ],
)
def test_hostile_heads(core: ModuleType, wire: bytes, message: str) -> None:
    assert error(core, [wire]) == (message, 0)


def test_oversize_heads_and_too_many_fields(core: ModuleType) -> None:
    many = b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * 129 + b"\r\n"
    assert error(core, [many])[0] == "HTTP response head with more than 128 header fields"
    huge = b"HTTP/1.1 200 OK\r\nA: " + b"b" * 70_000
    assert error(core, [huge]) == ("HTTP response head larger than the limit", 0)
    # Trickled a byte at a time, the same head fails the same way (and in linear time).
    assert error(core, [bytes([b]) for b in huge[:5000]], cap=4096)[0].endswith("the limit")


@pytest.mark.parametrize(
    ("framing", "message", "at"),
    [
        (b"zz\r\n", "invalid chunk size", 0),
        (b"5 \r\n", "invalid chunk size", 0),
        (b"5\n", "invalid chunk size", 0),
        (b"1000000000000000\r\n", "invalid chunk size", 0),
        (b"-5\r\n", "invalid chunk size", 0),
        (b"2\r\nabXY", "chunk data not followed by CRLF", 5),
        (b"5;" + b"x" * 5000, "chunk-size line longer than 4096 bytes", 0),
        (b"5\r\nab", "connection closed before the end of the response body", 5),
        (b"0\r\nTrailer: x", "connection closed before the end of the response body", 13),
    ],
)
def test_hostile_chunked_framing(core: ModuleType, framing: bytes, message: str, at: int) -> None:
    assert error(core, [CHUNKED + framing]) == (message, len(CHUNKED) + at)


def test_truncation_at_the_end_of_input(core: ModuleType) -> None:
    assert error(core, [b""]) == ("connection closed before a response", 0)
    assert error(core, [b"HTTP/1.1 200"]) == ("connection closed inside the response head", 12)
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"
    assert error(core, [cut]) == (
        "connection closed before the end of the response body",
        len(cut),
    )


# --- the twins agree ---------------------------------------------------------------------

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOKENS = st.text(alphabet="abcXYZ-_!~09", min_size=1, max_size=6)
VALUES = st.binary(max_size=12).map(lambda b: bytes(c for c in b if c not in b"\r\n"))


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    status = draw(st.sampled_from([b"200 OK", b"204 No Content", b"100 Continue", b"404", b"20"]))
    fields = draw(st.lists(st.tuples(TOKENS, VALUES), max_size=4))
    body = draw(st.binary(max_size=40))
    framing = draw(st.sampled_from(["length", "chunked", "close", "none"]))
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    head = b"HTTP/1.1 " + status + eol
    for name, value in fields:
        head += name.encode() + b": " + value + eol
    if framing == "length":
        head += b"Content-Length: " + str(len(body)).encode() + eol
    elif framing == "chunked":
        head += b"Transfer-Encoding: chunked" + eol
        sizes = draw(st.lists(st.integers(1, 9), max_size=5))
        parts, at = [], 0
        for size in sizes:
            piece = body[at : at + size]
            at += size
            if piece:
                parts.append(b"%x" % len(piece) + b"\r\n" + piece + b"\r\n")
        body = b"".join(parts) + b"0\r\n\r\n"
    wire = head + eol + (body if framing != "none" else b"")
    if draw(st.booleans()):  # corrupt one byte, insert junk, or cut it short
        at = draw(st.integers(0, len(wire)))
        junk = draw(st.sampled_from([b"", b"\x00", b"\r", b"\n", b" ", b":", b"zz", b"\r\n\r\n"]))
        wire = wire[:at] + junk + wire[at + draw(st.integers(0, 2)) :]
    return wire


def outcome(core: ModuleType, chunks: list[bytes], cap: int) -> Any:
    try:
        return ("ok", decode(core, chunks, cap=cap))
    except HTTPParseError as exc:
        return ("error", exc.message, exc.position)


@SETTINGS
@given(responses(), st.lists(st.integers(0, 200), max_size=3), st.integers(16, 200))
def test_native_and_pure_agree(wire: bytes, cuts: list[int], cap: int) -> None:
    points = sorted({min(c, len(wire)) for c in cuts})
    chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    assert outcome(native, chunks, cap) == outcome(pure, chunks, cap)
    whole = outcome(native, [wire], cap)
    if whole[0] == "ok":
        assert outcome(native, chunks, cap) == whole
