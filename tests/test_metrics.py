"""What an operator's monitoring sees: /metrics, /healthz, /readyz and JSON log lines."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from portal.clock import utcnow
from portal.exchange.models import OutboxMessage
from portal.exchange.outbox import DEAD, enqueue_event
from tests.live import BIN, ProcessServer, ThreadServer, free_port, wait_until


def scrape(client: TestClient) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition, 0 when absent."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


@pytest.fixture
def local(app):
    """A client that connects from loopback, as a Prometheus on the same host would."""
    with TestClient(app, base_url="http://testserver", client=("127.0.0.1", 50000)) as c:
        yield c


def test_requests_are_counted_by_route_template_not_path(local, client):
    item = client.get("/api/v1/items").json()["items"][0]["code"]
    before = scrape(local)
    for _ in range(3):
        assert local.get(f"/items/{item}").status_code == 200
    login = local.get("/cases/WJ20990101000001", follow_redirects=False)
    assert login.status_code == 303  # to the login page
    assert local.get("/no/such/page/13912345678").status_code == 404
    text = scrape(local)

    route = {"route": "/items/{code}", "method": "GET", "status": "200"}
    assert sample(text, "portal_http_requests_total", **route) - sample(
        before, "portal_http_requests_total", **route
    ) == pytest.approx(3)
    assert sample(text, "portal_http_request_duration_seconds_count", **route) >= 3
    assert 'route="/cases/{case_no}"' in text
    assert 'route="<unmatched>"' in text
    # No raw path reaches a label: no item code, case number or phone.
    assert item not in text and "WJ2099" not in text and "13912345678" not in text


def test_outbox_depth_age_and_dead_are_read_from_the_database(local, db):
    with db.session(write=True) as session, session.begin():
        old = enqueue_event(session, type="case.withdrawn", case_no="WJ1", data={"reason": "x"})
        old.created_at = utcnow() - timedelta(minutes=10)
        enqueue_event(session, type="case.withdrawn", case_no="WJ2", data={"reason": "x"})
        dead = enqueue_event(session, type="case.withdrawn", case_no="WJ3", data={"reason": "x"})
        dead.status = DEAD
    text = scrape(local)
    assert sample(text, "portal_outbox_pending") == 2
    assert sample(text, "portal_outbox_dead") == 1
    assert 595 < sample(text, "portal_outbox_oldest_pending_age_seconds") < 700

    with db.session(write=True) as session, session.begin():
        session.query(OutboxMessage).delete()
    text = scrape(local)
    assert sample(text, "portal_outbox_pending") == 0
    assert sample(text, "portal_outbox_oldest_pending_age_seconds") == 0


def test_metrics_refuse_public_addresses(app):
    with TestClient(app, client=("114.114.114.114", 40000)) as public:
        assert public.get("/metrics").status_code == 404
    with TestClient(app, client=("10.1.2.3", 40000)) as private:
        assert private.get("/metrics").status_code == 200


def test_readiness_is_the_database_and_the_back_office_is_a_metric(settings):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from portal.app import create_app

    def bureau_healthz(request):
        return JSONResponse({"status": "ok"})

    # The back office down (the test settings point at bureau.invalid): still ready.
    down = create_app(settings)
    with TestClient(down, client=("127.0.0.1", 40000)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}
        assert sample(scrape(client), "portal_bureau_up") == 0
    with ThreadServer(Starlette(routes=[Route("/healthz", bureau_healthz)])) as bureau:
        up = create_app(settings.model_copy(update={"bureau_url": bureau.url}))
        with TestClient(up, client=("127.0.0.1", 40000)) as client:
            assert client.get("/readyz").status_code == 200
            text = scrape(client)
            assert sample(text, "portal_bureau_up") == 1
            assert 0 < sample(text, "portal_bureau_probe_seconds") < 2


def test_readiness_fails_without_the_database(settings):
    from portal.app import create_app
    from portal.db import Database

    app = create_app(settings)
    with TestClient(app) as client:
        app.state.db = Database("sqlite:////nonexistent/dir/portal.db")  # it cannot open
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("error")


@pytest.fixture
def served(tmp_path, database_url):
    """`portal serve --workers 2` with JSON logs, its back office unreachable."""
    port = free_port()
    env = {
        "PORTAL_DATA_DIR": str(tmp_path / "data"),
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_SECRET_KEY": "metrics-test-key-" + "m" * 32,
        "PORTAL_BUREAU_URL": f"http://127.0.0.1:{free_port()}",
        "PORTAL_BUREAU_SECRET": "metrics-test-secret",
        "PORTAL_DISPATCHER": "off",
        "PORTAL_LOG_JSON": "true",
    }
    server = ProcessServer(
        [str(BIN / "portal"), "serve", "--port", str(port), "--workers", "2"],
        env,
        port,
        tmp_path / "portal.log",
    ).start()
    yield server
    server.stop()


def test_workers_share_their_counts_and_log_json_with_the_request_id(served):
    # A new connection per request, so both workers answer some of them.
    n = 60
    for _ in range(n):
        assert httpx.get(served.url + "/healthz").status_code == 200
    # Whichever worker answers the scrape, it reports every worker's requests.
    for _ in range(6):
        text = httpx.get(served.url + "/metrics").text
        got = sample(text, "portal_http_requests_total", route="/healthz", status="200")
        assert got >= n  # wait_until_up's own probes count too
    files = list((served.log.parent / "data" / "metrics").glob("*/counter_*.db"))
    assert len(files) == 2, files  # one per worker process

    # The back office is down, yet the portal is ready: nothing a citizen does waits on it.
    ready = httpx.get(served.url + "/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok"}
    assert sample(httpx.get(served.url + "/metrics").text, "portal_bureau_up") == 0

    # One JSON object per log line, carrying the request id the client sent.
    httpx.get(served.url + "/items", headers={"X-Request-ID": "bench42abc"})

    def logged() -> dict | None:
        for raw in served.log.read_text().splitlines():
            if '"bench42abc"' in raw:
                return json.loads(raw)
        return None

    try:
        line = wait_until(logged, 5, "the request's log line", poll=0.1)
    except AssertionError:
        raise AssertionError(served.log.read_text()[-2000:]) from None
    assert line["request_id"] == "bench42abc"
    assert line["path"] == "/items" and line["status"] == 200 and line["method"] == "GET"
    assert re.match(r"\d{4}-\d\d-\d\dT", line["ts"])
