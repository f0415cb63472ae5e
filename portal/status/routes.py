"""Public status pages (no login), the receipt (回执) and the QR code of the status link."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import Request, Response

from portal.accounts.models import Account
from portal.cases import pages, states
from portal.cases import service as cases
from portal.cases.models import Case
from portal.catalogue.service import find_item
from portal.db import DbSession
from portal.delivery.service import delivery_info
from portal.errors import Conflict, Invalid, NotFound, Throttled
from portal.routing import Router
from portal.security import mask_name
from portal.status import service
from portal.web import LoggedIn, redirect, render

router = Router(include_in_schema=False)
LABELS = {"case_no": "办件编号", "phone_last4": "手机号后 4 位"}
# Pages reached by a link that is itself a key: not for search engines or caches.
PRIVATE = {"X-Robots-Tag": "noindex, nofollow", "Cache-Control": "private, no-store"}


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _result(request: Request, session, case: Case, *, via_link: bool):
    view = service.public_view(session, case=case)
    account = session.get(Account, case.account_id)
    context: dict[str, Any] = {
        "view": view,
        "stages": pages.stages(case, (entry["type"] for entry in view["timeline"])),
        "status_tag": states.STATUS_TAGS[case.status],
        "applicant": mask_name(account.name if account else ""),
        "due": cases.due_info(case),
        "submitted_at": case.submitted_at,
        "via_link": via_link,
    }
    return render(request, "status/result.html", context, headers=PRIVATE)


def _lookup_form(request, values, *, errors=None, message="", status_code=200, headers=None):
    return render(
        request,
        "status/lookup.html",
        {
            "values": values,
            "errors": errors or {},
            "error_message": message,
            "labels": LABELS,
        },
        status_code=status_code,
        headers=headers,
    )


@router.get("/status")
def status_page(
    request: Request,
    session: DbSession,
    case_no: str | None = None,
    phone_last4: str | None = None,
):
    values = {"case_no": (case_no or "")[:40], "phone_last4": (phone_last4 or "")[:10]}
    if case_no is None and phone_last4 is None:
        return _lookup_form(request, values)
    try:
        case = service.find_case(
            session,
            db=request.app.state.db,
            case_no=case_no,
            phone_last4=phone_last4,
            client_ip=_client_ip(request),
        )
    except Invalid as exc:
        return _lookup_form(
            request, values, errors=exc.fields, message=exc.message, status_code=422
        )
    except (NotFound, Throttled) as exc:
        return _lookup_form(
            request,
            values,
            message=exc.message,
            status_code=exc.status,
            headers=exc.headers or None,
        )
    return _result(request, session, case, via_link=False)


@router.get("/status/link/{token}")
def status_link_page(request: Request, token: str, session: DbSession):
    try:
        case = service.case_from_link(session, settings=request.app.state.settings, token=token)
    except service.LinkExpired:
        return render(
            request,
            "status/link_problem.html",
            {"expired": True, "days": service.LINK_DAYS, "values": {}, "labels": LABELS},
            status_code=410,
            headers=PRIVATE,
        )
    except NotFound:
        return render(
            request,
            "status/link_problem.html",
            {"expired": False, "days": service.LINK_DAYS, "values": {}, "labels": LABELS},
            status_code=404,
            headers=PRIVATE,
        )
    return _result(request, session, case, via_link=True)


def _submitted_case(session, account, case_no: str) -> Case:
    case = cases.get_own_case(session, account=account, case_no=case_no)
    if case.submitted_at is None:
        raise Conflict("草稿还没有提交，提交后才有回执和进度查询链接。", code="not_submitted")
    return case


@router.get("/cases/{case_no}/status-qr.svg")
def status_qr(request: Request, case_no: str, session: DbSession, account: LoggedIn):
    """The QR code of the case's signed status link, for the confirmation page."""
    case = _submitted_case(session, account, case_no)
    url = service.status_url(request.app.state.settings, case.case_no)
    return Response(
        service.qr_svg(url),
        media_type="image/svg+xml",
        headers={"Cache-Control": "private, no-store"},
    )


@router.get("/cases/{case_no}/status-link")
def status_link_redirect(request: Request, case_no: str, session: DbSession, account: LoggedIn):
    """Open the public status page of one's own case, to share or bookmark its link."""
    case = _submitted_case(session, account, case_no)
    return redirect(service.status_path(request.app.state.settings, case.case_no))


@router.get("/cases/{case_no}/receipt")
def receipt_page(request: Request, case_no: str, session: DbSession, account: LoggedIn):
    """The printable receipt (回执): print CSS, no PDF."""
    case = _submitted_case(session, account, case_no)
    item = find_item(session, case.item_code)
    assert item is not None
    settings = request.app.state.settings
    url = service.status_url(settings, case.case_no)
    files = cases.files_by_material(session, case=case)
    materials = [
        {"name": m["name"], "count": len(files.get(m["code"], []))}
        for m in item.materials
        if files.get(m["code"])
    ]
    return render(
        request,
        "status/receipt.html",
        {
            "case": case,
            "item": item,
            "status_label": states.STATUS_LABELS[case.status],
            "receipt": service.receipt_info(case, item),
            "status_url": url,
            "qr_data_uri": "data:image/svg+xml;base64,"
            + base64.b64encode(service.qr_svg(url)).decode("ascii"),
            "lookup_url": settings.public_url.rstrip("/") + "/status",
            "link_days": service.LINK_DAYS,
            "materials": materials,
            "delivery": delivery_info(session, case=case, item=item),
            "commitment": case.commitment,
        },
        headers={"Cache-Control": "private, no-store"},
    )
