"""消息中心 pages: the list with unread ones marked, one message, mark one or all read."""

from __future__ import annotations

from fastapi import Request

from portal.cases.models import Case
from portal.db import DbSession
from portal.notifications import service
from portal.routing import Router
from portal.web import CsrfForm, LoggedIn, flash, redirect, render, safe_next

router = Router(include_in_schema=False)


@router.get("/messages")
def messages_page(request: Request, session: DbSession, account: LoggedIn):
    messages = service.list_messages(session, account=account)
    return render(request, "notifications/list.html", {"messages": messages})


@router.get("/messages/{message_id}")
def message_page(request: Request, message_id: str, session: DbSession, account: LoggedIn):
    # Only shows: a GET changes nothing (a prefetch or a crawler must not mark it read).
    message = service.get_own_message(session, account=account, message_id=message_id)
    case_no = None
    if message.case_id is not None:
        case = session.get(Case, message.case_id)
        case_no = case.case_no if case else None
    return render(
        request,
        "notifications/detail.html",
        {
            "message": message,
            "case_no": case_no,
            "link": safe_next(message.link, "") if message.link else "",
        },
    )


@router.post("/messages/{message_id}/read")
def mark_one_read(
    request: Request, message_id: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    message = service.get_own_message(session, account=account, message_id=message_id)
    service.mark_read(session, account=account, message_ids=[message.id])
    flash(request, "已标为已读。")
    return redirect(f"/messages/{message.id}")


@router.post("/messages/read")
def mark_all_read(request: Request, session: DbSession, account: LoggedIn, form: CsrfForm):
    count = service.mark_read(session, account=account)
    flash(request, f"已将 {count} 条消息标为已读。" if count else "没有未读消息。")
    return redirect("/messages")
