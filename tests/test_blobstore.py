"""File storage: the BlobStore seam and what its callers may rely on.

* retention racing an upload of the same content never loses the upload's file;
* an upload's file and thumbnail are written outside any write transaction;
* bodies are parsed/encrypted, and files decrypted, off the event loop;
* a download streams: the store hands out chunks, never the whole file;
* the local store's own contract (durable put, touch, remove under a grace period).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import sqlite3
import threading
import time
import tracemalloc

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from portal.materials.crypto import KeyRing, new_key_b64
from portal.materials.models import Blob
from portal.materials.storage import LocalBlobStore
from portal.retention.service import purge
from tests.conftest import (
    PDF_BYTES,
    bearer,
    csrf_of,
    pick_item,
    png_bytes,
    register,
    web_login,
)
from tests.factories import FakeBureau, drain, new_case, upload
from tests.kit import age, age_files, forget_in_library

WAIT = 20  # seconds any step of a race may take on a busy machine


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def files_of(client, auth, case_no: str) -> list[dict]:
    case = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()
    return [f for m in case["materials"] for f in m["files"]]


# --- purge racing an upload -------------------------------------------------------------------


@pytest.mark.parametrize("order", ["touch_then_claim", "claim_then_touch"])
def test_purge_racing_an_upload_of_the_same_content_keeps_it(
    client, auth, app, db, settings, monkeypatch, order
):
    """A draft's file expires while another citizen uploads the same bytes.

    Whichever lands first, the upload's touch or retention's claim of the file, the
    second citizen's file must stay readable: either retention puts the file back
    (it was touched) or the upload finds it gone and stores its own copy.
    """
    item = pick_item(client, prereview=True)
    code = item["materials"][0]["code"]
    content = PDF_BYTES + b"%the same scan, uploaded twice"
    expired = new_case(client, auth, item)["case_no"]
    assert upload(client, auth, expired, code, content).status_code == 201
    forget_in_library(client, auth, content)
    age(db, expired, updated_days=31)
    age_files(app)  # a month old: nothing has touched it since

    other = register(client)
    other_auth = bearer(client, other)
    racing = new_case(client, other_auth, item)["case_no"]

    store = app.state.store
    real_put, real_remove = store.put, store.remove
    upload_at_put = threading.Event()
    purge_at_remove = threading.Event()
    purge_removed = threading.Event()
    put_done = threading.Event()

    def put(writer, sha256, **kwargs):
        upload_at_put.set()  # the upload holds no transaction now (it committed first)
        if order == "touch_then_claim":
            assert purge_at_remove.wait(WAIT)
        else:
            assert purge_removed.wait(WAIT)
        try:
            return real_put(writer, sha256, **kwargs)
        finally:
            put_done.set()

    def remove(sha256, **kwargs):
        if sha256 != sha(content):
            return real_remove(sha256, **kwargs)
        purge_at_remove.set()  # its row is deleted (uncommitted); the file is next
        if order == "touch_then_claim":
            assert put_done.wait(WAIT)
        try:
            return real_remove(sha256, **kwargs)
        finally:
            purge_removed.set()

    monkeypatch.setattr(store, "put", put)
    monkeypatch.setattr(store, "remove", remove)

    answer: dict = {}
    uploader = threading.Thread(
        target=lambda: answer.update(response=upload(client, other_auth, racing, code, content))
    )
    uploader.start()
    assert upload_at_put.wait(WAIT)
    report = purge(db, store, settings)
    uploader.join(WAIT)
    assert not uploader.is_alive()
    response = answer["response"]
    assert response.status_code == 201, response.text
    assert put_done.is_set() and purge_removed.is_set()  # the race did happen

    assert expired in report.drafts
    # Touched before the claim: retention kept the file and its row. Claimed first:
    # retention removed the old copy, and the upload stored a new one.
    assert (sha(content) in report.blobs) is (order == "claim_then_touch")
    viewer = TestClient(app, base_url="http://testserver")
    web_login(viewer, other)
    [kept] = files_of(client, other_auth, racing)
    got = viewer.get(f"/cases/{racing}/files/{kept['id']}")
    assert got.status_code == 200 and got.content == content
    with db.session() as session:
        assert session.scalar(select(Blob.sha256).where(Blob.sha256 == sha(content)))

    # A day later nothing is racing: the file is the racing case's and stays.
    age_files(app)
    purge(db, store, settings)
    assert viewer.get(f"/cases/{racing}/files/{kept['id']}").content == content


def test_a_reused_file_is_touched_so_retention_keeps_it(client, auth, app, db, settings):
    """An upload that finds its content stored marks it used; a stray that nobody
    touched goes, one an upload touched within the day stays."""
    item = pick_item(client, prereview=True)
    code = item["materials"][0]["code"]
    content = PDF_BYTES + b"%left behind by a failed request"
    store = app.state.store
    store.put_bytes(content)  # a file without a row: a crashed request's leftover
    age_files(app)
    other = PDF_BYTES + b"%another leftover"
    store.put_bytes(other)
    age_files(app)
    before = store.path(sha(content)).stat().st_mtime

    case_no = new_case(client, auth, item)["case_no"]
    assert upload(client, auth, case_no, code, content).status_code == 201
    assert store.path(sha(content)).stat().st_mtime > before + 86_400  # touched just now

    report = purge(db, store, settings)
    assert report.strays == 1  # `other`
    assert not store.exists(sha(other)) and store.exists(sha(content))


# --- no write transaction around file writes ----------------------------------------------


def _write_lock_is_free(database_path: str) -> bool:
    probe = sqlite3.connect(database_path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:  # "database is locked": a writer holds it
        return False
    finally:
        probe.close()


@pytest.mark.sqlite  # probes SQLite's write lock
def test_the_file_and_its_thumbnail_are_written_outside_any_write_transaction(
    client, auth, app, settings, person, monkeypatch
):
    database_path = settings.database_url.removeprefix("sqlite:///")
    store = app.state.store
    real_put = store.put
    seen: list[tuple[bool, bool]] = []

    def put(writer, sha256, *, thumbnail=None):
        seen.append((thumbnail is not None, _write_lock_is_free(database_path)))
        return real_put(writer, sha256, thumbnail=thumbnail)

    monkeypatch.setattr(store, "put", put)
    item = pick_item(client, prereview=True)
    case_no = new_case(client, auth, item)["case_no"]
    image = png_bytes(size=(640, 480))
    response = upload(
        client, auth, case_no, item["materials"][0]["code"], image, "photo.png", "image/png"
    )
    assert response.status_code == 201, response.text
    assert seen == [(True, True)]  # one put, with the thumbnail, and nobody held the lock
    web_login(client, person)
    thumb = client.get(f"/cases/{case_no}/files/{response.json()['id']}/thumb")
    assert thumb.status_code == 200 and thumb.content.startswith(b"\xff\xd8\xff")
    from PIL import Image

    with Image.open(io.BytesIO(thumb.content)) as preview:
        assert max(preview.size) <= 160  # a preview, not the 640×480 original


# --- off the event loop ---------------------------------------------------------------------


def noise_png(size=(480, 420)) -> bytes:
    """An image that does not compress: about 600 KB of PNG."""
    from PIL import Image

    out = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(out, "PNG")
    return out.getvalue()


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_uploads_are_encrypted_and_downloads_decrypted_off_the_event_loop(
    client,
    auth,
    app,
    person,
    page_target,  # noqa: F811 - the fixture imported above
    monkeypatch,
):
    from portal.materials import crypto, storage

    writes: list[bool] = []
    reads: list[bool] = []
    real_write = storage.BlobWriter.write
    real_decrypt = crypto.decrypt_chunks

    def write(self, data):
        writes.append(_on_event_loop())
        return real_write(self, data)

    def decrypt_chunks(ring, source):
        for chunk in real_decrypt(ring, source):
            reads.append(_on_event_loop())
            yield chunk

    monkeypatch.setattr(storage.BlobWriter, "write", write)
    monkeypatch.setattr(storage, "decrypt_chunks", decrypt_chunks)
    item = pick_item(client, prereview=True)
    case_no = new_case(client, auth, item)["case_no"]
    content = noise_png()
    response = upload(
        client, auth, case_no, item["materials"][0]["code"], content, "scan.png", "image/png"
    )
    assert response.status_code == 201, response.text
    web_login(client, person)
    got = client.get(f"/cases/{case_no}/files/{response.json()['id']}")
    assert got.content == content
    assert writes and not any(writes)
    assert len(content) > 600_000
    assert len(reads) >= 9 and not any(reads)  # ten 64 KiB chunks or more, each in a thread

    # The page's form (cases/uploads.receive_page_upload) likewise.
    writes.clear()
    url, _, page_case = page_target
    token = csrf_of(client.get(f"/cases/{page_case}").text)  # signed in again above
    sent = client.post(
        url,
        data={"csrf_token": token},
        files={"file": ("scan.png", noise_png(), "image/png")},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    assert writes and not any(writes)


def test_the_dispatcher_reads_the_files_it_sends_off_the_event_loop(
    client,
    auth,
    submitted,  # noqa: F811 - the fixture imported above
    settings,
    db,
    monkeypatch,
):
    from portal.materials import storage

    reads: list[bool] = []
    real_decrypt = storage.decrypt_chunks

    def decrypt_chunks(ring, source):
        for chunk in real_decrypt(ring, source):
            reads.append(_on_event_loop())
            yield chunk

    monkeypatch.setattr(storage, "decrypt_chunks", decrypt_chunks)
    fake = FakeBureau()
    drain(settings.model_copy(update={"retry_first_seconds": 0.01}), db, fake)
    assert [e["type"] for e in fake.events] == ["case.submitted"]
    assert fake.blobs and reads and not any(reads)


# --- streaming ------------------------------------------------------------------------------


def test_reading_a_large_file_holds_one_chunk_at_a_time(tmp_path):
    store = LocalBlobStore(tmp_path, KeyRing.from_setting(new_key_b64()))
    size = 8 * 1024 * 1024
    writer = store.writer()
    block = os.urandom(1024 * 1024)
    digest = hashlib.sha256()
    for _ in range(size // len(block)):
        writer.write(block)
        digest.update(block)
    sha256 = writer.close()
    assert sha256 == digest.hexdigest()
    assert store.put(writer, sha256) is True

    tracemalloc.start()
    try:
        check = hashlib.sha256()
        total = 0
        for chunk in store.chunks(sha256):
            check.update(chunk)
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size and check.hexdigest() == sha256
    assert peak < 1024 * 1024  # an 8 MiB file read with well under 1 MiB held


def test_a_broken_stored_file_is_a_calm_error_before_any_byte_goes_out(client, auth, app, person):
    item = pick_item(client, prereview=True)
    case_no = new_case(client, auth, item)["case_no"]
    content = noise_png()
    response = upload(
        client, auth, case_no, item["materials"][0]["code"], content, "scan.png", "image/png"
    )
    assert response.status_code == 201, response.text
    path = app.state.store.path(response.json()["sha256"])
    path.write_bytes(path.read_bytes()[:-7])  # cut short (a full disk, a bad copy)
    browser = TestClient(app, base_url="http://testserver", raise_server_exceptions=False)
    web_login(browser, person)
    got = browser.get(f"/cases/{case_no}/files/{response.json()['id']}")
    assert got.status_code == 500
    assert b"\x89PNG" not in got.content and got.headers["content-type"].startswith("text/html")


# --- the local store's contract -------------------------------------------------------------


@pytest.fixture
def local(tmp_path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path, KeyRing.from_setting(new_key_b64()))


def _staged(store: LocalBlobStore, data: bytes):
    writer = store.writer()
    writer.write(data)
    return writer, writer.close()


def test_put_is_new_once_then_a_touch_and_leaves_no_staging(local):
    writer, sha256 = _staged(local, b"content")
    assert local.put(writer, sha256, thumbnail=b"preview") is True
    old = time.time() - 3 * 86_400
    os.utime(local.path(sha256), (old, old))
    again, same = _staged(local, b"content")
    assert same == sha256
    assert local.put(again, sha256, thumbnail=b"other preview") is False
    assert local.path(sha256).stat().st_mtime > old + 86_400  # touched
    assert b"".join(local.chunks(sha256)) == b"content"
    assert local.read_thumb(sha256) == b"preview"  # the first preview stays
    assert list(local.tmp.iterdir()) == []  # nothing staged is left behind
    assert [s for s, _ in local.stored()] == [sha256]


def test_remove_keeps_what_was_touched_within_the_grace_period(local):
    sha256 = local.put_bytes(b"kept")
    now = time.time()
    assert local.remove(sha256, untouched_since=now - 86_400) is False
    assert local.exists(sha256) and b"".join(local.chunks(sha256)) == b"kept"
    old = now - 2 * 86_400
    os.utime(local.path(sha256), (old, old))
    assert local.remove(sha256, untouched_since=now - 86_400) is True
    assert not local.exists(sha256) and local.touch(sha256) is False
    assert local.remove(sha256, untouched_since=now) is True  # already gone: nothing to do
    assert list(local.tmp.iterdir()) == []


def test_clear_staging_removes_only_old_leftovers(local):
    old_file, young_file = local.tmp / "upload-old", local.tmp / "upload-young"
    old_file.write_bytes(b"x")
    young_file.write_bytes(b"y")
    old = time.time() - 2 * 86_400
    os.utime(old_file, (old, old))
    assert local.clear_staging(older_than=time.time() - 86_400) == 1
    assert not old_file.exists() and young_file.exists()
