"""The reference identity platform on its own: PKCE, single-use codes, client auth, JWKS."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet
from stdnum.cn import ric, uscc

from idp.app import create_app
from idp.identities import BY_KEY, DEMO_IDENTITIES
from tests.idp.flow import CLIENT_ID, CLIENT_SECRET, idp_settings, pkce, query_of, sign_in

ISSUER = "http://idp.test"
REDIRECT = "http://rp.test/cb"


@pytest.fixture
def idp(tmp_path):
    app = create_app(idp_settings(tmp_path / "idp", ISSUER, [REDIRECT]))
    with TestClient(app, base_url=ISSUER, follow_redirects=False) as client:
        yield client


def _authorize(idp, challenge: str | None, *, state="st-1", nonce="n-1", **extra):
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": "openid profile phone cn_identity",
        "state": state,
        "nonce": nonce,
        **extra,
    }
    if challenge is not None:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return idp.get("/authorize", params=params)


def _code(idp, key="lina", **kw) -> tuple[str, str]:
    verifier, challenge = pkce()
    answer = sign_in(idp, _authorize(idp, challenge, **kw), key)
    assert answer.status_code == 303
    query = query_of(answer)
    assert query["state"] == kw.get("state", "st-1")
    return query["code"], verifier


def _token(idp, code, verifier, auth=(CLIENT_ID, CLIENT_SECRET)):
    return idp.post(
        "/token",
        auth=auth,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )


def test_discovery_names_the_endpoints_and_s256(idp):
    meta = idp.get("/.well-known/openid-configuration").json()
    assert meta["issuer"] == ISSUER
    assert meta["jwks_uri"] == f"{ISSUER}/jwks"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["token_endpoint_auth_methods_supported"] == ["client_secret_basic"]
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]


def test_pkce_is_required(idp):
    answer = _authorize(idp, None)
    assert answer.status_code == 303
    assert query_of(answer) == {
        "error": "invalid_request",
        "error_description": "PKCE with code_challenge_method=S256 is required",
        "state": "st-1",
    }
    plain = _authorize(idp, None, code_challenge="x" * 43, code_challenge_method="plain")
    assert query_of(plain)["error"] == "invalid_request"


def test_wrong_verifier_is_refused(idp):
    code, _ = _code(idp)
    other, _ = pkce()
    answer = _token(idp, code, other)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_an_unregistered_redirect_uri_is_never_followed(idp):
    _, challenge = pkce()
    answer = _authorize(idp, challenge, redirect_uri="https://evil.example/cb")
    assert answer.status_code == 400
    assert "回调地址不符" in answer.text


def test_code_is_single_use_and_the_id_token_verifies_against_jwks(idp):
    code, verifier = _code(idp, key="lina", nonce="nonce-42")
    first = _token(idp, code, verifier)
    assert first.status_code == 200, first.text
    assert _token(idp, code, verifier).json()["error"] == "invalid_grant"

    keys = KeySet.import_key_set(idp.get("/jwks").json())
    token = jwt.decode(first.json()["id_token"], keys, algorithms=["RS256"])
    assert token.header["alg"] == "RS256"
    claims = token.claims
    lina = BY_KEY["lina"]
    assert claims["iss"] == ISSUER and claims["aud"] == CLIENT_ID
    assert claims["nonce"] == "nonce-42"
    assert claims["exp"] > claims["iat"]
    assert claims["sub"] == lina.sub
    assert claims["cn_id_number"] == lina.id_number and ric.is_valid(claims["cn_id_number"])
    assert claims["cn_trust_level"] == 3
    assert claims["phone_number"] == "+86" + lina.phone and claims["phone_number_verified"]

    info = idp.get("/userinfo", headers={"Authorization": f"Bearer {first.json()['access_token']}"})
    assert info.status_code == 200 and info.json()["sub"] == lina.sub
    assert idp.get("/userinfo", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_wrong_client_secret_is_401(idp):
    code, verifier = _code(idp)
    answer = _token(idp, code, verifier, auth=(CLIENT_ID, "wrong"))
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert answer.headers["www-authenticate"].startswith("Basic")
    assert _token(idp, code, verifier, auth=("nobody", CLIENT_SECRET)).status_code == 401


def test_wrong_password_keeps_the_citizen_on_the_login_page(idp):
    _, challenge = pkce()
    page = _authorize(idp, challenge)
    from tests.idp.flow import txn_of

    answer = idp.post(
        "/authorize",
        data={"txn": txn_of(page.text), "identity": "lina", "password": "x", "action": "login"},
    )
    assert answer.status_code == 401
    assert "密码不正确" in answer.text


def test_legal_persons_carry_rep_and_operator_and_valid_uscc(idp):
    code, verifier = _code(idp, key="huimin")
    claims = jwt.decode(
        _token(idp, code, verifier).json()["id_token"],
        KeySet.import_key_set(idp.get("/jwks").json()),
    ).claims
    assert claims["cn_subject_type"] == "legal_person" and claims["cn_id_type"] == "USCC"
    assert uscc.is_valid(claims["cn_id_number"])
    assert claims["cn_legal_rep"]["name"] and ric.is_valid(claims["cn_operator"]["id_number"])


def test_demo_identities_cover_every_level_for_both_kinds(idp):
    levels = {(i.subject_type, i.level) for i in DEMO_IDENTITIES}
    assert {(k, n) for k in ("person", "legal_person") for n in (2, 3, 4)} <= levels
    home = idp.get("/")
    for identity in DEMO_IDENTITIES:
        assert identity.name in home.text and identity.password in home.text


def test_the_signing_key_is_kept_across_restarts(tmp_path):
    first = create_app(idp_settings(tmp_path, ISSUER, [REDIRECT]))
    second = create_app(idp_settings(tmp_path, ISSUER, [REDIRECT]))
    with TestClient(first) as a, TestClient(second) as b:
        assert a.get("/jwks").json() == b.get("/jwks").json()
    assert (tmp_path / "signing-key.jwk.json").stat().st_mode & 0o077 == 0


def test_the_platform_imports_nothing_from_the_portal_or_the_back_office():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "idp"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.split(".")[0] not in ("portal", "bureau", "tests"), (path, name)
