"""The staff console (server-rendered, 中文) and the public licence verification page."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from bureau import actions, applications, auth, originals, queries, states, views
from bureau.blobs import is_sha256
from bureau.clock import today_cst
from bureau.db import DbSession
from bureau.errors import Conflict, DomainError, Invalid, NotFound
from bureau.licence import AUTHORITY
from bureau.models import BureauCase, Licence, OutboxEvent
from bureau.notices import KINDS as NOTICE_KINDS
from bureau.outbox import requeue_event

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50


class LoginRequired(Exception):
    """Raised by console routes without a signed-in clerk; answered with a redirect."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def console_staff(request: Request) -> str:
    staff = auth.session_staff(request)
    if staff is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return staff


async def checked_form(request: Request) -> FormData:
    """The posted form, after the CSRF check (403 without this session's token)."""
    form = await request.form()
    auth.check_csrf(request, form.get(auth.CSRF_FIELD))
    return form


ConsoleStaff = Annotated[str, Depends(console_staff)]
CheckedForm = Annotated[FormData, Depends(checked_form)]


def flash(request: Request, message: str, kind: str = "success") -> None:
    request.session.setdefault("flash", []).append([kind, message])


def render(
    request: Request, template: str, context: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    full = {
        "staff": auth.session_staff(request),
        "csrf_token": auth.csrf_token(request),
        "flashes": request.session.pop("flash", []),
        **context,
    }
    return request.app.state.templates.TemplateResponse(request, template, full, status_code=status)


def _safe_next(value: object) -> str:
    # Only paths inside the console: an open redirect would make phishing links look ours.
    if isinstance(value, str) and value.startswith("/staff") and not value.startswith("//"):
        return value
    return "/staff/"


# -- sign-in ---------------------------------------------------------------------------


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/staff/", status_code=303)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/staff/login")
def login_page(request: Request, next: str = "/staff/") -> Response:
    if auth.session_staff(request):
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", {"next": _safe_next(next), "username": ""})


@router.post("/staff/login")
def login(request: Request, session: DbSession, form: CheckedForm) -> Response:
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    target = _safe_next(form.get("next"))
    if not username or not password:
        context = {"next": target, "username": username, "error": "请输入用户名和密码。"}
        return render(request, "login.html", context, status=422)
    try:
        auth.authenticate(
            session,
            username=username,
            password=password,
            address=auth.client_address(request),
            throttle=request.app.state.throttle,
        )
    except DomainError as exc:  # wrong password (401) or throttled (429)
        context = {"next": target, "username": username, "error": exc.message}
        response = render(request, "login.html", context, status=exc.status)
        response.headers.update(exc.headers)
        return response
    auth.start_session(request, username)
    return RedirectResponse(target, status_code=303)


@router.post("/staff/logout")
def logout(request: Request, form: CheckedForm) -> RedirectResponse:
    auth.end_session(request)
    return RedirectResponse("/staff/login", status_code=303)


# -- queue and case ----------------------------------------------------------------------


@router.get("/staff/")
def queue(
    request: Request,
    session: DbSession,
    staff: ConsoleStaff,
    status: str = "",
    page: int = 1,
    q: str = "",
) -> Response:
    if q.strip():
        needle = q.strip()
        found = session.scalars(
            select(BureauCase.case_no).where(
                (BureauCase.case_no == needle) | (BureauCase.acceptance_no == needle)
            )
        ).first()
        if found:
            return RedirectResponse(f"/staff/cases/{quote(found)}", status_code=303)
        flash(request, f"没有找到办件 {needle}。", "error")
        return RedirectResponse("/staff/", status_code=303)
    counts = queries.status_counts(session)
    wanted = status if status in counts or status in states.STATUS_LABELS else ""
    page = max(1, page)
    total = sum(counts.values()) if not wanted else counts.get(wanted, 0)
    cases = queries.list_cases(
        session,
        status=wanted or None,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
        oldest_first=wanted in (states.Status.PREREVIEW, states.Status.SUBMITTED),
    )
    tabs = [{"status": "", "label": "全部", "count": sum(counts.values())}] + [
        {"status": s.value, "label": states.status_label(s), "count": counts.get(s, 0)}
        for s in states.QUEUE_ORDER
    ]
    context = {
        "tabs": tabs,
        "current": wanted,
        "cases": [views.case_summary(c) for c in cases],
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
    }
    return render(request, "queue.html", context)


def _case_page(
    request: Request,
    session: Session,
    case_no: str,
    *,
    status: int = 200,
    open_action: str | None = None,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
) -> HTMLResponse:
    case = queries.get_case(session, case_no, full=True)
    defaults = views.action_defaults(session, case)
    if open_action and values is not None:
        defaults[open_action] = values
    context = {
        "case": case,
        "applicant": views.applicant_view(case.applicant),
        "materials": views.materials_view(case),
        "form_rows": views.form_rows(case.form),
        "commitment_kind": views.COMMITMENT_KINDS.get((case.commitment or {}).get("kind", ""), ""),
        "delivery": views.delivery_view(case.delivery),
        "handover_label": states.HANDOVER_LABELS.get(case.handover, case.handover),
        "licence": views.licence_view(case, request.app.state.settings),
        "history": views.history_view(case, queries.outbox_for_case(session, case_no)),
        "actions": actions.available_actions(case, session),
        "defaults": defaults,
        "open_action": open_action,
        "errors": errors or {},
        "error": error,
        "purposes": views.PURPOSES,
        "periods": views.PERIODS,
        "finished": case.status in states.FINISHED,
        "clock_reasons": states.CLOCK_REASONS,
        "notice_kinds": NOTICE_KINDS,
        "procedure": views.procedure_view(case),
        "originals": originals.view(case),
        "application": applications.view(session, case),
    }
    return render(request, "case.html", context, status=status)


@router.get("/staff/cases/{case_no}")
def case_page(case_no: str, request: Request, session: DbSession, staff: ConsoleStaff) -> Response:
    return _case_page(request, session, case_no)


def _form_payload(action: str, form: FormData) -> dict[str, Any]:
    """The action's fields in the JSON API's shape, so both go through one parser."""
    payload: dict[str, Any] = {
        key: value
        for key, value in form.items()
        if key != auth.CSRF_FIELD and isinstance(value, str)
    }
    if actions.find_action(action).name in ("return", "correction"):
        materials = []
        index = 0
        while f"m{index}_code" in form:
            comment = str(form.get(f"m{index}_comment", "")).strip()
            if comment:
                materials.append({"code": str(form.get(f"m{index}_code")), "comment": comment})
            index += 1
        payload = {**payload, "materials": materials}
    return payload


@router.post("/staff/cases/{case_no}/actions/{action}")
def case_action(
    case_no: str,
    action: str,
    request: Request,
    session: DbSession,
    staff: ConsoleStaff,
    form: CheckedForm,
) -> Response:
    spec = actions.find_action(action)
    payload = _form_payload(action, form)
    ctx = actions.Context(
        actor=staff, settings=request.app.state.settings, store=request.app.state.store
    )
    try:
        actions.perform_action(session, case_no=case_no, action=action, payload=payload, ctx=ctx)
    except (Invalid, Conflict) as exc:
        # Nothing of the failed attempt may be kept (e.g. a counter already advanced),
        # yet the page is rendered from this same session: roll back before reading.
        session.rollback()
        return _case_page(
            request,
            session,
            case_no,
            status=exc.status,
            open_action=spec.name,
            values={k: v for k, v in form.items() if isinstance(v, str) and k != auth.CSRF_FIELD},
            errors=exc.fields,
            error=exc.message,
        )
    flash(request, f"已{spec.label}，已通知门户。")
    return RedirectResponse(f"/staff/cases/{quote(case_no)}", status_code=303)


@router.get("/staff/files/{sha256}")
def staff_file(
    sha256: str, request: Request, staff: ConsoleStaff, name: str = ""
) -> StreamingResponse:
    """A material or licence for preview in the console (staff session instead of a signature)."""
    store = request.app.state.store
    size = store.size(sha256) if is_sha256(sha256) else None
    if size is None:
        raise NotFound("文件不存在。")
    media = store.content_type(sha256)
    inline = media in views.INLINE_TYPES
    filename = name or sha256[:12]
    quoted = quote(filename)
    disposition = "inline" if inline else "attachment"
    # As Starlette's FileResponse names a file: RFC 6266 filename* for anything not ASCII.
    disposition += (
        f"; filename*=utf-8''{quoted}" if quoted != filename else f'; filename="{filename}"'
    )
    # Decrypted chunk by chunk as it is sent (a sync iterator runs in the threadpool).
    return StreamingResponse(
        store.open_for_response(sha256),
        media_type=media if inline else "application/octet-stream",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": disposition,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=3600",
            "Content-Security-Policy": file_csp(media if inline else ""),
        },
    )


def file_csp(media: str) -> str:
    """The policy of a citizen's file shown in the console (the case page frames it).

    It may run no script and fetch nothing under the console's origin, where a clerk's
    session lives: the portal checks files on upload, but the console must not rely on
    another system's check. An image or a download is sandboxed as well. A PDF cannot
    be: Chrome shows PDFs with its plugin, which a sandboxed document may not load
    (object-src 'self' allows it) — the portal's own header for PDFs does the same.
    """
    policy = "default-src 'none'; img-src 'self'; frame-ancestors 'self'"
    if media == "application/pdf":
        return policy + "; object-src 'self'"
    return "sandbox; " + policy + "; object-src 'none'"


# -- consultations and outbox ---------------------------------------------------------------


@router.get("/staff/consultations")
def consultations(request: Request, session: DbSession, staff: ConsoleStaff) -> Response:
    items = queries.list_consultations(session)
    # Unanswered first, newest first within each group.
    items.sort(key=lambda c: (c.answer is not None, -c.id))
    return render(
        request, "consultations.html", {"items": items, "kinds": views.CONSULTATION_KINDS}
    )


@router.post("/staff/consultations/{consultation_id}/answer")
def answer(
    consultation_id: str,
    request: Request,
    session: DbSession,
    staff: ConsoleStaff,
    form: CheckedForm,
) -> Response:
    ctx = actions.Context(
        actor=staff, settings=request.app.state.settings, store=request.app.state.store
    )
    try:
        actions.answer_consultation(
            session,
            consultation_id=consultation_id,
            answer=str(form.get("answer", "")),
            ctx=ctx,
        )
    except (Invalid, Conflict) as exc:
        session.rollback()
        flash(request, exc.fields.get("answer", exc.message), "error")
        return RedirectResponse("/staff/consultations", status_code=303)
    flash(request, "已答复，已通知门户。")
    return RedirectResponse("/staff/consultations", status_code=303)


@router.get("/staff/outbox")
def outbox_page(request: Request, session: DbSession, staff: ConsoleStaff) -> Response:
    waiting = queries.list_outbox(session, statuses=("pending", "dead"))
    delivered = queries.list_outbox(session, statuses=("delivered",), limit=50)
    # A pending event behind an undelivered earlier one of the same case is blocked.
    first_open: dict[str, int] = {}
    for message in sorted(waiting, key=lambda m: m.id):
        first_open.setdefault(message.ordering_key, message.id)
    context = {
        "waiting": [
            {**views.outbox_view(m), "blocked": first_open[m.ordering_key] != m.id} for m in waiting
        ],
        "delivered": [views.outbox_view(m) for m in delivered],
        "counts": queries.outbox_counts(session),
    }
    return render(request, "outbox.html", context)


@router.post("/staff/outbox/{outbox_id}/requeue")
def requeue(
    outbox_id: int, request: Request, session: DbSession, staff: ConsoleStaff, form: CheckedForm
) -> RedirectResponse:
    try:
        message: OutboxEvent = requeue_event(session, outbox_id=outbox_id)
    except Conflict as exc:
        flash(request, exc.message, "error")
    else:
        flash(request, f"回调 #{message.id}（{message.type}）已重新排队。")
    return RedirectResponse("/staff/outbox", status_code=303)


# -- public verification ----------------------------------------------------------------------


def _mask_holder(name: str, id_display: str) -> str:
    # A person's name is personal data on a public page; an enterprise's name is public.
    if "*" in id_display and len(name) > 1:
        return name[0] + "*" * (len(name) - 1)
    return name


@router.get("/verify/{number}")
def verify(number: str, request: Request, session: DbSession) -> Response:
    """Public page behind the licence's QR code: is this licence genuine and valid today?"""
    licence = session.scalars(select(Licence).where(Licence.number == number)).first()
    if licence is None:
        unknown = {"number": number, "licence": None, "authority": AUTHORITY}
        return render(request, "verify.html", unknown, status=404)
    today = today_cst()
    if licence.revoked_at is not None:
        verdict, ok = "已注销", False
    elif applications.renewed_ahead(session, licence, today):
        verdict, ok = f"有效（已延续，新的有效期自 {licence.valid_from} 起）", True
    elif licence.valid_from > today:
        verdict, ok = "尚未生效", False
    elif licence.valid_to is not None and licence.valid_to < today:
        verdict, ok = "已过期", False
    else:
        verdict, ok = "有效", True
    context: dict[str, Any] = {
        "number": number,
        "licence": licence,
        "holder": _mask_holder(licence.holder_name, licence.holder_id_display),
        "verdict": verdict,
        "ok": ok,
        "authority": AUTHORITY,
    }
    return render(request, "verify.html", context)
