"""Helpers for the browser tests: phone pages with or without JavaScript, logging in
(shared here so no browser test imports another; a draft with its materials is in
tests/live.py, beside the live servers it is filed on)."""

from __future__ import annotations

import re

from tests.browser.conftest import check_page, new_phone  # noqa: F401 (new_phone: shared)
from tests.conftest import PASSWORD

# --- pages and a draft ----------------------------------------------------------------


def check_page_without_js(page, probe, name: str) -> None:
    """axe needs JavaScript, which `page` has off: the same DOM, scripts removed, is
    checked in `probe` (a JavaScript page on the same origin, so the CSS applies)."""
    html = re.sub(r"<script\b[^>]*>.*?</script>", "", page.content(), flags=re.S)
    probe.set_content(html, wait_until="load")
    check_page(probe, name)


def log_in(page, base, person):
    page.goto(base + "/login")
    page.fill("#f-phone", person["phone"])
    page.fill("#f-password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/cases$"))
