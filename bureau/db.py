"""Database engine, sessions, the declarative base and the request's transaction."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import JSON, Date, DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

_WRITER_KEY = "bureau.sqlite_writer"

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
            raise ValueError("naive datetime stored; use bureau.clock.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        datetime: UTCDateTime(),
        date: Date(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class FairLock:
    """A lock granted in arrival order: under load no writer waits behind late comers."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[object] = deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        me = object()
        with self._cond:
            self._queue.append(me)
            granted = self._cond.wait_for(
                lambda: not self._held and self._queue[0] is me, timeout=timeout
            )
            self._queue.remove(me)
            if granted:
                self._held = True
            else:
                self._cond.notify_all()  # the next in line may be free to go now
            return granted

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()


def make_engine(url: str) -> Engine:
    """An engine tuned per backend: SQLite gets WAL and a busy timeout so writers queue."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy emit BEGIN itself (see _sqlite_begin).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        # A writing transaction takes the write lock at BEGIN (IMMEDIATE): concurrent
        # writers then queue instead of failing with "database is locked" when a read
        # transaction tries to upgrade after another writer committed.
        #
        # Writers of this process queue on a Python lock first: SQLite's busy handler
        # polls with growing sleeps (up to 100 ms) and lets late comers overtake, which
        # under load turned a 5 ms write into seconds at the tail. busy_timeout remains
        # the guard against other processes.
        writers = FairLock()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            if not conn.get_execution_options().get("begin_immediate"):
                conn.exec_driver_sql("BEGIN")
                return
            held = writers.acquire(timeout=30)
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                if held:
                    writers.release()
                raise
            if held:
                conn.info[_WRITER_KEY] = writers

        def _release(record: Any) -> None:
            lock = record.info.pop(_WRITER_KEY, None) if record is not None else None
            if lock is not None:
                lock.release()

        # The transaction has ended (commit or rollback) by the time the connection
        # goes back to the pool, or is thrown away.
        event.listen(engine.pool, "checkin", lambda _dbapi, record: _release(record))
        event.listen(engine.pool, "invalidate", lambda _dbapi, record, _exc: _release(record))
        event.listen(engine.pool, "reset", lambda _dbapi, record, _state: _release(record))
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Database:
    """The engine and session factories of one app instance, plus commit listeners."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
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

    def on_commit(self, callback: Callable[[Session], None]) -> None:
        with self._lock:
            self._after_commit.append(callback)

    def session(self, *, write: bool = False) -> Session:
        """A new session; `write=True` for transactions that will change rows."""
        return (self.write_sessionmaker if write else self.sessionmaker)()

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """A session outside a request (dispatcher, CLI): commits on success, else rolls back."""
        session = self.session(write=write)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


async def get_db(request: Request) -> AsyncIterator[Session]:
    """The request's session: commits when the route returns, rolls back when it raises.

    The route's work runs in a worker thread; the commit runs here, on the event loop,
    and never waits for a free worker thread. Were it a thread-pool step of its own, a
    transaction holding the write lock could wait for a thread while every thread
    waited for that lock. A commit is short: the write lock is already held.
    """
    write = request.method not in ("GET", "HEAD", "OPTIONS")
    session: Session = request.app.state.db.session(write=write)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# scope="function": the commit happens before the answer leaves, so a 200 to the portal
# always means the event is durably recorded.
DbSession = Annotated[Session, Depends(get_db, scope="function")]
