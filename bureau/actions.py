"""Staff actions: one service per decision, each sending its event to the portal.

The console and the staff JSON API both call `perform_action`, which loads the case,
checks the state table, validates the fields (中文 messages) and calls the service.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bureau import applications, outbox, states
from bureau.blobs import BlobStore
from bureau.clock import parse_rfc3339, rfc3339, today_cst, utcnow
from bureau.errors import Conflict, Invalid, NotFound
from bureau.licence import LicenceDocument, mask_person_id, render_licence
from bureau.models import Appointment, BureauCase, CaseEvent, Consultation, Counter, Licence
from bureau.notices import KINDS as NOTICE_KINDS
from bureau.notices import Notice, render_notice
from bureau.queries import get_case
from bureau.settings import Settings

DEFAULT_REMEDY = (
    "如不服本决定，可在收到决定书之日起六十日内向常州市武进区人民政府申请行政复议，"
    "或者在六个月内向有管辖权的人民法院提起行政诉讼。"
)
LICENCE_YEARS = 5
_NUMBER = re.compile(r"[A-Za-z0-9-]{4,40}")
_TRACKING = re.compile(r"[A-Za-z0-9-]{6,40}")
_PICKUP_CODE = re.compile(r"[0-9]{6}")


@dataclass(frozen=True)
class Context:
    """What services need beyond the session: who acts, settings and the blob store."""

    actor: str
    settings: Settings
    store: BlobStore


# -- numbers ---------------------------------------------------------------------------


def next_sequence(session: Session, key: str) -> int:
    """The next value of a named counter; the row lock serialises concurrent staff."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(Counter).values(key=key, value=0).on_conflict_do_nothing())
    counter = session.scalars(select(Counter).where(Counter.key == key).with_for_update()).one()
    counter.value += 1
    session.flush()
    return counter.value


def _unused(session: Session, column: Any, make: Callable[[int], str], key: str) -> str:
    # Staff may type numbers by hand, which can collide with generated ones: skip those.
    while True:
        candidate = make(next_sequence(session, key))
        if session.scalar(select(column).where(column == candidate)) is None:
            return candidate


def generate_acceptance_no(session: Session) -> str:
    """受理编号 like WJSL2026112200012: WJSL, the CST date and a daily sequence."""
    day = today_cst().strftime("%Y%m%d")
    return _unused(
        session, BureauCase.acceptance_no, lambda n: f"WJSL{day}{n:05d}", f"acceptance:{day}"
    )


def generate_decision_no(session: Session) -> str:
    """许可决定文号 like 武行审许字〔2026〕第12号."""
    year = today_cst().year
    return _unused(
        session,
        BureauCase.decision_no,
        lambda n: f"武行审许字〔{year}〕第{n}号",
        f"decision:{year}",
    )


def generate_licence_number(session: Session) -> str:
    """证照编号 like WJXK2026000012."""
    year = today_cst().year
    return _unused(session, Licence.number, lambda n: f"WJXK{year}{n:06d}", f"licence:{year}")


def licence_title(item_name: str) -> str:
    """The licence's name from the item's: 食品经营许可（新办） → 食品经营许可证."""
    base = re.sub(r"[（(].*?[）)]", "", item_name).strip()
    base = re.sub(r"(核发|新办|办理|申请|审批)$", "", base).strip() or item_name
    if base.endswith(("证", "照", "书")):
        return base
    if base.endswith("许可"):
        return base + "证"
    return base + "许可证"


def issue_notice(
    session: Session, *, case: BureauCase, event: str, paragraphs: list[str], ctx: Context
) -> dict[str, str]:
    """Render the step's document (文书), keep it as a blob, and name it for the event."""
    name, prefix = NOTICE_KINDS[event]
    year = today_cst().year
    n = next_sequence(session, f"notice:{prefix}:{year}")
    number = f"{prefix}〔{year}〕{n}号"
    pdf = render_notice(
        Notice(
            name=name,
            number=number,
            addressee=case.applicant_name or "申请人",
            case_no=case.case_no,
            item_name=case.item_name,
            paragraphs=paragraphs,
            issued_on=today_cst(),
        ),
        font_path=ctx.settings.licence_font,
    )
    sha256 = ctx.store.put_bytes(pdf, "application/pdf")
    return {
        "name": name,
        "number": number,
        "filename": f"{name}-{case.case_no}.pdf",
        "content_type": "application/pdf",
        "sha256": sha256,
    }


def _wants_notice(f: Fields) -> bool:
    return f.payload.get("notice") in (True, "true", "on", "1")


# -- field parsing ---------------------------------------------------------------------


class Fields:
    """Reads an action's input (JSON body or form), collecting 中文 errors per field."""

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self.payload = payload
        self.errors: dict[str, str] = {}

    def has(self, name: str) -> bool:
        return name in self.payload

    def text(self, name: str, label: str, *, required: bool = False, max_len: int = 2000) -> str:
        value = self.payload.get(name)
        if value is None:
            value = ""
        if not isinstance(value, str):
            self.errors[name] = f"{label}应为文字。"
            return ""
        value = value.strip()
        if required and not value:
            self.errors[name] = f"请填写{label}。"
        elif len(value) > max_len:
            self.errors[name] = f"{label}不能超过 {max_len} 个字。"
        return value

    def date(self, name: str, label: str, *, required: bool = False) -> date | None:
        value = self.text(name, label, required=required, max_len=10)
        if not value or name in self.errors:
            return None
        try:
            return date.fromisoformat(value) if len(value) == 10 else _bad()
        except ValueError:
            self.errors[name] = f"{label}格式应为 YYYY-MM-DD，例如 2026-11-22。"
            return None

    def check(self) -> None:
        if self.errors:
            raise Invalid(self.errors)


def _bad() -> date:
    raise ValueError


# -- services --------------------------------------------------------------------------


def pass_prereview(session: Session, *, case: BureauCase, comment: str, ctx: Context) -> CaseEvent:
    """预审通过: the applicant may now submit formally."""
    data = {"comment": comment} if comment else {}
    return states.transition(session, case=case, key="prereview.passed", data=data, actor=ctx.actor)


def return_prereview(
    session: Session,
    *,
    case: BureauCase,
    comment: str,
    materials: list[dict[str, str]],
    ctx: Context,
) -> CaseEvent:
    """退回补正: what to correct, overall and per material."""
    data = {"comment": comment, "materials": materials}
    return states.transition(
        session, case=case, key="prereview.returned", data=data, actor=ctx.actor
    )


def accept_case(
    session: Session,
    *,
    case: BureauCase,
    acceptance_no: str | None,
    due_date: date | None,
    ctx: Context,
    notice: dict[str, str] | None = None,
) -> CaseEvent:
    """受理: with a 受理编号; the due date is left to the portal unless given."""
    number = acceptance_no or generate_acceptance_no(session)
    taken = session.scalar(
        select(BureauCase.id).where(BureauCase.acceptance_no == number, BureauCase.id != case.id)
    )
    if taken is not None:
        raise Invalid({"acceptance_no": f"受理编号 {number} 已被其他办件使用。"})
    data: dict[str, Any] = {"acceptance_no": number}
    if due_date is not None:
        data["due_date"] = due_date.isoformat()
    if notice:
        data["notice"] = notice
    changes = {"acceptance_no": number, "due_date": due_date, "accepted_at": utcnow()}
    return states.transition(
        session, case=case, key="case.accepted", data=data, actor=ctx.actor, changes=changes
    )


def reject_case(
    session: Session,
    *,
    case: BureauCase,
    reason: str,
    ctx: Context,
    notice: dict[str, str] | None = None,
) -> CaseEvent:
    """不予受理, with the reason."""
    return states.transition(
        session,
        case=case,
        key="case.rejected",
        data={"reason": reason} | ({"notice": notice} if notice else {}),
        actor=ctx.actor,
        changes={"closing_reason": reason},
    )


def request_correction(
    session: Session,
    *,
    case: BureauCase,
    comment: str,
    materials: list[dict[str, str]],
    due_date: date | None,
    ctx: Context,
    notice: dict[str, str] | None = None,
) -> CaseEvent:
    """补正通知 (§32): after the formal submission, everything to correct, at once."""
    data: dict[str, Any] = {"comment": comment, "materials": materials}
    if due_date is not None:
        data["due_date"] = due_date.isoformat()
    if notice:
        data["notice"] = notice
    correction = {**(case.correction or {}), **data, "requested_at": rfc3339(utcnow())}
    return states.transition(
        session,
        case=case,
        key="correction.requested",
        data=data,
        actor=ctx.actor,
        changes={"correction": correction},
    )


def suspend_clock(
    session: Session,
    *,
    case: BureauCase,
    reason_code: str,
    reason: str,
    expected_days: int | None,
    ctx: Context,
) -> CaseEvent:
    """暂停计时 (§45): hearing, testing, expert review… do not count towards the time limit."""
    data: dict[str, Any] = {"reason_code": reason_code, "reason": reason}
    if expected_days is not None:
        data["expected_days"] = expected_days
    suspension = {**data, "since": rfc3339(utcnow())}
    return states.transition(
        session,
        case=case,
        key="clock.suspended",
        data=data,
        actor=ctx.actor,
        changes={"suspension": suspension},
    )


def resume_clock(session: Session, *, case: BureauCase, note: str, ctx: Context) -> CaseEvent:
    """恢复计时: the portal moves the due date later by the working days suspended."""
    return states.transition(
        session,
        case=case,
        key="clock.resumed",
        data={"note": note} if note else {},
        actor=ctx.actor,
        changes={"suspension": None},
    )


def extend_deadline(
    session: Session,
    *,
    case: BureauCase,
    due_date: date,
    reason: str,
    ctx: Context,
    notice: dict[str, str] | None = None,
) -> CaseEvent:
    """延期 (§42): a later due date, approved by the head of the bureau."""
    data: dict[str, Any] = {"due_date": due_date.isoformat(), "reason": reason}
    if notice:
        data["notice"] = notice
    return states.transition(
        session,
        case=case,
        key="deadline.extended",
        data=data,
        actor=ctx.actor,
        changes={"due_date": due_date},
    )


def schedule_inspection(
    session: Session, *, case: BureauCase, day: date, note: str, ctx: Context
) -> CaseEvent:
    """安排现场核查 on a date; the case stays accepted."""
    data: dict[str, Any] = {"date": day.isoformat()}
    if note:
        data["note"] = note
    changes = {"inspection_date": day, "inspection_note": note or None}
    return states.transition(
        session, case=case, key="inspection.scheduled", data=data, actor=ctx.actor, changes=changes
    )


@dataclass(frozen=True)
class LicenceInput:
    name: str
    number: str | None
    valid_from: date
    valid_to: date | None


def approve_case(
    session: Session,
    *,
    case: BureauCase,
    decision_no: str | None,
    licence: LicenceInput | None,
    ctx: Context,
    notice: bool = False,
) -> CaseEvent:
    """准予许可: issue the electronic licence (PDF blob) and send its reference.

    By the case's application (v1.1): a renewal, change or reissue issues the licence
    anew under the number it named (unless staff give another), replacing the earlier
    one in the register; a cancellation issues none and cancels the one it named.
    """
    states.ensure_fits(case, "case.approved")
    application = applications.application_of(session, case)
    kind = application["kind"]
    decision = decision_no or generate_decision_no(session)
    if kind == "cancellation":
        return _approve_cancellation(
            session, case=case, application=application, decision=decision, ctx=ctx, notice=notice
        )
    assert licence is not None
    earlier_number = (application.get("licence") or {}).get("number") if kind != "new" else None
    number = licence.number or earlier_number or generate_licence_number(session)
    existing = session.scalars(select(Licence).where(Licence.number == number)).first()
    # Only the licence the application names may be issued again under its own number.
    if existing is not None and number != earlier_number:
        raise Invalid({"licence_number": f"证照编号 {number} 已被使用。"})
    applicant = case.applicant
    enterprise = applicant.get("id_type") == "USCC" or applicant.get("kind") == "enterprise"
    id_number = str(applicant.get("id_number", ""))
    item_name = applications.item_name_on_licence(case.item_name)
    document = LicenceDocument(
        title=licence.name,
        number=number,
        holder_name=case.applicant_name,
        # 统一社会信用代码 is public; a person's 身份证 number is not, so it is masked.
        holder_id_label="统一社会信用代码" if enterprise else "公民身份号码",
        holder_id_display=id_number if enterprise else mask_person_id(id_number),
        item_name=item_name,
        valid_from=licence.valid_from,
        valid_to=licence.valid_to,
        decision_no=decision,
        issued_on=today_cst(),
        verify_url=ctx.settings.verify_url(number),
    )
    pdf = render_licence(document, font_path=ctx.settings.licence_font)
    sha256 = ctx.store.put_bytes(pdf, "application/pdf")
    filename = f"{number}.pdf"
    values = {
        "case_id": case.id,
        "number": number,
        "name": licence.name,
        "holder_name": document.holder_name,
        "holder_id_display": document.holder_id_display,
        "item_name": item_name,
        "valid_from": licence.valid_from,
        "valid_to": licence.valid_to,
        "decision_no": decision,
        "filename": filename,
        "content_type": "application/pdf",
        "sha256": sha256,
        "issued_at": utcnow(),
        "revoked_at": None,
    }
    if existing is not None:
        # The register holds one row per number: the licence now in force. The earlier
        # term stays in the earlier case's history (its case.approved event).
        for key, value in values.items():
            setattr(existing, key, value)
    else:
        session.add(Licence(**values))
        if earlier_number and (earlier := applications.held_licence(session, application)):
            earlier.revoked_at = utcnow()  # changed under a new number: the old one is void
    licence_data: dict[str, Any] = {
        "name": licence.name,
        "number": number,
        "valid_from": licence.valid_from.isoformat(),
    }
    if licence.valid_to is not None:
        licence_data["valid_to"] = licence.valid_to.isoformat()
    licence_data |= {"filename": filename, "content_type": "application/pdf", "sha256": sha256}
    data: dict[str, Any] = {"decision_no": decision, "licence": licence_data}
    if notice:
        what = {"renewal": "准予延续", "change": "准予变更", "reissue": "准予补办"}.get(
            kind, "准予行政许可"
        )
        data["notice"] = issue_notice(
            session,
            case=case,
            event="case.approved",
            paragraphs=[
                f"经审查，你（单位）的申请符合法定条件、标准，本机关决定{what}"
                f"（{decision}），颁发《{licence.name}》（编号 {number}）。"
            ],
            ctx=ctx,
        )
    return states.transition(
        session,
        case=case,
        key="case.approved",
        data=data,
        actor=ctx.actor,
        changes={"decision_no": decision},
    )


def _approve_cancellation(
    session: Session,
    *,
    case: BureauCase,
    application: dict[str, Any],
    decision: str,
    ctx: Context,
    notice: bool,
) -> CaseEvent:
    """准予注销: no licence is issued; the one named leaves the register's valid ones."""
    named = application.get("licence") or {}
    held = applications.held_licence(session, application)
    if held is not None and held.revoked_at is None:
        held.revoked_at = utcnow()
    data: dict[str, Any] = {"decision_no": decision}
    if notice:
        title = named.get("name") or (held.name if held else "证照")
        data["notice"] = issue_notice(
            session,
            case=case,
            event="case.approved",
            paragraphs=[
                f"经审查，你（单位）的注销申请符合规定，本机关决定准予注销"
                f"（{decision}）《{title}》（编号 {named.get('number', '')}）。"
            ],
            ctx=ctx,
        )
    return states.transition(
        session,
        case=case,
        key="case.approved",
        data=data,
        actor=ctx.actor,
        changes={"decision_no": decision},
    )


def deny_case(
    session: Session,
    *,
    case: BureauCase,
    reason: str,
    remedy: str,
    ctx: Context,
    notice: dict[str, str] | None = None,
) -> CaseEvent:
    """不予许可, with the reason and how to seek 行政复议 or sue."""
    data: dict[str, Any] = {"reason": reason, "remedy": remedy or DEFAULT_REMEDY}
    if notice:
        data["notice"] = notice
    return states.transition(
        session,
        case=case,
        key="case.denied",
        data=data,
        actor=ctx.actor,
        changes={"closing_reason": reason},
    )


def notify_pickup(
    session: Session, *, case: BureauCase, hall: str, pickup_code: str, ctx: Context
) -> CaseEvent:
    """Tell the holder the licence waits at a hall, with a 6-digit pickup code."""
    data = {"hall": hall, "pickup_code": pickup_code}
    changes = {"handover": "ready_for_pickup", "handover_info": dict(data)}
    return states.transition(
        session,
        case=case,
        key="licence.ready_for_pickup",
        data=data,
        actor=ctx.actor,
        changes=changes,
    )


def ship_licence(
    session: Session, *, case: BureauCase, carrier: str, tracking_no: str, ctx: Context
) -> CaseEvent:
    """寄出证照 by express, with the tracking number."""
    data = {"carrier": carrier, "tracking_no": tracking_no}
    changes = {"handover": "shipped", "handover_info": dict(data)}
    return states.transition(
        session, case=case, key="licence.shipped", data=data, actor=ctx.actor, changes=changes
    )


def confirm_delivery(
    session: Session, *, case: BureauCase, signed_at: str, ctx: Context
) -> CaseEvent:
    """证照送达: signed for at the hall or at the door."""
    changes = {
        "handover": "delivered",
        "handover_info": {**(case.handover_info or {}), "signed_at": signed_at},
    }
    return states.transition(
        session,
        case=case,
        key="licence.delivered",
        data={"signed_at": signed_at},
        actor=ctx.actor,
        changes=changes,
    )


def confirm_originals(
    session: Session, *, case: BureauCase, received_at: str, note: str, ctx: Context
) -> CaseEvent:
    """原件已签收: the originals the applicant posted or brought are at the bureau."""
    data = {"received_at": received_at}
    if note:
        data["note"] = note
    return states.transition(
        session, case=case, key="originals.received", data=data, actor=ctx.actor
    )


def reply_rating(session: Session, *, case: BureauCase, reply: str, ctx: Context) -> CaseEvent:
    """回复评价 (required for 不满意 and 非常不满意 under 好差评 rules)."""
    return states.transition(
        session,
        case=case,
        key="rating.reply",
        data={"reply": reply},
        actor=ctx.actor,
        changes={"rating_reply": reply, "replied_at": utcnow()},
    )


def answer_consultation(
    session: Session, *, consultation_id: str, answer: str, ctx: Context
) -> Consultation:
    """答复 a 12345 question or complaint; the portal shows it to the citizen."""
    consultation = session.scalars(
        select(Consultation)
        .where(Consultation.consultation_id == consultation_id)
        .with_for_update()
    ).first()
    if consultation is None:
        raise NotFound("该咨询投诉不存在。")
    if consultation.answer:
        raise Conflict("该咨询投诉已经答复过。")
    if not isinstance(answer, str) or not answer.strip():
        raise Invalid({"answer": "请填写答复内容。"})
    if len(answer) > 4000:
        raise Invalid({"answer": "答复内容不能超过 4000 个字。"})
    consultation.answer = answer.strip()
    consultation.answered_at = utcnow()
    consultation.answered_by = ctx.actor
    data = {"consultation_id": consultation.consultation_ref, "answer": consultation.answer}
    message = outbox.enqueue(
        session,
        event_type="consultation.answered",
        case_no=consultation.case_no,
        data=data,
        ordering_key=consultation.case_no or f"consultation:{consultation.consultation_id}",
    )
    case = session.scalars(
        select(BureauCase).where(BureauCase.case_no == consultation.case_no)
    ).first()
    if case is not None:
        states.record_event(
            session,
            case=case,
            direction="out",
            event_id=message.event_id,
            event_type="consultation.answered",
            occurred_at=message.created_at,
            data=data,
            actor=ctx.actor,
        )
    return consultation


# -- one entry point per action, shared by the console and the API ------------------------


def _materials(value: Any, errors: dict[str, str]) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors["materials"] = "材料意见应为列表。"
        return []
    out: list[dict[str, str]] = []
    for i, entry in enumerate(value):
        code = entry.get("code") if isinstance(entry, dict) else None
        comment = entry.get("comment") if isinstance(entry, dict) else None
        if not isinstance(code, str) or not code.strip():
            errors[f"materials.{i}.code"] = "请指明材料编码。"
            continue
        if not isinstance(comment, str) or not comment.strip():
            errors[f"materials.{i}.comment"] = f"请填写材料 {code} 的补正意见。"
            continue
        out.append({"code": code.strip(), "comment": comment.strip()[:2000]})
    return out


def _do_pass(session: Session, case: BureauCase, f: Fields, ctx: Context) -> CaseEvent:
    comment = f.text("comment", "预审意见")
    f.check()
    return pass_prereview(session, case=case, comment=comment, ctx=ctx)


def _do_return(session: Session, case: BureauCase, f: Fields, ctx: Context) -> CaseEvent:
    comment = f.text("comment", "退回意见", required=True)
    materials = _materials(f.payload.get("materials"), f.errors)
    f.check()
    return return_prereview(session, case=case, comment=comment, materials=materials, ctx=ctx)


def _do_accept(session: Session, case: BureauCase, f: Fields, ctx: Context) -> CaseEvent:
    number = f.text("acceptance_no", "受理编号", max_len=40)
    if number and "acceptance_no" not in f.errors and not _NUMBER.fullmatch(number):
        f.errors["acceptance_no"] = "受理编号只能包含字母、数字和连字符，长度 4 到 40 位。"
    due = f.date("due_date", "办结期限")
    if due is not None and due < today_cst():
        f.errors["due_date"] = "办结期限不能早于今天。"
    f.check()
    notice = None
    if _wants_notice(f):
        number = number or generate_acceptance_no(session)
        paragraphs = [
            f"经审查，申请材料齐全、符合法定形式，本机关决定予以受理，受理编号 {number}。"
        ]
        notice = issue_notice(
            session, case=case, event="case.accepted", paragraphs=paragraphs, ctx=ctx
        )
    return accept_case(
        session, case=case, acceptance_no=number or None, due_date=due, ctx=ctx, notice=notice
    )


def _do_correction(session: Session, case: BureauCase, f: Fields, ctx: Context) -> CaseEvent:
    comment = f.text("comment", "补正说明")
    materials = _materials(f.payload.get("materials"), f.errors)
    known = {m.get("code") for m in case.materials}
    if not materials and "materials" not in f.errors:
        f.errors["materials"] = "请至少对一项材料填写补正意见。"
    for m in materials:
        if m["code"] not in known:
            f.errors["materials"] = f"材料 {m['code']} 不在该办件的材料中。"
    due = f.date("due_date", "补正期限")
    if due is not None and due < today_cst():
        f.errors["due_date"] = "补正期限不能早于今天。"
    f.check()
    notice = None
    if _wants_notice(f):
        listed = "；".join(f"{m['code']}：{m['comment']}" for m in materials)
        paragraphs = [
            "经审查，你（单位）提交的申请材料不齐全或者不符合法定形式。依照《中华人民共和国"
            "行政许可法》第三十二条，现一次性告知需要补正的全部内容：" + listed + "。",
        ]
        if comment:
            paragraphs.append(comment)
        if due:
            paragraphs.append(f"请于 {due.isoformat()} 前提交补正材料。")
        notice = issue_notice(
            session, case=case, event="correction.requested", paragraphs=paragraphs, ctx=ctx
        )
    return request_correction(
        session,
        case=case,
        comment=comment,
        materials=materials,
        due_date=due,
        ctx=ctx,
        notice=notice,
    )


def _do_suspend(session: Session, case: BureauCase, f: Fields, ctx: Context) -> CaseEvent:
    code = f.text("reason_code", "暂停原因类别", required=True, max_len=20)
    if code and code not in states.CLOCK_REASONS:
        f.errors["reason_code"] = "暂停原因类别应为：" + "、".join(
            f"{k}（{v}）" for k, v in states.CLOCK_REASONS.items()
        )
    reason = f.text("reason", "暂停原因", required=True)
    raw = f.payload.get("expected_days")
    expected: int | None = None
    if raw not in (None, ""):
        try:
            expected = int(str(raw))
            if not 0 <= expected <= 3650:
                raise ValueError
        except (TypeError, ValueError):
            f.errors["expected_days"] = "预计工作日数应为 0 到 3650 之间的整数。"
    f.check()
    return suspend_clock(
        session, case=case, reason_code=code, reason=reason, expected_days=expected, ctx=ctx
    )


def _do_resume(session: Session, case: BureauCase, f: Fields, ctx: Context) -> CaseEvent:
    note = f.text("note", "恢复说明")
    f.check()
    return resume_clock(session, case=case, note=note, ctx=ctx)


def _do_extend(session: Session, case: BureauCase, f: Fields, ctx: Context) -> CaseEvent:
    due = f.date("due_date", "延长后的办结期限", required=True)
    # The portal holds the due date it computed; the bureau checks what it knows of.
    floor = max(filter(None, [case.due_date, today_cst()]))
    if due is not None and due <= floor:
        f.errors["due_date"] = f"延长后的办结期限应晚于 {floor.isoformat()}。"
    reason = f.text("reason", "延期理由", required=True)
    f.check()
    assert due is not None
    notice = None
    if _wants_notice(f):
        paragraphs = [
            f"因{reason}，经本机关负责人批准，依照《中华人民共和国行政许可法》第四十二条，"
            f"办理期限延长至 {due.isoformat()}。"
        ]
        notice = issue_notice(
            session, case=case, event="deadline.extended", paragraphs=paragraphs, ctx=ctx
        )
    return extend_deadline(session, case=case, due_date=due, reason=reason, ctx=ctx, notice=notice)


def _do_reject(session: Session, case: BureauCase, f: Fields, ctx: Context) -> CaseEvent:
    reason = f.text("reason", "不予受理理由", required=True)
    f.check()
    notice = None
    if _wants_notice(f):
        paragraphs = [f"经审查，{reason}。本机关决定不予受理。", DEFAULT_REMEDY]
        notice = issue_notice(
            session, case=case, event="case.rejected", paragraphs=paragraphs, ctx=ctx
        )
    return reject_case(session, case=case, reason=reason, ctx=ctx, notice=notice)


def _do_inspection(session: Session, case: BureauCase, f: Fields, ctx: Context) -> CaseEvent:
    day = f.date("date", "核查日期", required=True)
    if day is not None and day < today_cst():
        f.errors["date"] = "核查日期不能早于今天。"
    note = f.text("note", "核查说明")
    f.check()
    assert day is not None
    return schedule_inspection(session, case=case, day=day, note=note, ctx=ctx)


def approval_terms(
    session: Session, case: BureauCase, application: dict[str, Any] | None = None
) -> tuple[str, date, date | None]:
    """The licence's name and term unless staff say otherwise, by the application: a
    renewal runs on from the day after the earlier term, a change or reissue keeps it."""
    application = application or applications.application_of(session, case)
    kind = application["kind"]
    today = today_cst()
    name = licence_title(case.item_name)
    if kind != "new":
        name = (application.get("licence") or {}).get("name") or name
        earlier_from, earlier_to = applications.earlier_term(session, application)
        if kind in ("change", "reissue") and earlier_from is not None:
            return name, earlier_from, earlier_to
        if kind == "renewal":
            start = applications.renewed_from(earlier_to, today)
            return name, start, _years_later(start, LICENCE_YEARS) - timedelta(days=1)
    return name, today, _years_later(today, LICENCE_YEARS) - timedelta(days=1)


def _do_approve(session: Session, case: BureauCase, f: Fields, ctx: Context) -> CaseEvent:
    decision_no = f.text("decision_no", "许可决定文号", max_len=80)
    application = applications.application_of(session, case)
    if application["kind"] == "cancellation":  # nothing to issue: the licence is cancelled
        f.check()
        return approve_case(
            session,
            case=case,
            decision_no=decision_no or None,
            licence=None,
            ctx=ctx,
            notice=_wants_notice(f),
        )
    default_name, default_from, default_to = approval_terms(session, case, application)
    name = f.text("licence_name", "证照名称", max_len=100) or default_name
    number = f.text("licence_number", "证照编号", max_len=40)
    if number and "licence_number" not in f.errors and not _NUMBER.fullmatch(number):
        f.errors["licence_number"] = "证照编号只能包含字母、数字和连字符，长度 4 到 40 位。"
    valid_from = f.date("valid_from", "有效期起始日") or default_from
    if f.has("valid_to"):
        # Present but empty (or null) means 长期有效; absent means the default term.
        valid_to = f.date("valid_to", "有效期截止日")
    elif valid_from == default_from:
        valid_to = default_to
    else:
        valid_to = _years_later(valid_from, LICENCE_YEARS) - timedelta(days=1)
    if valid_to is not None and valid_to < valid_from:
        f.errors["valid_to"] = "有效期截止日不能早于起始日。"
    f.check()
    licence = LicenceInput(
        name=name, number=number or None, valid_from=valid_from, valid_to=valid_to
    )
    return approve_case(
        session,
        case=case,
        decision_no=decision_no or None,
        licence=licence,
        ctx=ctx,
        notice=_wants_notice(f),
    )


def _do_deny(session: Session, case: BureauCase, f: Fields, ctx: Context) -> CaseEvent:
    reason = f.text("reason", "不予许可理由", required=True)
    remedy = f.text("remedy", "救济途径") or DEFAULT_REMEDY
    f.check()
    notice = None
    if _wants_notice(f):
        paragraphs = [f"经审查，{reason}。本机关决定不予行政许可。", remedy]
        notice = issue_notice(
            session, case=case, event="case.denied", paragraphs=paragraphs, ctx=ctx
        )
    return deny_case(session, case=case, reason=reason, remedy=remedy, ctx=ctx, notice=notice)


def _do_pickup(session: Session, case: BureauCase, f: Fields, ctx: Context) -> CaseEvent:
    hall = f.text("hall", "领取大厅", max_len=100) or default_hall(session, case)
    if not hall and "hall" not in f.errors:
        f.errors["hall"] = "请填写领取大厅（申请人未选择自取大厅）。"
    code = f.text("pickup_code", "取件码", max_len=6)
    if code and not _PICKUP_CODE.fullmatch(code):
        f.errors["pickup_code"] = "取件码应为 6 位数字。"
    f.check()
    code = code or f"{secrets.randbelow(1_000_000):06d}"
    return notify_pickup(session, case=case, hall=hall, pickup_code=code, ctx=ctx)


def _do_ship(session: Session, case: BureauCase, f: Fields, ctx: Context) -> CaseEvent:
    carrier = f.text("carrier", "快递公司", max_len=40) or "EMS"
    tracking_no = f.text("tracking_no", "快递单号", required=True, max_len=40)
    if tracking_no and not _TRACKING.fullmatch(tracking_no):
        f.errors["tracking_no"] = "快递单号只能包含字母、数字和连字符，长度 6 到 40 位。"
    f.check()
    return ship_licence(session, case=case, carrier=carrier, tracking_no=tracking_no, ctx=ctx)


def _moment(f: Fields, name: str, label: str) -> str:
    """An RFC 3339 time from the form (datetime-local is CST); now when left empty."""
    raw = f.text(name, label, max_len=40)
    moment = utcnow()
    if raw:
        try:
            if len(raw) == 16 and raw[10] == "T":  # <input type=datetime-local>: CST
                moment = parse_rfc3339(raw + ":00+08:00")
            else:
                moment = parse_rfc3339(raw)
        except ValueError:
            f.errors[name] = f"{label}格式应为 2026-11-22T10:00:00+08:00。"
    return rfc3339(moment)


def _do_deliver(session: Session, case: BureauCase, f: Fields, ctx: Context) -> CaseEvent:
    signed_at = _moment(f, "signed_at", "签收时间")
    f.check()
    return confirm_delivery(session, case=case, signed_at=signed_at, ctx=ctx)


def _do_originals(session: Session, case: BureauCase, f: Fields, ctx: Context) -> CaseEvent:
    received_at = _moment(f, "received_at", "签收时间")
    note = f.text("note", "签收说明", max_len=500)
    f.check()
    return confirm_originals(session, case=case, received_at=received_at, note=note, ctx=ctx)


def _do_reply(session: Session, case: BureauCase, f: Fields, ctx: Context) -> CaseEvent:
    reply = f.text("reply", "回复内容", required=True)
    f.check()
    return reply_rating(session, case=case, reply=reply, ctx=ctx)


def _years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def default_hall(session: Session, case: BureauCase) -> str:
    """Where the applicant asked to collect: the chosen pickup hall, else a pickup booking."""
    delivery = case.delivery or {}
    if delivery.get("method") == "pickup":
        hall = delivery.get("hall")
        if isinstance(hall, dict):
            return str(hall.get("code") or "")
        if hall:
            return str(hall)
    booking = session.scalars(
        select(Appointment)
        .where(
            Appointment.case_id == case.id,
            Appointment.purpose == "pickup",
            Appointment.status == "booked",
        )
        .order_by(Appointment.id.desc())
    ).first()
    return str(booking.hall.get("code", "")) if booking else ""


@dataclass(frozen=True)
class Action:
    name: str
    event: str
    label: str
    run: Callable[[Session, BureauCase, Fields, Context], CaseEvent]
    danger: bool = False


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("pass", "prereview.passed", "预审通过", _do_pass),
        Action("return", "prereview.returned", "退回补正", _do_return, danger=True),
        Action("accept", "case.accepted", "受理", _do_accept),
        Action("reject", "case.rejected", "不予受理", _do_reject, danger=True),
        Action("correction", "correction.requested", "通知补正（一次性告知）", _do_correction),
        Action("suspend", "clock.suspended", "暂停计时", _do_suspend),
        Action("resume", "clock.resumed", "恢复计时", _do_resume),
        Action("extend", "deadline.extended", "延长办理期限", _do_extend),
        Action("inspection", "inspection.scheduled", "安排现场核查", _do_inspection),
        Action("approve", "case.approved", "准予许可并签发证照", _do_approve),
        Action("deny", "case.denied", "不予许可", _do_deny, danger=True),
        Action("ready-for-pickup", "licence.ready_for_pickup", "通知领取", _do_pickup),
        Action("ship", "licence.shipped", "寄出证照", _do_ship),
        Action("deliver", "licence.delivered", "登记送达", _do_deliver),
        Action("reply", "rating.reply", "回复评价", _do_reply),
        Action("originals-received", "originals.received", "原件已签收", _do_originals),
    )
}
# The bureau event types work as action names too, for callers who think in events.
ACTION_BY_EVENT: dict[str, Action] = {a.event: a for a in ACTIONS.values()}


def find_action(name: str) -> Action:
    action = ACTIONS.get(name) or ACTION_BY_EVENT.get(name)
    if action is None:
        raise NotFound(f"没有名为 {name} 的办理操作。")
    return action


HANDOVER_EVENTS = frozenset({"licence.ready_for_pickup", "licence.shipped", "licence.delivered"})


def _nothing_to_hand_over(session: Session, case: BureauCase) -> bool:
    """A cancellation's approval issues no licence: no pickup, shipping or delivery."""
    return (
        case.status == states.Status.APPROVED
        and applications.application_of(session, case)["kind"] == "cancellation"
    )


def available_actions(case: BureauCase, session: Session | None = None) -> list[Action]:
    """The actions that fit the case now (computed here, so templates hold no rules).
    With the session, a cancellation's approval also drops the licence hand-over."""
    allowed = set(states.allowed_outbound(case))
    if session is not None and _nothing_to_hand_over(session, case):
        allowed -= HANDOVER_EVENTS
    return [a for a in ACTIONS.values() if a.event in allowed]


def perform_action(
    session: Session, *, case_no: str, action: str, payload: Mapping[str, Any], ctx: Context
) -> CaseEvent:
    """Run one staff action on a case: 404 unknown case, 409 wrong status, 422 bad fields."""
    spec = find_action(action)
    case = get_case(session, case_no, for_update=True)
    states.ensure_fits(case, spec.event)
    if spec.event in HANDOVER_EVENTS and _nothing_to_hand_over(session, case):
        raise Conflict("准予注销不颁发证照，没有需要送达的证照。")
    return spec.run(session, case, Fields(payload), ctx)
