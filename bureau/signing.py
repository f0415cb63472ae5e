"""The exchange signature: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + hex(SHA256(body)))>`."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass

from bureau.errors import InvalidSignature

PORTAL_HEADER = "X-Portal-Signature"
BUREAU_HEADER = "X-Bureau-Signature"
WINDOW_SECONDS = 300
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_HEX64 = re.compile(r"[0-9a-f]{64}")
_INT = re.compile(r"[+-]?[0-9]{1,15}")


def mac(secret: str, timestamp: int, body_sha256: str) -> str:
    """The v1 value for a body whose SHA-256 (hex) is already known (streamed blobs)."""
    message = f"{timestamp}.{body_sha256}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, now: float | None = None) -> str:
    """The header value signing `body` at `now`."""
    timestamp = int(time.time() if now is None else now)
    return f"t={timestamp},v1={mac(secret, timestamp, hashlib.sha256(body).hexdigest())}"


@dataclass(frozen=True)
class ParsedSignature:
    timestamp: int
    macs: tuple[str, ...]


def parse_header(value: str | None, *, now: float | None = None) -> ParsedSignature:
    """Parse and check the time window; the MAC is checked once the body's hash is known."""
    if not value:
        raise InvalidSignature("缺少签名（签名头不存在）。")
    timestamp: int | None = None
    macs: list[str] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            raise InvalidSignature("签名格式不正确。")
        key, item = key.strip(), item.strip()
        if key == "t":
            if timestamp is not None or not _INT.fullmatch(item):
                raise InvalidSignature("签名格式不正确：t 必须是一个整数。")
            timestamp = int(item)
        elif key == "v1":
            if not _HEX64.fullmatch(item):
                raise InvalidSignature("签名格式不正确：v1 必须是 64 位小写十六进制。")
            macs.append(item)
        # Unknown keys are ignored so a later protocol version can add schemes.
    if timestamp is None or not macs:
        raise InvalidSignature("签名格式不正确：缺少 t 或 v1。")
    current = time.time() if now is None else now
    if abs(current - timestamp) > WINDOW_SECONDS:
        raise InvalidSignature("签名已过期或时间偏差超过 300 秒，请校准时钟后重试。")
    return ParsedSignature(timestamp=timestamp, macs=tuple(macs))


def check_mac(secret: str, parsed: ParsedSignature, body_sha256: str) -> None:
    """Raise unless one of the header's v1 values matches (several allowed: key rotation)."""
    expected = mac(secret, parsed.timestamp, body_sha256)
    # Compare every candidate in constant time, without stopping at the first match,
    # so timing says nothing about which value was close.
    matched = False
    for candidate in parsed.macs:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise InvalidSignature("签名校验失败。")


def verify(secret: str, header: str | None, body: bytes, *, now: float | None = None) -> None:
    """Raise `InvalidSignature` (401) unless `header` signs `body` within the time window."""
    parsed = parse_header(header, now=now)
    check_mac(secret, parsed, hashlib.sha256(body).hexdigest())
