"""Settings of the reference back office: read once from `BUREAU_*` environment variables."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from pydantic import Field, PrivateAttr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bureau.blobs import new_key, parse_key

log = logging.getLogger(__name__)

DEV_SECRET = "dev-secret"  # noqa: S105 - the documented demo default, refused outside dev


class Settings(BaseSettings):
    """Every knob of the back office; nothing else reads the environment."""

    model_config = SettingsConfigDict(env_prefix="BUREAU_", extra="ignore")

    data_dir: Path = Path("./var/bureau")
    database_url: str = ""
    secret: str = DEV_SECRET
    portal_url: str = "http://127.0.0.1:8000"
    public_url: str = "http://127.0.0.1:8100"
    session_key: str = ""
    blob_key: str = ""  # base64 AES-256 key for files at rest; generated in dev, required else
    staff_user: str = "staff"
    staff_password: str = ""
    retry_first_seconds: float = Field(default=1.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    retry_give_up_hours: float = Field(default=24.0, gt=0)
    dispatcher: bool = True  # pydantic reads "on"/"off"

    # Additions beyond the brief, each with a safe default.
    env: str = "dev"  # "dev" tolerates the demo secret; anything else refuses it
    http_timeout_seconds: float = Field(default=10.0, gt=0)
    max_blob_mb: int = Field(default=100, ge=1)
    licence_font: str = ""  # path of a TrueType CJK font to embed in licences

    _prepared: bool = PrivateAttr(default=False)

    @property
    def is_dev(self) -> bool:
        return self.env == "dev"

    @property
    def callback_url(self) -> str:
        return self.portal_url.rstrip("/") + "/api/bureau/v1/events"

    @property
    def max_blob_bytes(self) -> int:
        return self.max_blob_mb * 1024 * 1024

    @property
    def https(self) -> bool:
        return self.public_url.startswith("https://")

    def verify_url(self, licence_number: str) -> str:
        return f"{self.public_url.rstrip('/')}/verify/{licence_number}"

    def prepare(self) -> Settings:
        """Create the data dir, fill in derived defaults, refuse the demo secret outside dev."""
        if self._prepared:
            return self
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'bureau.db'}"
        if not self.session_key:
            self.session_key = _kept_secret(self.data_dir / "session_key")
        if self.secret == DEV_SECRET:
            if not self.is_dev:
                raise RuntimeError("BUREAU_SECRET is the demo value; set the real shared secret")
            log.warning(
                "\n%s\nBUREAU_SECRET is the demo value 'dev-secret': anyone can forge portal "
                "events and read issued licences.\nSet the shared secret (equal to the "
                "portal's PORTAL_BUREAU_SECRET) outside a demo.\n%s",
                "!" * 72,
                "!" * 72,
            )
        if not self.blob_key:
            if not self.is_dev:
                # A key generated beside the data would protect nothing the disk's
                # reader does not also get: outside dev it comes from the operator.
                raise RuntimeError(
                    "BUREAU_BLOB_KEY is not set; generate one with `bureau blob-key` "
                    "and keep it apart from the data dir"
                )
            self.blob_key = _kept_secret(self.data_dir / "blob_key", new_key)
        parse_key(self.blob_key)  # ValueError at start-up, not at the first upload
        self._prepared = True
        return self


def _kept_secret(path: Path, make: Callable[[], str] = lambda: secrets.token_urlsafe(48)) -> str:
    """A random secret generated once and kept in the data dir, so restarts keep sessions."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = make()
        path.write_text(value)
        path.chmod(0o600)
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings().prepare()
