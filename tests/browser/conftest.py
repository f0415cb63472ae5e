"""Headless Chromium (Debian's) driven by Playwright, with axe-core after every page."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
OUTPUT = ROOT / "test-output" / "browser"
CHROMIUM = (
    os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser") or ""
)
PHONE = {"width": 375, "height": 812}
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="package")
def browser():
    # Package scope: Playwright's sync API keeps an event loop on the main thread while
    # it runs, which would break asyncio.run() in tests collected after this folder.
    need(bool(CHROMIUM), "Chromium is not installed (apt-get install chromium)")
    need(AXE.exists(), "axe-core is not installed (npm ci)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


# Anything not on this machine. A pattern is matched in Playwright's driver, so the page's
# own requests never wait on a round trip to the test process; only these come to Python.
NOT_LOCAL = re.compile(r"^(?!http://127\.0\.0\.1[:/]|data:|blob:)")


def new_phone(browser, *, javascript: bool = True):
    """A phone-sized page in a context of its own; requests to other hosts are refused and
    listed in `page.outside_requests`."""
    context = browser.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
        java_script_enabled=javascript,
    )
    page = context.new_page()
    page.outside_requests = []

    def guard(route):
        page.outside_requests.append(route.request.url)
        route.abort()

    page.route(NOT_LOCAL, guard)
    return page


@pytest.fixture
def phone(browser, request):
    """A phone-sized page; every request to another host fails the test."""
    page = new_phone(browser)
    yield page
    assert page.outside_requests == [], f"requests to other hosts: {page.outside_requests}"
    page.context.close()


def check_page(page, name: str) -> None:
    """Screenshot under test-output/browser and an axe-core run with zero violations."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    # One pixel per CSS pixel: the layout at 375 px as a reviewer reads it, a quarter of the
    # pixels of the device's (measured: half the time of a device-scale shot).
    page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True, scale="css")
    page.evaluate(AXE.read_text())
    # Violations only: axe then skips building the report of every passing node.
    result = page.evaluate(
        "async () => await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a','wcag2aa',"
        "'wcag21a','wcag21aa','best-practice']}, resultTypes: ['violations']})"
    )
    violations = [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
    ]
    (OUTPUT / f"{name}.axe.json").write_text(json.dumps(violations, ensure_ascii=False, indent=2))
    assert violations == [], (
        f"axe violations on {name}: {json.dumps(violations, ensure_ascii=False, indent=1)}"
    )
    check_tap_targets(page, name)


def check_tap_targets(page, name: str) -> None:
    """Links and buttons a thumb must hit are at least 44 px high (inline text links excepted)."""
    small = page.evaluate(
        """() => Array.from(document.querySelectorAll('button, input[type=submit], input[type=checkbox], input[type=radio], select, .btn, nav a'))
            .filter(el => el.offsetParent !== null)
            .map(el => { const r = el.getBoundingClientRect(); const box = el.closest('.choice') || el;
                         const h = Math.max(r.height, box.getBoundingClientRect().height);
                         return {tag: el.tagName, text: (el.innerText || el.value || el.id || '').slice(0, 30), h}; })
            .filter(x => x.h < 44)"""
    )
    assert small == [], f"tap targets under 44px on {name}: {small}"
