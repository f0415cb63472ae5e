"""Operator views of the outbox: listing pending or parked messages, re-queueing parked ones."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from portal.clock import format_cst, utcnow
from portal.db import Database
from portal.exchange.models import OutboxMessage
from portal.exchange.outbox import DEAD, PENDING


def list_messages(db: Database, *, dead: bool, limit: int = 500) -> list[dict[str, Any]]:
    status = DEAD if dead else PENDING
    with db.session() as session:
        rows = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status == status)
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        return [
            {
                "id": r.id,
                "type": r.event_type,
                "case_no": r.case_no,
                "attempts": r.attempts,
                "next_attempt": format_cst(r.next_attempt_at, "%Y-%m-%d %H:%M:%S"),
                "last_error": (r.last_error or "")[:80].replace("\n", " "),
            }
            for r in rows
        ]


def requeue(db: Database, ids: list[int]) -> tuple[list[int], list[int]]:
    """Parked messages go back to pending, due now, with a fresh give-up window."""
    done, skipped = [], []
    now = utcnow()
    with db.session(write=True) as session, session.begin():
        for message_id in ids:
            row = session.get(OutboxMessage, message_id)
            if row is None or row.status != DEAD:
                skipped.append(message_id)
                continue
            row.status = PENDING
            row.next_attempt_at = now
            row.created_at = now
            row.locked_until = None
            row.locked_by = None
            done.append(message_id)
        if done:
            session.info["outbox_written"] = True
    return done, skipped
