"""Callbacks to the portal: an outbox written with the staff action, and its dispatcher.

Per-case FIFO: an event leaves only when every earlier event with the same ordering key
(the case number) is delivered. An earlier event that was parked as dead holds the later
ones back too, so the portal never sees `case.approved` before a `case.accepted` it
refused; an operator requeues the dead one and the rest follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from anyio import to_thread
from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from bureau.clock import rfc3339, utcnow
from bureau.db import Database
from bureau.errors import Conflict, NotFound
from bureau.models import OutboxEvent
from bureau.settings import Settings
from bureau.signing import BUREAU_HEADER, sign

log = logging.getLogger(__name__)

WRITTEN_FLAG = "bureau.outbox_written"
POLL_SECONDS = 0.5
MAX_IN_FLIGHT = 16
STOP_SECONDS = 5.0
RETRYABLE_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))


def enqueue(
    session: Session,
    *,
    event_type: str,
    case_no: str | None,
    data: Mapping[str, Any],
    ordering_key: str | None = None,
) -> OutboxEvent:
    """Write one callback in the caller's transaction; the dispatcher sends it after commit."""
    now = utcnow()
    event_id = str(uuid.uuid4())
    envelope = {
        "event_id": event_id,
        "type": event_type,
        "occurred_at": rfc3339(now),
        "case_no": case_no,
        "data": dict(data),
    }
    message = OutboxEvent(
        event_id=event_id,
        type=event_type,
        case_no=case_no,
        ordering_key=ordering_key or case_no or f"event:{event_id}",
        payload=json.dumps(envelope, ensure_ascii=False, separators=(",", ":")),
        status="pending",
        attempts=0,
        backoff_step=0,
        created_at=now,
        retry_since=now,
        next_attempt_at=now,
    )
    session.add(message)
    # Read by the commit listener: wake the dispatcher instead of waiting for its poll.
    session.info[WRITTEN_FLAG] = True
    return message


def requeue_event(session: Session, *, outbox_id: int) -> OutboxEvent:
    """Put a parked (dead) callback back in the queue, with a fresh give-up clock."""
    message = session.get(OutboxEvent, outbox_id, with_for_update=True)
    if message is None:
        raise NotFound(f"回调 #{outbox_id} 不存在。")
    if message.status != "dead":
        raise Conflict("只有已搁置的回调可以重新排队。")
    now = utcnow()
    message.status = "pending"
    message.retry_since = now
    message.next_attempt_at = now
    message.backoff_step = 0
    message.locked_until = None
    message.locked_by = None
    session.info[WRITTEN_FLAG] = True
    return message


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """`Retry-After` as seconds from now: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class Claimed:
    id: int
    event_id: str
    payload: str


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retry: bool
    status: int | None
    error: str | None
    retry_after: float | None = None


class Dispatcher:
    """Sends pending callbacks; one asyncio task per app, woken on commit, polling as fallback."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.transport = transport
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._client: httpx.AsyncClient | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._lease = timedelta(seconds=settings.http_timeout_seconds + 30)
        self._next_due: datetime | None = None
        db.on_commit(self._on_commit)

    # -- waking ---------------------------------------------------------------------------

    def _on_commit(self, session: Session) -> None:
        if session.info.pop(WRITTEN_FLAG, False):
            self.notify()

    def notify(self) -> None:
        """Wake the loop; safe from any thread (request handlers run in a thread pool)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Send until `stop()` is called (or the task is cancelled)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        timeout = httpx.Timeout(self.settings.http_timeout_seconds)
        async with httpx.AsyncClient(transport=self.transport, timeout=timeout) as client:
            self._client = client
            try:
                # A flag, not only Task.cancel(): on Python 3.11 asyncio.wait_for can swallow
                # a cancellation that lands as its inner wait completes, and the loop would
                # then run on while shutdown waits for it forever.
                while not self._stopping:
                    self._wake.clear()
                    try:
                        await self.dispatch_due()
                    except Exception:
                        # A database hiccup must not end the loop: log and poll again.
                        log.exception("outbox dispatch failed; retrying shortly")
                    if self._stopping:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=self._pause())
            finally:
                in_flight = list(self._in_flight)
                for task in in_flight:
                    task.cancel()  # the event stays pending and is sent again later
                if in_flight:
                    await asyncio.wait(in_flight, timeout=STOP_SECONDS)
                self._client = None
                await to_thread.run_sync(self._release_leases)

    async def stop(self, task: asyncio.Task[None]) -> None:
        """End `run()` (running as `task`) within a bounded time."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        done, _ = await asyncio.wait({task}, timeout=STOP_SECONDS)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=STOP_SECONDS)

    def _pause(self) -> float:
        """Sleep until the next scheduled retry, but never longer than the fallback poll."""
        if self._next_due is None:
            return POLL_SECONDS
        wait = (self._next_due - utcnow()).total_seconds()
        return min(POLL_SECONDS, max(0.01, wait))

    async def dispatch_due(self) -> int:
        """Claim the due head of each case's queue and start sending it; returns how many."""
        capacity = MAX_IN_FLIGHT - len(self._in_flight)
        if capacity <= 0:
            return 0
        claimed = await to_thread.run_sync(self._claim, capacity)
        for item in claimed:
            task = asyncio.create_task(self._deliver(item))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(claimed)

    # -- one delivery ---------------------------------------------------------------------

    async def _deliver(self, item: Claimed) -> None:
        outcome = await self._send(item)
        try:
            await to_thread.run_sync(self._record, item, outcome)
        except Exception:
            # The lease runs out and the event is sent again: at least once, never lost.
            log.exception("could not record the outcome of callback %s", item.event_id)
        if self._wake is not None:
            # Delivered: the case's next event may go now. Failed: the loop must learn
            # when the retry falls due.
            self._wake.set()

    async def _send(self, item: Claimed) -> Outcome:
        assert self._client is not None
        body = item.payload.encode()
        headers = {
            "Content-Type": "application/json",
            # Signed at each attempt: a retry hours later still carries a fresh `t`.
            BUREAU_HEADER: sign(self.settings.secret, body),
            "User-Agent": "bureau-reference/1",
        }
        try:
            response = await self._client.post(
                self.settings.callback_url, content=body, headers=headers
            )
        except httpx.TimeoutException as exc:
            return Outcome(False, True, None, f"超时：{type(exc).__name__}")
        except httpx.HTTPError as exc:
            return Outcome(False, True, None, f"连接失败：{type(exc).__name__}: {exc}"[:500])
        code = response.status_code
        if 200 <= code < 300:
            return Outcome(True, False, code, None)
        snippet = response.text[:500]
        if code in RETRYABLE_STATUS:
            wait = retry_after_seconds(response.headers.get("Retry-After"), now=utcnow())
            return Outcome(False, True, code, snippet, wait)
        return Outcome(False, False, code, snippet)

    # -- database work (in a worker thread) -----------------------------------------------

    def _claim(self, limit: int) -> list[Claimed]:
        now = utcnow()
        earlier = aliased(OutboxEvent)
        blocked = exists().where(
            earlier.ordering_key == OutboxEvent.ordering_key,
            earlier.id < OutboxEvent.id,
            earlier.status != "delivered",
        )
        free = or_(OutboxEvent.locked_until.is_(None), OutboxEvent.locked_until < now)
        # Looking is a read; only a claim takes the write lock (SQLite has one).
        with self.db.transaction(write=False) as session:
            ids = session.scalars(
                select(OutboxEvent.id)
                .where(
                    OutboxEvent.status == "pending",
                    OutboxEvent.next_attempt_at <= now,
                    free,
                    ~blocked,
                )
                .order_by(OutboxEvent.id)
                .limit(limit)
            ).all()
            # When the next retry falls due, so the loop wakes for it on time.
            self._next_due = session.scalar(
                select(OutboxEvent.next_attempt_at)
                .where(OutboxEvent.status == "pending", OutboxEvent.next_attempt_at > now)
                .order_by(OutboxEvent.next_attempt_at)
                .limit(1)
            )
        if not ids:
            return []
        with self.db.transaction() as session:
            # Conditional update: with several dispatchers, exactly one wins each row.
            session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_(ids), OutboxEvent.status == "pending", free)
                .values(locked_until=now + self._lease, locked_by=self.worker_id)
                .execution_options(synchronize_session=False)
            )
            rows = session.execute(
                select(OutboxEvent.id, OutboxEvent.event_id, OutboxEvent.payload)
                .where(OutboxEvent.id.in_(ids), OutboxEvent.locked_by == self.worker_id)
                .order_by(OutboxEvent.id)
            )
            return [Claimed(row.id, row.event_id, row.payload) for row in rows]

    def _backoff(self, step: int) -> float:
        base = min(
            self.settings.retry_max_seconds,
            self.settings.retry_first_seconds * (2 ** max(0, step - 1)),
        )
        # "Equal jitter": between half and all of the base, so a crowd of retries spreads
        # out yet none comes back much sooner than the schedule says.
        return base / 2 + random.uniform(0, base / 2)

    def _record(self, item: Claimed, outcome: Outcome) -> None:
        now = utcnow()
        with self.db.transaction() as session:
            message = session.get(OutboxEvent, item.id, with_for_update=True)
            if message is None or message.locked_by != self.worker_id:
                return  # requeued or reclaimed meanwhile: the newer owner records
            message.attempts += 1
            message.last_attempt_at = now
            message.last_status = outcome.status
            message.locked_until = None
            message.locked_by = None
            if outcome.delivered:
                message.status = "delivered"
                message.delivered_at = now
                message.last_error = None
                return
            message.last_error = outcome.error
            if not outcome.retry:
                message.status = "dead"
                log.warning("callback %s parked: portal answered %s", item.event_id, outcome.status)
                return
            message.backoff_step += 1
            give_up_at = message.retry_since + timedelta(hours=self.settings.retry_give_up_hours)
            if now >= give_up_at:
                message.status = "dead"
                log.warning("callback %s parked after retrying until %s", item.event_id, now)
                return
            if outcome.retry_after is not None:
                delay = max(outcome.retry_after, self.settings.retry_first_seconds / 10)
            else:
                delay = self._backoff(message.backoff_step)
            # The last try happens at the give-up time, not a whole backoff after it.
            message.next_attempt_at = min(now + timedelta(seconds=delay), give_up_at)

    def _release_leases(self) -> None:
        """On shutdown, hand back claims so a restart resends at once instead of after the lease."""
        try:
            with self.db.transaction() as session:
                session.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.locked_by == self.worker_id)
                    .values(locked_until=None, locked_by=None)
                    .execution_options(synchronize_session=False)
                )
        except Exception:
            log.exception("could not release outbox leases")
