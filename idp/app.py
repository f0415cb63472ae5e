"""The reference identity platform: an OpenID Connect provider for the portal to rely on.

Authorization code flow only, PKCE S256 required, confidential clients
(`client_secret_basic`), ID tokens signed RS256 with joserfc. Codes and access tokens
live in this process's memory: a reference platform runs as one process, and a
restart simply asks the citizen to sign in again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from joserfc import jwt
from starlette.templating import Jinja2Templates

from idp.identities import BY_KEY, BY_SUB, DEMO_IDENTITIES, LEVEL_METHODS, Identity
from idp.keys import public_jwks, signing_key
from idp.settings import Client, Settings, get_settings

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
SCOPES = ("openid", "profile", "phone", "cn_identity")
PENDING_SECONDS = 600  # how long the login page may stay open


@dataclass
class Pending:
    """An authorization request waiting on the login page (kept here, not in the form)."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str
    expires: float


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    sub: str
    nonce: str | None
    code_challenge: str
    expires: float
    auth_time: int


class Store:
    """Pending requests, codes and access tokens; each code is taken at most once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[str, Pending] = {}
        self.codes: dict[str, Grant] = {}
        self.tokens: dict[str, tuple[str, float]] = {}  # access token -> (sub, expires)

    def take_code(self, code: str) -> Grant | None:
        with self.lock:
            grant = self.codes.pop(code, None)
        if grant is None or grant.expires < time.time():
            return None
        return grant


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _half_hash(value: str) -> str:
    """at_hash of OpenID Connect Core 3.1.3.6: the left half of SHA-256, base64url."""
    digest = hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def _oauth_error(status: int, error: str, description: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store", **headers},
    )


def _page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status)


def _client_from_basic(header: str, clients: dict[str, Client]) -> str | None:
    """client_secret_basic (RFC 6749 2.3.1): the client id, or None when it does not match."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    client_id, secret = unquote(client_id), unquote(secret)
    client = clients.get(client_id)
    # Compared in constant time, and a made-up client id costs the same comparison.
    expected = client.secret if client else secrets.token_urlsafe(16)
    if not sep or not hmac.compare_digest(expected.encode(), secret.encode()) or client is None:
        return None
    return client_id


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    key = signing_key(settings.data_dir)
    jwks = public_jwks(key)
    clients = settings.registered_clients()
    store = Store()
    issuer = settings.issuer

    app = FastAPI(
        title="统一身份认证平台（参考实现）", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.settings = settings
    app.state.store = store

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request):
        return _page(
            request,
            "home.html",
            {"identities": DEMO_IDENTITIES, "methods": LEVEL_METHODS, "issuer": issuer},
        )

    @app.get("/.well-known/openid-configuration")
    def discovery() -> dict[str, Any]:
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "jwks_uri": f"{issuer}/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": list(SCOPES),
            "claims_supported": [
                "sub", "name", "cn_subject_type", "cn_id_type", "cn_id_number",
                "cn_trust_level", "phone_number", "phone_number_verified",
                "cn_legal_rep", "cn_operator",
            ],
        }  # fmt: skip

    @app.get("/jwks")
    def jwks_endpoint() -> dict[str, Any]:
        return jwks

    @app.get("/authorize", response_class=HTMLResponse)
    def authorize(request: Request):
        q = request.query_params
        client = clients.get(q.get("client_id", ""))
        redirect_uri = q.get("redirect_uri", "")
        if client is None or redirect_uri not in client.redirect_uris:
            # Never redirect to a URI nobody registered (RFC 6749 4.1.2.1): say it here.
            return _page(
                request,
                "error.html",
                {"message": "应用未登记或回调地址不符，无法继续登录。"},
                status=400,
            )
        state = q.get("state")

        def back(error: str, description: str) -> RedirectResponse:
            params = {"error": error, "error_description": description}
            if state is not None:
                params["state"] = state
            return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", status_code=303)

        if q.get("response_type") != "code":
            return back("unsupported_response_type", "only response_type=code")
        if "openid" not in q.get("scope", "").split():
            return back("invalid_scope", "scope must include openid")
        challenge = q.get("code_challenge", "")
        if q.get("code_challenge_method") != "S256" or not (43 <= len(challenge) <= 128):
            return back("invalid_request", "PKCE with code_challenge_method=S256 is required")
        txn = secrets.token_urlsafe(24)
        with store.lock:
            now = time.time()
            for old in [k for k, p in store.pending.items() if p.expires < now]:
                del store.pending[old]
            store.pending[txn] = Pending(
                client_id=q["client_id"],
                redirect_uri=redirect_uri,
                scope=q.get("scope", ""),
                state=state,
                nonce=q.get("nonce"),
                code_challenge=challenge,
                expires=now + PENDING_SECONDS,
            )
        return _login_page(request, txn)

    def _login_page(
        request: Request, txn: str, *, error: str = "", chosen: str = "", status: int = 200
    ) -> HTMLResponse:
        return _page(
            request,
            "login.html",
            {
                "txn": txn,
                "identities": DEMO_IDENTITIES,
                "methods": LEVEL_METHODS,
                "error": error,
                "chosen": chosen,
            },
            status=status,
        )

    @app.post("/authorize", response_class=HTMLResponse)
    async def authorize_submit(request: Request):
        form = await request.form(max_files=0, max_fields=20)
        txn = str(form.get("txn", ""))
        with store.lock:
            pending = store.pending.get(txn)
        if pending is None or pending.expires < time.time():
            return _page(
                request,
                "error.html",
                {"message": "登录页面已过期，请回到办事网站重新发起登录。"},
                400,
            )
        if form.get("action") == "cancel":
            with store.lock:
                store.pending.pop(txn, None)
            params = {"error": "access_denied", "error_description": "cancelled"}
            if pending.state is not None:
                params["state"] = pending.state
            return RedirectResponse(f"{pending.redirect_uri}?{urlencode(params)}", status_code=303)
        chosen = str(form.get("identity", ""))
        identity: Identity | None = BY_KEY.get(chosen)
        password = str(form.get("password", ""))
        if identity is None:
            return _login_page(request, txn, error="请选择一个演示身份", status=422)
        if not hmac.compare_digest(identity.password.encode(), password.encode()):
            return _login_page(
                request, txn, error="密码不正确，请核对演示密码", chosen=chosen, status=401
            )
        with store.lock:
            store.pending.pop(txn, None)
            code = secrets.token_urlsafe(32)
            store.codes[code] = Grant(
                client_id=pending.client_id,
                redirect_uri=pending.redirect_uri,
                sub=identity.sub,
                nonce=pending.nonce,
                code_challenge=pending.code_challenge,
                expires=time.time() + settings.code_seconds,
                auth_time=int(time.time()),
            )
        params = {"code": code}
        if pending.state is not None:
            params["state"] = pending.state
        return RedirectResponse(f"{pending.redirect_uri}?{urlencode(params)}", status_code=303)

    @app.post("/token")
    async def token(request: Request) -> Response:
        client_id = _client_from_basic(request.headers.get("authorization", ""), clients)
        if client_id is None:
            return _oauth_error(
                401, "invalid_client", "client authentication failed",
                **{"WWW-Authenticate": 'Basic realm="idp"'},
            )  # fmt: skip
        form = await request.form(max_files=0, max_fields=20)
        if form.get("grant_type") != "authorization_code":
            return _oauth_error(400, "unsupported_grant_type", "only authorization_code")
        grant = store.take_code(str(form.get("code", "")))
        if grant is None or grant.client_id != client_id:
            return _oauth_error(400, "invalid_grant", "code unknown, expired or already used")
        if form.get("redirect_uri") != grant.redirect_uri:
            return _oauth_error(400, "invalid_grant", "redirect_uri does not match")
        verifier = str(form.get("code_verifier", ""))
        if not (43 <= len(verifier) <= 128) or not hmac.compare_digest(
            _s256(verifier), grant.code_challenge
        ):
            return _oauth_error(400, "invalid_grant", "PKCE code_verifier does not match")
        access_token = secrets.token_urlsafe(32)
        now = int(time.time())
        with store.lock:
            store.tokens[access_token] = (grant.sub, now + settings.token_seconds)
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": settings.token_seconds,
                "scope": " ".join(SCOPES),
                "id_token": make_id_token(
                    issuer=issuer,
                    key=key,
                    client_id=client_id,
                    grant=grant,
                    access_token=access_token,
                    lifetime=settings.token_seconds,
                ),
            },
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    @app.get("/userinfo")
    def userinfo(request: Request) -> Response:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        with store.lock:
            entry = store.tokens.get(value) if scheme.lower() == "bearer" else None
        if entry is None or entry[1] < time.time():
            return _oauth_error(
                401, "invalid_token", "access token unknown or expired",
                **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )  # fmt: skip
        return JSONResponse(BY_SUB[entry[0]].claims(), headers={"Cache-Control": "no-store"})

    return app


def make_id_token(
    *, issuer: str, key, client_id: str, grant: Grant, access_token: str, lifetime: int
) -> str:
    """The ID token: the standard claims, the nonce of the request and identity.md's claims."""
    now = int(time.time())
    claims: dict[str, Any] = {
        **BY_SUB[grant.sub].claims(),
        "iss": issuer,
        "aud": client_id,
        "iat": now,
        "exp": now + lifetime,
        "auth_time": grant.auth_time,
        "at_hash": _half_hash(access_token),
    }
    if grant.nonce is not None:
        claims["nonce"] = grant.nonce
    return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, claims, key)
