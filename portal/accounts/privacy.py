"""PIPL basics: consent to the 个人信息处理规则, a copy of one's data, closing the account.

* Consent (PIPL art. 13–14, 17): registration and the first 统一身份认证 sign-in each
  ask for it explicitly; the version and time are kept on the account.
* A copy (art. 45): everything the portal holds about the caller, as JSON — the
  account, its cases as the citizen sees them (form, status, timeline, materials'
  metadata, delivery, rating), bundle applications, library documents' metadata,
  messages, authorisations, licences, appointments, 12345 questions, sign-ins.
* Closing (art. 47): drafts are deleted with their uploads, the library emptied,
  messages deleted, authorisations revoked, every session and token ended. Submitted
  cases stay: they are the record of an administrative procedure the bureau must
  archive (行政许可法 and the archive rules for 行政许可 files), and the licences issued
  stay with them. The phone and ID number are released, so they can register again
  (a new, empty account); the closed account keeps them in `closed_*` columns as the
  applicant of the cases it keeps. Closing waits while a case is still being handled.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.encoders import jsonable_encoder
from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.orm import Session

from portal import throttle
from portal.accounts.kept_forms import KEPT_MINUTES
from portal.accounts.models import Account, Authorisation, KeptForm, LoginSession
from portal.appointments.models import Appointment
from portal.bundles.models import BundleApplication
from portal.cases import states
from portal.cases.models import Case
from portal.catalogue.service import all_items
from portal.clock import utcnow
from portal.consultations.models import Consultation
from portal.db import Database
from portal.delivery.models import SavedAddress
from portal.errors import Conflict, Invalid, Throttled
from portal.library.models import LibraryDocument
from portal.licences.models import Licence
from portal.materials.models import CaseFile
from portal.notifications.models import Message
from portal.security import verify_password
from portal.settings import Settings

# The version of the rules on /privacy; a change of what is collected or who receives
# it is a new version (the page names it and its date).
PRIVACY_VERSION = "2026-12"
CONSENT_FIELD = "privacy_consent"
CONSENT_MISSING = "请阅读并勾选同意《个人信息处理规则》，否则无法注册"


def record_consent(account: Account) -> None:
    """The account agreed to the current rules, now."""
    account.privacy_version = PRIVACY_VERSION
    account.privacy_consented_at = utcnow()


def retention_facts(settings: Settings) -> dict[str, int]:
    """The periods the page states, from the settings the retention job really uses."""
    return {
        "draft_days": settings.draft_retention_days,
        "closed_files_days": settings.closed_files_retention_days,
        "idle_minutes": settings.session_idle_minutes,
        "absolute_hours": settings.session_absolute_hours,
        "kept_form_minutes": KEPT_MINUTES,
    }


# --- a copy of one's data -----------------------------------------------------------------


def export_data(session: Session, *, account: Account) -> dict[str, Any]:
    """Everything the portal holds about `account`, as JSON-ready data; only its own."""
    from portal.accounts import authorisations
    from portal.cases.view import case_view

    cases = list(
        session.scalars(
            select(Case)
            .where(or_(Case.account_id == account.id, Case.on_behalf_of_id == account.id))
            .order_by(Case.id)
        )
    )
    items = {i.code: i for i in all_items(session)} if cases else {}
    case_rows = []
    for case in cases:
        view = case_view(session, case=case, item=items[case.item_code])
        view["filed_by"] = "self" if case.account_id == account.id else "agent"
        case_rows.append(view)
    auth_column = (
        Authorisation.enterprise_id if account.kind == "enterprise" else Authorisation.agent_id
    )
    auth_rows = list(session.scalars(select(Authorisation).where(auth_column == account.id)))
    data = {
        "exported_at": utcnow(),
        "privacy_version": PRIVACY_VERSION,
        "controller": "武进区行政审批局",
        "account": {
            "account_id": account.id,
            "kind": account.kind,
            "name": account.name,
            "id_type": account.id_type,
            "id_number": account.id_number,
            "phone": account.phone,
            "agent": {"name": account.agent_name, "id_number": account.agent_id_number}
            if account.agent_name
            else None,
            "legal_rep_name": account.legal_rep_name,
            "verified": account.verified,
            "sso_subject": account.sso_subject,
            "has_password": account.password_hash is not None,
            "phone_verified_at": account.phone_verified_at,
            "created_at": account.created_at,
            "privacy_consent": {
                "version": account.privacy_version,
                "at": account.privacy_consented_at,
            }
            if account.privacy_consented_at
            else None,
        },
        "cases": case_rows,
        "addresses": [
            {k: getattr(a, k) for k in ("recipient", "phone", "province", "city", "district")}
            | {"detail": a.detail, "postcode": a.postcode, "last_used_at": a.last_used_at}
            for a in session.scalars(
                select(SavedAddress)
                .where(SavedAddress.account_id == account.id)
                .order_by(SavedAddress.id)
            )
        ],
        "bundle_applications": [
            {
                "id": a.id,
                "bundle_code": a.bundle_code,
                "status": a.status,
                "created_at": a.created_at,
                "submitted_at": a.submitted_at,
            }
            for a in session.scalars(
                select(BundleApplication)
                .where(BundleApplication.account_id == account.id)
                .order_by(BundleApplication.id)
            )
        ],
        "library": [
            {
                "id": d.id,
                "kind": d.kind,
                "title": d.title,
                "filename": d.filename,
                "content_type": d.content_type,
                "size": d.size,
                "sha256": d.sha256,
                "licence_number": d.licence_number,
                "valid_from": d.valid_from,
                "valid_to": getattr(d, "valid_to", None),
                "created_at": d.created_at,
            }
            for d in session.scalars(
                select(LibraryDocument)
                .where(LibraryDocument.account_id == account.id)
                .order_by(LibraryDocument.id)
            )
        ],
        "messages": [
            {
                "id": m.id,
                "type": m.type,
                "title": m.title,
                "body": m.body,
                "link": m.link,
                "created_at": m.created_at,
                "read_at": m.read_at,
            }
            for m in session.scalars(
                select(Message).where(Message.account_id == account.id).order_by(Message.id)
            )
        ],
        "authorisations": authorisations.views(session, auth_rows),
        "licences": [
            {
                "number": lic.number,
                "name": lic.name,
                "item_code": lic.item_code,
                "valid_from": lic.valid_from,
                "valid_to": getattr(lic, "valid_to", None),
                "state": lic.state,
                "ended_reason": lic.ended_reason,
                "created_at": lic.created_at,
            }
            for lic in session.scalars(
                select(Licence).where(Licence.account_id == account.id).order_by(Licence.id)
            )
        ],
        "appointments": [
            {
                "appointment_id": a.appointment_id,
                "hall_code": a.hall_code,
                "window": a.window,
                "date": a.date,
                "period": getattr(a, "period", None),
                "booked_at": a.booked_at,
                "cancelled_at": a.cancelled_at,
            }
            for a in session.scalars(
                select(Appointment)
                .where(Appointment.account_id == account.id)
                .order_by(Appointment.id)
            )
        ],
        "consultations": [
            {
                "consultation_id": c.consultation_id,
                "kind": getattr(c, "kind", None),
                "subject": c.subject,
                "body": c.body,
                "contact_name": c.contact_name,
                "contact_phone": c.contact_phone,
                "created_at": c.created_at,
                "answer": c.answer,
                "answered_at": c.answered_at,
            }
            for c in session.scalars(
                select(Consultation)
                .where(Consultation.account_id == account.id)
                .order_by(Consultation.id)
            )
        ],
        "sign_ins": [
            {"started_at": s.created_at, "last_seen_at": s.last_seen_at, "ended_at": s.ended_at}
            for s in session.scalars(
                select(LoginSession)
                .where(LoginSession.account_id == account.id)
                .order_by(LoginSession.created_at)
            )
        ],
    }
    return jsonable_encoder(data)


# --- closing the account --------------------------------------------------------------------


def cases_in_progress(session: Session, *, account: Account) -> list[str]:
    """Case numbers still being handled (sent, not finished): closing waits for them,
    those an agent filed in the account's name included (it is their applicant)."""
    query = select(Case.case_no).where(
        or_(Case.account_id == account.id, Case.on_behalf_of_id == account.id),
        Case.status.not_in([states.DRAFT, *states.FINISHED]),
    )
    return list(session.scalars(query.order_by(Case.id)))


def _never_sent(account: Account):
    """The account's drafts, and drafts it deleted (withdrawn before anything was sent)."""
    return (Case.account_id == account.id) & Case.submitted_at.is_(None)


def close_summary(session: Session, *, account: Account) -> dict[str, Any]:
    """What closing would delete and keep, for the confirm page and the API."""
    drafts = session.scalars(
        select(Case.id).where(_never_sent(account), Case.status == states.DRAFT)
    ).all()
    kept = session.scalars(
        select(Case.case_no)
        .where(Case.account_id == account.id, Case.submitted_at.is_not(None))
        .order_by(Case.id)
    ).all()
    return {
        "drafts": len(drafts),
        "kept_cases": list(kept),
        "in_progress": cases_in_progress(session, account=account),
    }


def check_password(
    session: Session,
    *,
    db: Database,
    settings: Settings,
    account: Account,
    password: str,
    client_ip: str,
) -> None:
    """Closing asks for the password again when the account has one, so a session left
    open on a shared computer cannot close it; wrong tries are throttled per account."""
    if account.password_hash is None:
        return
    key = f"close:account:{account.id}"
    if wait := throttle.retry_after(db, key):
        raise Throttled(f"密码错误次数过多，请 {throttle.minutes(wait)} 后再试。", retry_after=wait)
    if not password:
        raise Invalid({"password": "请输入登录密码以确认注销"})
    if not verify_password(account.password_hash, password):
        # Nothing changed yet; end the request's transaction so the counter's own write
        # does not wait on its lock (as in accounts.service.authenticate).
        session.rollback()
        window = timedelta(minutes=settings.login_lock_minutes)
        throttle.record_failure(
            db, key, limit=settings.login_max_failures, window=window, lock=window
        )
        raise Invalid({"password": "密码不正确，请重新输入"})


def close_account(session: Session, *, account: Account) -> dict[str, int]:
    """Close the account (PIPL art. 47): delete what only served it, keep the record."""
    if busy := cases_in_progress(session, account=account):
        raise Conflict(
            f"您还有正在办理的办件（{'、'.join(busy)}），请等办结或撤回后再注销账户。",
            code="cases_in_progress",
        )
    now = utcnow()
    drafts = list(session.scalars(select(Case).where(_never_sent(account))))
    draft_count = sum(c.status == states.DRAFT for c in drafts)
    files = 0
    if drafts:
        ids = [c.id for c in drafts]
        bundle_ids = {c.bundle_application_id for c in drafts} - {None}
        # The files' rows go now; the stored files leave the disk with the daily retention
        # job, once nothing references them (portal/retention/service.py).
        files = session.execute(delete(CaseFile).where(CaseFile.case_id.in_(ids))).rowcount  # type: ignore[attr-defined]
        for case in drafts:  # timeline, delivery, appointments go by ON DELETE CASCADE
            session.delete(case)
        session.flush()
        for app_id in bundle_ids:
            left = session.scalar(select(exists().where(Case.bundle_application_id == app_id)))
            application = session.get(BundleApplication, app_id)
            if not left and application is not None and application.status == "draft":
                session.delete(application)
    library = session.execute(
        delete(LibraryDocument).where(LibraryDocument.account_id == account.id)
    ).rowcount  # type: ignore[attr-defined]
    session.execute(delete(Message).where(Message.account_id == account.id))
    session.execute(delete(KeptForm).where(KeptForm.account_id == account.id))
    # 常用地址 only served the account (the cases keep their own copies).
    session.execute(delete(SavedAddress).where(SavedAddress.account_id == account.id))
    session.execute(
        update(Authorisation)
        .where(
            or_(Authorisation.enterprise_id == account.id, Authorisation.agent_id == account.id),
            Authorisation.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    session.execute(
        update(LoginSession)
        .where(LoginSession.account_id == account.id, LoginSession.ended_at.is_(None))
        .values(ended_at=now)
    )
    # Released for a new registration; kept aside as the applicant of the kept cases.
    account.closed_phone, account.closed_id_number = account.phone, account.id_number
    account.phone = f"x{account.id:010d}"  # never a mobile number, so no login finds it
    account.id_number = None
    account.sso_subject = None
    account.closed_at = now
    session.flush()
    return {
        "drafts": draft_count,
        "files": files or 0,
        "library": library or 0,
    }
