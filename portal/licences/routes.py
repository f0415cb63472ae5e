"""我的证照 pages: the wallet, and registering a licence issued before the portal."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import select

from portal.catalogue.models import Item
from portal.db import DbSession
from portal.errors import Conflict, DomainError, Forbidden, Invalid
from portal.licences import kinds, service
from portal.routing import Router
from portal.web import CsrfForm, LoggedIn, flash, redirect, render

router = Router(include_in_schema=False)
FIELDS = ("item_code", "number", "valid_from", "valid_to")  # page order


def _page(
    request: Request, session, account, *, values=None, errors=None, message="", status_code=200
):
    items = session.scalars(
        select(Item).where(Item.licence_name != "", Item.active.is_(True)).order_by(Item.code)
    ).all()
    rows = [_row(session, lic) for lic in service.list_own(session, account=account)]
    # An agent (经办人) also sees the licences of the enterprises that authorised them,
    # and applies about them in the enterprise's name.
    acting = [
        {
            "name": enterprise.name,
            "uscc": enterprise.id_number,
            "rows": [_row(session, lic) for lic in held],
        }
        for enterprise, held in service.agent_licences(session, agent=account)
    ]
    return render(
        request,
        "licences/wallet.html",
        {
            "rows": rows,
            "acting": acting,
            "item_options": [(i.code, f"{i.licence_name}（{i.name}）") for i in items],
            "values": values or {},
            "errors": errors or {},
            "error_message": message,
        },
        status_code=status_code,
    )


def _row(session, lic) -> dict:
    view = service.licence_view(session, lic)
    # The one-tap buttons: what is open now, in the catalogue's order (延续 first).
    view["buttons"] = [{"kind": k, "label": kinds.ACTION_LABELS[k]} for k in view["actions"]]
    return view


@router.get("/licences")
def wallet_page(request: Request, session: DbSession, account: LoggedIn):
    return _page(request, session, account)


@router.post("/licences")
def register_page(request: Request, session: DbSession, account: LoggedIn, form: CsrfForm):
    values = {k: v if isinstance(v := form.get(k), str) else "" for k in FIELDS}
    try:
        licence = service.register_licence(session, account=account, **values)
    except Invalid as exc:
        errors = {k: exc.fields[k] for k in FIELDS if k in exc.fields}  # in page order
        return _page(
            request,
            session,
            account,
            values=values,
            errors=errors,
            message=exc.message,
            status_code=422,
        )
    except DomainError as exc:
        return _page(
            request,
            session,
            account,
            values=values,
            errors={"number": exc.message},
            message=exc.message,
            status_code=exc.status,
        )
    flash(request, f"已登记{licence.name}（{licence.number}）。")
    return redirect(f"/licences#l-{licence.number}")


@router.post("/licences/{number}/applications")
def apply_page(
    request: Request, number: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    """One tap from the wallet: the draft of that kind, filled in, and on to its form."""
    kind = form.get("kind")
    on_behalf_of = form.get("on_behalf_of")
    try:
        case, created = service.start_application(
            session,
            account=account,
            number=number,
            kind=kind if isinstance(kind, str) else "",
            on_behalf_of=on_behalf_of if isinstance(on_behalf_of, str) else None,
        )
    except (Conflict, Invalid, Forbidden) as exc:
        # The wallet again, with the reason at the top (nothing was created).
        message = exc.fields.get("kind") or exc.message
        return _page(request, session, account, message=message, status_code=exc.status)
    label = kinds.KIND_LABELS[case.application_kind]
    if created:
        flash(
            request,
            f"已创建{label}申请草稿，办件编号 {case.case_no}。已按证照和上次申请的信息预先填写，"
            "请核对后继续。",
        )
    else:
        flash(request, f"您已有该证照的{label}申请草稿（办件编号 {case.case_no}），请继续填写。")
    return redirect(f"/cases/{case.case_no}/form")
