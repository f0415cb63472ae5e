"""Test fixtures: a migrated database per test (SQLite file or PostgreSQL), the app, clients.

PostgreSQL: set PORTAL_TEST_DATABASE_URL (CI does). Each test then starts from
truncated tables with the catalogue loaded; on SQLite each test gets a copy of a
database migrated once per session.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text
from stdnum.cn import ric, uscc

from portal import migrations
from portal.catalogue.service import load_catalogue, read_catalogue_file
from portal.db import Database
from portal.resources import CATALOGUE_FILE
from portal.settings import Settings

# Fixtures that start the portal and the back office as real processes.
pytest_plugins = ["tests.e2e.harness"]


def _worker_database(url: str) -> str:
    """Under pytest-xdist each worker gets a PostgreSQL database of its own
    (`<name>_gw0`, …): the tests truncate tables between them."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not url or not worker:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)


def create_database(url: str) -> None:
    """CREATE DATABASE if it is missing (CI's server has only `test` at first)."""
    target = make_url(url)
    server = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            exists = conn.scalar(
                text("select 1 from pg_database where datname = :name"),
                {"name": target.database},
            )
            if not exists:
                conn.execute(text(f'create database "{target.database}"'))
    finally:
        server.dispose()


PG_URL = _worker_database(os.environ.get("PORTAL_TEST_DATABASE_URL", ""))
IN_CI = bool(os.environ.get("CI"))
CATALOGUE = Path(os.environ.get("PORTAL_TEST_CATALOGUE", CATALOGUE_FILE))
PASSWORD = "correct-horse-9"


def need(condition: bool, reason: str) -> None:
    """Skip with a printed reason on a laptop; in CI a missing prerequisite is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    print(f"SKIPPED: {reason}")
    pytest.skip(reason)


# The PostgreSQL pass runs every test that reaches a database (the portal's through
# `database_url`, the back office's through `bureau_template_db`); the others (catalogue
# data, content sniffing, signing, …) would repeat the SQLite pass byte for byte.
DATABASE_FIXTURES = {"database_url", "bureau_template_db"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `postgres` (several workers with row locks, the scale-out topology)
    are about PostgreSQL: on SQLite they are left out, not skipped, with a printed line.
    CI runs the whole suite a second time on PostgreSQL, where they run, and where the
    tests that use no database are left out (DATABASE_FIXTURES), and so are those marked
    `sqlite`, which probe SQLite itself."""
    if PG_URL:
        left = [
            i
            for i in items
            if not DATABASE_FIXTURES & set(getattr(i, "fixturenames", ()))
            or i.get_closest_marker("sqlite")
        ]
        line = (
            f"left out on PostgreSQL, {len(left)} tests that use no database or probe SQLite "
            "itself (they ran on SQLite)"
        )
    else:
        left = [item for item in items if item.get_closest_marker("postgres")]
        line = (
            f"left out on SQLite, {len(left)} PostgreSQL-only tests (they run when "
            "PORTAL_TEST_DATABASE_URL is set, as in CI's second pass): "
            + ", ".join(item.nodeid for item in left)
        )
    if left:
        config.hook.pytest_deselected(items=left)
        gone = set(map(id, left))
        items[:] = [item for item in items if id(item) not in gone]
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    items[:] = slow_first(items, workers)


# The longest tests (seconds on the 2-core machine with four workers, from CI and from a
# busy local run), longest first. A test that starts last makes the whole run wait for
# it, so these start first, one at a time on each worker. A node id prefix: a file, or
# one test of it. Not a list to keep exact: a slow test missing here only costs time;
# `--durations` shows the current ones.
SLOW_TESTS = (
    "tests/browser/test_page_budget.py",  # 108
    "tests/test_schemathesis.py",  # 75-120
    "tests/browser/test_bundle_journey.py",  # 46-104
    "tests/test_lighthouse.py",  # 50-85
    "tests/test_properties.py::test_random_event_sequences_follow_the_status_table",  # 50-80
    "tests/e2e/test_faults.py::test_bureau_refusing_then_503_then_recovering",  # 44-83
    "tests/test_packaging.py",  # 50-64
    "tests/e2e/test_faults.py::test_two_workers_on_postgres",  # 62, PostgreSQL only
    "tests/test_scaleout.py",  # 60 with its set-up, PostgreSQL only
    "tests/test_metrics.py::test_workers_share_their_counts",  # 60 with its set-up
    "tests/e2e/test_licence_life.py",  # 44-60
    "tests/test_cli.py::test_catalogue_load_reports_what_changed",  # 11-55
    "tests/browser/test_delivery_rating_status.py",  # 36-54
    "tests/test_calendar.py::test_due_date_over_new_year",  # 25-50
    "tests/test_retention.py::test_untouched_drafts_go_after_30_days",  # 45
    "tests/e2e/test_faults.py::test_portal_killed_while_events_queued",  # 43
    "tests/browser/test_originals_pages.py",  # 22-42
    "tests/browser/test_identity_journey.py",  # 40
    "tests/test_privacy_logs.py",  # 27-36
    "tests/test_idor.py::test_every_route_refuses_another_accounts_things",  # 34 on PostgreSQL
    "tests/browser/test_first_journey.py",  # 22-29
    "tests/test_properties.py::test_cleaning_a_value",  # 25
)


def slow_first(items: list, workers: int) -> list:
    """SLOW_TESTS at the head of every worker's share, longest first, the rest after them.

    pytest-xdist's worksteal hands worker i the i-th of `workers` contiguous slices of
    the collection, and idle workers steal from the tail of others' slices: a slow test
    at a slice's head starts at once, one near a tail may start last. The order is a
    function of the collection alone, as xdist needs it to be the same on every worker.
    """

    def rank(item) -> int:
        return next(
            (n for n, prefix in enumerate(SLOW_TESTS) if item.nodeid.startswith(prefix)),
            len(SLOW_TESTS),
        )

    slow = sorted((i for i in items if rank(i) < len(SLOW_TESTS)), key=rank)
    chosen = set(map(id, slow))
    rest = [i for i in items if id(i) not in chosen]
    workers = max(1, workers)
    heads: list[list] = [[] for _ in range(workers)]
    for n, item in enumerate(slow):
        heads[n % workers].append(item)
    # Slice sizes as xdist cuts them: each takes the remainder's fair share in turn.
    ordered: list = []
    left = len(items)
    for n, head in enumerate(heads):
        size = left // (workers - n)
        left -= size
        fill = max(0, size - len(head))
        ordered += head + rest[:fill]
        rest = rest[fill:]
    return ordered + rest


# --- identity numbers that pass their check digits ----------------------------------------

_serial = itertools.count(random.randint(100, 800))


def make_ric(birth: str = "19900101", region: str = "320412") -> str:
    body = f"{region}{birth}{next(_serial) % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def make_uscc() -> str:
    body = f"91320412MA{random.randint(1000000, 9999999)}"
    return body + uscc.calc_check_digit(body)


def make_phone() -> str:
    return f"139{random.randint(10000000, 99999999)}"


# --- database -----------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Tests hash with argon2id at minimal cost: at production cost each registration and
    login costs ~0.2 s, minutes over the suite. Production's own cost is checked in
    test_accounts.py; the servers of the end-to-end tests run with it."""
    from argon2 import PasswordHasher

    from portal import security

    security.use_hasher(PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    yield
    security.use_hasher(security.PRODUCTION_HASHER)


@pytest.fixture(autouse=True)
def bundled_calendar() -> Iterator[None]:
    """Every test starts and ends on the bundled calendar: a loaded notice is per database."""
    from portal.calendar.service import forget_installed

    forget_installed()
    yield
    forget_installed()


@pytest.fixture(scope="session")
def catalogue_file():
    return read_catalogue_file(CATALOGUE)


@pytest.fixture(scope="session")
def template_db(tmp_path_factory, catalogue_file) -> str | None:
    """SQLite: one migrated database with the catalogue, copied for each test."""
    if PG_URL:
        create_database(PG_URL)
        migrations.upgrade(PG_URL)
        return None
    path = tmp_path_factory.mktemp("template") / "portal.db"
    url = f"sqlite:///{path}"
    migrations.upgrade(url)
    db = Database(url)
    with db.session(write=True) as session, session.begin():
        load_catalogue(session, catalogue=catalogue_file)
    db.dispose()
    return str(path)


# Kept between tests: the catalogue (tests only read it, or reload a changed one) and
# the migrations' own table. catalogue_version is the catalogue's change token.
CATALOGUE_TABLES = ("items", "halls", "bundles", "catalogue_version", "alembic_version")
_engines: dict[str, Any] = {}
_catalogue_prints: dict[str, str] = {}


def _engine(url: str):
    """One pooled engine per database for the resets: a new connection per test costs more
    than the reset itself."""
    if url not in _engines:
        _engines[url] = create_engine(url, pool_size=1)
    return _engines[url]


def _catalogue_print(conn) -> str:
    """A digest of every catalogue row: equal digests, equal catalogues."""
    return ":".join(
        conn.scalar(
            text(f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.code), '')) FROM {t} t")
        )
        for t in ("items", "halls", "bundles")
    )


def _reset_postgres(url: str, catalogue_file) -> None:
    """Empty every table but the catalogue's; (re)load the catalogue if a test changed it.

    Only the tables a test wrote to are truncated: TRUNCATE takes a few milliseconds per
    table even when it is empty, which made the reset cost more than most tests. A table
    counts as written when it has rows or its sequence has been used (a test that deleted
    its own rows), so every table ends as TRUNCATE … RESTART IDENTITY would leave it.
    """
    engine = _engine(url)
    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            )
            if r[0] not in CATALOGUE_TABLES
        ]
        probe = " UNION ALL ".join(
            f"SELECT '{t}' WHERE EXISTS (SELECT 1 FROM \"{t}\")" for t in tables
        )
        written = set(conn.scalars(text(probe))) if tables else set()
        written |= set(
            conn.scalars(
                text(
                    "SELECT t.relname FROM pg_sequences ps"
                    " JOIN pg_class s ON s.relname = ps.sequencename AND s.relkind = 'S'"
                    " JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass"
                    " JOIN pg_class t ON t.oid = d.refobjid"
                    " WHERE ps.schemaname = current_schema() AND ps.last_value IS NOT NULL"
                )
            )
        )
        written &= set(tables)
        if written:
            conn.execute(
                text(
                    "TRUNCATE "
                    + ", ".join(f'"{t}"' for t in sorted(written))
                    + " RESTART IDENTITY CASCADE"
                )
            )
        # A test may have loaded a changed catalogue (an extra item, hall or bundle):
        # the database may also be one an earlier run left behind. Keep only the file's.
        for table, codes in (
            ("bundles", [b.code for b in catalogue_file.bundles]),
            ("items", [i.code for i in catalogue_file.items]),
            ("halls", [h.code for h in catalogue_file.halls]),
        ):
            conn.execute(
                text(f"DELETE FROM {table} WHERE NOT (code = ANY(:codes))"), {"codes": codes}
            )
        if _catalogue_prints.get(url) == _catalogue_print(conn):
            return
    db = Database(url)
    with db.session(write=True) as session, session.begin():
        # Cheap when nothing changed: the loader compares before it writes.
        load_catalogue(session, catalogue=catalogue_file)
    db.dispose()
    with engine.connect() as conn:
        _catalogue_prints[url] = _catalogue_print(conn)


@pytest.fixture
def database_url(tmp_path, template_db, catalogue_file) -> str:
    if PG_URL:
        _reset_postgres(PG_URL, catalogue_file)
        return PG_URL
    target = tmp_path / "portal.db"
    shutil.copy(template_db, target)
    return f"sqlite:///{target}"


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    data = tmp_path / "data"
    return Settings(
        data_dir=data,
        database_url=database_url,
        secret_key="test-secret-key-" + "x" * 32,
        bureau_url="http://bureau.invalid",
        bureau_secret="test-bureau-secret",
        dispatcher=False,
        max_upload_mb=2,
    ).prepare()


@pytest.fixture
def app(settings):
    from portal.app import create_app

    return create_app(settings)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def db(app) -> Database:
    return app.state.db


# --- accounts -----------------------------------------------------------------------------


class DevCodes(logging.Handler):
    """The SMS codes dev mode prints instead of sending (portal.verification.sms)."""

    def __init__(self) -> None:
        super().__init__()
        self.codes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        code = getattr(record, "sms_code", None)
        if code:
            self.codes.append(code)

    def after(self, before: int, seconds: float = 10) -> str:
        """The newest code once one more than `before` is printed.

        A live server sends (prints) the code in a background task after its answer, so
        a page may show 验证码已发送 a moment before the code reaches the log.
        """
        deadline = time.monotonic() + seconds
        while len(self.codes) <= before:
            assert time.monotonic() < deadline, "no code was printed"
            time.sleep(0.05)
        return self.codes[-1]


DEV_CODES = DevCodes()
logging.getLogger("portal.verification.dev").addHandler(DEV_CODES)


def sms_code(client: TestClient, phone: str, purpose: str) -> str:
    """Ask for a code through the API and read it where a developer would: the dev log."""
    before = len(DEV_CODES.codes)
    response = client.post("/api/v1/verifications", json={"phone": phone, "purpose": purpose})
    assert response.status_code == 202, response.text
    assert len(DEV_CODES.codes) > before, "no code printed (dev mode without a gateway?)"
    return DEV_CODES.codes[-1]


def register(client: TestClient, **overrides: Any) -> dict[str, Any]:
    """A registered account; with PORTAL_REGISTER_NEEDS_CODE on, its phone proven first."""
    body = {
        "kind": "person",
        "name": "张三",
        "id_number": make_ric(),
        "phone": make_phone(),
        "password": PASSWORD,
        **overrides,
    }
    if client.app.state.settings.register_code_required and "code" not in body:
        body["code"] = sms_code(client, body["phone"], "register")
    response = client.post("/api/v1/accounts", json=body)
    assert response.status_code == 201, response.text
    body.pop("code", None)
    return {**body, "account_id": response.json()["account_id"]}


def bearer(client: TestClient, person: dict[str, Any]) -> dict[str, str]:
    response = client.post(
        "/api/v1/tokens", json={"phone": person["phone"], "password": person["password"]}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


@pytest.fixture
def person(client) -> dict[str, Any]:
    return register(client)


@pytest.fixture
def auth(client, person) -> dict[str, str]:
    return bearer(client, person)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def web_login(client: TestClient, person: dict[str, Any]) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "phone": person["phone"],
            "password": person["password"],
            "csrf_token": csrf_of(page.text),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


# --- catalogue helpers ----------------------------------------------------------------------


def pick_item(
    client: TestClient,
    *,
    prereview: bool | None = None,
    deferrable: bool = False,
    express: bool | None = None,
) -> dict:
    """The first item with these properties, read through the public API."""
    for summary in client.get("/api/v1/items").json()["items"]:
        if prereview is not None and summary["prereview"] != prereview:
            continue
        if express is not None and summary["express"] != express:
            continue
        item = client.get(f"/api/v1/items/{summary['code']}").json()
        if deferrable and not any(m["deferrable"] and m["required"] for m in item["materials"]):
            continue
        if not summary["online"]:
            continue
        return item
    raise AssertionError("the catalogue has no such item")


# Published examples that pass their check digits: GB 11643's own 居民身份证号码 example
# and a 统一社会信用代码 quoted in GB 32100's explanations (and python-stdnum's docs).
VALID_RIC = "11010519491231002X"
VALID_USCC = "91350100M000100Y43"


def valid_form(item: dict) -> dict[str, Any]:
    """A value for every field of an item that passes its type (the same on every call)."""
    values: dict[str, Any] = {}
    for f in item["fields"]:
        kind = f["type"]
        if kind == "select":
            values[f["name"]] = f["options"][0]
        elif kind == "checkbox":
            values[f["name"]] = True
        elif kind in ("number", "integer"):
            low = f.get("min") or 1
            number = max(low, min(f.get("max") or 100, 100))
            values[f["name"]] = int(number) if kind == "integer" else number
        elif kind == "date":
            values[f["name"]] = "2027-03-01"
        elif kind == "phone":
            values[f["name"]] = "13912345678"
        elif kind == "ric":
            values[f["name"]] = VALID_RIC
        elif kind == "uscc":
            values[f["name"]] = VALID_USCC
        else:
            # Six characters pass every name and address rule, so a shared field gets the
            # same value from whichever item of a bundle it is read.
            values[f["name"]] = "测试内容样样" + "样" * max(0, (f.get("min_length") or 0) - 6)
    return values


# The smallest sound PDF: one blank A4 page and a correct cross-reference table. Uploads
# are parsed (portal/materials/sniff.py): a PDF without pages, or one that does not parse,
# is refused. Tests append a "%comment" to make files distinct; readers ignore it.
PDF_BYTES = (
    b"%PDF-1.4\n1 0 obj\n<</Type/Catalog/Pages 2 0 R>>\nendobj\n"
    b"2 0 obj\n<</Type/Pages/Kids[3 0 R]/Count 1>>\nendobj\n"
    b"3 0 obj\n<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>\nendobj\n"
    b"xref\n0 4\n0000000000 65535 f \n0000000009 00000 n \n0000000054 00000 n \n"
    b"0000000105 00000 n \ntrailer\n<</Size 4/Root 1 0 R>>\nstartxref\n170\n%%EOF\n"
)


def png_bytes(size=(32, 24), color=(200, 30, 30)) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def jpeg_bytes(size=(40, 30)) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(out, "JPEG")
    return out.getvalue()


# --- cases and stacks many test modules start from ---------------------------------------
# Imported inside the fixtures: tests/factories.py and tests/kit.py import this module.


@pytest.fixture
def submitted(client, auth):
    """A case of an item with pre-review, sent to pre-review."""
    from tests.factories import fill_everything, new_case

    item = pick_item(client, prereview=True)
    case = new_case(client, auth, item)
    fill_everything(client, auth, item, case["case_no"])
    assert (
        client.post(f"/api/v1/cases/{case['case_no']}/prereview", headers=auth).status_code == 202
    )
    return {"item": item, "case_no": case["case_no"]}


@pytest.fixture
def formal(client, auth):
    """A case formally submitted today (no pre-review)."""
    from tests.factories import fill_everything, new_case, two_material_item

    item = two_material_item(client)
    case_no = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, case_no)
    response = client.post(f"/api/v1/cases/{case_no}/submission", headers=auth)
    assert response.status_code == 202, response.text
    required = [m for m in item["materials"] if m["required"]]
    return {"item": item, "case_no": case_no, "named": required[0], "other": required[1]}


@pytest.fixture
def page_target(client, person):
    """A logged-in browser on a draft's page: the upload URL and the page's CSRF token."""
    item = pick_item(client, prereview=True)
    web_login(client, person)
    page = client.get(f"/items/{item['code']}")
    created = client.post(
        "/cases",
        data={"item_code": item["code"], "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    case_no = created.headers["location"].split("/")[2]
    token = csrf_of(client.get(f"/cases/{case_no}").text)
    code = item["materials"][0]["code"]
    return f"/cases/{case_no}/materials/{code}/files", token, case_no


@pytest.fixture
def stack(tmp_path, database_url):
    """The portal and the reference identity platform (idp/) as real servers, SSO on."""
    from idp.app import create_app as create_idp
    from portal.app import create_app
    from tests.idp.flow import CLIENT_ID, CLIENT_SECRET, idp_settings
    from tests.kit import Stack, portal_settings
    from tests.live import ThreadServer, free_port

    portal_port, idp_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    callback = f"http://127.0.0.1:{portal_port}/login/sso/callback"
    idp = create_idp(idp_settings(tmp_path / "idp", issuer, [callback]))
    settings = portal_settings(
        tmp_path,
        database_url,
        portal_port,
        sso_issuer=issuer,
        sso_client_id=CLIENT_ID,
        sso_client_secret=CLIENT_SECRET,
    )
    app = create_app(settings)
    with ThreadServer(idp, idp_port) as idp_server, ThreadServer(app, portal_port) as portal:
        yield Stack(portal, idp_server, app)


def tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def fs_guard(settings, tmp_path):
    """Fails the test if a file appears outside the encrypted store, or one stays in tmp."""
    before = tree(tmp_path)
    yield
    data = settings.data_dir
    allowed_roots = (data / "blobs", data / "thumbs")
    for path in tree(tmp_path) - before:
        if path.parent == tmp_path and path.name.startswith("portal.db"):
            continue  # the test database's journal
        assert any(path.is_relative_to(root) for root in allowed_roots), path
        assert re.fullmatch(r"[0-9a-f]{64}(\.jpg)?", path.name), path
    assert list((data / "tmp").iterdir()) == [], "a refused upload left a temp file"


@pytest.fixture
def api_target(client, auth):
    """A draft's upload URL in the JSON API."""
    from tests.factories import new_case

    item = pick_item(client, prereview=True)
    case = new_case(client, auth, item)
    code = item["materials"][0]["code"]
    return f"/api/v1/cases/{case['case_no']}/materials/{code}/files"
