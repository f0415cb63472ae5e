"""Status without logging in: case number + the applicant phone's last 4 digits, or a
signed link (printed on the receipt as a QR code). Nothing personal is shown.
"""

from __future__ import annotations

import hmac
import re
from datetime import date, timedelta
from typing import Any

import qrcode
import qrcode.image.svg
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import throttle
from portal.accounts.models import Account
from portal.cases import service as case_service
from portal.cases import states
from portal.cases.models import Case, TimelineEntry
from portal.cases.procedure import PREREVIEW_WORKING_DAYS
from portal.catalogue.models import Item
from portal.clock import add_working_days, span_official, to_cst, today_cst
from portal.db import Database
from portal.errors import Invalid, NotFound, Throttled
from portal.licences.kinds import item_for_case
from portal.security import Signer
from portal.settings import Settings

LINK_DAYS = 90
CASE_NO_RE = re.compile(r"[A-Z0-9]{1,20}")
# ASCII digits only: `\d` would also take '٠١٢٣' or '１２３４', which no stored phone holds,
# and hmac.compare_digest refuses non-ASCII text (a 500, and only for an existing case).
LAST4_RE = re.compile(r"[0-9]{4}")
# Wrong guesses before a pause: per address (someone trying many cases) and per case
# number (many addresses trying one case). The per-case pause can lock out the real
# applicant for an hour; they still have their login and the signed link.
IP_LIMIT, IP_WINDOW, IP_LOCK = 10, timedelta(minutes=15), timedelta(minutes=15)
CASE_LIMIT, CASE_WINDOW, CASE_LOCK = 5, timedelta(hours=1), timedelta(hours=1)
NOT_FOUND_MESSAGE = "没有找到相符的办件。请核对办件编号和申请时所用手机号的后 4 位。"


class LinkExpired(Exception):
    """A status link whose signature is right but older than LINK_DAYS."""


def _signer(settings: Settings) -> Signer:
    return Signer(settings.secret_key, "status-link", LINK_DAYS * 24 * 3600)


def status_path(settings: Settings, case_no: str) -> str:
    return f"/status/link/{_signer(settings).dumps(case_no)}"


def status_url(settings: Settings, case_no: str) -> str:
    """The signed link anyone holding the receipt may open, for LINK_DAYS days."""
    return settings.public_url.rstrip("/") + status_path(settings, case_no)


def _public_case(session: Session, case_no: str) -> Case | None:
    # A draft was never submitted: it has no public status.
    query = select(Case).where(Case.case_no == case_no, Case.submitted_at.is_not(None))
    return session.scalars(query).first()


def case_from_link(session: Session, *, settings: Settings, token: str) -> Case:
    """The case a signed link names; LinkExpired when too old, 404 when forged or gone."""
    value, problem = _signer(settings).loads(token[:500])
    if problem == "expired":
        raise LinkExpired()
    case = _public_case(session, value) if isinstance(value, str) else None
    if case is None:
        raise NotFound("这个进度查询链接无效。", code="link_invalid")
    return case


def find_case(
    session: Session,
    *,
    db: Database,
    case_no: str | None,
    phone_last4: str | None,
    client_ip: str,
) -> Case:
    """The case for number + last 4 digits; throttled (429) against enumeration."""
    number = re.sub(r"\s+", "", case_no or "").upper()
    last4 = (phone_last4 or "").strip()
    errors = {}
    if not number:
        errors["case_no"] = "请填写办件编号"
    elif not CASE_NO_RE.fullmatch(number):
        errors["case_no"] = "办件编号由字母 WJ 和 14 位数字组成，如 WJ20261122000017"
    if not LAST4_RE.fullmatch(last4):
        # Decided before any lookup, so the answer is the same for a case that exists.
        errors["phone_last4"] = "请用 0–9 的半角数字填写申请时所用手机号的后 4 位"
    if errors:
        raise Invalid(errors, "请填写办件编号和手机号后 4 位。")
    keys = [f"status:ip:{client_ip}", f"status:case:{number}"]
    wait = max(throttle.retry_after(db, key) for key in keys)
    if wait:
        raise Throttled(_pause_message(wait), retry_after=wait)
    case = _public_case(session, number)
    account = session.get(Account, case.account_id) if case else None
    # Compared either way, so an unknown number costs the same as a wrong pair.
    expected = (account.phone if account else "")[-4:].rjust(4, "-")
    # Bytes: compare_digest never raises on them, whatever a stored phone might hold.
    if hmac.compare_digest(expected.encode(), last4.encode()) and case is not None:
        return case
    # The request only read; end that before the counters write in their own transactions.
    session.rollback()
    waits = [
        throttle.record_failure(db, keys[0], limit=IP_LIMIT, window=IP_WINDOW, lock=IP_LOCK),
        throttle.record_failure(db, keys[1], limit=CASE_LIMIT, window=CASE_WINDOW, lock=CASE_LOCK),
    ]
    if max(waits):
        raise Throttled(_pause_message(max(waits)), retry_after=max(waits))
    # Same answer for an unknown case and for a wrong last 4, so numbers don't leak.
    raise NotFound(NOT_FOUND_MESSAGE, code="case_not_found")


def _pause_message(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"查询失败次数过多，请 {minutes} 分钟后再试。也可以登录后在“我的办件”中查看进度。"


def public_timeline(session: Session, case: Case) -> list[TimelineEntry]:
    return case_service.timeline(session, case=case)


def public_view(session: Session, *, case: Case) -> dict[str, Any]:
    """The lookup's answer: status, due date and the steps, with nothing personal in it.

    Timeline details are left out: they carry names, comments, tracking numbers and
    pickup codes.
    """
    item = item_for_case(session, case)  # the kind's name and promised days (延续…)
    return {
        "case_no": case.case_no,
        "item_name": item.name,
        "status": case.status,
        "status_label": states.STATUS_LABELS[case.status],
        "due_date": case.due_date,
        "due_date_provisional": bool(case.due_date and case.due_date_provisional),
        "timeline": [
            {"at": e.at, "type": e.type, "label": e.label} for e in public_timeline(session, case)
        ],
    }


def receipt_info(case: Case, item: Item) -> dict[str, Any] | None:
    """What happens next and by when, for the confirmation page and the printed receipt."""
    if case.submitted_at is None:
        return None
    submitted_on = to_cst(case.submitted_at).date()
    today = today_cst()
    info: dict[str, Any] = {
        "submitted_on": submitted_on,
        "promised_days": item.promised_days,
        "legal_days": item.legal_days,
        "prereview": case.status in (states.PREREVIEW, states.RETURNED)
        or (case.status == states.PASSED),
    }
    if info["prereview"]:
        info["prereview_by"] = add_working_days(submitted_on, PREREVIEW_WORKING_DAYS)
    # Acceptance starts the clock; "if accepted today" is the honest estimate before it.
    start = to_cst(case.accepted_at).date() if case.accepted_at else max(today, submitted_on)
    finish: date = case.due_date or add_working_days(start, item.promised_days)
    info["finish_by"] = finish
    info["finish_is_due_date"] = case.due_date is not None
    info["provisional"] = (
        case.due_date_provisional if case.due_date is not None else not span_official(start, finish)
    )
    return info


def qr_svg(data: str) -> bytes:
    """A QR code as SVG (white background), drawn here: no image host is involved."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        border=4,
        image_factory=qrcode.image.svg.SvgPathFillImage,
    )
    code.add_data(data)
    code.make(fit=True)
    return code.make_image().to_string()
