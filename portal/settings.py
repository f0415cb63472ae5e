"""Settings: read once from the environment (see docs/operations.md)."""

from __future__ import annotations

import logging
import os
import secrets
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import make_url

log = logging.getLogger(__name__)

DEV_BUREAU_SECRET = "dev-secret"  # noqa: S105 - the documented demo default, refused outside dev


class Settings(BaseSettings):
    """Every knob of the portal; nothing else reads the environment."""

    model_config = SettingsConfigDict(env_prefix="PORTAL_", extra="ignore")

    data_dir: Path = Path("./var")
    database_url: str = ""
    secret_key: str = ""
    bureau_url: str = "http://127.0.0.1:8100"
    bureau_secret: str = DEV_BUREAU_SECRET
    public_url: str = "http://127.0.0.1:8000"
    max_upload_mb: int = Field(default=20, ge=1, le=1024)
    dispatcher: bool = True  # pydantic reads "on"/"off"
    retry_first_seconds: float = Field(default=1.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    retry_give_up_hours: float = Field(default=24.0, gt=0)

    # Refinements of the contract (docs/operations.md, "Further settings").
    env: str = "dev"  # "dev" tolerates demo secrets; anything else refuses them
    token_hours: float = 12.0
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    login_max_failures: int = Field(default=5, ge=1)  # per phone from one address
    login_lock_minutes: int = Field(default=15, ge=1)
    # The backstop against guessing from many addresses: per phone from every address it
    # never logged in from, and per address across every phone (docs/security.md).
    login_phone_max_failures: int = Field(default=50, ge=1)
    login_phone_lock_minutes: int = Field(default=60, ge=1)
    # Proxies whose X-Forwarded-For is believed (comma-separated addresses); empty: none.
    forwarded_allow_ips: str = ""
    http_timeout_seconds: float = 10.0
    sms_gateway_url: str = ""
    sms_gateway_key: str = ""
    # SMS one-time codes (identity.md §1): codes one client address may ask for in an hour,
    # and whether registration must prove the phone with one (unset: yes, except in dev).
    sms_codes_per_address_hour: int = Field(default=20, ge=1)
    register_needs_code: bool | None = None
    encryption_keys: str = ""  # comma-separated base64 AES-256 keys, newest first
    draft_retention_days: int = 30
    closed_files_retention_days: int = 90
    log_json: bool = False
    # Templates re-read when their file changes (each render stats every template it
    # uses): for editing them under `make run`; off, a process compiles each once.
    reload_templates: bool = False
    # Requests holding a database transaction at once, per process (portal/db.py, "why
    # requests queue"): reads, writes (0: 1 on SQLite, 2 on PostgreSQL), how many may
    # wait for each, and the longest wait for a slot, SQLite's lock or a connection
    # before a 503 with Retry-After. Readers + writers stay well under the 40 threads.
    db_readers: int = Field(default=10, ge=1, le=30)
    db_writers: int = Field(default=0, ge=0, le=20)
    db_queue: int = Field(default=200, ge=0)
    db_wait_seconds: float = Field(default=10.0, gt=0, le=60)
    # The province's identity platform (OpenID Connect, identity.md); empty: no SSO sign-in.
    sso_issuer: str = ""
    sso_client_id: str = ""
    sso_client_secret: str = ""
    # Test clock: days added to today's date (portal.clock.shift_dates); dev mode only.
    test_clock_days: int = Field(default=0, ge=0, le=20000)

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def is_dev(self) -> bool:
        return self.env == "dev"

    @property
    def sms_codes_available(self) -> bool:
        """Codes can reach a phone: a gateway, or dev mode (the code is printed instead)."""
        return bool(self.sms_gateway_url) or self.is_dev

    @property
    def register_code_required(self) -> bool:
        if self.register_needs_code is None:
            return not self.is_dev
        return self.register_needs_code

    @property
    def https(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def sso_enabled(self) -> bool:
        return bool(self.sso_issuer)

    def prepare(self) -> Settings:
        """Create the data dir, fill in derived defaults, refuse demo secrets outside dev."""
        self.data_dir = self.data_dir.resolve()
        if not self.data_dir.exists():
            # Only the portal's user may list it: it holds the database, keys and uploads.
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'portal.db'}"
        _private_sqlite_file(self.database_url)
        if not self.secret_key:
            self.secret_key = _kept_secret(self.data_dir / "secret_key")
        if self.sso_issuer:
            self.sso_issuer = self.sso_issuer.rstrip("/")
            if problem := sso_issuer_problem(self.sso_issuer):
                raise RuntimeError(f"PORTAL_SSO_ISSUER: {problem}")
            if not self.sso_client_id or not self.sso_client_secret:
                raise RuntimeError("PORTAL_SSO_ISSUER is set: set PORTAL_SSO_CLIENT_ID and _SECRET")
        if self.test_clock_days and not self.is_dev:
            raise RuntimeError("PORTAL_TEST_CLOCK_DAYS moves the date: it is for dev mode only")
        if self.bureau_secret == DEV_BUREAU_SECRET:
            if not self.is_dev:
                raise RuntimeError("PORTAL_BUREAU_SECRET is the demo value; set a real secret")
            log.warning(
                "PORTAL_BUREAU_SECRET is the demo value 'dev-secret': "
                "anyone can forge back-office callbacks. Set a real secret in production."
            )
        return self


LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


def sso_issuer_problem(issuer: str) -> str | None:
    """None for an HTTPS issuer, or plain HTTP on loopback (development and tests only).

    Anywhere else plain HTTP would let anyone on the path read the client secret and
    the citizen's codes, and swap the JWKS the ID tokens are checked against.
    """
    parts = urlsplit(issuer)
    if not parts.hostname:
        return "not a URL"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return None
    return "must be https:// (plain http only on loopback)"


def _private_sqlite_file(url: str) -> None:
    """A SQLite database file readable by the portal's user alone (0600).

    SQLite would create it with the umask's mode (often world-readable), and it holds ID
    and phone numbers in clear. Created empty here first (a valid empty database); SQLite
    gives its -wal and -shm files the mode of the database file.
    """
    if not url.startswith("sqlite"):
        return
    name = make_url(url).database
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if each.exists() and each.stat().st_mode & 0o077:
                each.chmod(0o600)  # made by an older version, or copied in
    except OSError as exc:  # a read-only mount, someone else's file: SQLite will say more
        log.warning("could not make %s private: %s", path, exc)


def _kept_secret(path: Path) -> str:
    """A random secret generated once and kept in the data dir (so restarts keep sessions)."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = secrets.token_urlsafe(48)
        path.write_text(value)
        path.chmod(0o600)
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings().prepare()
