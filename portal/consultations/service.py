"""12345: a question (咨询) or complaint (投诉), forwarded to the bureau, answered back.

Time limits shown to the citizen (this portal's commitment, counted in working
days after the day of submission): a question is answered within 1 working
day, a complaint within 5 working days.

Anyone may ask without an account: the contact phone is then required and proven by
an SMS code (purpose "consultation", portal.verification), the citizen is given a
reference number, and sees the answer again by phone + reference + a new code, or is
told by SMS when it arrives. Such a consultation belongs to no account, and only the
proven phone with its reference opens it.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
import uuid
from datetime import date
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import Account
from portal.cases import states
from portal.cases.models import Case
from portal.cases.service import get_own_case
from portal.clock import add_working_days, span_official, to_cst, today_cst, working_days_left
from portal.consultations import limits
from portal.consultations.models import Consultation
from portal.db import Database
from portal.errors import Conflict, Invalid, NotFound
from portal.exchange import payloads, schemas
from portal.exchange.outbox import enqueue_event, enqueue_job
from portal.notifications import sms as notification_sms
from portal.notifications.service import create_message
from portal.settings import Settings
from portal.verification.service import code_problem, use_code

KINDS = {"consult": "咨询", "complaint": "投诉"}
ANSWER_WORKING_DAYS = {"consult": 1, "complaint": 5}
SUBJECT_MAX = 50
BODY_MIN, BODY_MAX = 5, 2000
MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
NOT_FOUND_MESSAGE = "没有找到该咨询投诉。"
CODE_PURPOSE = "consultation"
REFERENCE_RE = re.compile(r"^ZX[0-9]{12}$")
LOOKUP_NOT_FOUND = (
    "没有找到与该手机号码和编号相符的咨询投诉，请核对编号（ZX 开头的 14 位）后重新获取验证码查询。"
)


def check_consultation(
    session: Session,
    *,
    account: Account | None,
    kind: Any,
    subject: Any,
    body: Any,
    case_no: Any = "",
    contact_name: Any = "",
    contact_phone: Any = "",
    code: Any = "",
) -> dict[str, Any]:
    """Every field checked (422 with 中文 reasons); the case, if named, must be the account's.

    Without an account the contact name and phone are required and `code` must look like
    an SMS code; whether it is the right one is known only when it is used (on submission).
    """
    errors: dict[str, str] = {}
    text = {
        k: (v.strip() if isinstance(v, str) else "")
        for k, v in {
            "subject": subject,
            "body": body,
            "case_no": case_no,
            "contact_name": contact_name,
            "contact_phone": contact_phone,
        }.items()
    }
    for key in ("subject", "body", "contact_name"):
        if _has_control(text[key], allow_newlines=key == "body"):
            errors[key] = "内容中有无法识别的控制字符，请删除后重新填写"
    if kind not in KINDS:
        errors["kind"] = "请选择咨询或投诉"
    if not text["subject"]:
        errors["subject"] = "请填写标题"
    elif len(text["subject"]) > SUBJECT_MAX:
        errors["subject"] = f"标题不能超过 {SUBJECT_MAX} 个字"
    if len(text["body"]) < BODY_MIN:
        errors["body"] = f"请把问题写清楚，至少 {BODY_MIN} 个字"
    elif len(text["body"]) > BODY_MAX:
        errors["body"] = f"内容不能超过 {BODY_MAX} 个字"
    if account is not None:
        name = text["contact_name"] or account.agent_name or account.name
        phone = (text["contact_phone"] or account.phone).replace(" ", "")
    else:
        name = text["contact_name"]
        phone = text["contact_phone"].replace(" ", "")
        if not name:
            errors["contact_name"] = "请填写联系人姓名或称呼（如：张先生），便于 12345 回访"
        if not phone:
            errors["contact_phone"] = "请填写手机号码，用于接收验证码和回访"
        if problem := code_problem(code.strip() if isinstance(code, str) else ""):
            errors["code"] = problem
    if len(name) > 50:
        errors["contact_name"] = "联系人姓名不能超过 50 个字"
    if "contact_phone" not in errors and not MOBILE_RE.match(phone):
        errors["contact_phone"] = "请填写 11 位手机号码，用于回访"
    case = None
    if text["case_no"] and account is None:
        errors["case_no"] = "关联办件需要先登录；不登录的，请在内容中写明办件编号"
    elif text["case_no"] and account is not None:
        try:
            case = get_own_case(session, account=account, case_no=text["case_no"][:20])
        except NotFound:
            errors["case_no"] = "没有找到这个办件编号（只能选择您自己的办件）"
    if errors:
        raise Invalid(errors, "咨询投诉内容有误，请按提示修改。")
    return {
        "kind": kind,
        "subject": text["subject"],
        "body": text["body"],
        "case": case,
        "contact_name": name,
        "contact_phone": phone,
    }


def _has_control(text: str, *, allow_newlines: bool) -> bool:
    allowed = {"\n", "\r", "\t"} if allow_newlines else set()
    return any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in text)


def due_date_for(kind: str, today: date | None = None) -> date:
    return add_working_days(today or today_cst(), ANSWER_WORKING_DAYS[kind])


def new_reference(session: Session) -> str:
    """ZX + the day (yymmdd) + 6 random digits: short enough to read out on the phone."""
    while True:
        reference = f"ZX{today_cst():%y%m%d}{secrets.randbelow(10**6):06d}"
        taken = session.scalar(select(Consultation.id).where(Consultation.reference == reference))
        if taken is None:
            return reference


def submit_consultation(session: Session, *, account: Account, **fields: Any) -> Consultation:
    """Record the question or complaint and send `consultation.submitted` to the bureau."""
    checked = check_consultation(session, account=account, **fields)
    return _record(session, account=account, checked=checked)


def submit_without_account(
    session: Session, *, db: Database, settings: Settings, client_ip: str, **fields: Any
) -> Consultation:
    """The same without an account: the SMS code proves the contact phone, then the limits
    per phone and per address count it (429 with Retry-After).

    The code is used before anything is written (a wrong one rolls the transaction back
    to count the try); a submission refused by a limit is rolled back by the caller, the
    code's use with it, so the citizen may send it with the same code a little later.
    """
    checked = check_consultation(session, account=None, **fields)
    use_code(
        session,
        db=db,
        settings=settings,
        phone=checked["contact_phone"],
        purpose=CODE_PURPOSE,
        code=str(fields.get("code", "")).strip(),
    )
    limits.take_without_account(session, phone=checked["contact_phone"], client_ip=client_ip)
    return _record(session, account=None, checked=checked)


def _record(session: Session, *, account: Account | None, checked: dict[str, Any]) -> Consultation:
    case: Case | None = checked["case"]
    consultation = Consultation(
        consultation_id=str(uuid.uuid4()),
        reference=new_reference(session),
        account_id=account.id if account else None,
        case_id=case.id if case else None,
        kind=checked["kind"],
        subject=checked["subject"],
        body=checked["body"],
        contact_name=checked["contact_name"],
        contact_phone=checked["contact_phone"],
        due_date=due_date_for(checked["kind"]),
    )
    session.add(consultation)
    session.flush()
    # A draft was never sent, so for the bureau it does not exist: send it caseless then.
    known_case = case if case is not None and case.status != states.DRAFT else None
    enqueue_event(
        session,
        type="consultation.submitted",
        case_no=known_case.case_no if known_case else None,
        ordering_key=known_case.case_no if known_case else f"consultation:{consultation.id}",
        data=payloads.consultation_data(consultation),
    )
    if case is not None:
        states.record(
            session,
            case,
            type="consultation.submitted",
            label=f"提交{KINDS[consultation.kind]}",
            detail=consultation.subject,
            source="citizen",
        )
    return consultation


def list_own(session: Session, *, account: Account) -> list[Consultation]:
    query = (
        select(Consultation)
        .where(Consultation.account_id == account.id)
        .order_by(Consultation.created_at.desc(), Consultation.id.desc())
    )
    return list(session.scalars(query))


def get_own(session: Session, *, account: Account, consultation_id: str) -> Consultation:
    """The account's consultation; another account's is 404 exactly like a missing one."""
    found = session.scalars(
        select(Consultation).where(
            Consultation.consultation_id == consultation_id[:36].replace("\x00", ""),
            Consultation.account_id == account.id,
        )
    ).first()
    if found is None:
        raise NotFound(NOT_FOUND_MESSAGE, code="consultation_not_found")
    return found


def find_by_reference(
    session: Session, *, db: Database, settings: Settings, phone: Any, reference: Any, code: Any
) -> Consultation:
    """A consultation sent without an account, for its proven phone + reference + a new code.

    The code is used first, so every guess of a reference costs a code sent to the phone
    (itself limited per phone and per address); a wrong pair then answers exactly like
    an unknown reference. Consultations of an account are not found here: their contact
    phone was typed, not proven, and their owner reads them after logging in.
    """
    phone_text = (phone if isinstance(phone, str) else "").replace(" ", "")
    ref = (reference if isinstance(reference, str) else "").strip().upper()
    code_text = code.strip() if isinstance(code, str) else ""
    errors: dict[str, str] = {}
    if not MOBILE_RE.match(phone_text):
        errors["phone"] = "请填写提交时所留的 11 位手机号码"
    if not REFERENCE_RE.match(ref):
        errors["reference"] = "编号为 ZX 开头的 14 位，如 ZX261203123456"
    if problem := code_problem(code_text):
        errors["code"] = problem
    if errors:
        raise Invalid(errors, "查询信息有误，请按提示修改。")
    use_code(
        session, db=db, settings=settings, phone=phone_text, purpose=CODE_PURPOSE, code=code_text
    )
    found = session.scalars(
        select(Consultation).where(
            Consultation.reference == ref,
            Consultation.contact_phone == phone_text,
            Consultation.account_id.is_(None),
        )
    ).first()
    if found is None:
        raise NotFound(LOOKUP_NOT_FOUND, code="consultation_not_found")
    return found


def get_by_id(session: Session, *, consultation_id: str) -> Consultation:
    """By its id, for a browser that proved the phone a moment ago (the routes check that)."""
    found = session.scalars(
        select(Consultation).where(
            Consultation.consultation_id == consultation_id[:36].replace("\x00", "")
        )
    ).first()
    if found is None:
        raise NotFound(NOT_FOUND_MESSAGE, code="consultation_not_found")
    return found


def apply_answer(session: Session, envelope: schemas.EnvelopeIn, data: BaseModel) -> None:
    """`consultation.answered` from the bureau: keep the answer, tell the citizen."""
    assert isinstance(data, schemas.ConsultationAnsweredIn)
    consultation = session.scalars(
        select(Consultation).where(Consultation.consultation_id == data.consultation_id)
    ).first()
    if consultation is None:
        raise NotFound(f"unknown consultation_id {data.consultation_id}", code="unknown_case")
    if consultation.answer is not None:
        raise Conflict("consultation already answered", code="conflict")
    consultation.answer = data.answer
    consultation.answered_at = envelope.occurred_at
    label = KINDS[consultation.kind]
    if consultation.account_id is not None:
        create_message(
            session,
            account_id=consultation.account_id,
            case_id=consultation.case_id,
            type="consultation.answered",
            title=f"您的{label}“{consultation.subject}”已答复",
            body=data.answer,
            link=f"/consultations/{consultation.consultation_id}",
        )
    else:
        # No message centre without an account: an SMS to the proven phone says where to
        # read it. Not the answer itself, which may be long and is not for a lock screen.
        enqueue_job(
            session,
            kind=notification_sms.KIND,
            ordering_key=f"sms:consultation:{consultation.id}",
            payload={
                "type": "consultation.answered",
                "to": consultation.contact_phone,
                "text": (
                    f"【武进区行政审批局】您的{label}（编号 {consultation.reference}）已答复，"
                    "请凭手机号码和编号查询答复。"
                ),
                "path": f"/consultations/lookup?ref={consultation.reference}",
            },
        )
    if consultation.case_id is not None:
        case = session.get(Case, consultation.case_id)
        if case is not None:
            entry = states.record(
                session,
                case,
                type="consultation.answered",
                label=f"{label}已答复",
                detail=data.answer,
                source="bureau",
            )
            entry.at = envelope.occurred_at
    session.flush()


def consultation_view(consultation: Consultation, case_no: str | None = None) -> dict[str, Any]:
    today = today_cst()
    answered = consultation.answer is not None
    return {
        "consultation_id": consultation.consultation_id,
        "reference": consultation.reference,
        "kind": consultation.kind,
        "kind_label": KINDS[consultation.kind],
        "subject": consultation.subject,
        "body": consultation.body,
        "case_no": case_no,
        "contact": {"name": consultation.contact_name, "phone": consultation.contact_phone},
        "created_at": consultation.created_at,
        "due_date": consultation.due_date,
        "due_provisional": not span_official(
            to_cst(consultation.created_at).date(), consultation.due_date
        ),
        "days_left": None if answered else working_days_left(today, consultation.due_date),
        "answer": consultation.answer,
        "answered_at": consultation.answered_at,
        "answered_on_time": (
            consultation.answered_at is not None
            and to_cst(consultation.answered_at).date() <= consultation.due_date
        )
        if answered
        else None,
    }
