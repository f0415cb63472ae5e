"""统一身份认证 on a phone: portal login → platform login → signed in, axe on each page.

The pages use no script (the httpx tests in tests/test_sso.py run the same flow with
none); axe itself needs JavaScript, so this phone has it on.
"""

from __future__ import annotations

import pytest

from idp.app import create_app as create_idp
from idp.identities import BY_KEY
from portal.app import create_app
from tests.browser.conftest import check_page
from tests.idp.flow import CLIENT_ID, CLIENT_SECRET, idp_settings
from tests.kit import portal_settings
from tests.live import ThreadServer, free_port

pytestmark = pytest.mark.browser


def test_sign_in_through_the_platform_on_a_phone(phone, tmp_path, database_url):
    portal_port, idp_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    idp = create_idp(
        idp_settings(
            tmp_path / "idp", issuer, [f"http://127.0.0.1:{portal_port}/login/sso/callback"]
        )
    )
    settings = portal_settings(
        tmp_path,
        database_url,
        portal_port,
        sso_issuer=issuer,
        sso_client_id=CLIENT_ID,
        sso_client_secret=CLIENT_SECRET,
    )
    with (
        ThreadServer(idp, idp_port) as platform,
        ThreadServer(create_app(settings), portal_port) as portal,
    ):
        page = phone
        page.goto(f"{portal.url}/login?next=/account")
        check_page(page, "sso-01-portal-login")
        page.get_by_role("link", name="统一身份认证登录").click()
        page.wait_for_url(f"{platform.url}/authorize?*")
        check_page(page, "sso-02-platform-login")
        page.get_by_label("王芳", exact=False).check()
        page.locator("#password").fill(BY_KEY["wangfang"].password)
        page.get_by_role("button", name="同意授权并登录").click()
        # First sign-in: the portal asks for consent before it opens the account.
        page.wait_for_url(f"{portal.url}/login/sso/consent")
        check_page(page, "sso-03-consent")
        page.check("#f-privacy_consent")
        page.get_by_role("button", name="同意并继续").click()
        page.wait_for_url(f"{portal.url}/account")
        assert "已通过统一身份认证核验，4 级" in page.content()
        check_page(page, "sso-04-signed-in")
