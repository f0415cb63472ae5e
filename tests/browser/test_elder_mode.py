"""长辈版 on a 360 px phone: larger text, every tap target ≥ 44 px, no axe violations."""

from __future__ import annotations

import pytest

from tests.browser.conftest import check_page
from tests.conftest import pick_item
from tests.live import ThreadServer

pytestmark = pytest.mark.browser


@pytest.fixture
def server(app):
    with ThreadServer(app) as live:
        yield live


def test_elder_mode_pages_on_a_small_phone(server, client, phone):
    page = phone
    page.set_viewport_size({"width": 360, "height": 740})
    item = pick_item(client, prereview=True)
    page.goto(server.url + "/")
    standard = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    page.click("nav >> text=长辈版")
    page.wait_for_selector("html.elder")
    elder = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    assert elder >= 20 and elder >= standard * 1.2
    for path, name in (
        ("/", "elder-home"),
        (f"/items/{item['code']}", "elder-item"),
        ("/status", "elder-status"),
    ):
        page.goto(server.url + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, path
        check_page(page, name)
    page.click("nav >> text=标准版")
    page.wait_for_selector("html:not(.elder)")
