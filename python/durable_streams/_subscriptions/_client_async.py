"""Subscriptions for async code: :class:`AsyncSubscriptions` manages them and works their
wakes; :class:`AsyncSubscriptionConsumer` is the whole at-least-once consumer loop.

Delivery is at least once: a message counts as handled once the ack of its batch is in, and
everything after a stream's last ack is delivered again (to this worker or another) after a
crash, a lost lease, a released wake or a handler error. Handlers should be idempotent, or
remember what they did by ``(stream, offset)``.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

import httpx

from .. import _errors as errors
from .. import _protocol as proto
from .._defaults import async_default_dispatcher
from .._dispatch_async import AsyncClientLike, dispatcher_for
from .._flavours import Beat, async_call, async_heartbeat, async_shield
from .._log import log
from .._options import (
    DEFAULT_LIVE_READ_TIMEOUT,
    Headers,
    make_timeout,
    request_timeout,
)
from .._protocol import HttpRequest
from .._reading._response_async import astream
from .._retry import RetryPolicy
from .._values import (
    Ack,
    Claim,
    ConsumerStats,
    PendingStream,
    Subscription,
    SubscriptionMessage,
    SubscriptionType,
    WebhookDelivery,
)
from . import _rules as subs

__all__ = ["AsyncSubscriptionConsumer", "AsyncSubscriptions"]

# How long a release may take when the consumer stops (cancelled, or a handler failed).
RELEASE_TIMEOUT = 10.0


class AsyncSubscriptions:
    """The subscriptions of one server, whose stream root is ``root`` (the URL stream paths
    are relative to, e.g. ``http://host/v1/stream``): create, read and delete them, change
    their explicit streams, and work their wakes (claim, ack, release; callbacks for
    webhooks).

    Failed requests are retried under ``retry`` where resending cannot apply a call twice.
    Refusals raise :class:`SubscriptionError` subclasses named after the server's codes
    (:class:`FencedError`, :class:`AlreadyClaimedError`, ...). Use it as a context manager,
    or close it. Requests share the ``client``'s connection pool (an :class:`AsyncClient`, or
    a caller's own httpx client), else the running event loop's default one. A ``root`` that
    turns out
    to be a stream path (a server answers there as a stream) raises :class:`UsageError`,
    and a stream its call created there is deleted again."""

    def __init__(
        self,
        root: str,
        *,
        headers: Headers | None = None,
        params: Headers | None = None,
        client: AsyncClientLike | httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str | ssl.SSLContext = True,
    ) -> None:
        self.root = proto.check_url(root, "stream root").rstrip("/")
        proto.check_headers(headers)
        self._headers = headers
        self._params = params
        self._timeout = make_timeout(timeout)
        self._retry = retry or RetryPolicy()
        self._verify = verify
        self._client = client
        self._dispatcher = dispatcher_for(client, verify)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {errors.redact_url(self.root)}>"

    async def __aenter__(self) -> AsyncSubscriptions:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Done with it; the pooled connections stay, shared with others."""

    async def _call(
        self,
        req: HttpRequest,
        operation: str,
        subscription_id: str | None,
        timeout: httpx.Timeout | None = None,
        *,
        stream: bool = False,
    ) -> tuple[int, dict[str, str], bytes]:
        """``req`` to the subscription API (or, with ``stream``, to a stream): the answer, or
        its typed error."""
        dispatcher = self._dispatcher
        if dispatcher is None:
            dispatcher = self._dispatcher = await async_default_dispatcher(self._verify)
        status, headers, body = await dispatcher.send(
            req,
            headers=self._headers,
            params=self._params,
            timeout=timeout or self._timeout,
            retry=self._retry,
        )
        if not stream and subs.answered_as_stream(status, headers):
            if status == 201:  # made a stream where the subscription should be: undo that
                with contextlib.suppress(errors.DurableStreamError):
                    await dispatcher.send(
                        HttpRequest("DELETE", req.url),
                        headers=self._headers,
                        params=self._params,
                        timeout=self._timeout,
                        retry=self._retry,
                    )
            raise subs.not_a_root(self.root)
        if status >= 300:
            raise subs.error_for(
                status,
                headers,
                body,
                url=req.url,
                operation=operation,
                subscription_id=subscription_id,
            )
        return status, headers, body

    # -- managing subscriptions -----------------------------------------------------------

    async def create(
        self,
        subscription_id: str,
        *,
        type: SubscriptionType,
        pattern: str | None = None,
        streams: Iterable[str] | None = None,
        webhook_url: str | None = None,
        wake_stream: str | None = None,
        lease_ttl_ms: int | None = None,
        description: str | None = None,
    ) -> Subscription:
        """Create the subscription, or confirm an identical one (``result.created`` says
        which). ``pattern`` is a glob over stream paths (``*`` one segment, ``**`` any
        number); ``streams`` lists paths explicitly; give either or both. A ``"pull-wake"``
        subscription names its ``wake_stream`` (a JSON stream the server appends wake events
        to, which must exist); a ``"webhook"`` one its ``webhook_url``. ``lease_ttl_ms``
        (1,000 to 600,000; the server's default is 30,000) is how long a wake stays held
        without an ack. Another configuration under the same id raises
        :class:`SubscriptionExistsError`."""
        req = subs.create_request(
            self.root,
            subscription_id,
            type=type,
            pattern=pattern,
            streams=streams,
            webhook_url=webhook_url,
            wake_stream=wake_stream,
            lease_ttl_ms=lease_ttl_ms,
            description=description,
        )
        status, _, body = await self._call(req, "create subscription", subscription_id)
        return subs.subscription_result(status, body, url=req.url)

    async def get(self, subscription_id: str) -> Subscription:
        """The subscription with its linked streams and their acknowledged offsets."""
        req = subs.get_request(self.root, subscription_id)
        status, _, body = await self._call(req, "read subscription", subscription_id)
        return subs.subscription_result(status, body, url=req.url)

    async def delete(self, subscription_id: str) -> None:
        """Delete the subscription (no error if there is none). The holder of a wake in
        flight then gets :class:`SubscriptionNotFoundError` on its next ack."""
        req = subs.delete_request(self.root, subscription_id)
        await self._call(req, "delete subscription", subscription_id)

    async def add_streams(self, subscription_id: str, streams: Iterable[str]) -> None:
        """Link ``streams`` (paths) explicitly, from their current tails."""
        req = subs.add_streams_request(self.root, subscription_id, streams)
        await self._call(req, "add streams", subscription_id)

    async def remove_stream(self, subscription_id: str, path: str) -> None:
        """Unlink the explicit stream at ``path`` (it stays linked if the pattern matches it)."""
        req = subs.remove_stream_request(self.root, subscription_id, path)
        await self._call(req, "remove stream", subscription_id)

    # -- working wakes --------------------------------------------------------------------

    async def claim(self, subscription_id: str, worker: str) -> Claim:
        """Take the pull-wake subscription's wake for ``worker``; the server wakes it first if
        it has pending work and no wake. Raises :class:`AlreadyClaimedError` while another
        worker holds it and :class:`NoPendingWorkError` when there is nothing to do."""
        req = subs.claim_request(self.root, subscription_id, worker)
        _, _, body = await self._call(req, "claim", subscription_id)
        return subs.claim_result(body, url=req.url, subscription_id=subscription_id, worker=worker)

    async def ack(
        self,
        claim: Claim,
        acks: Iterable[Ack] | Mapping[str, str] = (),
        *,
        done: bool = False,
    ) -> bool:
        """Acknowledge ``acks`` (``{stream path: offset}`` or :class:`Ack` items; offsets as a
        read of the stream reported them) and renew the lease; with none, only renew it (a
        heartbeat). ``done=True`` finishes the wake. Returns whether the server woke the
        subscription again at once because work is still pending. A wake that moved on
        raises :class:`FencedError` and applies nothing."""
        url = subs.subscription_url(self.root, claim.subscription_id) + "/ack"
        req = subs.ack_request(url, claim.token, claim.wake_id, claim.generation, acks, done)
        _, _, body = await self._call(req, "ack", claim.subscription_id)
        return subs.ack_result(body, url=url)

    async def release(self, claim: Claim) -> None:
        """Give the wake back unfinished: what was not acknowledged is delivered again."""
        req = subs.release_request(self.root, claim)
        await self._call(req, "release", claim.subscription_id)

    async def callback(
        self,
        delivery: WebhookDelivery,
        acks: Iterable[Ack] | Mapping[str, str] = (),
        *,
        done: bool = False,
    ) -> bool:
        """:meth:`ack` for a webhook delivery, through its ``callback_url``."""
        req = subs.ack_request(
            delivery.callback_url,
            delivery.callback_token,
            delivery.wake_id,
            delivery.generation,
            acks,
            done,
        )
        _, _, body = await self._call(req, "callback", delivery.subscription_id)
        return subs.ack_result(body, url=delivery.callback_url)

    def consumer(self, subscription_id: str, *, worker: str) -> AsyncSubscriptionConsumer:
        """The at-least-once consumer loop of a pull-wake subscription, as ``worker``."""
        return AsyncSubscriptionConsumer(self, subscription_id, worker=worker)


class AsyncSubscriptionConsumer:
    """The consumer loop of a pull-wake subscription: wait on its wake stream, claim the wake,
    read every stream with pending work from its acknowledged offset, hand each message to the
    handler, acknowledge each batch once the handler returned for all of it, finish the wake,
    and wait again. The lease is renewed in the background (every third of ``lease_ttl_ms``)
    while the handler runs.

    Several workers (processes or tasks with distinct ``worker`` names) may run it on one
    subscription: one holds a wake at a time, and a worker whose lease ran out is fenced and
    goes back to waiting while the next holder resumes from the last ack.

    When the handler raises, the wake is released (what it had not acknowledged is delivered
    again) and the error propagates from :meth:`run`; so does cancellation (Ctrl+C in sync
    code), after the release."""

    def __init__(self, client: AsyncSubscriptions, subscription_id: str, *, worker: str) -> None:
        if not isinstance(worker, str) or not worker:
            raise ValueError(f"worker is a non-empty name, not {worker!r}")
        self._client = client
        self.subscription_id = subscription_id
        self.worker = worker
        self.stats = ConsumerStats()

    async def run(
        self, handler: Callable[[SubscriptionMessage], Any], *, until_idle: bool = False
    ) -> None:
        """Consume until cancelled, or with ``until_idle=True`` until no work is pending (or
        another worker holds the wake). ``handler`` may be a plain or an async function; a
        plain one runs on the event loop, which must stay free for the lease's renewal."""
        client = self._client
        sub = await client.get(self.subscription_id)
        if sub.type != "pull-wake" or sub.wake_stream is None:
            raise ValueError(f"{self.subscription_id!r} is not a pull-wake subscription")
        wake_url = subs.stream_url(client.root, sub.wake_stream)
        # Wake events appended from here on are seen; work pending before it is claimed now.
        status, headers, _ = await client._call(
            HttpRequest("HEAD", wake_url), "read wake stream", self.subscription_id, stream=True
        )
        offset = proto.head_result(status, headers, url=wake_url).offset or proto.OFFSET_BEGINNING
        while True:
            await self._drain(handler)
            if until_idle:
                return
            offset = await self._wait_for_wake(wake_url, offset)

    async def _wait_for_wake(self, wake_url: str, offset: str) -> str:
        """One long-poll of the wake stream from ``offset``: it ends when something is
        appended (a wake, or anything else: claiming finds out) or when the server's
        long-poll window closes, so a wake whose event was missed is still claimed within
        one window. Returns the offset to wait from next."""
        client = self._client
        req = HttpRequest("GET", wake_url, params=[("live", "long-poll"), ("offset", offset)])
        timeout = request_timeout(client._timeout, DEFAULT_LIVE_READ_TIMEOUT, True)
        _, headers, _ = await client._call(
            req, "wait on the wake stream", None, timeout, stream=True
        )
        following = headers.get(proto.H_NEXT_OFFSET) or offset
        if proto.header_true(headers, proto.H_CLOSED) and following == offset:
            raise errors.StreamClosedError(
                "the wake stream is closed: no wake can arrive on it",
                url=wake_url,
                offset=offset,
                final_offset=following,
            )
        return following

    async def _drain(self, handler: Callable[[SubscriptionMessage], Any]) -> None:
        """Claims and works wakes until there is no work, or another worker holds it."""
        while True:
            try:
                claim = await self._client.claim(self.subscription_id, self.worker)
            except (errors.NoPendingWorkError, errors.AlreadyClaimedError):
                return
            await self._work(claim, handler)

    async def _work(self, claim: Claim, handler: Callable[[SubscriptionMessage], Any]) -> None:
        self.stats.wakes += 1
        client = self._client
        try:
            async with async_heartbeat(
                claim.lease_ttl_ms / 3000, lambda: client.ack(claim)
            ) as beat:
                for pending in claim.streams:
                    if pending.has_pending:
                        await self._consume_stream(claim, pending, handler, beat)
                await client.ack(claim, done=True)
        except (errors.FencedError, errors.WakeTokenError) as exc:
            # The wake moved on (lease ran out) or its token did (after an hour): the next
            # holder, this worker included, resumes from the last ack.
            self.stats.fenced += 1
            log.warning(
                "subscription %s: worker %s lost wake generation %d: %s",
                self.subscription_id,
                self.worker,
                claim.generation,
                exc.code,
            )
        except BaseException:
            with async_shield(RELEASE_TIMEOUT):
                await self._release(claim)
            raise

    async def _release(self, claim: Claim) -> None:
        # A lost lease or a dead server frees the wake as surely; the error that led here is
        # the one to raise.
        with contextlib.suppress(errors.DurableStreamError):
            await self._client.release(claim)

    async def _consume_stream(
        self,
        claim: Claim,
        pending: PendingStream,
        handler: Callable[[SubscriptionMessage], Any],
        beat: Beat,
    ) -> None:
        client = self._client
        path = pending.path
        acked = pending.acked_offset
        batch: str | None = None
        try:
            async with astream(
                subs.stream_url(client.root, path),
                offset=acked,
                headers=client._headers,
                params=client._params,
                client=client._client,
                verify=client._verify,
            ) as res:
                async for event in res.iter_events():
                    if beat.lost is not None:
                        raise beat.lost
                    if batch is not None and event.offset != batch:
                        acked = await self._ack_past(claim, path, batch, acked)
                    batch = event.offset
                    message = SubscriptionMessage(
                        self.subscription_id, path, event.data, event.offset, claim.generation
                    )
                    await async_call(handler, message)
                    self.stats.messages += 1
                end = res.offset
        except (errors.StreamNotFoundError, errors.RetentionGoneError):
            # Deleted, expired or soft-deleted: nothing left to read. Acknowledging its tail
            # keeps it from waking the subscription again and again.
            self.stats.missing_streams.append(path)
            with contextlib.suppress(errors.AckOffsetError):
                await self._ack_past(claim, path, pending.tail_offset, acked)
            return
        await self._ack_past(claim, path, end, acked)

    async def _ack_past(self, claim: Claim, path: str, offset: str, acked: str) -> str:
        """Acknowledges ``offset`` if it is past ``acked``; returns the acknowledged offset.
        (Parts of a long body go out with the offset before it: no progress to ack yet.)"""
        if offset == acked or offset == proto.OFFSET_BEGINNING:
            return acked
        await self._ack(claim, path, offset)
        return offset

    async def _ack(self, claim: Claim, path: str, offset: str) -> None:
        await self._client.ack(claim, {path: offset})
        self.stats.acks += 1
