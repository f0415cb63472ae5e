"""Page budget: every citizen page, on a phone, is small, script-light, local and still.

Budget per page load as a first visit (nothing cached, no cookies but the login), at 375×812:
≤ 60 KB transferred in total (compressed, headers included), the HTML document
≤ 14 KB (one round trip of a new connection), ≤ 5 KB of JavaScript, no request to
another host, and no layout shift.

Which pages: every GET route of the app that answers HTML. The test enumerates the
routers, crawls the links of a citizen's pages (cases in many statuses, a bundle,
a question, an appointment, messages, the library) and fails when a page is never
reached, so a page added later is measured without anyone listing it here.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from fastapi.routing import APIRoute

from tests.browser.conftest import CHROMIUM_ARGS, NOT_LOCAL, OUTPUT, PHONE  # noqa: F401
from tests.conftest import PASSWORD, PDF_BYTES, jpeg_bytes, valid_form
from tests.e2e.harness import wait_for
from tests.live import file_a_case

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

KB = 1024
TOTAL_BUDGET = 60 * KB
HTML_BUDGET = 14 * KB
JS_BUDGET = 5 * KB

# Routes that are not pages: machine endpoints and file downloads.
# Not pages: probes, and the legs of 统一身份认证 sign-in, which redirect to the identity
# platform and back, and its consent page, reached only from the platform's answer (their
# pages and errors: tests/test_sso.py, tests/test_privacy.py, test_identity_journey.py).
NOT_PAGES = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/login/sso",
    "/login/sso/callback",
    "/login/sso/consent",
}
START = [
    "/",
    "/items",
    "/items?q=营业",
    "/register",
    "/login",
    "/account",
    "/cases",
    "/bundles",
    "/library",
    "/consultations",
    "/consultations/new",
    "/messages",
    "/stats",
    "/status",
]
# How many different URLs of one route are measured (all the case pages: one per status).
SAMPLES_PER_ROUTE = {"/cases/{case_no}": 20}
DEFAULT_SAMPLES = 1


def html_routes() -> list[str]:
    """Templates of the GET routes that may render a page (JSON API excluded)."""
    from portal import routers

    paths = set()
    for router in routers.all_routers():
        for route in router.routes:
            if not isinstance(route, APIRoute) or "GET" not in route.methods:
                continue
            if route.path.startswith("/api/") or route.path in NOT_PAGES:
                continue
            paths.add(route.path)
    return sorted(paths)


def template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    body = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{body}$")


def route_of(path: str, templates: list[tuple[str, re.Pattern[str]]]) -> str | None:
    # The most specific template wins: fewer parameters first (/cases/new before /cases/{no}).
    matches = [t for t, rx in templates if rx.match(path)]
    return min(matches, key=lambda t: t.count("{")) if matches else None


# --- a citizen with something on every page -------------------------------------------------


def seed_citizen(portal, bureau) -> dict:
    """Cases in many statuses, a bundle application, a question and an appointment."""
    person = portal.register()
    cases: dict[str, str] = {}

    draft, _ = file_a_case(portal, prereview=True)
    cases["draft"] = draft

    withdrawn, _ = file_a_case(portal, prereview=True)
    assert portal.post(
        f"/api/v1/cases/{withdrawn}/withdrawal", json={"reason": "不办了"}
    ).is_success
    cases["withdrawn"] = withdrawn

    def to_bureau(prereview: bool = True) -> tuple[str, dict]:
        case_no, item = file_a_case(portal, prereview=prereview)
        endpoint = "prereview" if prereview else "submission"
        assert portal.post(f"/api/v1/cases/{case_no}/{endpoint}").status_code == 202
        wanted = "prereview" if prereview else "submitted"
        wait_for(lambda: bureau.status(case_no) == wanted, what=f"{case_no} at the bureau")
        return case_no, item

    cases["prereview"], _ = to_bureau()

    returned, item = to_bureau()
    code = next(m["code"] for m in item["materials"] if m["required"])
    bureau.act(
        returned,
        "return",
        {"comment": "请补正", "materials": [{"code": code, "comment": "请盖章"}]},
    )
    wait_for(lambda: portal.case(returned)["status"] == "returned", what="returned")
    cases["returned"] = returned

    passed, _ = to_bureau()
    bureau.act(passed, "pass", {})
    wait_for(lambda: portal.case(passed)["status"] == "prereview_passed", what="passed")
    cases["passed"] = passed

    accepted, _ = to_bureau(prereview=False)
    bureau.act(accepted, "accept", {})
    wait_for(lambda: portal.case(accepted)["status"] == "accepted", what="accepted")
    cases["accepted"] = accepted

    # 补正 after the formal submission, with its 补正材料通知书: the correction page and
    # the document download are reached from this case's page.
    corrected, item = to_bureau(prereview=False)
    code = next(m["code"] for m in item["materials"] if m["required"])
    bureau.act(
        corrected,
        "correction",
        {
            "comment": "请补正",
            "materials": [{"code": code, "comment": "请加盖公章"}],
            "notice": True,
        },
    )
    wait_for(
        lambda: (
            portal.case(corrected)["status"] == "correction_required"
            and any(d.get("download_url") for d in portal.case(corrected).get("documents") or [])
        ),
        what="correction with its notice",
    )
    portal.post(
        f"/api/v1/cases/{corrected}/materials/{code}/files",
        files={"file": ("scan.pdf", PDF_BYTES + b"%corrected", "application/pdf")},
    )
    cases["correction"] = corrected

    approved, _ = to_bureau(prereview=False)
    bureau.act(approved, "accept", {})
    wait_for(lambda: portal.case(approved)["status"] == "accepted", what="accepted")
    bureau.act(approved, "approve", {})
    wait_for(lambda: (portal.case(approved)["licence"] or {}).get("download_url"), what="licence")
    cases["approved"] = approved

    denied, _ = to_bureau(prereview=False)
    bureau.act(denied, "accept", {})
    wait_for(lambda: portal.case(denied)["status"] == "accepted", what="accepted")
    bureau.act(denied, "deny", {"reason": "不符合条件"})
    wait_for(lambda: portal.case(denied)["status"] == "denied", what="denied")
    cases["denied"] = denied

    # A photo as well as PDFs, so the thumbnail route has something to show.
    item = portal.get(f"/api/v1/items/{portal.case(draft)['item_code']}").json()
    code = next(m["code"] for m in item["materials"] if m["required"])
    portal.post(
        f"/api/v1/cases/{draft}/materials/{code}/files",
        files={"file": ("photo.jpg", jpeg_bytes((400, 300)), "image/jpeg")},
    )

    bundles = portal.get("/api/v1/bundles").json()["bundles"]
    if bundles:
        assert portal.post(f"/api/v1/bundles/{bundles[0]['code']}/cases", json={}).is_success

    portal.post(
        "/api/v1/consultations",
        json={
            "kind": "consult",
            "subject": "材料问题",
            "body": "营业执照复印件要盖章吗？",
            "case_no": accepted,
        },
    )
    book_appointment(portal, [accepted, approved, passed])
    cases["supplement"] = supplement_case(portal, bureau)
    cases["originals"] = originals_case(portal, bureau)
    return {"person": person, "cases": cases}


def originals_case(portal, bureau) -> str:
    """材料寄递: formally submitted for an item whose originals are checked, so the case
    page links the page where the applicant says how the originals come."""
    item = None
    for summary in portal.get("/api/v1/items").json()["items"]:
        candidate = portal.get(f"/api/v1/items/{summary['code']}").json()
        if summary["online"] and any(m["original"] for m in candidate["materials"]):
            item = candidate
            break
    assert item is not None, "the catalogue has no item whose originals are checked"
    case_no = portal.post(
        "/api/v1/cases", json={"item_code": item["code"], "form": valid_form(item)}
    ).json()["case_no"]
    for m in item["materials"]:
        if m["required"]:
            portal.post(
                f"/api/v1/cases/{case_no}/materials/{m['code']}/files",
                files={"file": ("m.pdf", PDF_BYTES + m["code"].encode(), "application/pdf")},
            )
    if item["prereview"]:
        assert portal.post(f"/api/v1/cases/{case_no}/prereview").status_code == 202
        wait_for(lambda: bureau.status(case_no) == "prereview", what="originals case at the bureau")
        bureau.act(case_no, "pass", {})
        wait_for(lambda: portal.case(case_no)["status"] == "prereview_passed", what="passed")
    answer = portal.post(f"/api/v1/cases/{case_no}/submission")
    assert answer.status_code == 202, answer.text
    wait_for(lambda: bureau.status(case_no) == "submitted", what="originals case submitted")
    return case_no


def supplement_case(portal, bureau) -> str:
    """容缺受理: accepted with a material deferred, its 补交 file uploaded but not yet handed in."""
    item = None
    for summary in portal.get("/api/v1/items").json()["items"]:
        candidate = portal.get(f"/api/v1/items/{summary['code']}").json()
        if (
            summary["online"]
            and not summary["prereview"]
            and any(m["deferrable"] and m["required"] for m in candidate["materials"])
        ):
            item = candidate
            break
    assert item is not None, "the catalogue has no item with a deferrable material"
    deferred = [m["code"] for m in item["materials"] if m["deferrable"] and m["required"]]
    case_no = portal.post(
        "/api/v1/cases", json={"item_code": item["code"], "form": valid_form(item)}
    ).json()["case_no"]
    for m in item["materials"]:
        if m["required"] and m["code"] not in deferred:
            portal.post(
                f"/api/v1/cases/{case_no}/materials/{m['code']}/files",
                files={"file": ("m.pdf", PDF_BYTES + m["code"].encode(), "application/pdf")},
            )
    answer = portal.post(
        f"/api/v1/cases/{case_no}/submission",
        json={"commitment": {"deferred_materials": deferred, "accepted": True}},
    )
    assert answer.status_code == 202, answer.text
    wait_for(lambda: bureau.status(case_no) == "submitted", what="容缺 case at the bureau")
    bureau.act(case_no, "accept", {})
    wait_for(lambda: portal.case(case_no)["status"] == "accepted", what="accepted")
    answer = portal.post(
        f"/api/v1/cases/{case_no}/materials/{deferred[0]}/supplement-files",
        files={"file": ("补交.pdf", PDF_BYTES + b"%late", "application/pdf")},
    )
    assert answer.status_code == 201, answer.text
    return case_no


def book_appointment(portal, case_nos: list[str]) -> None:
    for case_no in case_nos:
        options = portal.get(f"/api/v1/cases/{case_no}/appointment-options")
        if options.status_code != 200:
            continue
        body = options.json()
        for purpose in body["purposes"]:
            for window in body["windows"].get(purpose, []):
                for day in body["days"]:
                    for period in ("am", "pm"):
                        answer = portal.post(
                            f"/api/v1/cases/{case_no}/appointments",
                            json={
                                "purpose": purpose,
                                "hall": window["hall"]["code"],
                                "window": window["window"],
                                "date": day["date"],
                                "period": period,
                            },
                        )
                        if answer.status_code == 201:
                            return


# --- crawling -------------------------------------------------------------------------------


def logged_in_client(base: str, phone: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30, follow_redirects=True)
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post("/login", data={"phone": phone, "password": PASSWORD, "csrf_token": token})
    assert answer.status_code == 200, answer.text
    return client


def crawl(
    client: httpx.Client, templates, extra: list[str]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Same-site links from the start pages onwards.

    Returns the HTML pages found by route template, and every template reached at all
    (as a page, a file download, a redirect to a page, or an error answer).
    """
    pages: dict[str, list[str]] = defaultdict(list)
    reached: dict[str, str] = {}
    queue = [*START, *extra]
    seen: set[str] = set()
    while queue:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        template = route_of(urlsplit(url).path, templates)
        if template is None:
            continue
        if len(pages[template]) >= SAMPLES_PER_ROUTE.get(template, DEFAULT_SAMPLES):
            continue
        response = client.get(url)
        final = response.url.raw_path.decode()
        final_template = route_of(urlsplit(final).path, templates)
        is_html = "text/html" in response.headers.get("content-type", "")
        if response.status_code != 200:
            reached.setdefault(template, f"HTTP {response.status_code}")
            continue
        if not is_html:
            reached[template] = "file"
            continue
        reached[template] = "page" if final_template == template else "redirect"
        if final_template is not None:
            reached[final_template] = "page"
            limit = SAMPLES_PER_ROUTE.get(final_template, DEFAULT_SAMPLES)
            if final not in pages[final_template] and len(pages[final_template]) < limit:
                pages[final_template].append(final)
        # Links, and images too: thumbnails and QR codes are routes of their own.
        links = re.findall(r'<a\b[^>]*\bhref="([^"#]+)', response.text)
        links += re.findall(r'<img\b[^>]*\bsrc="([^"#]+)', response.text)
        for href in links:
            target = urljoin(final, href.replace("&amp;", "&"))
            parts = urlsplit(target)
            if parts.netloc and parts.netloc != client.base_url.netloc.decode():
                continue
            local = parts.path + (f"?{parts.query}" if parts.query else "")
            if not local.startswith(("/static/", "/api/")) and local not in seen:
                queue.append(local)
    return {t: u for t, u in pages.items() if u}, reached


# --- measuring one page load ----------------------------------------------------------------

LAYOUT_SHIFT_OBSERVER = """
window.__shifts = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (!entry.hadRecentInput) window.__shifts.push(entry.value);
  }
}).observe({type: 'layout-shift', buffered: true});
"""


# Pages measured side by side, each tab in a context of its own: the server answers one
# while the browser renders another, and the wait for late shifts is shared. Playwright
# starts Chromium without background throttling, so a page that is not in front renders,
# and shifts, as the one in front does.
BATCH = 4


class Tab:
    """One phone page kept for many loads. Its cache is off (CDP), and its cookies are set
    afresh before each load, so every load is a first visit: the document and everything
    it uses come over the wire again. A new page per load would cost a renderer process
    each (about 0.2 s, measured), more than most loads themselves."""

    def __init__(self, browser):
        self.context = browser.new_context(
            viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, locale="zh-CN"
        )
        self.context.add_init_script(LAYOUT_SHIFT_OBSERVER)
        # Requests elsewhere are refused as well as reported: a test never leaves the machine.
        self.context.route(NOT_LOCAL, lambda route: route.abort())
        self.page = self.context.new_page()
        cdp = self.context.new_cdp_session(self.page)
        cdp.send("Network.enable")
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        cdp.on("Network.requestWillBeSent", self.sent)
        cdp.on("Network.loadingFinished", self.finished)
        cdp.on("Network.responseReceived", self.received)
        self.requests: dict[str, dict] = {}
        self.outside: list[str] = []
        self.local = ""

    def sent(self, event):
        request_url = event["request"]["url"]
        host = urlsplit(request_url).netloc
        if request_url.startswith(("http://", "https://")) and host != self.local:
            self.outside.append(request_url)
        self.requests[event["requestId"]] = {
            "url": request_url,
            "type": event.get("type"),
            "bytes": 0,
        }

    def finished(self, event):
        if event["requestId"] in self.requests:
            self.requests[event["requestId"]]["bytes"] = event["encodedDataLength"]

    def received(self, event):
        if event["requestId"] in self.requests:
            self.requests[event["requestId"]]["type"] = event.get("type")
            self.requests[event["requestId"]]["status"] = event["response"]["status"]

    def start(self, url: str, cookies: list[dict]) -> None:
        """Begins a load; returns once the answer's headers are in."""
        self.context.clear_cookies()
        if cookies:
            self.context.add_cookies(cookies)
        self.requests, self.outside, self.local = {}, [], urlsplit(url).netloc
        self.url = url
        self.response = self.page.goto(url, wait_until="commit")

    def finish(self) -> dict:
        page, response = self.page, self.response
        shifts = page.evaluate("window.__shifts")
        rows = list(self.requests.values())
        document = next((r for r in rows if r["type"] == "Document"), {"bytes": 0})
        return {
            "url": self.url,
            "final_url": page.url,
            "status": response.status if response else None,
            "total_bytes": sum(r["bytes"] for r in rows),
            "html_bytes": document["bytes"],
            "js_bytes": sum(r["bytes"] for r in rows if r["type"] == "Script"),
            "requests": len(rows),
            "resources": [(r["type"], r["bytes"], urlsplit(r["url"]).path) for r in rows],
            "outside": self.outside,
            "layout_shift": round(sum(shifts), 4),
        }


def measure(browser, jobs: list[tuple[str, list[dict]]]) -> list[dict]:
    """Bytes on the wire by type (CDP encodedDataLength), other hosts, layout shifts; for
    each (url, cookies), as a first visit with nothing cached, in the order given."""
    tabs = [Tab(browser) for _ in range(min(BATCH, len(jobs)))]
    results = []
    for n in range(0, len(jobs), BATCH):
        batch = list(zip(tabs, jobs[n : n + BATCH], strict=False))
        for tab, (url, cookies) in batch:
            tab.start(url, cookies)
        for tab, _ in batch:
            tab.page.wait_for_load_state("load")
        # Late shifts (fonts, images) show within a frame or two of the load event: every
        # page of the batch has had at least this long after its own.
        batch[-1][0].page.wait_for_timeout(300)
        results += [tab.finish() for tab, _ in batch]
    for tab in tabs:
        tab.context.close()
    return results


def over_budget(m: dict) -> list[str]:
    problems = []
    if m["status"] != 200:
        problems.append(f"status {m['status']}")
    if m["total_bytes"] > TOTAL_BUDGET:
        problems.append(f"total {m['total_bytes'] / KB:.1f} KB > 60 KB")
    if m["html_bytes"] > HTML_BUDGET:
        problems.append(f"HTML {m['html_bytes'] / KB:.1f} KB > 14 KB")
    if m["js_bytes"] > JS_BUDGET:
        problems.append(f"JavaScript {m['js_bytes'] / KB:.1f} KB > 5 KB")
    if m["outside"]:
        problems.append(f"requests to other hosts: {m['outside']}")
    if m["layout_shift"] > 0:
        problems.append(f"layout shift {m['layout_shift']}")
    return problems


def test_every_citizen_page_fits_the_budget(running, browser):
    portal, bureau = running
    base = portal.server.url
    seeded = seed_citizen(portal, bureau)
    templates = [(t, template_regex(t)) for t in html_routes()]

    started = time.monotonic()
    client = logged_in_client(base, seeded["person"]["phone"])
    # Reached only after a POST (post/redirect/get): the page after a submission.
    extra = [f"/cases/{seeded['cases']['prereview']}/submitted"]
    found, reached = crawl(client, templates, extra)
    anonymous = httpx.Client(base_url=base, timeout=30)
    public = [
        u for u in START + found.get("/items/{code}", [])[:1] if anonymous.get(u).status_code == 200
    ]
    # Every HTML route must have been reached, or a new page escapes the budget.
    unreached = [t for t, _ in templates if reached.get(t) not in ("page", "file", "redirect")]

    cookies = [
        {"name": name, "value": value, "url": base} for name, value in client.cookies.items()
    ]
    jobs = [
        (template, True, base + url, cookies)
        for template, urls in sorted(found.items())
        for url in urls
    ]
    jobs += [(route_of(urlsplit(url).path, templates), False, base + url, []) for url in public]
    measured = measure(browser, [(url, jar) for _, _, url, jar in jobs])
    results = [
        {"route": template, "login": login, **m}
        for (template, login, _, _), m in zip(jobs, measured, strict=True)
    ]

    OUTPUT.mkdir(parents=True, exist_ok=True)
    report = {
        "budget": {"total": TOTAL_BUDGET, "html": HTML_BUDGET, "js": JS_BUDGET},
        "pages": results,
        "unreached_routes": {t: reached.get(t, "no link") for t in unreached},
        "reached": reached,
        "seconds": round(time.monotonic() - started, 1),
    }
    (OUTPUT / "page-budget.json").write_text(json.dumps(report, ensure_ascii=False, indent=1))
    lines = [
        f"{r['route']:45} {'in ' if r['login'] else 'out'} {r['total_bytes'] / KB:6.1f} KB "
        f"html {r['html_bytes'] / KB:5.1f} KB js {r['js_bytes'] / KB:4.1f} KB "
        f"shift {r['layout_shift']}  {r['url'].removeprefix(base)}"
        for r in results
    ]
    print("\n".join(lines))

    failures = [
        f"{r['url'].removeprefix(base)} ({'logged in' if r['login'] else 'logged out'}): "
        + "; ".join(problems)
        for r in results
        if (problems := over_budget(r))
    ]
    assert not unreached, (
        "pages never reached by the crawl (add seed data or a link): "
        + ", ".join(f"{t} ({reached.get(t, 'no link')})" for t in unreached)
    )
    assert not failures, "over budget:\n" + "\n".join(failures)
