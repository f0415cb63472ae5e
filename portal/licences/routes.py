"""我的证照 pages: the wallet, and registering a licence issued before the portal."""

from __future__ import annotations

from fastapi import Request
from fastapi.routing import APIRouter
from sqlalchemy import select

from portal.catalogue.models import Item
from portal.db import DbSession
from portal.errors import DomainError, Invalid
from portal.licences import service
from portal.web import CsrfForm, LoggedIn, flash, redirect, render

router = APIRouter(include_in_schema=False)
FIELDS = ("item_code", "number", "valid_from", "valid_to")  # page order


def _page(
    request: Request, session, account, *, values=None, errors=None, message="", status_code=200
):
    items = session.scalars(
        select(Item).where(Item.licence_name != "", Item.active.is_(True)).order_by(Item.code)
    ).all()
    rows = [
        service.licence_view(session, lic) for lic in service.list_own(session, account=account)
    ]
    return render(
        request,
        "licences/wallet.html",
        {
            "rows": rows,
            "item_options": [(i.code, f"{i.licence_name}（{i.name}）") for i in items],
            "values": values or {},
            "errors": errors or {},
            "error_message": message,
        },
        status_code=status_code,
    )


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
