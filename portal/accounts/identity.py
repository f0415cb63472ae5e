"""Who is applying, proven: sign-in through the province's identity platform (identity.md §2).

The platform has checked the name and number against the national registers; the
portal keeps the result on the account (by "sso", the trust level, when, the
platform's `sub`) and lets a verified owner take their number back from any account
that only typed it in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import Account
from portal.accounts.service import KINDS, id_problem, normalise_id, normalise_phone, phone_problem
from portal.clock import utcnow
from portal.errors import Conflict, DomainError, Invalid
from portal.notifications.service import create_message
from portal.notifications.sms import queue_sms
from portal.security import hash_password, mask_id

SUBJECT_KINDS = {"person": "person", "legal_person": "enterprise"}
TRUST_LEVELS = (2, 3, 4)


class BadIdentity(DomainError):
    """The platform's answer is signed but not something the portal can rely on."""

    status = 400
    code = "sso_failed"


@dataclass(frozen=True)
class VerifiedIdentity:
    sub: str
    kind: str  # "person" | "enterprise"
    name: str
    id_number: str
    level: int
    phone: str | None  # the 11-digit number, only when the platform verified it
    agent_name: str | None = None
    agent_id_number: str | None = None
    legal_rep: str | None = None  # legal persons: cn_legal_rep.name

    @property
    def id_type(self) -> str:
        return KINDS[self.kind]


def identity_from_claims(claims: dict[str, Any]) -> VerifiedIdentity:
    """The claims of identity.md §2, checked again here: nothing odd reaches an account."""
    sub = claims.get("sub")
    kind = SUBJECT_KINDS.get(str(claims.get("cn_subject_type")))
    name = claims.get("name")
    number = normalise_id(claims.get("cn_id_number"))
    level = claims.get("cn_trust_level")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise BadIdentity("统一身份认证返回的身份标识无效。")
    if kind is None or claims.get("cn_id_type") != KINDS[kind]:
        raise BadIdentity("统一身份认证返回的主体类型无效。")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
        raise BadIdentity("统一身份认证返回的姓名或名称无效。")
    if id_problem(kind, number):
        raise BadIdentity("统一身份认证返回的证件号码无效。")
    # bool is an int in Python: `true` is not a trust level.
    if isinstance(level, bool) or level not in TRUST_LEVELS:
        raise BadIdentity("统一身份认证返回的认证等级无效。")
    phone = None
    if claims.get("phone_number_verified") is True:
        candidate = normalise_phone(claims.get("phone_number"))
        phone = None if phone_problem(candidate) else candidate
    agent_name = agent_id = None
    operator = claims.get("cn_operator")
    if kind == "enterprise" and isinstance(operator, dict):
        op_name, op_id = operator.get("name"), normalise_id(operator.get("id_number"))
        if isinstance(op_name, str) and op_name.strip() and not id_problem("person", op_id):
            agent_name, agent_id = op_name.strip()[:50], op_id
    legal_rep = None
    rep = claims.get("cn_legal_rep")
    if kind == "enterprise" and isinstance(rep, dict) and isinstance(rep.get("name"), str):
        legal_rep = rep["name"].strip()[:50] or None
    return VerifiedIdentity(
        legal_rep=legal_rep,
        sub=sub,
        kind=kind,
        name=name.strip(),
        id_number=number,
        level=level,
        phone=phone,
        agent_name=agent_name,
        agent_id_number=agent_id,
    )


def _one(session: Session, *where) -> Account | None:
    return session.scalars(select(Account).where(*where).with_for_update()).first()


def sign_in_verified(session: Session, *, identity: VerifiedIdentity) -> tuple[Account, bool]:
    """The account of a verified identity, linked or created; True when created.

    Found, in order: by the platform's `sub` (signed in before); by the ID number when
    the account holding it is verified (the number is the owner's); by the phone the
    platform verified, when that account is of the same kind and not verified as
    someone else. Otherwise a new account without a password. An account that only
    typed the number in never blocks its verified owner: the number moves here, and
    that account is told (message and SMS).
    """
    account = _one(session, Account.sso_subject == identity.sub)
    holder = _one(session, Account.id_number == identity.id_number)
    if account is None and holder is not None and holder.verified_by is not None:
        account = holder
    if account is None and identity.phone:
        by_phone = _one(session, Account.phone == identity.phone)
        if by_phone is not None:
            if by_phone.kind != identity.kind or by_phone.verified_by is not None:
                # The phone logs in to another subject's account; linking would hand one
                # person's verified identity to an account someone else controls.
                raise Conflict(
                    "您的手机号码已用于另一个账户（另一主体类型或已核验的其他身份），"
                    "无法自动关联。请用该手机号码登录原账户，或拨打 12345 咨询。",
                    code="sso_phone_taken",
                )
            account = by_phone
    if holder is not None and (account is None or holder.id != account.id):
        if holder.verified_by is not None:
            raise Conflict(
                "该证件号码已由另一个已核验的账户持有，请拨打 12345 咨询。", code="sso_number_held"
            )
        _take_number_from(session, holder)
    created = account is None
    if account is None:
        if not identity.phone:
            raise BadIdentity(
                "统一身份认证平台未提供已核验的手机号码，无法为您开设账户。"
                "请先在统一身份认证平台核验手机号码后再登录。"
            )
        account = Account(
            kind=identity.kind,
            id_type=identity.id_type,
            phone=identity.phone,
            password_hash=None,  # signs in through the platform until a password is set
        )
        session.add(account)
    account.kind = identity.kind
    account.id_type = identity.id_type
    account.id_number = identity.id_number
    account.name = identity.name
    if identity.kind == "enterprise" and identity.legal_rep:
        account.legal_rep_name = identity.legal_rep
    if identity.kind == "enterprise" and identity.agent_name:
        account.agent_name = identity.agent_name
        account.agent_id_number = identity.agent_id_number
    account.verified_by = "sso"
    account.verified_level = identity.level
    account.verified_at = utcnow()
    account.sso_subject = identity.sub
    session.flush()
    return account, created


def _take_number_from(session: Session, holder: Account) -> None:
    """The number leaves an account that only typed it in; that account is told."""
    masked = mask_id(holder.id_number)
    holder.id_number = None
    # Written before the owner's account takes the number (the column is unique).
    session.flush()
    body = (
        f"您账户中填写的证件号码 {masked} 已由证件持有人本人通过统一身份认证核验，"
        "已从您的账户中移除。您的草稿仍然保留，但不能再以该证件号码提交。"
        "如有疑问，请拨打 12345。"
    )
    create_message(
        session,
        account_id=holder.id,
        type="identity.number_moved",
        title="您账户中的证件号码已移除",
        body=body,
        link="/account",
    )
    queue_sms(
        session,
        account_id=holder.id,
        phone=holder.phone,
        event="identity.number_moved",
        text=f"【武进区行政审批局】您账户中填写的证件号码 {masked} 已由持有人本人核验并移除，草稿保留但不能以该号码提交，请登录查看。",
        path="/account",
    )


LEVEL_NAMES = {
    2: "2 级（在线实名核验）",
    3: "3 级（人脸识别或电子营业执照）",
    4: "4 级（现场核验或数字证书）",
}


def verification_text(account: Account) -> str:
    """How the account's name and number were proven, for the account page."""
    if account.verified_by == "sso" and account.verified_level in LEVEL_NAMES:
        return f"已通过统一身份认证核验，{LEVEL_NAMES[account.verified_level]}"
    return "未核验：姓名和证件号码为本人填写"


def set_first_password(session: Session, *, account: Account, password: str) -> None:
    """The first password of an account made by 统一身份认证 sign-in (none set before)."""
    if account.password_hash is not None:
        raise Conflict("您的账户已经设置过密码。", code="password_set")
    if len(password) < 8:
        raise Invalid({"password": "密码至少 8 位"})
    if len(password) > 128:
        raise Invalid({"password": "密码不能超过 128 位"})
    account.password_hash = hash_password(password)
