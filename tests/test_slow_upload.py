"""A file still arriving from a slow phone holds no database connection and no lock.

Driven at the ASGI level so the body can pause half-way: while it pauses, another
writer must get the database at once, and the pool must have nothing checked out.
"""

from __future__ import annotations

import asyncio

import anyio
from sqlalchemy import select, text

from portal.cases.models import Case
from tests.conftest import PDF_BYTES, pick_item
from tests.factories import new_case

BOUNDARY = "slowphoneboundary"


def _multipart_halves() -> tuple[bytes, bytes]:
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="scan.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    body = head + PDF_BYTES + f"\r\n--{BOUNDARY}--\r\n".encode()
    middle = len(head) + len(PDF_BYTES) // 2
    return body[:middle], body[middle:]


def _other_writer_commits(db) -> None:
    """A short write transaction that would wait (SQLite) if the upload held the lock."""
    with db.session(write=True) as session:
        if db.is_sqlite:
            session.execute(text("PRAGMA busy_timeout=200"))
        session.execute(text("UPDATE cases SET updated_at = updated_at WHERE id = -1"))
        session.commit()


def _upload_pausing_half_way(app, path: str, auth: dict, at_pause) -> tuple[int, bytes]:
    """POST a file whose second half arrives only after `at_pause()` has run in a thread."""
    first, second = _multipart_halves()
    chunks = [first, second]
    sent: list[dict] = []

    async def receive() -> dict:
        if not chunks:
            await asyncio.sleep(3600)  # no disconnect before the response
        if len(chunks) == 1:
            await anyio.to_thread.run_sync(at_pause)
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", auth["Authorization"].encode()),
            (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
            (b"content-length", str(len(first) + len(second)).encode()),
        ],
        "state": {},
    }
    anyio.run(app, scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


def _draft_with_material(client, auth) -> tuple[str, str]:
    item = pick_item(client)
    case = new_case(client, auth, item)
    code = client.get(f"/api/v1/items/{item['code']}").json()["materials"][0]["code"]
    return case["case_no"], code


def test_a_paused_upload_holds_no_connection_and_no_write_lock(app, client, auth):
    case_no, code = _draft_with_material(client, auth)
    db = app.state.db
    seen: dict[str, object] = {}

    def look_at_the_database() -> None:
        seen["checked_out"] = db.engine.pool.checkedout()
        try:
            _other_writer_commits(db)
            seen["other_writer"] = "ok"
        except Exception as exc:  # the failure this test is about
            seen["other_writer"] = repr(exc)

    path = f"/api/v1/cases/{case_no}/materials/{code}/files"
    status, body = _upload_pausing_half_way(app, path, auth, look_at_the_database)
    assert seen == {"checked_out": 0, "other_writer": "ok"}
    assert status == 201, body
    case = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()
    assert any(f["filename"] == "scan.pdf" for m in case["materials"] for f in m["files"])


def test_a_case_withdrawn_while_its_file_was_arriving_refuses_the_file(app, client, auth):
    """The attach step reads the case again: no file slips into a case no longer a draft."""
    case_no, code = _draft_with_material(client, auth)
    db = app.state.db

    def withdraw_meanwhile() -> None:
        with db.session(write=True) as session:
            row = session.scalars(select(Case).where(Case.case_no == case_no)).one()
            row.status = "withdrawn"
            session.commit()

    path = f"/api/v1/cases/{case_no}/materials/{code}/files"
    status, body = _upload_pausing_half_way(app, path, auth, withdraw_meanwhile)
    assert status == 409, body
    case = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()
    assert not any(m["files"] for m in case["materials"])
