"""Failure counters in the database, so every process sees the same limits.

Each call runs in its own short transaction: a failed login raises and rolls back
the request's transaction, and the failure must still be counted.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.accounts.models import ThrottleBucket
from portal.clock import utcnow
from portal.db import Database
from portal.errors import Throttled


def retry_after(db: Database, key: str) -> int:
    """Seconds until `key` may try again; 0 when it is not blocked."""
    with db.session() as session:
        bucket = session.get(ThrottleBucket, key)
        now = utcnow()
        if bucket and bucket.blocked_until and bucket.blocked_until > now:
            return math.ceil((bucket.blocked_until - now).total_seconds())
    return 0


def record_failure(
    db: Database, key: str, *, limit: int, window: timedelta, lock: timedelta
) -> int:
    """Count one failure; returns seconds blocked (0 while under the limit)."""
    for _ in range(3):
        try:
            return _record_failure(db, key, limit=limit, window=window, lock=lock)
        except IntegrityError:
            continue  # two first failures raced to create the row; count again
    return 0


def _record_failure(
    db: Database, key: str, *, limit: int, window: timedelta, lock: timedelta
) -> int:
    now = utcnow()
    with db.session(write=True) as session, session.begin():
        query = select(ThrottleBucket).where(ThrottleBucket.key == key)
        if not db.is_sqlite:
            query = query.with_for_update()
        bucket = session.scalars(query).first()
        if bucket is None:
            bucket = ThrottleBucket(key=key, window_start=now, failures=0)
            session.add(bucket)
        if now - bucket.window_start > window:
            bucket.window_start, bucket.failures, bucket.blocked_until = now, 0, None
        bucket.failures += 1
        if bucket.failures >= limit:
            bucket.blocked_until = now + lock
            return math.ceil(lock.total_seconds())
    return 0


def seen_within(db: Database, key: str, age: timedelta) -> bool:
    """Whether `mark` recorded `key` less than `age` ago."""
    with db.session() as session:
        bucket = session.get(ThrottleBucket, key)
        return bucket is not None and utcnow() - bucket.window_start < age


def mark(session: Session, key: str) -> None:
    """Record that `key` happened now (e.g. a successful login from an address), in the
    caller's transaction. An upsert, so two requests marking the same key both succeed."""
    now = utcnow()
    insert = _insert(session).values(key=key, window_start=now, failures=0, blocked_until=None)
    session.execute(
        insert.on_conflict_do_update(index_elements=["key"], set_={"window_start": now})
    )


def take(
    session: Session, key: str, *, limit: int, window: timedelta, lock: timedelta, message: str
) -> None:
    """Count one use of `key` in the caller's transaction; 429 once `limit` were used.

    For actions that should count only when they succeed (a 12345 submission): the count
    is rolled back with a request that fails. `message` takes `{wait}` (e.g. "5 分钟").
    """
    now = utcnow()
    session.execute(
        _insert(session)
        .values(key=key, window_start=now, failures=0, blocked_until=None)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    query = select(ThrottleBucket).where(ThrottleBucket.key == key)
    if session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update()
    bucket = session.scalars(query.execution_options(populate_existing=True)).one()
    if bucket.blocked_until and bucket.blocked_until > now:
        wait = math.ceil((bucket.blocked_until - now).total_seconds())
        raise Throttled(message.format(wait=minutes(wait)), retry_after=wait)
    if now - bucket.window_start > window:
        bucket.window_start, bucket.failures, bucket.blocked_until = now, 0, None
    bucket.failures += 1
    if bucket.failures >= limit:
        # This one is the last allowed; the next waits.
        bucket.blocked_until = now + lock


def minutes(seconds: int) -> str:
    """A wait in words for a 429 message: "15 分钟"."""
    return f"{max(1, round(seconds / 60))} 分钟"


def _insert(session: Session) -> Any:
    if session.get_bind().dialect.name == "sqlite":
        return sqlite_insert(ThrottleBucket)
    return postgresql_insert(ThrottleBucket)
