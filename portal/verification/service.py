"""Asking for, checking and using SMS one-time codes (identity.md §1)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from portal import throttle
from portal.accounts.models import Account, LoginSession
from portal.accounts.service import normalise_phone, phone_problem
from portal.clock import utcnow
from portal.db import Database
from portal.errors import DomainError, Invalid
from portal.security import hash_password
from portal.settings import Settings
from portal.verification import sms
from portal.verification.models import PURPOSES, SmsCode

LIFETIME = timedelta(minutes=5)
RESEND = timedelta(seconds=60)
PER_PHONE = 5  # codes per phone (all purposes) per hour
HOUR = timedelta(hours=1)
MAX_TRIES = 5
CODE_RE = re.compile(r"^[0-9]{6}$")
# Rows are worthless once expired; kept a day for an operator asking "was it sent?".
KEEP = timedelta(days=1)

# Purposes whose code goes to any phone, registered or not.
ANY_PHONE = {"register", "consultation"}

WRONG_CODE = "验证码不正确或已失效，请核对短信中的 6 位数字，或重新获取验证码。"


class SmsUnavailable(DomainError):
    status = 503
    code = "sms_unavailable"


UNAVAILABLE_MESSAGE = "短信验证码服务暂未开通，请使用密码登录，或到办事大厅窗口办理。"


@dataclass
class Issued:
    expires_in: int
    resend_after: int
    message_id: int | None  # the outbox row to send at once, when a code was made


def code_hash(settings: Settings, *, phone: str, purpose: str, code: str) -> str:
    """HMAC-SHA256 under the app secret, bound to phone and purpose.

    Not argon2: a code has only 10^6 values, so no slow hash keeps it from someone who
    has the hash and the key, while argon2's ~0.2 s per check would hand a flood of
    requests two cores' worth of work. What protects a code is the key (a copy of the
    database alone reveals nothing), 5 minutes of life and 5 tries.
    """
    message = f"{purpose}:{phone}:{code}".encode()
    return hmac.new(settings.secret_key.encode(), message, hashlib.sha256).hexdigest()


def request_code(
    session: Session, *, settings: Settings, phone: str, purpose: str, client_ip: str
) -> Issued:
    """Make and queue a code; the same answer whether or not the phone is registered."""
    phone = normalise_phone(phone)
    errors: dict[str, str] = {}
    if problem := phone_problem(phone):
        errors["phone"] = problem
    if purpose not in PURPOSES:
        errors["purpose"] = (
            "用途应为 register（注册）、login（登录）、reset（重置密码）或 consultation（咨询投诉）"
        )
    if errors:
        raise Invalid(errors)
    if not settings.sms_codes_available:
        raise SmsUnavailable(UNAVAILABLE_MESSAGE)
    # Counted in the request's transaction: a request refused by any limit counts for none.
    throttle.take(
        session,
        f"sms:phone-purpose:{phone}:{purpose}",
        limit=1,
        window=RESEND,
        lock=RESEND,
        message="验证码已发送，请 {wait}后再重新获取。",
    )
    throttle.take(
        session,
        f"sms:phone:{phone}",
        limit=PER_PHONE,
        window=HOUR,
        lock=HOUR,
        message="该手机号码获取验证码次数过多，请 {wait}后再试。",
    )
    throttle.take(
        session,
        f"sms:ip:{client_ip}",
        limit=settings.sms_codes_per_address_hour,
        window=HOUR,
        lock=HOUR,
        message="本网络获取验证码次数过多，请 {wait}后再试。",
    )
    now = utcnow()
    session.execute(delete(SmsCode).where(SmsCode.expires_at < now - KEEP))
    registered = session.scalars(select(Account.id).where(Account.phone == phone)).first()
    message_id = None
    # Same answer whether or not the phone is registered, so registered phones don't leak.
    # A login or reset code for a phone no account has is not sent (nobody could use it);
    # a register code always is (the registration then says the phone is taken, to its
    # owner only), and so is a consultation code (a 12345 question needs no account).
    if purpose in ANY_PHONE or registered is not None:
        session.execute(
            update(SmsCode)
            .where(
                SmsCode.phone == phone,
                SmsCode.purpose == purpose,
                SmsCode.used_at.is_(None),
                SmsCode.voided_at.is_(None),
            )
            .values(voided_at=now)
        )
        code = f"{secrets.randbelow(10**6):06d}"
        row = SmsCode(
            phone=phone,
            purpose=purpose,
            code_hash=code_hash(settings, phone=phone, purpose=purpose, code=code),
            created_at=now,
            expires_at=now + LIFETIME,
        )
        session.add(row)
        session.flush()
        message_id = sms.queue_code(session, settings, row=row, code=code).id
    return Issued(
        expires_in=int(LIFETIME.total_seconds()),
        resend_after=int(RESEND.total_seconds()),
        message_id=message_id,
    )


def code_problem(code: str | None) -> str | None:
    """None for six ASCII digits, else the 中文 reason."""
    if not code:
        return "请填写短信验证码"
    if not CODE_RE.match(code):
        return "验证码为短信中的 6 位数字"
    return None


def _active(session: Session, *, phone: str, purpose: str) -> SmsCode | None:
    query = (
        select(SmsCode)
        .where(
            SmsCode.phone == phone,
            SmsCode.purpose == purpose,
            SmsCode.used_at.is_(None),
            SmsCode.voided_at.is_(None),
            SmsCode.expires_at > utcnow(),
        )
        .order_by(SmsCode.id.desc())
        .limit(1)
    )
    if session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update()
    return session.scalars(query).first()


def match_code(
    session: Session, *, settings: Settings, phone: str, purpose: str, code: str
) -> tuple[bool, int | None]:
    """(right, id of the code tried): marks a right code used in the caller's transaction.

    A wrong one is counted by `count_wrong_try`, after the caller has ended its
    transaction (the count must outlive the failed request).
    """
    row = _active(session, phone=phone, purpose=purpose)
    if row is None:
        return False, None
    expected = code_hash(settings, phone=phone, purpose=purpose, code=code)
    if not hmac.compare_digest(row.code_hash, expected):
        return False, row.id
    row.used_at = utcnow()
    return True, row.id


def count_wrong_try(db: Database, code_id: int | None) -> None:
    """One wrong try, in its own transaction; the fifth voids the code."""
    if code_id is None:
        return
    with db.session(write=True) as session, session.begin():
        query = select(SmsCode).where(SmsCode.id == code_id)
        if not db.is_sqlite:
            query = query.with_for_update()
        row = session.scalars(query).first()
        if row is None or row.used_at is not None or row.voided_at is not None:
            return
        row.tries += 1
        if row.tries >= MAX_TRIES:
            row.voided_at = utcnow()


class CodeProof:
    """A code offered for `purpose`: the accounts service's `PhoneProof`."""

    def __init__(self, db: Database, settings: Settings, *, purpose: str, code: str) -> None:
        self.db, self.settings, self.purpose = db, settings, purpose
        self.code = (code or "").strip()
        self.tried: int | None = None

    def problem(self) -> str | None:
        return code_problem(self.code)

    def matches(self, session: Session, phone: str) -> bool:
        right, self.tried = match_code(
            session,
            settings=self.settings,
            phone=normalise_phone(phone),
            purpose=self.purpose,
            code=self.code,
        )
        return right

    def wrong(self) -> None:
        count_wrong_try(self.db, self.tried)


def use_code(
    session: Session, *, db: Database, settings: Settings, phone: str, purpose: str, code: str
) -> None:
    """Use a code or raise 422 with `fields.code`; a wrong try is counted even so.

    The caller's transaction must not have written anything yet: after a wrong code it
    is rolled back so the count's own write transaction does not wait on its lock.
    """
    proof = CodeProof(db, settings, purpose=purpose, code=code)
    if problem := proof.problem():
        raise Invalid({"code": problem})
    if not proof.matches(session, phone):
        session.rollback()
        proof.wrong()
        raise Invalid({"code": WRONG_CODE}, "验证码不正确或已失效。")


def reset_password(
    session: Session, *, db: Database, settings: Settings, phone: str, code: str, password: str
) -> Account:
    """A new password with a `reset` code; every session and bearer token of the account ends.

    Tokens end because they carry a fingerprint of the password hash, which changes;
    page sessions and token records are ended here as well.
    """
    phone = normalise_phone(phone)
    errors: dict[str, str] = {}
    if problem := phone_problem(phone):
        errors["phone"] = problem
    if problem := code_problem(code):
        errors["code"] = problem
    if len(password) < 8:
        errors["password"] = "密码至少 8 位"
    elif len(password) > 128:
        errors["password"] = "密码不能超过 128 位"
    if errors:
        raise Invalid(errors)
    use_code(session, db=db, settings=settings, phone=phone, purpose="reset", code=code)
    account = session.scalars(select(Account).where(Account.phone == phone)).first()
    if account is None:  # no code is ever sent to such a phone; answered like a wrong code
        raise Invalid({"code": WRONG_CODE}, "验证码不正确或已失效。")
    now = utcnow()
    account.password_hash = hash_password(password)
    account.phone_verified_at = now
    session.execute(
        update(LoginSession)
        .where(LoginSession.account_id == account.id, LoginSession.ended_at.is_(None))
        .values(ended_at=now)
    )
    return account
