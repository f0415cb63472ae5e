"""Registration, login and tokens."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session
from stdnum import numdb
from stdnum.cn import ric, uscc
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat
from stdnum.exceptions import ValidationError as StdnumError

from portal import throttle
from portal.accounts.models import Account, LoginSession, ThrottleBucket
from portal.clock import utcnow
from portal.db import Database
from portal.errors import Conflict, Invalid, Throttled, Unauthenticated
from portal.security import Signer, hash_password, password_needs_rehash, verify_password
from portal.settings import Settings

PHONE_RE = re.compile(r"^1[3-9]\d{9}$")
KINDS = {"person": "RIC", "enterprise": "USCC"}


def normalise_phone(raw: object) -> str:
    text = str(raw or "").strip().replace(" ", "").replace("-", "")
    return text[3:] if text.startswith("+86") else text


def phone_problem(phone: str) -> str | None:
    """None for a mainland mobile number, else the 中文 reason."""
    if not phone:
        return "请填写手机号码"
    if not PHONE_RE.match(phone):
        return "请填写 11 位中国大陆手机号码，例如 13912345678"
    return None


def id_problem(kind: str, id_number: str) -> str | None:
    """None when the number passes its national check digit, else the 中文 reason."""
    if not id_number:
        return "请填写证件号码"
    label = "居民身份证号码" if kind == "person" else "统一社会信用代码"
    if len(id_number) != 18:
        return f"{label}应为 18 位"
    try:
        if kind == "person":
            _validate_ric(id_number)
        else:
            uscc.validate(id_number)
    except InvalidChecksum:
        return f"{label}校验位不正确，请核对后重新填写"
    except StdnumError:
        return f"{label}格式不正确，请核对后重新填写"
    return None


def _validate_ric(number: str) -> None:
    """GB 11643: format, check digit and birth date by python-stdnum.

    stdnum's `ric.validate` also requires the region code to have existed in the
    birth year. Real numbers break that rule (codes were assigned in 1999 to people
    born decades earlier, e.g. 320483 武进市 for someone born in 1990), so only the
    check digit, the date and a province code stdnum knows are required.
    """
    number = ric.compact(number)
    if not ric.isdigits(number[:-1]) or not (number[-1].isdigit() or number[-1] == "X"):
        raise InvalidFormat()
    if number[-1] != ric.calc_check_digit(number):
        raise InvalidChecksum()
    ric.get_birth_date(number)
    if "province" not in numdb.get("cn/loc").info(number[:6])[0][1]:
        raise InvalidComponent()


def normalise_id(raw: object) -> str:
    return str(raw or "").strip().replace(" ", "").upper()


@dataclass
class Registration:
    kind: str
    name: str
    id_number: str
    phone: str
    password: str
    agent_name: str | None = None
    agent_id_number: str | None = None


def validate_registration(reg: Registration) -> dict[str, str]:
    errors: dict[str, str] = {}
    if reg.kind not in KINDS:
        errors["kind"] = "请选择个人或企业"
    name = reg.name.strip()
    if not name:
        errors["name"] = "请填写姓名或企业名称"
    elif len(name) > 100:
        errors["name"] = "名称不能超过 100 个字符"
    if reg.kind in KINDS and (problem := id_problem(reg.kind, reg.id_number)):
        errors["id_number"] = problem
    if problem := phone_problem(reg.phone):
        errors["phone"] = problem
    if len(reg.password) < 8:
        errors["password"] = "密码至少 8 位"
    elif len(reg.password) > 128:
        errors["password"] = "密码不能超过 128 位"
    if reg.agent_id_number and (problem := id_problem("person", reg.agent_id_number)):
        errors["agent_id_number"] = problem
    if reg.agent_name and len(reg.agent_name) > 50:
        errors["agent_name"] = "经办人姓名不能超过 50 个字符"
    return errors


class PhoneProof(Protocol):
    """An SMS code offered as proof of the phone (portal.verification.service.CodeProof)."""

    def problem(self) -> str | None:
        """The 中文 reason when the code is missing or malformed, before any lookup."""

    def matches(self, session: Session, phone: str) -> bool:
        """Whether it is the phone's valid code; a right one is used up in `session`."""

    def wrong(self) -> None:
        """Count a wrong try in its own transaction (after `session` was rolled back)."""


# Registrations answered per client address: each tells whether a phone or ID number is
# registered (409) or not (201), so a host may ask only this often.
REGISTER_LIMIT = 30
REGISTER_WINDOW = timedelta(hours=1)


def register_account(
    session: Session,
    *,
    db: Database,
    reg: Registration,
    client_ip: str,
    proof: PhoneProof | None = None,
) -> Account:
    """Create an account after checking numbers by their check digits; 409 on duplicates.

    Throttled per client address (429 with Retry-After): every attempt that gets as far
    as the lookup counts, whatever its answer. With `proof` (a `register` SMS code) the
    phone is proven first: a wrong or expired code is 422 on `code`.
    """
    reg.phone = normalise_phone(reg.phone)
    reg.id_number = normalise_id(reg.id_number)
    reg.agent_id_number = normalise_id(reg.agent_id_number) or None
    reg.agent_name = (reg.agent_name or "").strip() or None
    key = f"register:ip:{client_ip}"
    if wait := throttle.retry_after(db, key):
        raise Throttled(f"注册尝试过于频繁，请 {throttle.minutes(wait)} 后再试。", retry_after=wait)
    errors = validate_registration(reg)
    if proof is not None and (problem := proof.problem()):
        errors["code"] = problem
    if errors:
        raise Invalid(errors)
    # Counted in its own transaction before the request's begins (a 409 rolls that back,
    # and on SQLite the request's write lock would make this wait on itself).
    throttle.record_failure(
        db, key, limit=REGISTER_LIMIT, window=REGISTER_WINDOW, lock=REGISTER_WINDOW
    )
    if proof is not None and not proof.matches(session, reg.phone):
        session.rollback()  # nothing written yet; the count below has its own transaction
        proof.wrong()
        raise Invalid(
            {"code": "验证码不正确或已失效，请核对短信中的 6 位数字，或重新获取验证码。"},
            "验证码不正确或已失效。",
        )
    clash = session.scalars(
        select(Account).where(or_(Account.phone == reg.phone, Account.id_number == reg.id_number))
    ).first()
    if clash is not None:
        fields = {}
        if clash.phone == reg.phone:
            fields["phone"] = "该手机号码已注册，请直接登录"
        if clash.id_number == reg.id_number:
            fields["id_number"] = "该证件号码已注册，请直接登录"
        raise Conflict("该手机号码或证件号码已经注册。", fields=fields, code="already_registered")
    account = Account(
        kind=reg.kind,
        name=reg.name.strip(),
        id_type=KINDS[reg.kind],
        id_number=reg.id_number,
        phone=reg.phone,
        password_hash=hash_password(reg.password),
        agent_name=reg.agent_name,
        agent_id_number=reg.agent_id_number,
        phone_verified_at=utcnow() if proof is not None else None,
    )
    session.add(account)
    session.flush()
    return account


KNOWN_ADDRESS_DAYS = 30


def login_keys(phone: str, client_ip: str) -> dict[str, str]:
    return {
        "pair": f"login:pair:{phone}:{client_ip}",
        "phone": f"login:phone:{phone}",
        "address": f"login:ip:{client_ip}",
        "known": f"login:known:{phone}:{client_ip}",
    }


def authenticate(
    session: Session,
    *,
    db: Database,
    settings: Settings,
    phone: str,
    password: str,
    client_ip: str,
    proof: PhoneProof | None = None,
) -> Account:
    """The account for phone + password, or phone + a `login` SMS code (`proof`); wrong
    guesses throttled (429 with Retry-After).

    The main limit counts one phone from one address, so nobody can lock a citizen out
    of their own phone or computer by failing logins from elsewhere. A higher, slower
    backstop counts a phone from every address (a botnet guessing one password) and an
    address across every phone (one host trying many numbers); the per-phone backstop
    never applies to an address this phone logged in from in the last 30 days.
    """
    phone = normalise_phone(phone)
    keys = login_keys(phone, client_ip)
    checked = [keys["pair"], keys["address"]]
    known = throttle.seen_within(db, keys["known"], timedelta(days=KNOWN_ADDRESS_DAYS))
    if not known:
        checked.append(keys["phone"])
    wait = max(throttle.retry_after(db, key) for key in checked)
    if wait:
        raise Throttled(f"登录失败次数过多，请 {throttle.minutes(wait)} 后再试。", retry_after=wait)
    account = session.scalars(select(Account).where(Account.phone == phone)).first()
    if proof is not None:
        right = proof.problem() is None and account is not None and proof.matches(session, phone)
    else:
        right = verify_password(account.password_hash if account else None, password)
    if not right:
        # Nothing was changed in this transaction; end it so the failure counters (their
        # own transactions, kept when this request fails) don't wait on its lock.
        session.rollback()
        if proof is not None and proof.problem() is None:
            proof.wrong()
        main = timedelta(minutes=settings.login_lock_minutes)
        backstop = timedelta(minutes=settings.login_phone_lock_minutes)
        waits = [
            throttle.record_failure(
                db, keys["pair"], limit=settings.login_max_failures, window=main, lock=main
            ),
            *(
                throttle.record_failure(
                    db,
                    keys[name],
                    limit=settings.login_phone_max_failures,
                    window=backstop,
                    lock=backstop,
                )
                for name in ("phone", "address")
            ),
        ]
        # The backstop of the phone does not stop this address if it is the owner's.
        wait = max(waits[:1] + waits[2:] if known else waits)
        if wait:
            raise Throttled(
                f"登录失败次数过多，请 {throttle.minutes(wait)} 后再试。", retry_after=wait
            )
        # Same answer whether or not the phone is registered, so phones don't leak.
        if proof is not None:
            raise Unauthenticated(
                "手机号码或验证码不正确，或验证码已失效。", code="bad_credentials"
            )
        if closed_account_for(session, phone=phone, password=password):
            # Said only to whoever knows the password, so it tells a stranger nothing.
            raise Unauthenticated(CLOSED_MESSAGE, code="account_closed")
        raise Unauthenticated("手机号码或密码不正确。", code="bad_credentials")
    assert account is not None
    if proof is not None:
        account.phone_verified_at = utcnow()
    session.execute(delete(ThrottleBucket).where(ThrottleBucket.key == keys["pair"]))
    throttle.mark(session, keys["known"])
    if proof is None and account.password_hash and password_needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
    return account


# A closed account (accounts/privacy.py) refuses sign-in with this, to its holder alone.
CLOSED_MESSAGE = (
    "该账户已注销，无法登录。注销前已提交的办件仍由审批局依法保存；如需继续网上办事，请重新注册。"
)


def closed_account_for(session: Session, *, phone: str, password: str) -> Account | None:
    """A closed account of this phone whose password this is: the login says it is closed.

    Only with the right password, so the answer tells a stranger nothing about the phone.
    """
    closed = session.scalars(
        select(Account).where(Account.closed_phone == phone, Account.closed_at.is_not(None))
    ).all()
    if not closed:
        verify_password(None, password)  # as long as when there is one
    return next((a for a in closed if verify_password(a.password_hash, password)), None)


def start_login_session(session: Session, *, account: Account) -> LoginSession:
    """A new server-side session record; its id goes into the signed cookie."""
    login = LoginSession(id=secrets.token_urlsafe(32), account_id=account.id)
    session.add(login)
    return login


def end_login_session(session: Session, *, sid: str) -> None:
    """Logout: the session record ends, so a copied cookie is worthless afterwards."""
    login = session.get(LoginSession, sid)
    if login is not None and login.ended_at is None:
        login.ended_at = utcnow()


def token_signer(settings: Settings) -> Signer:
    return Signer(settings.secret_key, "api-token", int(settings.token_hours * 3600))


def _password_fingerprint(settings: Settings, account: Account) -> str:
    # Changes with the password hash, so a new password ends every token issued before it.
    # Keyed, because a token's payload is readable (signed, not encrypted).
    digest = hmac.new(
        settings.secret_key.encode(), (account.password_hash or "").encode(), hashlib.sha256
    ).hexdigest()
    return digest[:16]


def issue_api_token(
    session: Session, settings: Settings, *, account: Account
) -> tuple[str, datetime]:
    """A bearer token for the JSON API, valid for PORTAL_TOKEN_HOURS until revoked.

    It names a server-side login record (the table web sessions use), so
    `DELETE /api/v1/tokens` really ends it, and carries a fingerprint of the password
    hash, so a changed password ends it too.
    """
    login = start_login_session(session, account=account)
    token = token_signer(settings).dumps(
        {"a": account.id, "s": login.id, "p": _password_fingerprint(settings, account)}
    )
    return token, utcnow() + timedelta(hours=settings.token_hours)


def _token_login(session: Session, settings: Settings, token: str) -> tuple[Account, LoginSession]:
    value, problem = token_signer(settings).loads(token)
    if problem == "expired":
        raise Unauthenticated("登录已过期，请重新登录。", code="token_expired")
    invalid = Unauthenticated("登录凭证无效，请重新登录。", code="invalid_token")
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("a"), int)
        or not isinstance(value.get("s"), str)
        or not isinstance(value.get("p"), str)
    ):
        raise invalid
    # The login record and its account in one statement: every API call starts here.
    row = session.execute(
        select(LoginSession, Account)
        .join(Account, Account.id == LoginSession.account_id)
        .where(LoginSession.id == value["s"])
    ).first()
    if row is None:
        raise invalid
    login, account = row
    if login.account_id != value["a"]:
        raise invalid
    if login.ended_at is not None:
        raise Unauthenticated("该登录凭证已注销，请重新登录。", code="token_revoked")
    if not hmac.compare_digest(value["p"], _password_fingerprint(settings, account)):
        raise Unauthenticated("密码已修改，请重新登录。", code="token_revoked")
    return account, login


def account_for_token(session: Session, settings: Settings, token: str) -> Account:
    """The account behind a bearer token; 401 when expired, forged, revoked or outdated."""
    return _token_login(session, settings, token)[0]


def revoke_api_token(session: Session, settings: Settings, *, token: str) -> None:
    """Logout of the API: the token's login record ends; a copy of the token is worthless."""
    _, login = _token_login(session, settings, token)
    login.ended_at = utcnow()
