"""The message centre: unread counts, listing, marking read."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from portal.accounts.models import Account
from portal.clock import utcnow
from portal.errors import NotFound
from portal.notifications.models import Message
from portal.notifications.sms import queue_sms

LIST_LIMIT = 200
NOT_FOUND_MESSAGE = "没有找到这条消息。"


def unread_query(account_id: Any) -> Select[int]:
    """Counts the messages of `account_id` (a value or a column) not opened yet."""
    return select(func.count()).where(Message.account_id == account_id, Message.read_at.is_(None))


def unread_count(session: Session, *, account: Account) -> int:
    """How many messages the account has not opened yet."""
    return int(session.scalar(unread_query(account.id)) or 0)


def create_message(
    session: Session,
    *,
    account_id: int,
    type: str,
    title: str,
    body: str,
    link: str = "",
    case_id: int | None = None,
) -> Message:
    """Put one message in the account's message centre (in the caller's transaction)."""
    message = Message(
        account_id=account_id, case_id=case_id, type=type, title=title, body=body, link=link
    )
    session.add(message)
    return message


def tell_account(
    session: Session,
    *,
    account_id: int,
    type: str,
    title: str,
    body: str,
    sms: str,
    link: str = "",
    case_id: int | None = None,
    case_no: str | None = None,
) -> Message:
    """A message in the centre and its SMS copy, in the caller's transaction."""
    message = create_message(
        session,
        account_id=account_id,
        case_id=case_id,
        type=type,
        title=title,
        body=body,
        link=link,
    )
    account = session.get(Account, account_id)
    if account is not None:
        queue_sms(
            session,
            account_id=account.id,
            phone=account.phone,
            event=type,
            text=sms,
            path=link,
            case_no=case_no,
        )
    return message


def list_messages(session: Session, *, account: Account, limit: int = LIST_LIMIT) -> list[Message]:
    """The account's messages, newest first."""
    query = (
        select(Message)
        .where(Message.account_id == account.id)
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def get_own_message(session: Session, *, account: Account, message_id: str | int) -> Message:
    """The account's message; another account's is 404 exactly like a missing one."""
    text = str(message_id)
    if not text.isdigit() or not 0 < int(text) < 2**31:
        raise NotFound(NOT_FOUND_MESSAGE, code="message_not_found")
    message = session.scalars(
        select(Message).where(Message.id == int(text), Message.account_id == account.id)
    ).first()
    if message is None:
        raise NotFound(NOT_FOUND_MESSAGE, code="message_not_found")
    return message


def mark_read(session: Session, *, account: Account, message_ids: list[int] | None = None) -> int:
    """Mark some (or, with None, all) of the account's unread messages read; how many changed."""
    statement = update(Message).where(Message.account_id == account.id, Message.read_at.is_(None))
    if message_ids is not None:
        statement = statement.where(Message.id.in_(message_ids))
    result = session.execute(statement.values(read_at=utcnow()))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
