"""Request signatures of the exchange protocol (docs/bureau-protocol.md, "Transport and signing").

v1 = hex(HMAC_SHA256(secret, "<t>." + hex(SHA256(raw body))))
"""

from __future__ import annotations

import hashlib
import hmac
import time

TOLERANCE_SECONDS = 300
PORTAL_HEADER = "X-Portal-Signature"
BUREAU_HEADER = "X-Bureau-Signature"


def signature_for_digest(secret: str, body_sha256_hex: str, timestamp: int) -> str:
    """The MAC from the body's SHA-256 alone: a stored blob's name is its digest."""
    message = f"{timestamp}.{body_sha256_hex}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature(secret: str, body: bytes, timestamp: int) -> str:
    return signature_for_digest(secret, hashlib.sha256(body).hexdigest(), timestamp)


def sign(secret: str, body: bytes, *, now: float | None = None) -> str:
    """The header value for a request with this raw body."""
    timestamp = int(time.time() if now is None else now)
    return f"t={timestamp},v1={signature(secret, body, timestamp)}"


def verify(secret: str, header: str | None, body: bytes, *, now: float | None = None) -> bool:
    """True when the header is well-formed, fresh (±300 s) and one `v1` matches (constant time)."""
    if not header or len(header) > 1000:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            if not value.isdigit() or len(value) > 12:
                return False
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = signature(secret, body, timestamp)
    ok = False
    for candidate in candidates:
        # Compare every candidate, so timing doesn't reveal which one matched.
        ok |= hmac.compare_digest(expected.encode(), candidate.encode("utf-8", "replace"))
    return ok
