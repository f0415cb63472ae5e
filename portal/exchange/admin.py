"""Operator views of the outbox: listing pending or parked messages, re-queueing parked ones."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from portal.clock import format_cst, utcnow
from portal.db import Database
from portal.exchange.models import OutboxAttempt, OutboxMessage
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


def show_message(db: Database, message_id: int) -> list[str] | None:
    """One message as an operator needs it: what, for whom, its state and every try."""
    with db.session() as session:
        row = session.get(OutboxMessage, message_id)
        if row is None:
            return None
        attempts = session.scalars(
            select(OutboxAttempt)
            .where(OutboxAttempt.message_id == message_id)
            .order_by(OutboxAttempt.id)
        ).all()
        when = "%Y-%m-%d %H:%M:%S"
        lines = [
            f"消息 {row.id}  {row.kind}  {row.event_type}  办件 {row.case_no or '-'}",
            f"event_id {row.event_id}  顺序键 {row.ordering_key}",
            f"状态 {row.status}  已尝试 {row.attempts} 次  创建于 {format_cst(row.created_at, when)}",
        ]
        if row.status == PENDING:
            lines.append(f"下次尝试 {format_cst(row.next_attempt_at, when)}")
        if row.delivered_at:
            lines.append(f"送达于 {format_cst(row.delivered_at, when)}")
        if row.blobs:
            lines.append(f"先送文件 {len(row.blobs)} 个：" + " ".join(b[:12] for b in row.blobs))
        lines.append(f"尝试记录（{len(attempts)} 条）：")
        for a in attempts:
            status = f"HTTP {a.http_status}" if a.http_status else "-"
            error = (a.error or "").replace("\n", " ")[:120]
            lines.append(
                f"  {format_cst(a.at, when)}  {a.outcome:<9} {status:<9} {a.duration_ms:>6} ms  "
                f"{a.worker}  {error}".rstrip()
            )
        return lines
