"""Driving the reference identity platform like a relying party and a phone would."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from idp.identities import BY_KEY
from idp.settings import Settings

CLIENT_ID = "test-portal"
CLIENT_SECRET = "test-portal-secret"


def idp_settings(data_dir: Path, issuer: str, redirect_uris: list[str]) -> Settings:
    clients = {CLIENT_ID: {"secret": CLIENT_SECRET, "redirect_uris": redirect_uris}}
    return Settings(data_dir=data_dir, issuer=issuer, clients=json.dumps(clients)).prepare()


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def txn_of(page: str) -> str:
    match = re.search(r'name="txn" value="([^"]+)"', page)
    assert match, page[:500]
    return match.group(1)


def sign_in(http: httpx.Client, login_page: httpx.Response, key: str) -> httpx.Response:
    """Choose a demo identity on the platform's login page and type its password."""
    assert login_page.status_code == 200, login_page.text[:500]
    return http.post(
        str(login_page.url.copy_with(query=None)),
        data={
            "txn": txn_of(login_page.text),
            "identity": key,
            "password": BY_KEY[key].password,
            "action": "login",
        },
    )


def query_of(response: httpx.Response) -> dict[str, str]:
    location = response.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
