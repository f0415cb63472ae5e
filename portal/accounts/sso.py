"""统一身份认证 sign-in pages: the portal as an OpenID Connect relying party (identity.md §2).

Authlib's Starlette client does the protocol: discovery, PKCE S256, `state` and
`nonce` kept in the page session, the code exchanged with client_secret_basic, and
the ID token checked RS256 against the platform's JWKS (iss, aud, exp, nonce).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import Request
from joserfc.errors import JoseError
from starlette.concurrency import run_in_threadpool

from portal.accounts import identity as service
from portal.accounts import sso_consent as privacy_consent
from portal.errors import DomainError, NotFound
from portal.routing import Router
from portal.settings import Settings, sso_issuer_problem
from portal.web import flash, redirect, render, safe_next

log = logging.getLogger(__name__)

router = Router(include_in_schema=False)

SCOPE = "openid profile phone cn_identity"
CALLBACK_PATH = "/login/sso/callback"
NEXT_KEY = "sso_next"
# Clock skew tolerated on iat/exp; the platform's tokens live minutes, not hours.
LEEWAY_SECONDS = 60

FAILED = "统一身份认证登录未能完成"


class SsoUnavailable(DomainError):
    status = 503
    code = "sso_unavailable"


def _client(request: Request) -> Any:
    """One registered client per app, made on first use (so no request at start-up)."""
    app = request.app
    client = getattr(app.state, "sso_client", None)
    if client is None:
        settings: Settings = app.state.settings
        oauth = OAuth()
        client = oauth.register(
            name="sso",
            server_metadata_url=f"{settings.sso_issuer}/.well-known/openid-configuration",
            client_id=settings.sso_client_id,
            client_secret=settings.sso_client_secret,
            client_kwargs={
                "scope": SCOPE,
                "code_challenge_method": "S256",
                "token_endpoint_auth_method": "client_secret_basic",
                "timeout": settings.http_timeout_seconds,
            },
        )
        app.state.sso_client = client
    return client


async def _metadata(request: Request, client: Any) -> dict[str, Any]:
    """Discovery, checked: the issuer it names is ours and every endpoint is HTTPS
    (plain HTTP on loopback only), so nobody can slip in another token endpoint or JWKS."""
    settings: Settings = request.app.state.settings
    try:
        metadata = await client.load_server_metadata()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("identity platform discovery failed: %s", exc)
        client.server_metadata.clear()
        raise SsoUnavailable(
            "统一身份认证平台暂时无法访问，请稍后再试，或用手机号码和密码登录。"
        ) from exc
    endpoints = ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint")
    if metadata.get("issuer") != settings.sso_issuer or any(
        sso_issuer_problem(str(metadata.get(name, ""))) for name in endpoints[:3]
    ):
        log.error("identity platform discovery does not match PORTAL_SSO_ISSUER")
        client.server_metadata.clear()
        raise SsoUnavailable("统一身份认证平台配置有误，请稍后再试，或用手机号码和密码登录。")
    return metadata


def _callback_url(request: Request) -> str:
    return request.app.state.settings.public_url.rstrip("/") + CALLBACK_PATH


def _failed(request: Request, message: str, status: int = 400):
    return render(
        request,
        "error.html",
        {"status": status, "title": FAILED, "message": message},
        status_code=status,
    )


@router.get("/login/sso")
async def sso_start(request: Request, next: str = ""):
    """Off to the platform's login page; it comes back to the callback with a code."""
    if not request.app.state.settings.sso_enabled:
        raise NotFound("未开通统一身份认证登录。")
    client = _client(request)
    await _metadata(request, client)
    request.session[NEXT_KEY] = safe_next(next)
    response = await client.authorize_redirect(request, _callback_url(request))
    return redirect(response.headers["location"])


@router.get(CALLBACK_PATH)
async def sso_callback(request: Request):
    """Checks state, code and ID token, then signs the verified person in (or says why not)."""
    if not request.app.state.settings.sso_enabled:
        raise NotFound("未开通统一身份认证登录。")
    client = _client(request)
    await _metadata(request, client)
    if request.query_params.get("error") == "access_denied":
        flash(request, "您已取消统一身份认证登录。", "warning")
        return redirect("/login")
    try:
        token = await client.authorize_access_token(request, leeway=LEEWAY_SECONDS)
        claims = dict(token.get("userinfo") or {})
        if not claims:
            raise OAuthError(description="no ID token")
        if "cn_id_number" not in claims:
            # Claims may come from userinfo instead of the ID token (identity.md §2).
            extra = dict(await client.userinfo(token=token))
            if extra.get("sub") != claims["sub"]:
                raise OAuthError(description="userinfo sub differs")
            claims = {**extra, **claims}
        identity = service.identity_from_claims(claims)
    except (OAuthError, JoseError, httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        # A wrong or missing state, a refused code, a token that fails any check: nobody
        # is signed in, and the page says so (the reason goes to the log, not the page).
        log.warning("SSO callback refused: %s: %s", type(exc).__name__, exc)
        return _failed(
            request,
            "登录信息校验未通过（可能已过期或被篡改）。请返回登录页重新发起统一身份认证登录。",
        )
    except service.BadIdentity as exc:
        log.warning("SSO claims refused: %s", exc.message)
        return _failed(request, exc.message)
    next_url = request.session.get(NEXT_KEY) or "/cases"
    if await run_in_threadpool(privacy_consent.needs_consent, request, identity):
        # First sign-in through the platform: nothing is created or linked before the
        # citizen has read what the portal keeps and agreed (PIPL art. 14).
        await run_in_threadpool(privacy_consent.hold, request, identity, next_url)
        return redirect(privacy_consent.CONSENT_PATH)
    return await privacy_consent.finish_sign_in(request, identity, next_url)
