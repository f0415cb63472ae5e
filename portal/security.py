"""Passwords, signed tokens and masking of personal data."""

from __future__ import annotations

import secrets
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

# argon2id with argon2-cffi's defaults (RFC 9106's second recommended profile:
# t=3, m=64 MiB, p=4): about 50–200 ms a hash on one core, on purpose.
PRODUCTION_HASHER = PasswordHasher()
_hasher = PRODUCTION_HASHER
# Verified against when the phone is unknown, so a login takes as long whether or
# not the account exists and response times don't reveal registered phones. The hash
# of a random password nobody kept, made once with PRODUCTION_HASHER's parameters
# (tests/test_accounts.py checks they still match), rather than hashed at every import:
# that was a full-cost hash in every process and command, 0.13 s of each boot.
PRODUCTION_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$6X1oS/lALTHBki5O1AutuA$"
    "/eibB6SbJD8dj3qsn/EV7Qva0jTaehd/qj/96YHSptU"
)
_DUMMY_HASH = PRODUCTION_DUMMY_HASH


def use_hasher(hasher: PasswordHasher) -> None:
    """Swap the hasher (the test suite uses a cheap one; production never calls this)."""
    global _hasher, _DUMMY_HASH
    _hasher = hasher
    _DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


class Signer:
    """One serializer per purpose, each with its own salt and maximum age."""

    def __init__(self, secret: str, purpose: str, max_age_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=f"portal.{purpose}")
        self.max_age = max_age_seconds

    def dumps(self, value: Any) -> str:
        return self._serializer.dumps(value)

    def loads(self, token: str) -> tuple[Any, str | None]:
        """The value, or None and why not: "expired" or "invalid"."""
        try:
            return self._serializer.loads(token, max_age=self.max_age), None
        except SignatureExpired:
            return None, "expired"
        except BadSignature:
            return None, "invalid"


def mask_id(id_number: str | None) -> str:
    """身份证 / 统一社会信用代码 shown as 3204************1X: the first 4 and last 2 kept."""
    if not id_number:
        return ""
    if len(id_number) <= 6:
        return "*" * len(id_number)
    return id_number[:4] + "*" * (len(id_number) - 6) + id_number[-2:]


def mask_phone(phone: str | None) -> str:
    if not phone:
        return ""
    if len(phone) < 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_name(name: str | None) -> str:
    """张三 → 张*, 欧阳娜娜 → 欧***: for pages anyone with a case number may open."""
    if not name:
        return ""
    return name[0] + "*" * (len(name) - 1) if len(name) > 1 else "*"
