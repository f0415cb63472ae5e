"""How often one account, or one address, may send 12345 questions and complaints.

Each submission reaches the 12345 hotline and the bureau, with a contact phone the
citizen may type freely: without a limit, a script could flood both, or have them call
someone else's phone, under one account or from one host with many accounts.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from portal import throttle
from portal.accounts.models import Account

PER_ACCOUNT = 10
PER_PHONE = 5  # without an account, per proven contact phone
PER_ADDRESS = 30
WINDOW = timedelta(hours=24)
MESSAGE = "提交咨询投诉过于频繁，请 {wait} 后再试；紧急事项请拨打 12345 热线。"


def take_submission(session: Session, *, account: Account, client_ip: str) -> None:
    """Count one submission (429 with Retry-After past a limit), in the request's transaction,
    so a submission refused for its content (422) is not counted."""
    for key, limit in (
        (f"consultation:account:{account.id}", PER_ACCOUNT),
        (f"consultation:ip:{client_ip}", PER_ADDRESS),
    ):
        throttle.take(session, key, limit=limit, window=WINDOW, lock=WINDOW, message=MESSAGE)


def take_without_account(session: Session, *, phone: str, client_ip: str) -> None:
    """The same for a submission without an account: per proven phone, and per address in
    the same count as the accounts' (one host cannot add 30 more by logging out)."""
    for key, limit in (
        (f"consultation:phone:{phone}", PER_PHONE),
        (f"consultation:ip:{client_ip}", PER_ADDRESS),
    ):
        throttle.take(session, key, limit=limit, window=WINDOW, lock=WINDOW, message=MESSAGE)
