"""Sending a code: at once, beside the notification queue, with the outbox as the fallback.

Notification SMS wait in the outbox behind one another (kind "sms"); a code must reach
the phone within seconds however many are queued. So the code's outbox row (kind
"sms_code", an ordering key of its own) is written leased to the request that made it,
and right after that request commits, the same process posts it to the gateway itself
(`send_now`, a background task after the answer). Only if that try fails, or the
process dies first (the lease runs out), does the dispatcher send it, with the usual
retries, for as long as the code is valid; past that it is parked unsent.

The code itself is in the row only sealed (AES-GCM under a key derived from the app
secret), and the sealed copy is dropped once the gateway took it: the database never
holds a readable code (identity.md: only its hash is stored).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from portal.clock import utcnow
from portal.db import Database
from portal.exchange import outcomes
from portal.exchange.models import OutboxAttempt, OutboxMessage
from portal.exchange.outbox import DELIVERED, PENDING, enqueue_job
from portal.security import mask_phone
from portal.settings import Settings
from portal.verification.models import PURPOSES, SmsCode

if TYPE_CHECKING:
    from portal.exchange.dispatcher import Claimed, Dispatcher

log = logging.getLogger("portal.sms")
# The code itself, for a developer under `make run` (dev mode and no gateway only).
dev_log = logging.getLogger("portal.verification.dev")
KIND = "sms_code"
TYPE = "verification"


def _key(settings: Settings) -> bytes:
    return hmac.new(settings.secret_key.encode(), b"sms-code-seal", hashlib.sha256).digest()


def seal(settings: Settings, code_id: int, code: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(_key(settings)).encrypt(nonce, code.encode(), str(code_id).encode())
    return base64.b64encode(nonce + sealed).decode()


def unseal(settings: Settings, code_id: int, sealed: str) -> str:
    raw = base64.b64decode(sealed)
    try:
        return AESGCM(_key(settings)).decrypt(raw[:12], raw[12:], str(code_id).encode()).decode()
    except InvalidTag:
        raise outcomes.Permanent("sealed code unreadable (another secret key?)") from None


def code_text(purpose: str, code: str) -> str:
    """The SMS: the code is its only run of 6 digits (no link, no other number)."""
    return (
        f"【行政审批局】您的{PURPOSES[purpose]}验证码为 {code}，5 分钟内有效。"
        "工作人员不会向您索要验证码，请勿告诉他人。"
    )


def _owner() -> str:
    return f"direct:{os.getpid()}"


def queue_code(session: Session, settings: Settings, *, row: SmsCode, code: str) -> OutboxMessage:
    """The code's outbox row, leased to this process for the send right after commit."""
    message = enqueue_job(
        session,
        kind=KIND,
        ordering_key=f"sms-code:{row.id}",  # never behind any other message
        payload={
            "code_id": row.id,
            "to": row.phone,
            "purpose": row.purpose,
            "sealed": seal(settings, row.id, code),
        },
    )
    message.event_type = TYPE
    # The dispatcher leaves it alone while the direct send may be under way.
    message.locked_until = utcnow() + timedelta(seconds=settings.http_timeout_seconds + 5)
    message.locked_by = _owner()
    session.flush()
    return message


def gateway_request(
    settings: Settings, *, event_id: str, to: str, text: str
) -> tuple[bytes, dict[str, str]]:
    body = {"id": event_id, "to": to, "text": text, "type": TYPE, "case_no": None}
    headers = {"Content-Type": "application/json", "Idempotency-Key": event_id}
    if settings.sms_gateway_key:
        headers["Authorization"] = f"Bearer {settings.sms_gateway_key}"
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return content, headers


def _check(response: httpx.Response) -> None:
    if response.is_success:
        return
    error = f"SMS gateway HTTP {response.status_code}"  # not the body: it may echo the number
    if response.status_code in outcomes.RETRYABLE:
        raise outcomes.Retryable(
            error,
            response.status_code,
            outcomes.parse_retry_after(response.headers.get("retry-after")),
        )
    raise outcomes.Permanent(error, response.status_code)


def _log_instead(settings: Settings, job: dict[str, Any], code: str, event_id: str) -> None:
    """No gateway: a developer reads the code on the console (dev mode only)."""
    to = mask_phone(str(job.get("to", "")))
    if settings.is_dev:
        dev_log.warning(
            "开发模式：%s 的%s验证码是 %s（未配置短信网关，未发送） / dev SMS code",
            to,
            PURPOSES.get(job.get("purpose", ""), ""),
            code,
            extra={"sms_code": code, "event_id": event_id},
        )
        return
    # Not reached in production (no code is made without a gateway); never the code.
    log.info("SMS %s (verification) to %s: log gateway, not sent", event_id, to)


def _code_still_valid(db: Database, code_id: int) -> bool:
    with db.session() as session:
        row = session.get(SmsCode, code_id)
        return (
            row is not None
            and row.used_at is None
            and row.voided_at is None
            and row.expires_at > utcnow()
        )


def _forget_sealed(session: Session, message_id: int, job: dict[str, Any]) -> None:
    kept = {k: v for k, v in job.items() if k != "sealed"}
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(payload=json.dumps(kept, ensure_ascii=False, separators=(",", ":")))
    )


def send_now(settings: Settings, db: Database, message_id: int) -> None:
    """The direct try, after the request committed; the outbox row records its outcome."""
    owner = _owner()
    with db.session() as session:
        row = session.get(OutboxMessage, message_id)
        if row is None or row.status != PENDING or row.locked_by != owner:
            return
        event_id, job = row.event_id, json.loads(row.payload)
    started = time.monotonic()
    error, status = None, None
    try:
        code = unseal(settings, job["code_id"], job["sealed"])
        if settings.sms_gateway_url:
            content, headers = gateway_request(
                settings, event_id=event_id, to=job["to"], text=code_text(job["purpose"], code)
            )
            with httpx.Client(timeout=settings.http_timeout_seconds) as client:
                _check(client.post(settings.sms_gateway_url, content=content, headers=headers))
        else:
            _log_instead(settings, job, code, event_id)
    except (outcomes.Retryable, outcomes.Permanent) as exc:
        error, status = str(exc), getattr(exc, "status", None)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    duration = int((time.monotonic() - started) * 1000)
    now = utcnow()
    mine = update(OutboxMessage).where(
        OutboxMessage.id == message_id,
        OutboxMessage.locked_by == owner,
        OutboxMessage.status == PENDING,
    )
    with db.session(write=True) as session, session.begin():
        if error is None:
            done = session.execute(
                mine.values(
                    status=DELIVERED,
                    delivered_at=now,
                    attempts=1,
                    locked_until=None,
                    locked_by=None,
                    last_error=None,
                )
            )
            if done.rowcount:  # type: ignore[attr-defined]
                _forget_sealed(session, message_id, job)
        else:
            # Left to the dispatcher, which retries it while the code is valid.
            done = session.execute(
                mine.values(
                    attempts=1,
                    last_error=error[:2000],
                    last_status=status,
                    locked_until=None,
                    locked_by=None,
                    next_attempt_at=now + timedelta(seconds=settings.retry_first_seconds),
                )
            )
        if done.rowcount:  # type: ignore[attr-defined]
            session.add(
                OutboxAttempt(
                    message_id=message_id,
                    at=now,
                    worker=owner[:64],
                    outcome="delivered" if error is None else "retry",
                    http_status=status,
                    error=error[:2000] if error else None,
                    duration_ms=duration,
                )
            )
    if error is not None:
        log.info("SMS %s (verification): direct send failed, queued: %s", event_id, error[:200])


def code_handler(dispatcher: Dispatcher) -> Callable[[Claimed], Awaitable[None]]:
    """The dispatcher's handler for kind "sms_code": the fallback of `send_now`."""

    async def send(message: Claimed) -> None:
        settings = dispatcher.settings
        job = json.loads(message.payload)
        if "sealed" not in job:
            return  # already sent (the direct try's answer was recorded late)
        if not await run_in_threadpool(_code_still_valid, dispatcher.db, job["code_id"]):
            raise outcomes.Permanent("code expired, used or replaced before it could be sent")
        code = unseal(settings, job["code_id"], job["sealed"])
        if settings.sms_gateway_url:
            content, headers = gateway_request(
                settings,
                event_id=message.event_id,
                to=job["to"],
                text=code_text(job["purpose"], code),
            )
            _check(
                await dispatcher.client.post(
                    settings.sms_gateway_url, content=content, headers=headers
                )
            )
        else:
            _log_instead(settings, job, code, message.event_id)

        def forget() -> None:
            with dispatcher.db.session(write=True) as session, session.begin():
                _forget_sealed(session, message.id, job)

        await run_in_threadpool(forget)

    return send
