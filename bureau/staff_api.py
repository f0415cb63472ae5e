"""Staff JSON API for automation (end-to-end tests, benchmarks): HTTP Basic, same services as the console."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from bureau import actions, applications, auth, queries, views
from bureau.db import DbSession
from bureau.errors import Invalid, Unauthenticated
from bureau.outbox import requeue_event
from bureau.states import STATUS_LABELS, Status


def require_staff(request: Request) -> str:
    """The staff user named by HTTP Basic credentials (cached after one argon2 check)."""
    username, password = auth.basic_credentials(request)
    cache: auth.BasicAuthCache = request.app.state.basic_cache
    if cache.hit(username, password):
        return username
    with cache.lock_for(username, password):
        if cache.hit(username, password):  # verified while this call waited
            return username
        session: Session = request.app.state.db.session()
        try:
            auth.authenticate(
                session,
                username=username,
                password=password,
                address=auth.client_address(request),
                throttle=request.app.state.throttle,
                record=False,
            )
        except Unauthenticated as exc:
            exc.headers["WWW-Authenticate"] = 'Basic realm="bureau"'
            raise
        finally:
            session.close()
        cache.remember(username, password)
    return username


Staff = Annotated[str, Depends(require_staff)]
router = APIRouter(prefix="/staff/api/v1", tags=["staff"])


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; an empty body counts as {}."""
    body = await request.body()
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Invalid({"body": "请求内容不是合法的 JSON。"}) from None
    if not isinstance(value, dict):
        raise Invalid({"body": "请求内容应为 JSON 对象。"})
    return value


Body = Annotated[dict[str, Any], Depends(json_object)]


def _context(request: Request, staff: str) -> actions.Context:
    return actions.Context(
        actor=staff, settings=request.app.state.settings, store=request.app.state.store
    )


def _status(value: str | None) -> str | None:
    if value and (value not in STATUS_LABELS or value == Status.NEW):
        raise Invalid({"status": f"未知的状态 {value}。"})
    return value or None


@router.get("/cases")
def list_cases(
    session: DbSession,
    staff: Staff,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Cases oldest first (queue order), optionally of one status, with counts per status."""
    wanted = _status(status)
    cases = queries.list_cases(
        session, status=wanted, limit=limit, offset=offset, oldest_first=True
    )
    return {
        "cases": [views.case_summary(c) for c in cases],
        "total": queries.count_cases(session, status=wanted),
        "counts": queries.status_counts(session),
    }


def _detail(request: Request, session: Session, case_no: str) -> dict[str, Any]:
    case = queries.get_case(session, case_no, full=True)
    detail = views.case_detail(
        case,
        settings=request.app.state.settings,
        outbox=queries.outbox_for_case(session, case_no),
    )
    # v1.1: what is applied for (新办, or 延续/变更/注销/补办 of a licence held).
    return detail | {
        "application": applications.view(session, case),
        "actions": [a.name for a in actions.available_actions(case, session)],
    }


@router.get("/cases/{case_no}")
def get_case(case_no: str, request: Request, session: DbSession, staff: Staff) -> dict[str, Any]:
    return _detail(request, session, case_no)


@router.post("/cases/{case_no}/{action}")
def perform_action(
    case_no: str, action: str, request: Request, session: DbSession, staff: Staff, body: Body
) -> dict[str, Any]:
    """Run one staff action; the answer carries the event queued for the portal.

    The case in the answer is the summary with the actions now possible, not the whole
    case: the answer is built while the transaction holds the write lock, so it stays
    small. `GET /cases/{case_no}` has everything.
    """
    event = actions.perform_action(
        session, case_no=case_no, action=action, payload=body, ctx=_context(request, staff)
    )
    case = queries.get_case(session, case_no)
    return {
        "event": {"event_id": event.event_id, "type": event.type, "data": event.data},
        "case": {
            **views.case_summary(case),
            "actions": [a.name for a in actions.available_actions(case, session)],
        },
    }


@router.get("/consultations")
def list_consultations(
    session: DbSession, staff: Staff, unanswered: bool = False
) -> dict[str, Any]:
    items = queries.list_consultations(session, unanswered_only=unanswered)
    return {"consultations": [views.consultation_view(c) for c in items]}


@router.post("/consultations/{consultation_id}/answer")
def answer_consultation(
    consultation_id: str, request: Request, session: DbSession, staff: Staff, body: Body
) -> dict[str, Any]:
    consultation = actions.answer_consultation(
        session,
        consultation_id=consultation_id,
        answer=body.get("answer", ""),
        ctx=_context(request, staff),
    )
    return {"consultation": views.consultation_view(consultation)}


@router.get("/outbox")
def list_outbox(session: DbSession, staff: Staff, status: str | None = None) -> dict[str, Any]:
    """Callbacks to the portal: pending and dead by default, or one status, or `all`."""
    if status == "all":
        statuses: tuple[str, ...] = ("pending", "dead", "delivered")
    elif status in ("pending", "dead", "delivered"):
        statuses = (status,)
    elif status:
        raise Invalid({"status": "状态应为 pending、dead、delivered 或 all。"})
    else:
        statuses = ("pending", "dead")
    messages = queries.list_outbox(session, statuses=statuses, limit=1000)
    return {
        "events": [views.outbox_view(m) for m in messages],
        "counts": queries.outbox_counts(session),
    }


@router.post("/outbox/{outbox_id}/requeue")
def requeue(outbox_id: int, session: DbSession, staff: Staff) -> dict[str, Any]:
    return {"event": views.outbox_view(requeue_event(session, outbox_id=outbox_id))}


@router.get("/received")
def received(
    session: DbSession,
    staff: Staff,
    case_no: str | None = None,
    after: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Portal events processed, in arrival order (duplicates are not listed twice)."""
    events = queries.list_received(session, case_no=case_no, after=after)
    return {"events": [views.received_view(e) for e in events]}
