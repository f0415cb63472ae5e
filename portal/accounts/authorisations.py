"""委托授权: a legal person lets natural persons (经办人, often a 代办 intermediary) file
for it (identity.md, "Rules the portal keeps"; citizen-api.md v1.1).

* Only a legal-person account verified at level ≥ 2 grants; the agent is a person's
  account found by its phone. For every item or a list of item codes, through a date.
* An agent's subjects are itself and every enterprise with a valid authorisation
  (not revoked, `valid_to` not past in China Standard Time).
* A case filed `on_behalf_of` an enterprise names it as the applicant; the agent
  keeps filing it while the authorisation covers the item; the enterprise sees it.
  Revoked or expired: drafts stay, nothing more is submitted.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.filing import VERIFIED_LEVEL, VerificationRequired
from portal.accounts.models import Account, Authorisation
from portal.catalogue.models import Item
from portal.clock import rfc3339, today_cst, utcnow
from portal.errors import Forbidden, Invalid, NotFound
from portal.security import mask_id, mask_phone

MAX_YEARS = 5  # an authorisation longer than this is more likely a typo than intent
NOT_FOUND = "没有该授权记录。"


def _valid(auth: Authorisation, today: date) -> bool:
    return auth.revoked_at is None and auth.valid_to >= today


def covers(auth: Authorisation, item_code: str) -> bool:
    return auth.items is None or item_code in auth.items


def grant(
    session: Session,
    *,
    enterprise: Account,
    agent_phone: str,
    items: str | list[str],
    valid_to: date | str | None,
) -> Authorisation:
    """A new authorisation; `items` is "all" or item codes."""
    if enterprise.kind != "enterprise" or enterprise.trust_level < VERIFIED_LEVEL:
        raise VerificationRequired(
            "只有通过统一身份认证核验（2 级及以上）的法人账户才能委托经办人。"
            "请用本单位身份通过统一身份认证登录后再办理。"
        )
    errors: dict[str, str] = {}
    today = today_cst()
    parsed: date | None = None
    if isinstance(valid_to, date):
        parsed = valid_to
    elif isinstance(valid_to, str) and valid_to.strip():
        try:
            parsed = date.fromisoformat(valid_to.strip())
        except ValueError:
            errors["valid_to"] = "请按“年-月-日”填写授权截止日期，例如 2027-06-30"
    else:
        errors["valid_to"] = "请填写授权截止日期"
    if parsed is not None:
        if parsed < today:
            errors["valid_to"] = "授权截止日期不能早于今天"
        elif parsed > today.replace(year=today.year + MAX_YEARS):
            errors["valid_to"] = f"授权期限最长 {MAX_YEARS} 年"
    codes: list[str] | None = None
    if items == "all":
        codes = None
    elif isinstance(items, list) and items and all(isinstance(c, str) for c in items):
        codes = list(dict.fromkeys(c.strip() for c in items))
        known = set(session.scalars(select(Item.code).where(Item.code.in_(codes))))
        unknown = [c for c in codes if c not in known]
        if unknown:
            errors["items"] = f"没有这些事项：{'、'.join(unknown[:5])}"
    else:
        errors["items"] = "请选择授权办理的事项（全部事项，或具体事项）"
    phone = (agent_phone or "").strip()
    if not phone.isdigit() or len(phone) != 11:
        errors["agent_phone"] = "请填写经办人的 11 位手机号码"
    if errors:
        raise Invalid(errors, "授权内容有误。")
    agent = session.scalars(select(Account).where(Account.phone == phone)).first()
    if agent is None or agent.kind != "person" or agent.id == enterprise.id:
        raise NotFound(
            "没有使用该手机号码的个人账户。请经办人先用本人手机号码注册个人账户。",
            code="agent_not_found",
        )
    auth = Authorisation(
        enterprise_id=enterprise.id, agent_id=agent.id, items=codes, valid_to=parsed
    )
    session.add(auth)
    session.flush()
    return auth


def revoke(session: Session, *, enterprise: Account, authorisation_id: int) -> Authorisation:
    auth = session.get(Authorisation, authorisation_id)
    if auth is None or auth.enterprise_id != enterprise.id:
        raise NotFound(NOT_FOUND, code="authorisation_not_found")
    if auth.revoked_at is None:
        auth.revoked_at = utcnow()
    return auth


def views(session: Session, rows: list[Authorisation]) -> list[dict[str, Any]]:
    """Authorisations as the API and the page show them (citizen-api.md)."""
    ids = {r.agent_id for r in rows} | {r.enterprise_id for r in rows}
    people = {a.id: a for a in session.scalars(select(Account).where(Account.id.in_(ids)))}
    today = today_cst()
    out = []
    for r in rows:
        agent, enterprise = people[r.agent_id], people[r.enterprise_id]
        out.append(
            {
                "id": r.id,
                "agent": {"name": agent.name, "phone": mask_phone(agent.phone)},
                "enterprise": {"name": enterprise.name, "id_number": mask_id(enterprise.id_number)},
                "items": "all" if r.items is None else list(r.items),
                "valid_to": r.valid_to.isoformat(),
                "revoked_at": rfc3339(r.revoked_at) if r.revoked_at else None,
                "valid": _valid(r, today),
            }
        )
    return out


def listed(session: Session, *, account: Account) -> list[dict[str, Any]]:
    """Those an enterprise granted, or those a person holds, newest first."""
    column = Authorisation.enterprise_id if account.kind == "enterprise" else Authorisation.agent_id
    rows = session.scalars(
        select(Authorisation).where(column == account.id).order_by(Authorisation.id.desc())
    ).all()
    return views(session, list(rows))


def _held(session: Session, agent: Account) -> list[tuple[Account, Authorisation]]:
    """The agent's valid authorisations with their enterprises, oldest first."""
    rows = session.execute(
        select(Account, Authorisation)
        .join(Authorisation, Authorisation.enterprise_id == Account.id)
        .where(
            Authorisation.agent_id == agent.id,
            Authorisation.revoked_at.is_(None),
            Authorisation.valid_to >= today_cst(),
            Account.id_number.is_not(None),
        )
        .order_by(Authorisation.id)
    ).all()
    return [(enterprise, auth) for enterprise, auth in rows]


def subjects(
    session: Session, *, account: Account, item_code: str | None = None
) -> list[tuple[Account, Authorisation | None]]:
    """The account itself, then every enterprise it may act for today (for `item_code`
    only, when given), each with its first authorisation that counts."""
    out: list[tuple[Account, Authorisation | None]] = [(account, None)]
    if account.kind != "person":  # only persons are agents
        return out
    seen: set[int] = set()
    for enterprise, auth in _held(session, account):
        if enterprise.id in seen or (item_code is not None and not covers(auth, item_code)):
            continue
        seen.add(enterprise.id)
        out.append((enterprise, auth))
    return out


def authorisation_for(
    session: Session, *, agent: Account, uscc: str, item_code: str
) -> tuple[Account, Authorisation]:
    """The enterprise with number `uscc` and the agent's valid authorisation for the item."""
    number = (uscc or "").strip().upper()
    held = [(e, a) for e, a in _held(session, agent) if e.id_number == number]
    for enterprise, auth in held:
        if covers(auth, item_code):
            return enterprise, auth
    if held:
        raise Forbidden(
            f"“{held[0][0].name}”对您的授权不包括该事项，请联系该单位调整授权。",
            code="not_authorised",
        )
    raise Forbidden(
        "您没有代该单位办理的有效授权。请由该单位通过统一身份认证登录后，在“委托授权”中授权给您。",
        code="not_authorised",
    )


def check_still_authorised(session: Session, *, case, agent: Account, need_level: bool) -> None:
    """At each submission: the case's authorisation still valid and for its item; for
    formal submission (`need_level`) both sides verified at level ≥ 2 (identity.md).
    Else `403 verification_required`."""
    auth = session.get(Authorisation, case.authorisation_id) if case.authorisation_id else None
    enterprise = session.get(Account, case.on_behalf_of_id) if case.on_behalf_of_id else None
    if auth is None or enterprise is None or auth.agent_id != agent.id:
        raise VerificationRequired("该办件的委托授权记录不存在，不能提交。")
    if not _valid(auth, today_cst()) or not covers(auth, case.item_code):
        raise VerificationRequired(
            f"“{enterprise.name}”对您的委托授权已撤销或已过期，草稿仍保留，但不能再提交。"
            "请联系该单位重新授权后再提交。"
        )
    if need_level and (
        enterprise.trust_level < VERIFIED_LEVEL or agent.trust_level < VERIFIED_LEVEL
    ):
        raise VerificationRequired(
            "代单位提交申请须单位和经办人都通过统一身份认证核验（2 级及以上）。"
            "请经办人点击“统一身份认证登录”，用本人身份登录后再提交。"
        )
