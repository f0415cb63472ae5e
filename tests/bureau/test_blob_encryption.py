"""Blobs at rest in the reference back office: encrypted with the key from its
settings, streamed out decrypted, refused when altered, and a duplicate `PUT` costs what a
new one does (docs/security.md, "Duplicate uploads")."""

from __future__ import annotations

import base64
import hashlib
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bureau.blobs import CHUNK, BlobStore, CorruptBlob, new_key, parse_key
from bureau.settings import Settings
from tests.bureau.bureau_testkit import Bureau, signature

MARKER = b"ID-320412199001011234-SECRET-MARKER"


def _put(bureau: Bureau, body: bytes, content_type: str = "application/pdf"):
    return bureau.client.put(
        f"/v1/blobs/{hashlib.sha256(body).hexdigest()}",
        content=body,
        headers={"Content-Type": content_type, "X-Portal-Signature": signature(body)},
    )


def _on_disk(bureau: Bureau) -> list[Path]:
    root = bureau.settings.data_dir / "blobs"
    return [p for p in root.glob("*/*/*") if p.suffix != ".type"]


def test_blobs_on_disk_are_not_the_content_and_come_back_intact(bureau: Bureau) -> None:
    body = b"%PDF-1.4\n" + MARKER * 5000 + os.urandom(3 * CHUNK)  # several chunks
    sha = hashlib.sha256(body).hexdigest()
    assert _put(bureau, body).status_code == 201
    [stored] = _on_disk(bureau)
    raw = stored.read_bytes()
    assert stored.name == sha
    assert MARKER not in raw and b"%PDF" not in raw
    assert len(raw) > len(body)  # nonce, lengths and tags

    got = bureau.get_blob(sha)
    assert got.status_code == 200 and got.content == body
    assert got.headers["content-length"] == str(len(body))
    head = bureau.client.head(f"/v1/blobs/{sha}", headers={"X-Portal-Signature": signature(b"")})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(body))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7])
def test_the_held_size_is_the_plaintext_size(bureau: Bureau, size: int) -> None:
    body = os.urandom(size)
    assert _put(bureau, body, "application/octet-stream").json()["size"] == size
    sha = hashlib.sha256(body).hexdigest()
    assert bureau.client.app.state.store.size(sha) == size  # what events are checked against
    assert bureau.get_blob(sha).content == body


def test_the_console_preview_is_decrypted(bureau: Bureau) -> None:
    from tests.bureau.bureau_testkit import staff_login

    body = b"\x89PNG\r\n\x1a\n" + MARKER
    assert _put(bureau, body, "image/png").status_code == 201
    staff_login(bureau)
    preview = bureau.client.get(f"/staff/files/{hashlib.sha256(body).hexdigest()}?name=照片.png")
    assert preview.status_code == 200 and preview.content == body
    assert (
        preview.headers["content-disposition"] == "inline; filename*=utf-8''%E7%85%A7%E7%89%87.png"
    )


def test_an_altered_or_foreign_file_is_refused(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "a", parse_key(new_key()))
    body = os.urandom(2 * CHUNK + 100)
    sha = store.put_bytes(body, "application/pdf")
    path = store.path(sha)
    original = path.read_bytes()
    assert b"".join(store.chunks(sha)) == body

    def refused(data: bytes) -> None:
        path.write_bytes(data)
        with pytest.raises(CorruptBlob):
            b"".join(store.chunks(sha))

    flipped = bytearray(original)
    flipped[len(original) // 2] ^= 1
    refused(bytes(flipped))
    refused(original[:-20])  # the final chunk cut off
    refused(original + b"x")  # something appended
    refused(body)  # a plaintext file dropped in under the name
    other = BlobStore(tmp_path / "b", parse_key(new_key()))  # another key
    refused(other.path(other.put_bytes(body, "application/pdf")).read_bytes())
    path.write_bytes(original)
    assert b"".join(store.chunks(sha)) == body


def test_a_broken_file_is_a_clear_error_not_a_cut_off_answer(bureau: Bureau) -> None:
    body = os.urandom(CHUNK + 10)
    sha = hashlib.sha256(body).hexdigest()
    assert _put(bureau, body).status_code == 201
    [stored] = _on_disk(bureau)
    stored.write_bytes(stored.read_bytes()[:-5])  # cut short
    got = bureau.get_blob(sha)
    assert got.status_code == 500
    assert got.json()["error"]["code"] == "blob_unreadable"
    assert "文件已损坏" in got.json()["error"]["message"]


def test_the_key_is_generated_for_dev_and_required_outside(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path / "dev").prepare()
    second = Settings(data_dir=tmp_path / "dev").prepare()
    assert first.blob_key == second.blob_key  # kept: a restart reads what it stored
    assert len(base64.b64decode(first.blob_key)) == 32
    assert (tmp_path / "dev" / "blob_key").stat().st_mode & 0o077 == 0

    with pytest.raises(RuntimeError, match="BUREAU_BLOB_KEY"):
        Settings(data_dir=tmp_path / "prod", env="production", secret="s3cret").prepare()
    assert not (tmp_path / "prod" / "blob_key").exists()  # never generated there
    with pytest.raises(ValueError, match="32 bytes"):
        Settings(
            data_dir=tmp_path / "prod",
            env="production",
            secret="s3cret",
            blob_key=base64.b64encode(b"short").decode(),
        ).prepare()
    key = new_key()
    ready = Settings(data_dir=tmp_path / "prod", env="production", secret="s3cret", blob_key=key)
    assert ready.prepare().blob_key == key


def test_a_duplicate_put_takes_as_long_as_a_new_one(
    make_bureau: Callable[..., Bureau],
) -> None:
    """Timing a PUT must not tell whether the content was held already.

    Interleaved runs (other tests load the machine meanwhile), each duplicate against
    the new PUT just before it; the median of those ratios, bounded both ways and
    generously. Measured on a 2-core machine: 0.83-1.12. A duplicate answered from the
    hash alone (no encryption, no write): 0.10-0.46; syncing only the directory a new
    file went into (so a duplicate skipped a journal commit): 0.43-0.84.
    """
    bureau = make_bureau()
    size = 2 * 1024 * 1024
    held = [os.urandom(size) for _ in range(11)]
    for body in held:
        assert _put(bureau, body).status_code == 201

    def timed(body: bytes, expected: int) -> float:
        started = time.perf_counter()
        response = _put(bureau, body)
        elapsed = time.perf_counter() - started
        assert response.status_code == expected
        return elapsed

    new: list[float] = []
    duplicate: list[float] = []

    def round_of_pairs() -> float:
        for body in held:
            new.append(timed(os.urandom(size), 201))
            duplicate.append(timed(body, 200))
        # Each duplicate against the new upload just before it (the same load on the
        # machine), then the median of those ratios, over every pair timed so far.
        return statistics.median(d / n for d, n in zip(duplicate, new, strict=True))

    ratio = round_of_pairs()
    if not 0.7 < ratio < 1 / 0.7:
        # A burst of load from another test lands on some pairs more than on others
        # (seen once in CI: 0.67): a second round of pairs, and the median of all 22.
        ratio = round_of_pairs()
    print(
        f"bureau PUT 2 MiB: new {statistics.median(new) * 1000:.1f} ms, "
        f"duplicate {statistics.median(duplicate) * 1000:.1f} ms, ratio {ratio:.2f} "
        f"over {len(new)} pairs"
    )
    assert 0.7 < ratio < 1 / 0.7, (new, duplicate)


def test_files_stored_in_plaintext_before_are_encrypted_by_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bureau import cli
    from bureau.settings import get_settings

    key = new_key()
    monkeypatch.setenv("BUREAU_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BUREAU_BLOB_KEY", key)
    root = tmp_path / "blobs"
    old = b"%PDF-1.4 a scan kept before encryption " + MARKER + os.urandom(CHUNK)
    old_sha = hashlib.sha256(old).hexdigest()
    legacy = root / old_sha[:2] / old_sha[2:4] / old_sha
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(old)  # as the back office stored files before
    wrong = root / "00" / "00" / ("00" * 32)
    wrong.parent.mkdir(parents=True)
    wrong.write_bytes(b"not what its name says")
    store = BlobStore(root, parse_key(key))
    current = store.put_bytes(b"already encrypted", "application/pdf")

    get_settings.cache_clear()
    try:
        assert cli.main(["blobs", "encrypt"]) == 1  # one file refused, named
        out = capsys.readouterr()
        assert "已加密 1 个文件，已是密文 1 个" in out.out and "00" * 32 in out.err
        assert cli.main(["blobs", "encrypt"]) == 1
        assert "已加密 0 个文件，已是密文 2 个" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()
    assert MARKER not in legacy.read_bytes()
    assert b"".join(store.chunks(old_sha)) == old and store.size(old_sha) == len(old)
    assert b"".join(store.chunks(current)) == b"already encrypted"
    assert wrong.read_bytes() == b"not what its name says"  # left for a person to look at
    assert list(store.tmp_dir.iterdir()) == []
