"""Stubs of the native core. ``durable_streams._pure`` implements the same names in Python."""

from collections.abc import Callable
from typing import Any, Final, Literal, final

from typing_extensions import Self

from .._errors import ParseError

__all__ = [
    "BatchBuilder",
    "Control",
    "HttpResponseDecoder",
    "JsonArrayReader",
    "SseDecoder",
    "__version__",
    "encode_json",
    "fold_changes",
    "parse_json_array",
    "split_json_array",
]

__version__: Final[str]

DataMode = Literal["json", "json-raw", "text", "base64"]

@final
class Control:
    """A Durable Streams SSE ``control`` event."""

    next_offset: Final[str]
    cursor: Final[str | None]
    up_to_date: Final[bool]
    closed: Final[bool]
    def __new__(
        cls,
        next_offset: str,
        cursor: str | None = None,
        up_to_date: bool = False,
        closed: bool = False,
    ) -> Self: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class SseDecoder:
    """Incremental SSE decoder that interprets Durable Streams ``data`` and ``control`` events.

    ``feed`` returns, in order, one entry per complete event in the bytes so far: a
    :class:`Control` for a control event, and for a data event its payload, whose type follows
    ``data_mode``: ``"json"`` a list of decoded messages, ``"json-raw"`` a list of each message's
    raw bytes, ``"text"`` a str, ``"base64"`` the decoded bytes. Other event types are skipped.
    """

    max_event_bytes: Final[int]
    last_event_id: Final[str]
    retry_ms: Final[int | None]
    def __new__(cls, data_mode: DataMode, max_event_bytes: int = 16_777_216) -> Self: ...
    def feed(self, chunk: bytes) -> list[Any]: ...
    def take_error(self) -> ParseError | None: ...
    def flush(self) -> list[Any]: ...

def parse_json_array(body: bytes) -> list[Any]:
    """The messages of a JSON-mode read body (a JSON array), as Python objects."""

def split_json_array(body: bytes) -> list[bytes]:
    """The raw bytes of each message of a JSON-mode read body."""

@final
class JsonArrayReader:
    """Reads a JSON-mode body (one array) as it arrives.

    A group ends at the first comma between elements at least ``min_group_bytes`` after its
    start. ``feed`` returns the elements of the first group its bytes made whole (none while
    the body is shorter), ``next_group`` those of each next one (``[]`` when none is ready:
    a chunk can hold many), ``finish`` the rest once the body ended; elements are Python
    objects, or with ``raw`` the bytes of each. Errors are
    :class:`~durable_streams.JSONParseError` at a byte position in the body. A body of only
    whitespace reads as no elements and leaves ``saw_array`` false.
    """

    def __new__(cls, raw: bool = False, min_group_bytes: int = 1_048_576) -> Self: ...
    @property
    def saw_array(self) -> bool: ...
    @property
    def buffered(self) -> int: ...
    @property
    def min_group_bytes(self) -> int: ...
    @min_group_bytes.setter
    def min_group_bytes(self, value: int) -> None: ...
    def feed(self, chunk: bytes) -> list[Any]: ...
    def next_group(self) -> list[Any]: ...
    def finish(self) -> list[Any]: ...

def encode_json(value: Any) -> bytes:
    """``value`` as compact JSON (``json.dumps`` with separators ``,`` and ``:``, UTF-8)."""

def fold_changes(
    messages: list[Any], start: int, types: dict[str, dict[str, Any]], txids: set[str]
) -> int:
    """Folds State Protocol change messages ``messages[start:]`` into ``types`` and their
    txids into ``txids`` until one it does not take (a control, or not a valid change);
    returns that one's index, or ``len(messages)``."""

@final
class BatchBuilder:
    """Assembles append bodies: a JSON array for JSON streams, concatenation otherwise."""

    json_mode: Final[bool]
    max_batch_bytes: Final[int]
    room: int
    max_items: int
    accepting: bool
    on_outcome: Callable[[Any, int], object] | None
    def __new__(cls, json_mode: bool, max_batch_bytes: int) -> Self: ...
    def add(self, item: Any) -> None:
        """``offer(item)``, then ``on_outcome(item, outcome)`` unless the outcome is
        ``TAKEN``: a producer's ``append_nowait`` in one call."""
    def push(self, item: Any) -> bool: ...
    def offer(self, item: Any) -> int:
        """One message for a producer: ``NOT_TAKEN`` (3) while not ``accepting``, when the
        open batch has ``room`` bytes or more, or when the message does not fit it (seal,
        then push); otherwise taken, and ``TAKEN_FIRST`` (1) when it opened the batch,
        ``TAKEN_FILLED`` (2) when the batch now has ``max_items`` (0: no limit), else
        ``TAKEN`` (0)."""
    def push_many(self, items: list[Any]) -> int: ...
    @property
    def nbytes(self) -> int: ...
    def __len__(self) -> int: ...
    def take(self) -> bytes: ...

@final
class HttpResponseDecoder:
    """Incremental decoder of one HTTP/1.1 response, fed the bytes of a connection
    (``no_body``: the answer to a HEAD, which has no body whatever its head says).

    ``feed(data)`` returns ``(head, body, taken)``: ``head`` is ``(status, headers)`` (names
    lower-cased, repeated fields joined with ", ", values latin-1) in the call where the head
    completes, else ``None``; ``body`` is the body bytes ``data`` carried, with the framing
    (Content-Length, chunked, close-delimited) undone; ``taken`` is how many bytes of ``data``
    belong to this response (fewer than ``len(data)`` only once it ended). Interim 1xx answers
    are skipped. ``finish()`` says the connection closed: it ends a close-delimited body and
    raises for anything unfinished. Every error is an ``HTTPParseError`` with the position of
    the element at fault in the connection's input.
    """

    done: Final[bool]
    close_delimited: Final[bool]
    def __new__(cls, max_head_bytes: int = 65536, no_body: bool = False) -> Self: ...
    def feed(self, data: bytes) -> tuple[tuple[int, dict[str, str]] | None, bytes, int]: ...
    def finish(self) -> None: ...
