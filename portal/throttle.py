"""Failure counters in the database, so every process sees the same limits.

Each call runs in its own short transaction: a failed login raises and rolls back
the request's transaction, and the failure must still be counted.
"""

from __future__ import annotations

import math
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.accounts.models import ThrottleBucket
from portal.clock import utcnow
from portal.db import Database


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
