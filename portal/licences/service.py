"""我的证照: the licences an account holds, their status over time, and expiry reminders.

A licence enters the wallet when the bureau approves a case (`case.approved` carries
it), or when its holder registers one issued before the portal existed. Its status
is computed, never stored: valid, expiring (inside the item's renewal window),
expired, or ended (cancelled / revoked, from the bureau's `licence.revoked`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.accounts import authorisations
from portal.accounts.models import Account
from portal.cases import states
from portal.cases.forms import clean_form
from portal.cases.models import Case
from portal.catalogue.models import Item
from portal.clock import is_working_day, today_cst, utcnow
from portal.errors import Conflict, Forbidden, Invalid, NotFound
from portal.licences import kinds
from portal.licences.application import named_licence
from portal.licences.models import Licence, LicenceReminder
from portal.notifications.service import tell_account

NUMBER_RE = re.compile(r"^[0-9A-Za-z\-（）()〔〕\[\]第号字]{4,64}$")
STATUS_LABELS = {
    "valid": "有效",
    "expiring": "即将到期",
    "expired": "已过期",
    "cancelled": "已注销",
    "revoked": "已吊销或撤销",
}
ENDED_KINDS = {"revoked": "吊销", "withdrawn": "撤销", "cancelled": "注销"}
NOT_FOUND_MESSAGE = "没有找到该证照。"


# --- the renewal window ----------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """When a renewal (延续) may be applied for: `opens` .. `closes` before expiry."""

    opens: date
    closes: date


def working_days_before(day: date, count: int) -> date:
    """The working day `count` working days before `day` (day itself not counted)."""
    current, counted = day, 0
    while counted < count:
        current -= timedelta(days=1)
        if is_working_day(current):
            counted += 1
    return current


def renewal_window(item: Item | None, valid_to: date | None) -> Window | None:
    """From the catalogue's `applications.renewal.window` of the item, if it offers renewal.

    {"opens": N, "closes": M, "unit": "working_days" | "days"}: the window opens N
    units before expiry and closes M units before it (食品经营许可: 90 to 15 working
    days; 取水许可: 45 days, closes on expiry).
    """
    if item is None or valid_to is None:
        return None
    rule = ((getattr(item, "applications", None) or {}).get("renewal") or {}).get("window")
    if not rule:
        return None
    if rule.get("unit") == "working_days":
        return Window(
            working_days_before(valid_to, int(rule["opens"])),
            working_days_before(valid_to, int(rule.get("closes", 0))),
        )
    return Window(
        valid_to - timedelta(days=int(rule["opens"])),
        valid_to - timedelta(days=int(rule.get("closes", 0))),
    )


def status_of(licence: Licence, item: Item | None, today: date | None = None) -> str:
    if licence.state == "cancelled":
        return "cancelled"
    if licence.state == "revoked":
        return "cancelled" if licence.ended_kind == "cancelled" else "revoked"
    today = today or today_cst()
    if licence.valid_to is not None and licence.valid_to < today:
        return "expired"
    window = renewal_window(item, licence.valid_to)
    if window is not None and window.opens <= today:
        return "expiring"
    return "valid"


# --- entering the wallet -----------------------------------------------------------------


def record_issued(session: Session, *, case: Case) -> Licence | None:
    """The licence `case.approved` carried, in its holder's wallet (same number: replaced).

    Of a renewal, change or reissue it replaces the licence the case was about: under
    the same number the row is renewed in place; under a new one the old row is kept,
    marked `replaced`, and leaves the wallet.
    """
    data = case.licence or {}
    number = str(data.get("number") or "")[:64]
    if not number:
        return None
    earlier = named_licence(session, case)
    if earlier is not None and earlier.number != number:
        earlier.state, earlier.ended_at = "replaced", utcnow()
        earlier.ended_reason = f"已由 {number} 替换（办件 {case.case_no}）"
    licence = session.scalars(select(Licence).where(Licence.number == number)).first()
    if licence is None:
        licence = Licence(number=number)
        session.add(licence)
    licence.name = str(data.get("name") or "")[:100]
    licence.item_code = case.item_code
    # The applicant holds it: the enterprise when an agent filed in its name (委托授权).
    licence.account_id = case.on_behalf_of_id or case.account_id
    licence.case_id = case.id
    licence.source = "portal"
    licence.valid_from = date.fromisoformat(data["valid_from"]) if data.get("valid_from") else None
    licence.valid_to = date.fromisoformat(data["valid_to"]) if data.get("valid_to") else None
    licence.state = "active"
    licence.ended_reason = licence.ended_kind = None
    licence.ended_at = None
    licence.sha256 = data.get("sha256")
    session.flush()
    # A renewed licence starts its reminders afresh.
    for reminder in session.scalars(
        select(LicenceReminder).where(LicenceReminder.licence_id == licence.id)
    ):
        session.delete(reminder)
    return licence


def _clean_number(raw: Any) -> str:
    text = unicodedata.normalize("NFKC", str(raw or "")).strip().replace(" ", "")
    if not NUMBER_RE.match(text):
        raise Invalid({"number": "请填写证照上的编号（4–64 位字母、数字或短横线）"})
    return text


def _clean_date(raw: Any, field: str, label: str, *, required: bool) -> date | None:
    if raw in (None, ""):
        if required:
            raise Invalid({field: f"请填写{label}（格式 2024-06-30）"})
        return None
    try:
        day = date.fromisoformat(str(raw).strip())
    except ValueError:
        raise Invalid({field: f"{label}请按 YYYY-MM-DD 格式填写，例如 2024-06-30"}) from None
    if not 1980 <= day.year <= 2100:
        raise Invalid({field: f"{label}不在合理范围内"})
    return day


def register_licence(
    session: Session,
    *,
    account: Account,
    number: Any,
    item_code: Any,
    valid_from: Any,
    valid_to: Any,
) -> Licence:
    """A licence issued before the portal, registered by its holder; 409 if someone holds it."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for key, check in (
        ("number", lambda: _clean_number(number)),
        ("valid_from", lambda: _clean_date(valid_from, "valid_from", "发证日期", required=True)),
        ("valid_to", lambda: _clean_date(valid_to, "valid_to", "有效期至", required=False)),
    ):
        try:
            clean[key] = check()
        except Invalid as exc:
            errors |= exc.fields
    item = session.get(Item, str(item_code or "")[:16]) if item_code else None
    if item is None or not item.licence_name:
        errors["item_code"] = "请选择发证的事项（颁发证照的许可事项）"
    if not errors and clean["valid_to"] and clean["valid_to"] < clean["valid_from"]:
        errors["valid_to"] = "有效期至不能早于发证日期"
    if errors:
        raise Invalid(errors, "证照信息有误，请按提示修改。")
    held = session.scalars(select(Licence).where(Licence.number == clean["number"])).first()
    if held is not None:
        if held.account_id == account.id:
            raise Conflict("这本证照已在您的证照夹中。", code="licence_held")
        # Same words whoever holds it: the holder's identity is nobody else's business.
        raise Conflict(
            "该证照编号已由其他账户登记。如证照确属您单位，请携带证照原件到大厅核实。",
            code="licence_held",
        )
    assert item is not None
    licence = Licence(
        number=clean["number"],
        name=item.licence_name,
        item_code=item.code,
        account_id=account.id,
        source="registered",
        valid_from=clean["valid_from"],
        valid_to=clean["valid_to"],
    )
    try:
        with session.begin_nested():
            session.add(licence)
    except IntegrityError:  # registered by another request just now
        raise Conflict("该证照编号已由其他账户登记。", code="licence_held") from None
    return licence


def list_own(session: Session, *, account: Account) -> list[Licence]:
    query = (
        select(Licence)
        .where(Licence.account_id == account.id, Licence.state != "replaced")
        .order_by(Licence.valid_to.is_(None), Licence.valid_to, Licence.id)
    )
    return list(session.scalars(query))


def get_own(session: Session, *, account: Account, number: str) -> Licence:
    licence = session.scalars(
        select(Licence).where(Licence.number == number[:64], Licence.account_id == account.id)
    ).first()
    if licence is None:
        raise NotFound(NOT_FOUND_MESSAGE, code="licence_not_found")
    return licence


def licence_view(session: Session, licence: Licence, today: date | None = None) -> dict[str, Any]:
    item = session.get(Item, licence.item_code)
    status = status_of(licence, item, today)
    case = session.get(Case, licence.case_id) if licence.case_id else None
    window = renewal_window(item, licence.valid_to)
    return {
        "number": licence.number,
        "name": licence.name,
        "item_code": licence.item_code,
        "item_name": item.name if item else licence.item_code,
        "case_no": case.case_no if case else None,
        "valid_from": licence.valid_from,
        "valid_to": licence.valid_to,
        "status": status,
        "status_label": STATUS_LABELS[status],
        "renewal_window": {"opens": window.opens, "closes": window.closes} if window else None,
        "ended_reason": licence.ended_reason,
        "source": licence.source,
        "actions": open_actions(session, licence, item, today),
        "pending": pending_view(session, licence),
        "download_url": f"/cases/{case.case_no}/licence"
        if case is not None and (case.licence or {}).get("stored")
        else None,
    }


# --- applying about a licence: 延续 / 变更 / 注销 / 补办 -------------------------------------------


def pending_case(session: Session, licence: Licence) -> Case | None:
    """A case about this licence that is filed and not yet decided (one at a time)."""
    query = (
        select(Case)
        .where(
            Case.licence_number == licence.number,
            # Filed by the holder, or by an agent in the holder's name.
            or_(Case.account_id == licence.account_id, Case.on_behalf_of_id == licence.account_id),
            Case.status.not_in([states.DRAFT, *states.FINISHED]),
        )
        .order_by(Case.id.desc())
    )
    return session.scalars(query).first()


def pending_view(session: Session, licence: Licence) -> dict[str, Any] | None:
    case = pending_case(session, licence)
    if case is None:
        return None
    return {
        "kind": case.application_kind,
        "kind_label": kinds.KIND_LABELS[case.application_kind],
        "case_no": case.case_no,
    }


def why_not_open(
    session: Session, licence: Licence, item: Item | None, kind: str, today: date | None = None
) -> str | None:
    """None when `kind` can be applied for about the licence now, else why not (中文)."""
    today = today or today_cst()
    label = kinds.KIND_LABELS.get(kind, kind)
    if kind not in kinds.offered(item):
        return f"{licence.name}不通过本平台办理{label}，请咨询审批局窗口。"
    assert item is not None  # an item offers kinds; no item offers none
    status = status_of(licence, item, today)
    if status in ("cancelled", "revoked") or licence.state != "active":
        word = STATUS_LABELS.get(status, "失效")
        return f"该证照{word}，不能申请{label}。"
    if status == "expired" and kind != "cancellation":
        return (
            f"该证照已于 {licence.valid_to.isoformat() if licence.valid_to else ''} 到期，"
            f"不能申请{label}；如需继续经营，请重新申请{kinds.kind_name(item, 'new')}。"
        )
    if kind == "renewal":
        window = renewal_window(item, licence.valid_to)
        if window is None:
            return "该证照长期有效，无需延续。"
        if today < window.opens:
            return (
                f"还未到延续申请期。该证照的延续申请期为 {window.opens.isoformat()} 至 "
                f"{window.closes.isoformat()}，请在此期间申请。"
            )
        if today > window.closes:
            return (
                f"延续申请期已于 {window.closes.isoformat()} 截止，不能再在网上申请延续，"
                "请尽快到审批局窗口咨询。"
            )
    pending = pending_case(session, licence)
    if pending is not None:
        return (
            f"该证照已有正在办理的{kinds.KIND_LABELS[pending.application_kind]}申请"
            f"（办件编号 {pending.case_no}），办结后才能再次申请。"
        )
    return None


def open_actions(
    session: Session, licence: Licence, item: Item | None, today: date | None = None
) -> list[str]:
    """What can be applied for about the licence now, in the order the buttons show."""
    if licence.state != "active":
        return []
    return [
        k for k in kinds.offered(item) if why_not_open(session, licence, item, k, today) is None
    ]


def _prefill(session: Session, licence: Licence, fields: list[dict[str, Any]]) -> dict[str, Any]:
    """The kind's form filled from the previous case of the licence (same field names).

    Values that no longer fit a field (its options changed) are left out rather than
    refused: the applicant fills them in.
    """
    previous = session.get(Case, licence.case_id) if licence.case_id else None
    source = dict(previous.form) if previous is not None else {}
    values: dict[str, Any] = {}
    for spec in fields:
        name = spec["name"]
        if name not in source:
            continue
        clean, errors = clean_form([spec], {name: source[name]}, partial=True)
        if not errors and name in clean:
            values[name] = clean[name]
    return values


def acting_for(session: Session, *, agent: Account, uscc: str) -> Account:
    """The enterprise with number `uscc` that has authorised `agent` for anything today;
    `403 not_authorised` otherwise (said before any licence is looked up, so an agent
    learns nothing about the licences of an enterprise that never authorised them)."""
    number = (uscc or "").strip().upper()
    for enterprise, _ in authorisations.subjects(session, account=agent)[1:]:
        if enterprise.id_number == number:
            return enterprise
    raise Forbidden(
        "您没有代该单位办理的有效授权。请由该单位通过统一身份认证登录后，在“委托授权”中授权给您。",
        code="not_authorised",
    )


def agent_licences(session: Session, *, agent: Account) -> list[tuple[Account, list[Licence]]]:
    """Per enterprise the agent may act for today, its licences the agent may apply about."""
    return [
        (enterprise, acted_for_licences(session, agent=agent, enterprise=enterprise))
        for enterprise, _ in authorisations.subjects(session, account=agent)[1:]
    ]


def acted_for_licences(session: Session, *, agent: Account, enterprise: Account) -> list[Licence]:
    """The enterprise's licences of the items the agent's authorisations cover (an agent
    for one item does not see the others)."""
    return [
        lic
        for lic in list_own(session, account=enterprise)
        if covered(session, agent=agent, enterprise=enterprise, item_code=lic.item_code)
    ]


def covered(session: Session, *, agent: Account, enterprise: Account, item_code: str) -> bool:
    try:
        authorisations.authorisation_for(
            session, agent=agent, uscc=enterprise.id_number or "", item_code=item_code
        )
    except Forbidden:
        return False
    return True


def start_application(
    session: Session, *, account: Account, number: str, kind: str, on_behalf_of: str | None = None
) -> tuple[Case, bool]:
    """A draft of `kind` about the caller's licence, filled from it and its previous case;
    with `on_behalf_of` (a USCC), about that enterprise's licence, filed by the caller as
    its agent under an authorisation covering the licence's item.

    404 for a licence that is not the caller's (or the enterprise's: like one that does
    not exist); 403 `not_authorised` when the caller may not act for the enterprise or
    not for that item; 409 with the reason when the kind is not open now. A draft of the
    same kind about the same licence that is still open is returned instead of a second
    one (created: False).
    """
    holder = acting_for(session, agent=account, uscc=on_behalf_of) if on_behalf_of else account
    # Whose licence first: another's number answers 404 whatever else the request says.
    licence = get_own(session, account=holder, number=number)
    authorisation = None
    if holder is not account:
        _, authorisation = authorisations.authorisation_for(
            session, agent=account, uscc=holder.id_number or "", item_code=licence.item_code
        )
    if kind not in kinds.KINDS:
        raise Invalid(
            {
                "kind": "申请类型只能是 renewal（延续）、change（变更）、"
                "cancellation（注销）或 reissue（补办）"
            }
        )
    if licence.state == "replaced":  # an earlier licence of a number the wallet moved on from
        raise NotFound(NOT_FOUND_MESSAGE, code="licence_not_found")
    item = session.get(Item, licence.item_code)
    draft = session.scalars(
        select(Case)
        .where(
            Case.account_id == account.id,
            Case.licence_number == licence.number,
            Case.application_kind == kind,
            Case.status == states.DRAFT,
        )
        .order_by(Case.id.desc())
    ).first()
    if reason := why_not_open(session, licence, item, kind):
        raise Conflict(reason, code="application_not_open")
    if draft is not None:
        return draft, False
    assert item is not None
    if not item.online:
        raise Conflict("该事项暂不支持网上申请，请到窗口办理。", code="not_online")
    from portal.cases.service import next_case_no  # cases.service imports this module

    applied = kinds.item_for(item, kind)
    case = Case(
        case_no=next_case_no(session),
        account_id=account.id,
        item_code=item.code,
        application_kind=kind,
        licence_number=licence.number,
        form=_prefill(session, licence, applied.fields),
        on_behalf_of_id=None if authorisation is None else holder.id,
        authorisation_id=None if authorisation is None else authorisation.id,
    )
    session.add(case)
    session.flush()
    states.record(
        session,
        case,
        type="case.created",
        label="创建草稿",
        detail=f"{applied.name}：{licence.name}（编号 {licence.number}）",
        source="citizen",
    )
    return case, True


def apply_cancellation(session: Session, *, case: Case, decision_no: str) -> Licence | None:
    """A cancellation's approval: the licence it named is cancelled (注销) in the wallet."""
    licence = named_licence(session, case)
    if licence is None or licence.state in ("cancelled", "replaced"):
        return licence
    licence.state, licence.ended_kind = "cancelled", "cancelled"
    licence.ended_reason = f"依申请注销（办件 {case.case_no}，决定书编号 {decision_no}）"
    licence.ended_at = utcnow()
    return licence


# --- the bureau ends a licence -------------------------------------------------------------


def apply_revoked(session: Session, *, number: str, reason: str, kind: str) -> Licence:
    """`licence.revoked`: the holder's licence shows as no longer valid, with the reason."""
    licence = session.scalars(select(Licence).where(Licence.number == number[:64])).first()
    if licence is None:
        raise NotFound(f"unknown licence number {number}", code="unknown_licence")
    if licence.state == "revoked":
        return licence  # told twice (a redelivery with a new id): nothing changes
    licence.state, licence.ended_kind = "revoked", kind
    licence.ended_reason, licence.ended_at = reason, utcnow()
    word = ENDED_KINDS.get(kind, "注销")
    tell_account(
        session,
        account_id=licence.account_id,
        case_id=licence.case_id,
        type="licence.revoked",
        title=f"{licence.name}已被{word}",
        body=f"您的{licence.name}（编号 {licence.number}）已被审批局{word}：{reason}",
        sms=f"【武进区行政审批局】您的{licence.name}（{licence.number}）已被{word}，详情请登录查看。",
        link="/licences",
    )
    return licence


# --- reminders ---------------------------------------------------------------------------------


REMINDER_TEXTS = {
    "window": ("可以申请延续了", "已进入延续申请期（{opens} 至 {closes}），请在期限内申请延续"),
    "30_days": ("30 天后到期", "将于 {valid_to} 到期，请及时办理"),
    "expired": ("已到期", "已于 {valid_to} 到期，到期后不得继续从事许可事项"),
}


def due_reminders(licence: Licence, item: Item | None, today: date) -> list[str]:
    """The reminder kinds whose moment has come, in the order they fall."""
    if licence.state != "active" or licence.valid_to is None:
        return []
    kinds = []
    window = renewal_window(item, licence.valid_to)
    if window is not None and window.opens <= today <= licence.valid_to:
        kinds.append("window")
    if licence.valid_to - timedelta(days=30) <= today <= licence.valid_to:
        kinds.append("30_days")
    if licence.valid_to < today:
        kinds.append("expired")
    return kinds


def send_reminders(session: Session, *, today: date | None = None) -> list[tuple[str, str]]:
    """Every reminder due today, each at most once per licence and kind; what was sent.

    The LicenceReminder row is the lock: its primary key (licence, kind) lets one
    transaction of one worker insert it; another worker's insert fails and that
    worker sends nothing. When a licence is first seen late (registered a week before
    expiry), only the latest reminder goes out and the earlier ones are recorded as
    passed, so nobody gets three messages at once.
    """
    today = today or today_cst()
    sent: list[tuple[str, str]] = []
    horizon = today + timedelta(days=400)  # no renewal window opens earlier than this
    query = select(Licence).where(
        Licence.state == "active", Licence.valid_to.is_not(None), Licence.valid_to <= horizon
    )
    for licence in session.scalars(query).all():
        item = session.get(Item, licence.item_code)
        kinds = due_reminders(licence, item, today)
        if not kinds:
            continue
        done = set(
            session.scalars(
                select(LicenceReminder.kind).where(LicenceReminder.licence_id == licence.id)
            )
        )
        fresh = [k for k in kinds if k not in done]
        if not fresh:
            continue
        try:
            with session.begin_nested():
                for kind in fresh:
                    session.add(LicenceReminder(licence_id=licence.id, kind=kind))
        except IntegrityError:
            continue  # another worker has just sent them
        _remind(session, licence, item, fresh[-1])
        sent.append((licence.number, fresh[-1]))
    return sent


def _remind(session: Session, licence: Licence, item: Item | None, kind: str) -> None:
    window = renewal_window(item, licence.valid_to)
    title, sentence = REMINDER_TEXTS[kind]
    assert licence.valid_to is not None
    text = sentence.format(
        valid_to=licence.valid_to.isoformat(),
        opens=window.opens.isoformat() if window else "",
        closes=window.closes.isoformat() if window else "",
    )
    tell_account(
        session,
        account_id=licence.account_id,
        case_id=licence.case_id,
        type=f"licence.reminder.{kind}",
        title=f"{licence.name}{title}",
        body=f"您的{licence.name}（编号 {licence.number}）{text}。",
        sms=f"【武进区行政审批局】您的{licence.name}（{licence.number}）{text}。",
        link="/licences",
    )


def reminders_sent(session: Session, *, limit: int = 200) -> list[tuple[str, str, str, Any]]:
    """The operator's view: licence number, holder's masked phone, kind, when."""
    from portal.security import mask_phone

    rows = session.execute(
        select(Licence.number, Account.phone, LicenceReminder.kind, LicenceReminder.sent_at)
        .join(Licence, Licence.id == LicenceReminder.licence_id)
        .join(Account, Account.id == Licence.account_id)
        .order_by(LicenceReminder.sent_at.desc())
        .limit(limit)
    )
    return [(number, mask_phone(phone), kind, at) for number, phone, kind, at in rows]
