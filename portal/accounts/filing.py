"""Who may file what (identity.md, "Rules the portal keeps").

Pre-review needs a proven phone; formal submission needs a verified identity of
level ≥ 2 (统一身份认证). Both depend on what the deployment can prove:

* phones are proven only where registration demands an SMS code
  (`PORTAL_REGISTER_NEEDS_CODE`, on outside dev mode);
* names and numbers are verified only where an identity platform is configured
  (`PORTAL_SSO_ISSUER`). Without one no account could ever reach level 2, so the
  portal files on the phone proof alone, and says so to the bureau
  (`applicant.verified` {by: "sms", level: 1}, bureau-protocol.md).

Every refusal is `403` with code `verification_required` and a message saying how
to verify; nothing of the case changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from portal.accounts.models import Account
from portal.errors import Forbidden

VERIFIED_LEVEL = 2  # identity.md: 在线实名核验 and above


class VerificationRequired(Forbidden):
    code = "verification_required"


def require_number(account: Account) -> None:
    """Its verified owner took the number (identity.md): drafts stay, but nothing is
    filed under a number this account does not hold."""
    if account.id_number is None:
        raise VerificationRequired(
            "您账户中的证件号码已由持有人本人通过统一身份认证核验并移除，"
            "不能再以该号码提交。请通过统一身份认证登录后办理。"
        )


@dataclass(frozen=True)
class FilingRule:
    phone_proof: bool  # pre-review (and formal submission) need a proven phone
    sso: bool  # formal submission needs level ≥ 2 from the identity platform

    @classmethod
    def from_settings(cls, settings) -> FilingRule:
        return cls(phone_proof=settings.register_code_required, sso=settings.sso_enabled)

    def check(self, account: Account, stage: str) -> None:
        """Raise VerificationRequired unless `account` may file at `stage`."""
        require_number(account)
        if self.phone_proof and account.trust_level < 1:
            raise VerificationRequired(
                "提交前须先验证您的手机号码。请退出后选择“短信验证码登录”登录一次，"
                "或通过统一身份认证登录，即可完成验证；您的草稿和材料都会保留。"
            )
        if stage == "formal" and self.sso and account.trust_level < VERIFIED_LEVEL:
            raise VerificationRequired(
                "正式提交申请须核验申请人的真实身份（统一身份认证 2 级及以上）。"
                "请点击“统一身份认证登录”，用本人（或本单位）身份登录后再提交；"
                "登录后账户自动关联，您的办件和材料都会保留。"
            )

    def problem(self, account: Account, stage: str) -> str | None:
        """The refusal's message, or None when `account` may file at `stage`."""
        try:
            self.check(account, stage)
        except VerificationRequired as exc:
            return exc.message
        return None


def identity_notice(request: Request, account: Account, stage: str) -> dict | None:
    """What a check-your-answers page says before the button when filing would be
    refused: the reason and the way to verify (统一身份认证, or a code login)."""
    rule = filing_rule(request)
    message = rule.problem(account, stage)
    if message is None:
        return None
    return {"message": message, "sso": rule.sso, "next": request.url.path}


def filing_rule(request: Request) -> FilingRule:
    """The rule of the running app's settings (a FastAPI dependency or a plain call)."""
    return FilingRule.from_settings(request.app.state.settings)


Filing = Annotated[FilingRule, Depends(filing_rule)]
