"""Writing messages to the outbox, in the caller's transaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from portal.clock import rfc3339, utcnow
from portal.exchange.models import OutboxMessage

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


def envelope_bytes(
    *, event_id: str, type: str, occurred_at: datetime, case_no: str | None, data: dict[str, Any]
) -> str:
    envelope = {
        "event_id": event_id,
        "type": type,
        "occurred_at": rfc3339(occurred_at),
        "case_no": case_no,
        "data": data,
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))


def enqueue_event(
    session: Session,
    *,
    type: str,
    case_no: str | None,
    data: dict[str, Any],
    blobs: Iterable[str] = (),
    ordering_key: str | None = None,
) -> OutboxMessage:
    """Queue one event for the bureau; it leaves after the transaction commits."""
    event_id = str(uuid.uuid4())
    now = utcnow()
    message = OutboxMessage(
        kind="bureau_event",
        ordering_key=ordering_key or case_no or f"event:{event_id}",
        event_id=event_id,
        event_type=type,
        case_no=case_no,
        payload=envelope_bytes(
            event_id=event_id, type=type, occurred_at=now, case_no=case_no, data=data
        ),
        blobs=sorted(set(blobs)),
        created_at=now,
        next_attempt_at=now,
    )
    session.add(message)
    session.info["outbox_written"] = True
    return message


def enqueue_job(
    session: Session,
    *,
    kind: str,
    ordering_key: str,
    payload: dict[str, Any],
    case_no: str | None = None,
) -> OutboxMessage:
    """Queue a non-event job that rides the same retry machinery (licence fetch, SMS)."""
    job_id = str(uuid.uuid4())
    now = utcnow()
    message = OutboxMessage(
        kind=kind,
        ordering_key=ordering_key,
        event_id=job_id,
        event_type=kind,
        case_no=case_no,
        payload=json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
        blobs=[],
        created_at=now,
        next_attempt_at=now,
    )
    session.add(message)
    session.info["outbox_written"] = True
    return message
