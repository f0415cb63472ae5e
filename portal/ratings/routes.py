"""The 好差评 page: five large choices, a comment (required when dissatisfied), quick tags."""

from __future__ import annotations

from fastapi import Request

from portal.cases import service as cases
from portal.catalogue.service import find_item
from portal.db import DbSession
from portal.errors import Conflict, Invalid
from portal.ratings import service
from portal.ratings.models import Rating
from portal.routing import Router
from portal.web import CsrfForm, LoggedIn, flash, redirect, render

router = Router(include_in_schema=False)
LABELS = {"level": "满意程度", "comment": "意见和建议", "tags": "快捷标签"}


def _form(request, case, item, values=None, errors=None, message="", status_code=200):
    return render(
        request,
        "ratings/form.html",
        {
            "case": case,
            "item": item,
            "levels": list(service.LEVELS.items()),
            "tags": service.TAGS,
            "values": values or {"level": "", "comment": "", "tags": []},
            "errors": errors or {},
            "error_message": message,
            "labels": LABELS,
            "comment_max": service.COMMENT_MAX,
        },
        status_code=status_code,
    )


def _check(session, case) -> None:
    rating = session.get(Rating, case.id)
    if not service.can_rate(case, rating):
        if rating is not None:
            raise Conflict("这个办件已经评价过了，每个办件只能评价一次。", code="already_rated")
        raise Conflict("办件办结后才能评价。", code="not_finished")


@router.get("/cases/{case_no}/rating")
def rating_page(request: Request, case_no: str, session: DbSession, account: LoggedIn):
    case = cases.get_own_case(session, account=account, case_no=case_no)
    _check(session, case)
    return _form(request, case, find_item(session, case.item_code))


def _submitted(form) -> dict:
    level = form.get("level")
    comment = form.get("comment")
    return {
        "level": level if isinstance(level, str) else "",
        "comment": comment if isinstance(comment, str) else "",
        "tags": [t for t in form.getlist("tags") if isinstance(t, str)],
    }


@router.post("/cases/{case_no}/rating/check")
def rating_check(
    request: Request, case_no: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    """Check your answers: a rating is given once and cannot be changed."""
    case = cases.get_own_case(session, account=account, case_no=case_no)
    item = find_item(session, case.item_code)
    values = _submitted(form)
    try:
        level, comment, tags = service.check_rating(
            session,
            case=case,
            level=values["level"],
            comment=values["comment"],
            tags=values["tags"],
        )
    except Invalid as exc:
        return _form(request, case, item, values, exc.fields, exc.message, 422)
    return render(
        request,
        "ratings/check.html",
        {
            "case": case,
            "item": item,
            "level_label": service.LEVELS[level],
            "comment": comment,
            "tags": tags,
            "values": values,
        },
    )


@router.post("/cases/{case_no}/rating/edit")
def rating_edit(
    request: Request, case_no: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    case = cases.get_own_case(session, account=account, case_no=case_no)
    _check(session, case)
    return _form(request, case, find_item(session, case.item_code), _submitted(form))


@router.post("/cases/{case_no}/rating")
def rating_submit(
    request: Request, case_no: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    case = cases.get_own_case(session, account=account, case_no=case_no, for_update=True)
    values = _submitted(form)
    try:
        service.rate_case(
            session,
            case=case,
            level=values["level"],
            comment=values["comment"],
            tags=values["tags"],
        )
    except Invalid as exc:
        session.rollback()
        item = find_item(session, case.item_code)
        return _form(request, case, item, values, exc.fields, exc.message, 422)
    flash(request, "感谢您的评价，我们已转给审批局。审批局的回复会显示在办件页面，并通知您。")
    return redirect(f"/cases/{case.case_no}#rating")
