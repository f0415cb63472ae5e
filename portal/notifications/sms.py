"""SMS copies of notifications, sent by the outbox dispatcher (kind "sms").

The message is queued in the transaction of the change it reports, so a gateway
outage delays it and loses nothing; the dispatcher retries it like a bureau event.
Without `PORTAL_SMS_GATEWAY_URL` the message is written to the log (phone masked)
instead of being sent; with it, it is POSTed to the gateway (docs/operations.md,
"SMS gateway").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from portal.exchange import outcomes as outbox
from portal.exchange.outbox import enqueue_job
from portal.logs import redact
from portal.security import mask_phone
from portal.settings import Settings

if TYPE_CHECKING:
    from portal.exchange.dispatcher import Claimed, Dispatcher

log = logging.getLogger("portal.sms")
KIND = "sms"


def queue_sms(
    session: Session,
    *,
    account_id: int,
    phone: str,
    event: str,
    text: str,
    path: str = "",
    case_no: str | None = None,
) -> None:
    """Queue one SMS; messages to one account leave in order, apart from any bureau event."""
    if phone.startswith("x"):
        return  # a closed account's placeholder (accounts/privacy.py): no phone to text
    enqueue_job(
        session,
        kind=KIND,
        ordering_key=f"sms:{account_id}",
        payload={"type": event, "to": phone, "text": text, "path": path},
        case_no=case_no,
    )


def full_text(settings: Settings, job: dict[str, Any]) -> str:
    """The text as the phone shows it: the link to the case is added at sending time."""
    text = str(job.get("text", "")).strip()
    if job.get("path"):
        text += f" 详情：{settings.public_url.rstrip('/')}{job['path']}"
    return text


def gateway_body(message: Claimed, job: dict[str, Any], text: str) -> bytes:
    body = {
        "id": message.event_id,
        "to": job["to"],
        "text": text,
        "type": job.get("type"),
        "case_no": message.case_no,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sms_handler(dispatcher: Dispatcher) -> Callable[[Claimed], Awaitable[None]]:
    """The dispatcher's handler for kind "sms": the log gateway or the HTTP gateway."""

    async def send(message: Claimed) -> None:
        settings = dispatcher.settings
        job = json.loads(message.payload)
        text = full_text(settings, job)
        if not settings.sms_gateway_url:
            # Never a full phone or ID number in the log: masked here, and the log
            # filter (portal.logs) masks anything that still looks like one.
            log.info(
                "SMS %s to %s (log gateway, not sent): %s",
                message.event_id,
                mask_phone(str(job.get("to", ""))),
                redact(text),
                extra={"event_id": message.event_id, "case_no": message.case_no},
            )
            return
        headers = {
            "Content-Type": "application/json",
            # The gateway keeps the first message with an id and answers 2xx to repeats:
            # a send whose answer was lost is retried with the same id.
            "Idempotency-Key": message.event_id,
        }
        if settings.sms_gateway_key:
            headers["Authorization"] = f"Bearer {settings.sms_gateway_key}"
        response = await dispatcher.client.post(
            settings.sms_gateway_url, content=gateway_body(message, job, text), headers=headers
        )
        if response.is_success:
            return
        # Not the body: a gateway may echo the number back.
        error = f"SMS gateway HTTP {response.status_code}"
        if response.status_code in outbox.RETRYABLE:
            raise outbox.Retryable(
                error,
                response.status_code,
                outbox.parse_retry_after(response.headers.get("retry-after")),
            )
        raise outbox.Permanent(error, response.status_code)

    return send
