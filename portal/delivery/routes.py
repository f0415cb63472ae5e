"""The delivery page: express address with province → city → district selects, or a hall.

Without JavaScript the selects cascade on the server: "下一步" re-renders the page
with the next select filled (nothing is saved until "保存"). With JavaScript,
static/js/address.js fills the next select from /api/v1/divisions/{code} instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from portal.accounts.models import Account
from portal.cases import service as cases
from portal.cases import states
from portal.cases.models import Case
from portal.catalogue.models import Item
from portal.catalogue.service import find_item, halls_of
from portal.db import DbSession
from portal.delivery import service
from portal.delivery.divisions import tree
from portal.delivery.models import Delivery
from portal.errors import Invalid, NotFound
from portal.routing import Router
from portal.web import CsrfForm, LoggedIn, flash, redirect, render

router = Router(include_in_schema=False)

ADDRESS_KEYS = tuple(f"address.{name}" for name in service.ADDRESS_FIELDS)
LABELS = {
    "method": "领取方式",
    "hall": "领取大厅",
    "address.province": "省份",
    "address.city": "城市",
    "address.district": "区县",
    "address.detail": "详细地址",
    "address.recipient": "收件人姓名",
    "address.phone": "收件人手机号码",
    "address.postcode": "邮政编码",
}


def _item(session, case: Case) -> Item:
    item = find_item(session, case.item_code)
    assert item is not None
    return item


def _values_of(delivery: Delivery | None) -> dict[str, str]:
    values = dict.fromkeys(("method", "hall", *ADDRESS_KEYS), "")
    if delivery is None:
        return values
    values["method"] = delivery.method
    values["hall"] = delivery.hall_code or ""
    if delivery.method == "express":
        for name, value in service.address_values(delivery).items():
            values[f"address.{name}"] = value or ""
    return values


def _submitted(form) -> dict[str, str]:
    values = {}
    for key in ("method", "hall", *ADDRESS_KEYS):
        value = form.get(key)
        values[key] = value.strip()[:200] if isinstance(value, str) else ""
    return values


def cascade(values: dict[str, str]) -> tuple[list, list, list]:
    """Options of the three selects; a choice that no longer fits its parent is dropped."""
    divisions = tree()
    provinces = [(d.code, d.name) for d in divisions.provinces]
    province = values["address.province"]
    if province not in {code for code, _ in provinces}:
        values["address.province"] = province = ""
    cities = [(d.code, d.name) for d in divisions.children(province)] if province else []
    if values["address.city"] not in {code for code, _ in cities}:
        values["address.city"] = ""
    city = values["address.city"]
    districts = [(d.code, d.name) for d in divisions.children(city)] if city else []
    if values["address.district"] not in {code for code, _ in districts}:
        values["address.district"] = ""
    return provinces, cities, districts


def _page(
    request: Request,
    session,
    case: Case,
    item: Item,
    account: Account,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    message: str = "",
    status_code: int = 200,
):
    delivery = session.get(Delivery, case.id)
    halls = halls_of(session, item)
    provinces, cities, districts = cascade(values)
    method_options = []
    if item.express:
        method_options.append(("express", "快递寄送：审批局把证照寄到您填写的地址"))
    if halls:
        method_options.append(("pickup", "窗口领取：到政务服务大厅出件窗口领取"))
    # 常用地址: the account's earlier addresses, one tap to use the latest again.
    book = [service.book_entry(a) for a in service.address_book(session, account=account)]
    context: dict[str, Any] = {
        "case": case,
        "item": item,
        "values": values,
        "errors": errors or {},
        "error_message": message,
        "labels": LABELS,
        "method_options": method_options,
        "hall_options": [(h.code, f"{h.name}（{h.address}）") for h in halls],
        "provinces": provinces,
        "cities": cities,
        "districts": districts,
        "address_book": book,
        "postage": service.postage_text(session, item) if item.express else "",
        "chosen": delivery is not None,
    }
    return render(request, "delivery/form.html", context, status_code=status_code)


@router.get("/cases/{case_no}/delivery")
def delivery_page(request: Request, case_no: str, session: DbSession, account: LoggedIn):
    case = cases.get_own_case(session, account=account, case_no=case_no)
    item = _item(session, case)
    delivery = session.get(Delivery, case.id)
    service.check_can_choose(case, delivery)
    values = _values_of(delivery)
    if not values["method"] and item.express != bool(halls_of(session, item)):
        values["method"] = "express" if item.express else "pickup"  # only one way offered
    return _page(request, session, case, item, account, values)


@router.post("/cases/{case_no}/delivery")
def delivery_submit(
    request: Request, case_no: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    case = cases.get_own_case(session, account=account, case_no=case_no, for_update=True)
    item = _item(session, case)
    service.check_can_choose(case, session.get(Delivery, case.id))
    action = form.get("action")
    values = _submitted(form)
    if action == "cascade":
        # "下一步" without JavaScript: show the next select; nothing is saved yet.
        return _page(request, session, case, item, account, values)
    if action == "reuse":
        book = service.address_book(session, account=account)
        picked = form.get("address_id")
        if not book:
            return redirect(f"/cases/{case.case_no}/delivery")
        # Without a choice (an old page) the latest address is meant: it is the one preselected.
        try:
            saved = (
                service.saved_address(session, account=account, address_id=picked)
                if isinstance(picked, str) and picked
                else book[0]
            )
        except NotFound:  # deleted in another tab meanwhile: offer the book again
            flash(request, "所选常用地址已经删除，请重新选择或填写地址。")
            return redirect(f"/cases/{case.case_no}/delivery")
        values = {**_values_of(None), "method": "express"}
        for name, value in service.address_values(saved).items():
            values[f"address.{name}"] = value or ""
    if action == "edit":  # back from the check page, answers kept
        return _page(request, session, case, item, account, values)
    address = {name: values[f"address.{name}"] for name in service.ADDRESS_FIELDS}
    choice: dict[str, Any] = {
        "method": values["method"],
        "hall": values["hall"],
        "address": address,
    }
    try:
        if case.status != states.DRAFT and action != "confirm":
            # The bureau hears of this at once: check your answers first. (A draft's
            # choice is checked with the whole application on its review page.)
            checked = service.checked_choice(session, case=case, item=item, **choice)
            return render(
                request,
                "delivery/check.html",
                {
                    "case": case,
                    "item": item,
                    "values": values,
                    "choice": service.preview(session, method=values["method"], values=checked),
                },
            )
        service.choose_delivery(session, case=case, item=item, **choice)
    except Invalid as exc:
        session.rollback()
        return _page(request, session, case, item, account, values, exc.fields, exc.message, 422)
    chosen = session.get(Delivery, case.id)
    assert chosen is not None  # choose_delivery kept it just now
    flash(request, f"已保存证照领取方式：{service.summary_text(session, chosen)}。")
    return redirect(f"/cases/{case.case_no}#delivery")


# --- 常用地址 (the address book) -----------------------------------------------------------


@router.get("/account/addresses")
def addresses_page(request: Request, session: DbSession, account: LoggedIn):
    book = [service.book_entry(a) for a in service.address_book(session, account=account)]
    return render(request, "delivery/addresses.html", {"addresses": book})


@router.post("/account/addresses/{address_id}/delete")
def address_delete(
    request: Request, address_id: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    saved = service.delete_address(session, account=account, address_id=address_id)
    flash(
        request,
        f"已从常用地址中删除：{service.book_entry(saved)['place']}。办件中已填写的地址不受影响。",
    )
    return redirect("/account/addresses")
