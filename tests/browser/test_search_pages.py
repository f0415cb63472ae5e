"""The start page's life events and the search results (一件事 beside the items, 你是不是要找)
on a 360 px phone: nothing wider than the screen, taps ≥ 44 px, no axe violations."""

from __future__ import annotations

import pytest

from tests.browser.conftest import check_page
from tests.live import ThreadServer

pytestmark = pytest.mark.browser


@pytest.fixture
def server(app):
    with ThreadServer(app) as live:
        yield live


def test_home_and_search_results_on_a_small_phone(server, phone):
    page = phone
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(server.url + "/")
    check_page(page, "search-home")
    page.click("text=我要开餐馆")
    page.wait_for_url("**/bundles/kbcyd")
    for path, name, seen in (
        ("/items?q=我想开个饭店要办什么证", "search-bundles", "a[href='/bundles/kbcyd']"),
        ("/items?q=施公证", "search-suggestion", "a.chip"),
        ("/items?q=spjy", "search-pinyin", "a[href='/items/SC0004']"),
    ):
        page.goto(server.url + path)
        assert page.locator(seen).count() >= 1, path
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, path
        check_page(page, name)
