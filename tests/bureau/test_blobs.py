"""`PUT /v1/blobs/{sha256}` and `GET /v1/blobs/{sha256}`."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from tests.bureau.bureau_testkit import Bureau, signature


def _put(bureau: Bureau, name: str, body: bytes, header: str | None = "sign", **headers: str):
    sent = {"Content-Type": "image/png", **headers}
    if header == "sign":
        sent["X-Portal-Signature"] = signature(body)
    elif header is not None:
        sent["X-Portal-Signature"] = header
    return bureau.client.put(f"/v1/blobs/{name}", content=body, headers=sent)


def test_put_new_then_held_then_get(bureau: Bureau) -> None:
    body = b"\x89PNG fake image bytes" * 100
    sha = hashlib.sha256(body).hexdigest()
    first = _put(bureau, sha, body)
    assert first.status_code == 201, first.text
    assert first.json() == {"status": "created", "sha256": sha, "size": len(body)}
    again = _put(bureau, sha, body)
    assert again.status_code == 200
    assert again.json()["status"] == "held"

    got = bureau.get_blob(sha)
    assert got.status_code == 200
    assert got.content == body
    assert got.headers["content-type"] == "image/png"


def test_streamed_upload_in_chunks(bureau: Bureau) -> None:
    chunks = [bytes([i]) * 65536 for i in range(20)]
    body = b"".join(chunks)
    sha = hashlib.sha256(body).hexdigest()
    response = bureau.client.put(
        f"/v1/blobs/{sha}",
        content=iter(chunks),
        headers={"Content-Type": "application/pdf", "X-Portal-Signature": signature(body)},
    )
    assert response.status_code == 201, response.text
    assert hashlib.sha256(bureau.get_blob(sha).content).hexdigest() == sha


def test_hash_mismatch_and_bad_names(bureau: Bureau) -> None:
    body = b"some bytes"
    wrong = hashlib.sha256(b"other").hexdigest()
    response = _put(bureau, wrong, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "hash_mismatch"
    assert bureau.get_blob(wrong).status_code == 404
    for name in ("not-hex", "z" * 64, "ab" * 31):
        bad = _put(bureau, name, body)
        assert bad.status_code == 400, name
        assert bad.json()["error"]["code"] == "invalid_name"


def test_put_and_get_need_signatures(bureau: Bureau) -> None:
    body = b"secret scan"
    sha = hashlib.sha256(body).hexdigest()
    assert _put(bureau, sha, body, header=None).status_code == 401
    stale = signature(body, t=int(time.time()) - 400)
    assert _put(bureau, sha, body, header=stale).status_code == 401
    # Signed over other bytes: the MAC is checked against what actually arrived.
    assert _put(bureau, sha, body, header=signature(b"x")).status_code == 401
    assert bureau.get_blob(sha).status_code == 404  # nothing was kept

    assert _put(bureau, sha, body).status_code == 201
    assert bureau.client.get(f"/v1/blobs/{sha}").status_code == 401
    signed_other = {"X-Portal-Signature": signature(b"not empty")}
    assert bureau.client.get(f"/v1/blobs/{sha}", headers=signed_other).status_code == 401


def test_size_limit(make_bureau: Callable[..., Bureau]) -> None:
    bureau = make_bureau(max_blob_mb=1)
    body = b"x" * (1024 * 1024 + 1)
    response = _put(bureau, hashlib.sha256(body).hexdigest(), body)
    assert response.status_code == 413
    assert not list((bureau.settings.data_dir / "blobs" / "tmp").iterdir())
