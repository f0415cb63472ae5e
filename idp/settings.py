"""Settings of the reference identity platform: read once from `IDP_*` environment variables."""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

DEMO_CLIENT_ID = "xzsp-portal"
DEMO_CLIENT_SECRET = "demo-portal-secret"  # noqa: S105 - the documented demo value, refused outside dev
DEMO_REDIRECT_URI = "http://127.0.0.1:8000/login/sso/callback"


class Client(BaseModel):
    """A registered relying party: its secret and the exact redirect URIs it may use."""

    secret: str
    redirect_uris: list[str]


class Settings(BaseSettings):
    """Every knob of the identity platform; nothing else reads the environment."""

    model_config = SettingsConfigDict(env_prefix="IDP_", extra="ignore")

    data_dir: Path = Path("./var/idp")
    # The issuer as relying parties see it (the `iss` of every ID token).
    issuer: str = "http://127.0.0.1:8200"
    # JSON {"client_id": {"secret": "...", "redirect_uris": ["..."]}}; empty: the demo client.
    clients: str = ""
    code_seconds: int = Field(default=60, ge=1)
    token_seconds: int = Field(default=600, ge=1)
    env: str = "dev"  # "dev" tolerates the demo client secret; anything else refuses it

    def registered_clients(self) -> dict[str, Client]:
        if not self.clients.strip():
            return {
                DEMO_CLIENT_ID: Client(secret=DEMO_CLIENT_SECRET, redirect_uris=[DEMO_REDIRECT_URI])
            }
        return {cid: Client(**value) for cid, value in json.loads(self.clients).items()}

    def prepare(self) -> Settings:
        """Create the data dir; refuse the demo client secret outside dev."""
        self.issuer = self.issuer.rstrip("/")
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if any(c.secret == DEMO_CLIENT_SECRET for c in self.registered_clients().values()):
            if self.env != "dev":
                raise RuntimeError("IDP_CLIENTS uses the demo client secret; set a real one")
            log.warning("the identity platform's client secret is the demo value")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings().prepare()
