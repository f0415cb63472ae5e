"""Staff sign-in: argon2 passwords, a throttle on failures, CSRF tokens, HTTP Basic for the API."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from bureau.clock import utcnow
from bureau.errors import Forbidden, Throttled, Unauthenticated
from bureau.models import StaffUser
from bureau.settings import Settings

_hasher = PasswordHasher()
_dummy_hash: str | None = None

SESSION_ID = "sid"
SESSION_CSRF = "csrf"
SESSION_MAX_HOURS = 12
CSRF_FIELD = "csrf_token"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; with no account the work is the same, so timing shows nothing."""
    global _dummy_hash
    if password_hash is None and _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
    try:
        return _hasher.verify(password_hash or _dummy_hash or "", password) and (
            password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


def seed_staff(session: Session, settings: Settings) -> str | None:
    """Create the configured account, or sync its password; returns a password it generated."""
    user = session.scalars(
        select(StaffUser).where(StaffUser.username == settings.staff_user)
    ).first()
    if settings.staff_password:
        if user is None:
            session.add(
                StaffUser(
                    username=settings.staff_user,
                    password_hash=hash_password(settings.staff_password),
                )
            )
        elif not verify_password(user.password_hash, settings.staff_password):
            # The environment is the source of truth: setting it resets a lost password.
            user.password_hash = hash_password(settings.staff_password)
        return None
    if user is not None:
        return None
    if not settings.is_dev:
        raise RuntimeError("BUREAU_STAFF_PASSWORD must be set outside dev mode")
    generated = secrets.token_urlsafe(12)
    session.add(StaffUser(username=settings.staff_user, password_hash=hash_password(generated)))
    return generated


class LoginThrottle:
    """Counts failed sign-ins; locks for a while past a limit.

    The main limit counts one account from one address, so failures from elsewhere never
    lock a clerk out of their own computer. Backstops, higher and slower: an account from
    every address it never signed in from (guessing from many hosts), and an address across
    every account. In memory and per process: enough for one reference back office, and
    it resets on restart, which an operator locked out by a typo may even welcome.
    """

    def __init__(
        self,
        *,
        per_pair: int = 5,
        per_user: int = 50,
        per_address: int = 20,
        window: int = 900,
        lock: int = 900,
        backstop_window: int = 3600,
        backstop_lock: int = 3600,
    ) -> None:
        self.limits = {"pair": per_pair, "user": per_user, "ip": per_address}
        self.windows = {"pair": (window, lock), "user": (backstop_window, backstop_lock)}
        self.windows["ip"] = self.windows["user"]
        self._failures: dict[str, list[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._known: set[tuple[str, str]] = set()  # (user, address) that signed in
        self._mutex = threading.Lock()

    def keys(self, username: str, address: str) -> list[str]:
        """The counters that hold this attempt back (the account's own backstop spares
        the addresses it signed in from)."""
        user = username.strip().lower()
        keys = [f"pair:{user}\x00{address}", f"ip:{address}"]
        with self._mutex:
            if (user, address) not in self._known:
                keys.append(f"user:{user}")
        return keys

    def check(self, keys: Iterable[str]) -> None:
        now = time.monotonic()
        with self._mutex:
            wait = max((self._locked_until.get(k, 0.0) - now for k in keys), default=0.0)
        if wait > 0:
            minutes = max(1, round(wait / 60))
            raise Throttled(
                f"登录失败次数过多，请 {minutes} 分钟后再试。", retry_after=int(wait) + 1
            )

    def failed(self, username: str, address: str) -> None:
        """Count one failure on every counter (even the spared backstop keeps counting)."""
        user = username.strip().lower()
        now = time.monotonic()
        with self._mutex:
            for key in (f"pair:{user}\x00{address}", f"ip:{address}", f"user:{user}"):
                kind = key.split(":", 1)[0]
                window, lock = self.windows[kind]
                recent = [t for t in self._failures.get(key, []) if now - t < window]
                recent.append(now)
                self._failures[key] = recent
                if len(recent) >= self.limits[kind]:
                    self._locked_until[key] = now + lock
                    self._failures[key] = []
            if len(self._failures) > 10000:  # a flood of made-up names: forget old counts
                self._failures.clear()

    def succeeded(self, username: str, address: str) -> None:
        user = username.strip().lower()
        with self._mutex:
            self._failures.pop(f"pair:{user}\x00{address}", None)
            if len(self._known) > 10000:
                self._known.clear()
            self._known.add((user, address))


def authenticate(
    session: Session,
    *,
    username: str,
    password: str,
    address: str,
    throttle: LoginThrottle,
    record: bool = True,
) -> StaffUser:
    """The staff account for these credentials, or 401 (429 after repeated failures).

    `record=False` (API calls) changes nothing, so a read-only session is enough.
    """
    throttle.check(throttle.keys(username, address))
    user = session.scalars(select(StaffUser).where(StaffUser.username == username.strip())).first()
    if not verify_password(user.password_hash if user else None, password):
        throttle.failed(username, address)
        # One message whether or not the account exists, so usernames don't leak.
        raise Unauthenticated("用户名或密码不正确。")
    assert user is not None
    throttle.succeeded(username, address)
    if not record:
        return user
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    return user


class BasicAuthCache:
    """Remembers recently verified API credentials, so automation doesn't pay argon2 per call."""

    def __init__(self, ttl: float = 300.0) -> None:
        self.ttl = ttl
        self._key = secrets.token_bytes(32)
        self._entries: dict[str, float] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._mutex = threading.Lock()

    def _fingerprint(self, username: str, password: str) -> str:
        # A keyed hash, so the cache never holds a password or a guessable digest of it.
        message = f"{username}\x00{password}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def hit(self, username: str, password: str) -> bool:
        fingerprint = self._fingerprint(username, password)
        with self._mutex:
            expires = self._entries.get(fingerprint)
            return expires is not None and expires > time.monotonic()

    def lock_for(self, username: str, password: str) -> threading.Lock:
        """One lock per credential pair: a burst of first calls runs argon2 once, not N times."""
        fingerprint = self._fingerprint(username, password)
        with self._mutex:
            if len(self._locks) > 1000:
                self._locks.clear()
            return self._locks.setdefault(fingerprint, threading.Lock())

    def remember(self, username: str, password: str) -> None:
        with self._mutex:
            if len(self._entries) > 1000:
                self._entries.clear()
            self._entries[self._fingerprint(username, password)] = time.monotonic() + self.ttl


def basic_credentials(request: Request) -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise Unauthenticated(
            "需要工作人员身份认证（HTTP Basic）。",
            headers={"WWW-Authenticate": 'Basic realm="bureau"'},
        )
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    username, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthenticated(
            "认证信息格式不正确。", headers={"WWW-Authenticate": 'Basic realm="bureau"'}
        )
    return username, password


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# -- console session and CSRF --------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get(SESSION_CSRF)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_CSRF] = token
    return token


def check_csrf(request: Request, sent: object) -> None:
    """403 unless the form carries this session's token (a cross-site form cannot know it)."""
    expected = request.session.get(SESSION_CSRF)
    if not (
        isinstance(sent, str)
        and isinstance(expected, str)
        and expected
        and hmac.compare_digest(sent.encode(), expected.encode())
    ):
        raise Forbidden("页面已过期或请求来源不明，请刷新页面后重试。")


class StaffSessions:
    """Console sign-ins held on the server: the cookie carries only a random id, so signing
    out ends the sign-in itself and a copy of the cookie is worthless afterwards.

    In memory, like the throttle: the reference back office is one process, and a restart
    signs every clerk out, which errs on the safe side.
    """

    def __init__(self, max_age: int = SESSION_MAX_HOURS * 3600) -> None:
        self.max_age = max_age
        self._live: dict[str, tuple[str, float]] = {}  # id -> (username, started)
        self._mutex = threading.Lock()

    def start(self, username: str) -> str:
        sid = secrets.token_urlsafe(32)
        now = time.time()
        with self._mutex:
            self._live = {k: v for k, v in self._live.items() if now - v[1] < self.max_age}
            self._live[sid] = (username, now)
        return sid

    def staff(self, sid: object) -> str | None:
        if not isinstance(sid, str):
            return None
        with self._mutex:
            entry = self._live.get(sid)
        if entry is None or time.time() - entry[1] > self.max_age:
            return None
        return entry[0]

    def end(self, sid: object) -> None:
        if isinstance(sid, str):
            with self._mutex:
                self._live.pop(sid, None)


def _sessions(request: Request) -> StaffSessions:
    return request.app.state.staff_sessions


def start_session(request: Request, username: str) -> None:
    # A fresh session (and CSRF token) at sign-in, so nothing planted before carries over.
    request.session.clear()
    request.session[SESSION_ID] = _sessions(request).start(username)
    csrf_token(request)


def end_session(request: Request) -> None:
    """Sign out: the server forgets the sign-in, then the cookie is emptied."""
    _sessions(request).end(request.session.get(SESSION_ID))
    request.session.clear()


def session_staff(request: Request) -> str | None:
    username = _sessions(request).staff(request.session.get(SESSION_ID))
    if username is None and SESSION_ID in request.session:
        request.session.pop(SESSION_ID, None)
    return username
