"""Encryption at rest: what lies on disk is never the scan, cannot be altered unnoticed,
and survives a key rotation (docs/security.md, "Rotating the encryption key")."""

from __future__ import annotations

import hashlib
import os
import struct

import pytest
from fastapi.testclient import TestClient

from portal.exchange.licences import store_licence
from portal.materials.crypto import CHUNK, HEADER_LEN, MAGIC, DecryptionError, KeyRing, new_key_b64
from portal.materials.storage import LocalBlobStore
from tests.conftest import PDF_BYTES, jpeg_bytes, pick_item, png_bytes, web_login
from tests.factories import envelope, new_case, send, upload
from tests.kit import portal_cli

PLAIN_MAGIC = (b"%PDF", b"\xff\xd8\xff", b"\x89PNG")
MARKER = b"%%SECRET-MARKER-ID-320412199001011234"


def stored(settings) -> list:
    data = settings.data_dir
    return sorted(
        p for folder in ("blobs", "thumbs") for p in (data / folder).rglob("*") if p.is_file()
    )


def approve_with_licence(client, auth, app, item, case_no, content: bytes) -> None:
    sha = hashlib.sha256(content).hexdigest()
    if item["prereview"]:
        assert client.post(f"/api/v1/cases/{case_no}/prereview", headers=auth).status_code == 202
        send(client, envelope(case_no, "prereview.passed", {}))
    assert client.post(f"/api/v1/cases/{case_no}/submission", headers=auth).status_code == 202
    send(client, envelope(case_no, "case.accepted", {"acceptance_no": "SL-1"}))
    licence = {
        "name": "许可证",
        "number": "L-1",
        "valid_from": "2026-01-01",
        "filename": "licence.pdf",
        "content_type": "application/pdf",
        "sha256": sha,
    }
    answer = send(
        client, envelope(case_no, "case.approved", {"decision_no": "D-1", "licence": licence})
    )
    assert answer.status_code == 200, answer.text
    store_licence(app.state.db, app.state.store, case_no=case_no, sha256=sha, content=content)


def test_nothing_on_disk_is_a_readable_scan_or_licence(client, auth, person, app, settings):
    item = pick_item(client, prereview=True)
    case_no = new_case(client, auth, item)["case_no"]
    code = item["materials"][0]["code"]
    scans = [
        (PDF_BYTES + MARKER, "a.pdf", "application/pdf"),
        # In a comment segment: bytes after the end of an image are refused at upload.
        (jpeg_with_comment((800, 600), MARKER), "b.jpg", "image/jpeg"),
        (png_bytes((300, 200)), "c.png", "image/png"),
    ]
    for content, name, ctype in scans:
        assert upload(client, auth, case_no, code, content, name, ctype).status_code == 201
    # An issued licence travels the same way (fetched by the dispatcher, then stored).
    from tests.factories import fill_everything

    other = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, other)
    licence = PDF_BYTES + b"%licence " + MARKER
    approve_with_licence(client, auth, app, item, other, licence)

    files = stored(settings)
    thumbs = [p for p in files if p.suffix == ".jpg"]
    assert len(thumbs) == 2  # previews of the two images are encrypted too
    assert len(files) >= 6
    for path in files:
        data = path.read_bytes()
        assert data.startswith(MAGIC), path
        assert not data.startswith(PLAIN_MAGIC), path
        for magic in PLAIN_MAGIC:
            assert magic not in data[:4096], (path, magic)
        assert MARKER not in data and b"%%EOF" not in data, path

    # ... and yet each comes back byte for byte to its owner.
    web_login(client, person)
    case = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()
    files_out = [f for m in case["materials"] for f in m["files"]]
    for (content, _, _), f in zip(scans, files_out, strict=True):
        assert client.get(f"/cases/{case_no}/files/{f['id']}").content == content
    got = client.get(f"/api/v1/cases/{other}/licence", headers=auth)
    assert got.status_code == 200 and got.content == licence


@pytest.fixture
def store(tmp_path):
    return LocalBlobStore(tmp_path / "scratch", KeyRing.from_setting(new_key_b64()))


def chunk_offsets(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each sealed chunk after the header."""
    offsets, pos = [], HEADER_LEN
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        offsets.append((pos, 4 + size))
        pos += 4 + size
    return offsets


def test_tampering_truncation_and_reordering_are_detected(store):
    content = os.urandom(CHUNK * 3 + 1234)  # several chunks and a short last one
    sha = store.put_bytes(content)
    path = store.path(sha)
    original = path.read_bytes()
    assert store.read(sha) == content
    chunks = chunk_offsets(original)
    assert len(chunks) == 5  # four with data, one empty final chunk

    def broken(data: bytes) -> None:
        path.write_bytes(data)
        with pytest.raises(DecryptionError):
            store.read(sha)

    flipped = bytearray(original)
    flipped[HEADER_LEN + 100] ^= 0x01
    broken(bytes(flipped))  # one bit of ciphertext
    header = bytearray(original)
    header[len(MAGIC) + 8] ^= 0x01
    broken(bytes(header))  # the nonce prefix in the header
    broken(original[: chunks[-1][0]])  # the final chunk cut off
    broken(original[: chunks[1][0] + 10])  # cut in the middle of a chunk
    a, b = chunks[0], chunks[1]
    swapped = (
        original[:HEADER_LEN]
        + original[b[0] : b[0] + b[1]]
        + original[a[0] : a[0] + a[1]]
        + original[b[0] + b[1] :]
    )
    broken(swapped)  # two chunks in the wrong order
    dropped = original[: a[0]] + original[a[0] + a[1] :]
    broken(dropped)  # a whole chunk left out
    broken(original[:HEADER_LEN])  # only the header
    broken(b"%PDF-1.4 not encrypted at all")
    # Another store's file swapped in under this name (another key): refused as well.
    other = LocalBlobStore(store.root.parent.parent / "other", KeyRing.from_setting(new_key_b64()))
    broken(other.path(other.put_bytes(content)).read_bytes())
    path.write_bytes(original)
    assert store.read(sha) == content


def test_rotation_keeps_old_files_readable_and_reencrypt_moves_them(client, auth, person, settings):
    from portal.app import create_app

    item = pick_item(client, prereview=True)
    case_no = new_case(client, auth, item)["case_no"]
    code = item["materials"][0]["code"]
    old_content = PDF_BYTES + b"%under the old key"
    old = upload(client, auth, case_no, code, old_content).json()
    old_key = (settings.data_dir / "encryption_key").read_text().strip()
    old_id = KeyRing.from_setting(old_key).current_id
    new_key = new_key_b64()
    new_id = KeyRing.from_setting(new_key).current_id

    # Step 1: the new key first, the old one kept for reading.
    rotated = settings.model_copy(update={"encryption_keys": f"{new_key},{old_key}"})
    with TestClient(create_app(rotated)) as second:
        web_login(second, person)
        assert second.get(f"/cases/{case_no}/files/{old['id']}").content == old_content
        new_content = PDF_BYTES + b"%under the new key"
        new = upload(second, auth, case_no, code, new_content).json()
        store = second.app.state.store
        assert store.key_id(old["sha256"]) == old_id
        assert store.key_id(new["sha256"]) == new_id

    # Dropping the old key too early would make its files unreadable: that is what
    # the re-encryption step is for.
    too_early = settings.model_copy(update={"encryption_keys": new_key})
    with TestClient(create_app(too_early)) as third, pytest.raises(DecryptionError):
        third.app.state.store.read(old["sha256"])

    # Step 2: `portal keys reencrypt` rewrites what is still under the old key.
    env = {
        "PORTAL_DATA_DIR": str(settings.data_dir),
        "PORTAL_DATABASE_URL": settings.database_url,
        "PORTAL_ENCRYPTION_KEYS": f"{new_key},{old_key}",
    }
    before = {p: p.read_bytes() for p in stored(settings)}
    result = portal_cli("keys", "reencrypt", env=env)
    assert result.returncode == 0, result.stderr
    # One blob was under the old key; the new upload is already current.
    assert "重新加密 1 个文件" in result.stdout and "已是最新密钥 1 个" in result.stdout
    changed = [p for p in before if p.read_bytes() != before[p]]
    assert [p.name for p in changed] == [old["sha256"]]
    again = portal_cli("keys", "reencrypt", env=env)
    assert again.returncode == 0 and "重新加密 0 个文件" in again.stdout

    # Step 3: the old key can go; everything is still readable.
    with TestClient(create_app(too_early)) as fourth:
        web_login(fourth, person)
        assert fourth.get(f"/cases/{case_no}/files/{old['id']}").content == old_content
        assert fourth.get(f"/cases/{case_no}/files/{new['id']}").content == new_content


def test_reencrypt_reports_files_it_cannot_read(settings, store):
    sha = store.put_bytes(PDF_BYTES)
    lost = store.path(sha)
    target = settings.data_dir / "blobs" / lost.relative_to(store.root)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(lost.read_bytes())  # a file under a key nobody configured
    result = portal_cli(
        "keys",
        "reencrypt",
        env={"PORTAL_DATA_DIR": str(settings.data_dir), "PORTAL_ENCRYPTION_KEYS": new_key_b64()},
    )
    assert result.returncode == 1
    assert sha in result.stderr and "no longer configured" in result.stderr
    assert target.read_bytes() == lost.read_bytes()  # left as it was


def test_keys_generate_prints_a_usable_key():
    result = portal_cli("keys", "generate", env={})
    assert result.returncode == 0
    ring = KeyRing.from_setting(result.stdout.strip())
    assert len(ring.current_id) == 8


def jpeg_with_comment(size, comment: bytes) -> bytes:
    jpeg = jpeg_bytes(size)
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]
