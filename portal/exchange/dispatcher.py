"""The outbox dispatcher: delivers queued messages with retries, in order per case.

Claiming: a message is claimable when it is pending, due, not leased, and no older
pending *or parked* message shares its ordering key (per-case FIFO: the contract's
"Ordering, made exact" — a later event of a case stays queued behind a parked one
until an operator re-queues it and it is delivered; other keys never wait). Claims take a lease in a
short transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so several workers
never send the same message at once; a worker that dies loses its lease when it
expires and another worker sends the message again — the receiver's idempotency
by event_id makes that harmless.

Independence: the loop keeps up to CONCURRENCY sends in flight and claims the next
message as soon as one finishes, so a slow answer occupies one slot, never a whole
pass; each send has a total deadline (not only a per-read timeout: a peer that
trickles a byte every few seconds would never trip that), after which it is retried
like a timeout. Per-case order holds because a message in flight is still pending,
and a later one of its case is not claimable behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import aliased
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from portal.clock import utcnow
from portal.db import Database
from portal.exchange import signing
from portal.exchange.documents import store_document
from portal.exchange.licences import store_licence
from portal.exchange.models import OutboxAttempt, OutboxMessage
from portal.exchange.outbox import DEAD, DELIVERED, PENDING
from portal.exchange.outcomes import (  # noqa: F401 - re-exported for handlers and tests
    MAX_RETRY_AFTER_SECONDS,
    RETRYABLE,
    Permanent,
    Retryable,
    parse_retry_after,
)
from portal.materials.models import Blob
from portal.materials.storage import BlobStore, BlobWriter, open_store
from portal.settings import Settings

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5
BATCH = 64
CONCURRENCY = 16
# A send's total deadline: twice the per-read timeout, plus the time its blobs take
# at a slow but honest 256 KiB/s (a 200 MB scan then gets ~13 minutes).
SLOW_LINK_BYTES_PER_SECOND = 256 * 1024
# Blobs known to be held by the bureau, so an event re-sent does not PUT them again;
# bounded, and forgotten when an event that names them fails (the bureau may have lost one).
SENT_BLOBS_KEPT = 4096
# An issued file (licence, 文书) larger than this is refused: the bureau's own limit.
MAX_ISSUED_BYTES = 100 * 1024 * 1024


@dataclass
class Claimed:
    id: int
    kind: str
    event_id: str
    event_type: str
    case_no: str | None
    payload: str
    blobs: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    created_at: datetime = field(default_factory=utcnow)
    duration_ms: int = 0  # of the try in progress, for its attempt record


def backoff(settings: Settings, attempts: int, retry_after: float | None) -> float:
    """Exponential backoff with equal jitter, capped; a longer Retry-After wins."""
    base = min(
        settings.retry_max_seconds, settings.retry_first_seconds * (2 ** max(0, attempts - 1))
    )
    delay = base / 2 + random.uniform(0, base / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        worker_id: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.store: BlobStore = open_store(settings)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        # A lease outlives its send's deadline, so no other worker sends the same message.
        self.lease_margin = timedelta(seconds=settings.http_timeout_seconds + 5)
        self._transport = transport
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.sent_blobs: OrderedDict[str, None] = OrderedDict()
        self._inflight: set[asyncio.Task[None]] = set()
        # Group commit of deliveries: see _record_delivered.
        self._done: list[tuple[Claimed, asyncio.Future[None]]] = []
        self._recorder: asyncio.Task[None] | None = None
        # Built-in kinds; others (SMS) are registered by the composition root
        # (portal.composition.build_dispatcher), so the dispatcher imports no channel.
        self.handlers: dict[str, Callable[[Claimed], Awaitable[None]]] = {
            "bureau_event": self._send_event,
            "licence_fetch": self._fetch_licence,
            "document_fetch": self._fetch_document,
        }
        db.on_commit(self._after_commit)

    def register(self, kind: str, handler: Callable[[Claimed], Awaitable[None]]) -> None:
        """Send outbox messages of `kind` with `handler` (raises Retryable/Permanent)."""
        self.handlers[kind] = handler

    # --- waking up ------------------------------------------------------------------
    def _after_commit(self, session: Any) -> None:
        if session.info.pop("outbox_written", False):
            self.wake()

    def wake(self) -> None:
        """Called from any thread after a commit that queued messages."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        self._stopping = True
        self.wake()

    # --- the loop ---------------------------------------------------------------------
    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        timeout = httpx.Timeout(self.settings.http_timeout_seconds)
        limits = httpx.Limits(
            max_connections=CONCURRENCY * 2, max_keepalive_connections=CONCURRENCY
        )
        async with httpx.AsyncClient(
            timeout=timeout, limits=limits, transport=self._transport
        ) as client:
            self.client = client
            log.info("outbox dispatcher %s started", self.worker_id)
            while not self._stopping:
                try:
                    started = await self.fill()
                except Exception:
                    log.exception("outbox dispatcher pass failed; retrying shortly")
                    started = 0
                if started and len(self._inflight) < CONCURRENCY:
                    continue  # more may be claimable right away
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=POLL_SECONDS)
            if self._inflight:
                # Stopping: let sends in flight finish (each is bounded by its deadline).
                await asyncio.gather(*self._inflight, return_exceptions=True)

    async def fill(self) -> int:
        """Claim as many messages as there are free slots and start sending them."""
        free = CONCURRENCY - len(self._inflight)
        if free <= 0:
            return 0
        claimed = await run_in_threadpool(self.claim, free)
        for message in claimed:
            task = asyncio.create_task(self.deliver(message), name=f"outbox-{message.id}")
            self._inflight.add(task)
            task.add_done_callback(self._finished)
        return len(claimed)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if self._wake is not None:
            self._wake.set()  # a slot is free, and the case's next message may be due

    def deadline_for(self, blob_bytes: int) -> float:
        """Seconds one send may take in all, whatever the peer does."""
        return self.settings.http_timeout_seconds * 2 + blob_bytes / SLOW_LINK_BYTES_PER_SECOND

    async def run_once(self) -> int:
        """One batch, waited for as a whole (tests and the benchmark drive it step by step)."""
        claimed = await run_in_threadpool(self.claim, BATCH)
        if not claimed:
            return 0
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def one(message: Claimed) -> None:
            async with semaphore:
                await self.deliver(message)

        await asyncio.gather(*(one(m) for m in claimed))
        return len(claimed)

    def claim(self, limit: int) -> list[Claimed]:
        now = utcnow()
        older = aliased(OutboxMessage)
        # Parked (DEAD) counts as still waiting: sending a case's later event past a
        # parked one would let the bureau see, say, a withdrawal of a case it never got.
        earlier_waiting = exists().where(
            older.ordering_key == OutboxMessage.ordering_key,
            older.status.in_((PENDING, DEAD)),
            older.id < OutboxMessage.id,
        )
        query = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status == PENDING,
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
                ~earlier_waiting,
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        if not self.db.is_sqlite:
            query = query.with_for_update(skip_locked=True, of=OutboxMessage)
        with self.db.session(write=True) as session, session.begin():
            rows = list(session.scalars(query))
            claimed = []
            blob_types: dict[str, tuple[str, int]] = {}
            shas = {sha for row in rows for sha in row.blobs}
            if shas:
                query_blobs = select(Blob.sha256, Blob.content_type, Blob.size).where(
                    Blob.sha256.in_(shas)
                )
                blob_types = {
                    sha: (ctype, size) for sha, ctype, size in session.execute(query_blobs)
                }
            for row in rows:
                blob_bytes = sum(blob_types.get(sha, ("", 0))[1] for sha in row.blobs)
                lease = timedelta(seconds=self.deadline_for(blob_bytes)) + self.lease_margin
                row.locked_until = now + lease
                row.locked_by = self.worker_id
                claimed.append(
                    Claimed(
                        id=row.id,
                        kind=row.kind,
                        event_id=row.event_id,
                        event_type=row.event_type,
                        case_no=row.case_no,
                        payload=row.payload,
                        blobs=[
                            {
                                "sha256": s,
                                "content_type": blob_types[s][0],
                                "size": blob_types[s][1],
                            }
                            for s in row.blobs
                            if s in blob_types
                        ],
                        attempts=row.attempts,
                        created_at=row.created_at,
                    )
                )
            return claimed

    async def deliver(self, message: Claimed) -> None:
        handler = self.handlers.get(message.kind)
        deadline = self.deadline_for(sum(b["size"] for b in message.blobs))
        started = time.monotonic()
        try:
            if handler is None:
                raise Permanent(f"no handler for {message.kind}")
            try:
                async with asyncio.timeout(deadline):
                    await handler(message)
            except TimeoutError:
                raise Retryable(
                    f"no complete answer within the {deadline:.0f} s deadline"
                ) from None
            finally:
                message.duration_ms = int((time.monotonic() - started) * 1000)
        except Retryable as exc:
            self._forget_blobs(message)
            await run_in_threadpool(
                self._failed, message, str(exc), exc.status, exc.retry_after, False
            )
        except Permanent as exc:
            self._forget_blobs(message)
            await run_in_threadpool(self._failed, message, str(exc), exc.status, None, True)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            self._forget_blobs(message)
            await run_in_threadpool(
                self._failed, message, f"{type(exc).__name__}: {exc}", None, None, False
            )
        except Exception as exc:  # a bug must not stop the queue; the message is retried
            self._forget_blobs(message)
            log.exception("outbox message %s failed unexpectedly", message.id)
            await run_in_threadpool(
                self._failed, message, f"{type(exc).__name__}: {exc}", None, None, False
            )
        else:
            await self._record_delivered(message)

    def _forget_blobs(self, message: Claimed) -> None:
        for blob in message.blobs:
            self.sent_blobs.pop(blob["sha256"], None)

    async def _record_delivered(self, message: Claimed) -> None:
        """Record a delivery, together with every other one that finished meanwhile.

        With up to CONCURRENCY sends in flight, one write transaction per delivery
        queued them all on SQLite's single writer (the bench measured 2.8 ms each,
        one after another). Deliveries that finish while a group is being written
        join the next group: one transaction for all of them. Each caller still
        returns only once its own delivery is committed, so the next pass claims
        from the true state and per-case order holds.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._done.append((message, future))
        if self._recorder is None or self._recorder.done():
            # Kept in an attribute: the event loop holds tasks only weakly.
            self._recorder = asyncio.create_task(self._record_groups(), name="outbox-record")
        await future

    async def _record_groups(self) -> None:
        while self._done:
            group, self._done = self._done, []
            try:
                await run_in_threadpool(self._delivered, [m for m, _ in group])
            except BaseException as exc:
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                for _, future in group:
                    if not future.done():
                        future.set_result(None)

    # --- outcomes ---------------------------------------------------------------------
    def _mine(self, message: Claimed):
        return update(OutboxMessage).where(
            OutboxMessage.id == message.id,
            OutboxMessage.locked_by == self.worker_id,
            OutboxMessage.status == PENDING,
        )

    def _attempt(
        self,
        session: Any,
        message: Claimed,
        at: datetime,
        outcome: str,
        status: int | None,
        error: str | None,
    ) -> None:
        """The try's record, in the transaction that records its outcome."""
        session.add(
            OutboxAttempt(
                message_id=message.id,
                at=at,
                worker=self.worker_id[:64],
                outcome=outcome,
                http_status=status,
                error=error,
                duration_ms=message.duration_ms,
            )
        )

    def _delivered(self, messages: list[Claimed]) -> None:
        now = utcnow()
        with self.db.session(write=True) as session, session.begin():
            for message in messages:
                result = session.execute(
                    self._mine(message).values(
                        status=DELIVERED,
                        delivered_at=now,
                        attempts=message.attempts + 1,
                        locked_until=None,
                        locked_by=None,
                        last_error=None,
                    )
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    self._attempt(session, message, now, "delivered", None, None)

    def _failed(
        self,
        message: Claimed,
        error: str,
        status: int | None,
        retry_after: float | None,
        permanent: bool,
    ) -> None:
        now = utcnow()
        attempts = message.attempts + 1
        give_up = message.created_at + timedelta(hours=self.settings.retry_give_up_hours)
        delay = backoff(self.settings, attempts, retry_after)
        # A wait that reaches past the give-up time still gets one last try at it: the
        # contract retries for at least 24 hours, so a long Retry-After is no reason to
        # park at once. Parked only when an attempt at or after that time fails too.
        dead = permanent or now >= give_up
        if not dead and now + timedelta(seconds=delay) > give_up:
            delay = max(0.0, (give_up - now).total_seconds())
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_error": error[:2000],
            "last_status": status,
            "locked_until": None,
            "locked_by": None,
        }
        if dead:
            values["status"] = DEAD
        else:
            values["next_attempt_at"] = now + timedelta(seconds=delay)
        with self.db.session(write=True) as session, session.begin():
            result = session.execute(self._mine(message).values(**values))
            if result.rowcount:  # type: ignore[attr-defined]
                outcome = "dead" if dead else "retry"
                self._attempt(session, message, now, outcome, status, error[:2000])
        level = logging.WARNING if dead else logging.INFO
        log.log(
            level,
            "outbox %s %s attempt %d %s: %s",
            message.event_type,
            message.event_id,
            attempts,
            "parked as dead" if dead else f"retry in {delay:.1f}s",
            error[:200],
            extra={"event_id": message.event_id, "case_no": message.case_no, "attempt": attempts},
        )

    # --- handlers -----------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return self.settings.bureau_url.rstrip("/") + path

    @staticmethod
    def _check(response: httpx.Response) -> None:
        if response.is_success:
            return
        text = response.text[:300]
        if response.status_code in RETRYABLE:
            raise Retryable(
                f"HTTP {response.status_code}: {text}",
                response.status_code,
                parse_retry_after(response.headers.get("retry-after")),
            )
        raise Permanent(f"HTTP {response.status_code}: {text}", response.status_code)

    async def _blob_body(self, sha256: str) -> AsyncIterator[bytes]:
        # Read and decrypted in a worker thread, one 64 KiB chunk per hop: the file may
        # be on a shared mount (or, later, an object store), never on the event loop.
        async for chunk in iterate_in_threadpool(self.store.chunks(sha256)):
            yield chunk

    async def _put_blob(self, sha256: str, content_type: str, size: int) -> None:
        if sha256 in self.sent_blobs:
            self.sent_blobs.move_to_end(sha256)
            return
        if not self.store.exists(sha256):
            raise Permanent(f"blob {sha256[:12]} is missing from the data dir")
        # The signature covers SHA-256 of the body, which is the blob's name.
        timestamp = int(utcnow().timestamp())
        header = f"t={timestamp},v1={signing.signature_for_digest(self.settings.bureau_secret, sha256, timestamp)}"
        response = await self.client.put(
            self._url(f"/v1/blobs/{sha256}"),
            content=self._blob_body(sha256),
            headers={
                "Content-Type": content_type,
                "Content-Length": str(size),
                signing.PORTAL_HEADER: header,
            },
        )
        self._check(response)
        self.sent_blobs[sha256] = None
        while len(self.sent_blobs) > SENT_BLOBS_KEPT:
            self.sent_blobs.popitem(last=False)

    async def _send_event(self, message: Claimed) -> None:
        for blob in message.blobs:
            await self._put_blob(blob["sha256"], blob["content_type"], blob["size"])
        body = message.payload.encode("utf-8")
        response = await self.client.post(
            self._url("/v1/events"),
            content=body,
            headers={
                "Content-Type": "application/json",
                signing.PORTAL_HEADER: signing.sign(self.settings.bureau_secret, body),
            },
        )
        self._check(response)

    async def _fetch_issued(self, sha256: str, what: str) -> BlobWriter:
        """GET a file the bureau issued (licence, document) into staging, hash-checked.

        Streamed to an encrypted temp file as it arrives, never held whole in memory.
        """
        writer = await run_in_threadpool(self.store.writer)
        try:
            async with self.client.stream(
                "GET",
                self._url(f"/v1/blobs/{sha256}"),
                headers={signing.PORTAL_HEADER: signing.sign(self.settings.bureau_secret, b"")},
            ) as response:
                if not response.is_success:
                    await response.aread()
                    self._check(response)
                async for chunk in response.aiter_bytes():
                    if writer.size + len(chunk) > MAX_ISSUED_BYTES:
                        raise Permanent(f"{what} {sha256[:12]}: larger than {MAX_ISSUED_BYTES}")
                    await run_in_threadpool(writer.write, chunk)
            if await run_in_threadpool(writer.close) != sha256:
                raise Permanent(
                    f"{what} {sha256[:12]}: the bureau served content with another hash"
                )
        except BaseException:
            writer.discard()
            raise
        return writer

    async def _fetch_document(self, message: Claimed) -> None:
        job = json.loads(message.payload)
        content = await self._fetch_issued(job["sha256"], "document")
        await run_in_threadpool(
            store_document,
            self.db,
            self.store,
            case_no=job["case_no"],
            sha256=job["sha256"],
            content=content,
        )

    async def _fetch_licence(self, message: Claimed) -> None:
        job = json.loads(message.payload)
        sha256 = job["sha256"]
        content = await self._fetch_issued(sha256, "licence")
        await run_in_threadpool(
            store_licence,
            self.db,
            self.store,
            case_no=job["case_no"],
            sha256=sha256,
            content=content,
        )
