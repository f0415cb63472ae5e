"""消息中心 JSON API."""

from __future__ import annotations

from portal.api import ApiAccount
from portal.db import DbSession
from portal.notifications import service
from portal.notifications.models import Message
from portal.notifications.schemas import MessageListOut, MessageOut
from portal.routing import Router

router = Router(prefix="/api/v1", tags=["messages"])


def _out(m: Message) -> dict:
    return {
        "id": m.id,
        "type": m.type,
        "title": m.title,
        "body": m.body,
        "link": m.link,
        "created_at": m.created_at,
        "read_at": m.read_at,
    }


@router.get("/messages", response_model=MessageListOut, responses={401: {"description": "未登录"}})
def api_messages(session: DbSession, account: ApiAccount) -> dict:
    """The caller's messages, newest first, and how many are unread."""
    return {
        "unread": service.unread_count(session, account=account),
        "messages": [_out(m) for m in service.list_messages(session, account=account)],
    }


@router.post(
    "/messages/{message_id}/read",
    response_model=MessageOut,
    responses={401: {"description": "未登录"}, 404: {"description": "没有这条消息"}},
)
def api_mark_read(message_id: str, session: DbSession, account: ApiAccount) -> dict:
    """Mark one message read (idempotent)."""
    message = service.get_own_message(session, account=account, message_id=message_id)
    service.mark_read(session, account=account, message_ids=[message.id])
    session.refresh(message)
    return _out(message)
