"""Database engine, sessions and the declarative base."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
from fastapi import Depends, Path, Request
from sqlalchemy import JSON, DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction, sessionmaker
from sqlalchemy.types import TypeDecorator

from portal.errors import Busy

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use portal.clock.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


def make_engine(url: str, *, wait_seconds: float = 10.0, request_slots: int = 20) -> Engine:
    """An engine tuned per backend: SQLite gets WAL and a busy timeout so two processes can write.

    `wait_seconds` bounds every wait for the database (SQLite's lock, a pooled connection):
    past it the request answers 503 (`portal.app`), never hangs for half a minute.
    `request_slots` is how many requests the admission gates let hold a transaction.
    """
    busy_ms = int(wait_seconds * 1000)
    if url.startswith("sqlite"):
        # Connections are cheap to keep and costly to open (the pragmas below): keep as
        # many as requests run at once, so the pool does not open and close overflow
        # connections on every busy second.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": wait_seconds},
            pool_size=20,
            max_overflow=20,
            pool_timeout=wait_seconds,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy emit BEGIN itself (see _sqlite_begin).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.close()

        # A writing transaction takes the write lock at BEGIN (IMMEDIATE), so concurrent
        # writers queue on busy_timeout instead of failing with "database is locked"
        # when a read transaction tries to upgrade after another writer committed.
        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            immediate = conn.get_execution_options().get("begin_immediate")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    # Admitted requests never wait for a connection (the gates hold them to
    # `request_slots`); the rest of the pool is the dispatcher's, the jobs' and the
    # short side writes' (throttle, session touch).
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=request_slots + 5,
        max_overflow=10,
        pool_timeout=wait_seconds,
    )


# Why requests queue here before they touch the database (docs/architecture.md,
# "Requests and the database"). FastAPI runs every sync dependency, sync route and
# response validation of one request as separate hops through one shared threadpool
# (anyio, 40 tokens), while the request's transaction stays open across the hops: the
# first query (the bearer token's) takes SQLite's write lock (BEGIN IMMEDIATE) or a
# pooled PostgreSQL connection, and the route then waits for a free thread. Under a
# burst every thread was taken by requests queued *behind* that lock or connection
# (blocked in busy_timeout, or in the pool's checkout), so the holder never got a
# thread back: nothing moved until the 30 s timeouts fired, and they answered 500.
# The gates below make the queue an asyncio one, taken before the first hop: a waiting
# request holds no thread, no lock and no connection, and the few admitted requests
# always find a thread. On SQLite one writer is admitted at a time per process (SQLite
# runs one at a time anyway; the others would only block threads); reads have their
# own gate so a write burst never delays a page. A full queue, or a wait past
# `wait_seconds`, is a quick 503 with Retry-After.


@dataclass(eq=False)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]
    granted: bool = False


@dataclass(eq=False)
class Gate:
    """A FIFO counting gate: awaited on the event loop, released from any thread."""

    slots: int
    queue: int
    wait_seconds: float
    retry_after: int = 2
    used: int = 0
    _waiters: deque[_Waiter] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def enter(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.used < self.slots and not self._waiters:
                self.used += 1
                return
            if len(self._waiters) >= self.queue:
                raise self._busy()
            waiter = _Waiter(loop, loop.create_future())
            self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), self.wait_seconds)
        except BaseException as exc:  # timed out or cancelled: give back a slot granted meanwhile
            with self._lock:
                if not waiter.granted:
                    self._waiters.remove(waiter)
                    granted = False
                else:
                    granted = True
            if granted:
                self.leave()
            if isinstance(exc, TimeoutError):
                raise self._busy() from None
            raise

    def take(self) -> None:
        """Count a transaction begun outside `enter` (a request's second one): never waits."""
        with self._lock:
            self.used += 1

    def leave(self) -> None:
        with self._lock:
            if self._waiters:
                # The slot passes straight to the oldest waiter: `used` stays as it is.
                waiter = self._waiters.popleft()
                waiter.granted = True
                waiter.loop.call_soon_threadsafe(_wake, waiter.future)
                return
            self.used -= 1

    def _busy(self) -> Busy:
        return Busy("系统繁忙，请稍后再试。", retry_after=self.retry_after)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Ticket:
    """A request's place in a gate while its session holds a transaction."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.held = True
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            held, self.held = self.held, False
        if held:
            self.gate.leave()

    def retake(self) -> None:
        with self._lock:
            held, self.held = self.held, True
        if not held:
            self.gate.take()


class Database:
    """The engine and session factory of one app instance, plus commit listeners."""

    def __init__(
        self,
        url: str,
        *,
        readers: int = 10,
        writers: int = 0,
        queue: int = 200,
        wait_seconds: float = 10.0,
    ) -> None:
        self.url = url
        # 0: one writer at a time on SQLite (it runs one anyway), two on PostgreSQL: the
        # work is Python under one GIL, so more admitted writers add no writes per second
        # but each takes a share of the GIL from the pages being read meanwhile (measured:
        # tests/test_write_burst.py: a read took 1.1 s in the burst with ten, 0.1–0.8 s with two).
        writers = writers or (1 if url.startswith("sqlite") else 2)
        self.read_gate = Gate(readers, queue, wait_seconds)
        self.write_gate = Gate(writers, queue, wait_seconds)
        self.engine = make_engine(url, wait_seconds=wait_seconds, request_slots=readers + writers)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        write_engine = self.engine.execution_options(begin_immediate=True)
        self.write_sessionmaker = sessionmaker(write_engine, expire_on_commit=False)
        self._after_commit: list[Callable[[Session], None]] = []
        self._lock = threading.Lock()

        def _notify(session: Session) -> None:
            for callback in list(self._after_commit):
                callback(session)

        event.listen(self.sessionmaker, "after_commit", _notify)
        event.listen(self.write_sessionmaker, "after_commit", _notify)
        for maker in (self.sessionmaker, self.write_sessionmaker):
            event.listen(maker, "after_begin", _ticket_retake)
            event.listen(maker, "after_transaction_end", _ticket_release)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def on_commit(self, callback: Callable[[Session], None]) -> None:
        with self._lock:
            self._after_commit.append(callback)

    def session(self, *, write: bool = False) -> Session:
        """A new session; `write=True` for transactions that will change rows."""
        session = (self.write_sessionmaker if write else self.sessionmaker)()
        session.info["write"] = write
        return session

    async def admitted_session(self, *, write: bool) -> Session:
        """A request's session, once its gate lets it in (503 `Busy` when the queue is full)."""
        gate = self.write_gate if write else self.read_gate
        await gate.enter()
        session = self.session(write=write)
        session.info["ticket"] = _Ticket(gate)
        return session

    def dispose(self) -> None:
        self.engine.dispose()


# A request's slot follows its transaction, not the request: an upload commits before
# it reads the body (materials/upload.py), so a slow phone gives its slot back with the
# lock; its attach step's transaction is counted again without waiting (it already
# holds a thread, and waiting there is what deadlocked).
def _ticket_retake(session: Session, _transaction: Any, _connection: Any) -> None:
    if ticket := session.info.get("ticket"):
        ticket.retake()


def _ticket_release(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None and (ticket := session.info.get("ticket")):
        ticket.release()


def _end(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


async def get_db(request: Request) -> AsyncIterator[Session]:
    """The request's session: commits when the route returns, rolls back when it raises."""
    write = request.method not in ("GET", "HEAD", "OPTIONS")
    session = await request.app.state.db.admitted_session(write=write)
    ok = False
    try:
        yield session
        ok = True
    finally:
        # In a thread of its own, never queued behind the shared threadpool's tokens: the
        # transaction ending here is what the queued requests wait for.
        with anyio.CancelScope(shield=True):
            try:
                await anyio.to_thread.run_sync(_end, session, ok, limiter=anyio.CapacityLimiter(1))
            finally:
                session.info["ticket"].release()


DbSession = Annotated[Session, Depends(get_db, scope="function")]


# A row id in a path: bounded to the 32-bit integer columns, so a huge number is a
# clear 422 on every backend instead of PostgreSQL's "integer out of range".
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
