"""The portal-facing endpoints of the exchange protocol: blobs and events."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from bureau import inbound, signing
from bureau.blobs import BlobStore, is_sha256
from bureau.db import DbSession
from bureau.errors import BadRequest, NotFound, TooLarge
from bureau.settings import Settings

router = APIRouter(prefix="/v1", tags=["protocol"])

MAX_EVENT_BYTES = 2 * 1024 * 1024
WRITE_BATCH = 256 * 1024


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _store(request: Request) -> BlobStore:
    return request.app.state.store


def _blob_name(sha256: str) -> str:
    name = sha256.lower()
    if not is_sha256(name):
        raise BadRequest("文件地址应为 64 位十六进制 SHA-256 摘要。", code="invalid_name")
    return name


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


@router.put("/blobs/{sha256}", status_code=201)
async def put_blob(sha256: str, request: Request) -> JSONResponse:
    """Receive one file, hashing it while it streams to disk."""
    settings, store = _settings(request), _store(request)
    name = _blob_name(sha256)
    # Header and clock are checked before a byte is read; the MAC needs the body's hash,
    # which is known once the stream ends.
    parsed = signing.parse_header(request.headers.get(signing.PORTAL_HEADER))
    declared = _declared_length(request)
    if declared is not None and declared > settings.max_blob_bytes:
        raise TooLarge(f"文件超过 {settings.max_blob_mb} MB 的上限。")
    with store.incoming(settings.max_blob_bytes) as incoming:
        # Hashing, encrypting and writing run in a worker thread, in batches: never on
        # the event loop that serves the other requests.
        pending = bytearray()
        async for chunk in request.stream():
            pending += chunk
            if len(pending) >= WRITE_BATCH:
                await run_in_threadpool(incoming.write, bytes(pending))
                pending.clear()
        await run_in_threadpool(incoming.write, bytes(pending))
        signing.check_mac(settings.secret, parsed, incoming.sha256)
        if incoming.sha256 != name:
            raise BadRequest(
                f"文件内容的 SHA-256 为 {incoming.sha256}，与地址中的摘要不符。",
                code="hash_mismatch",
            )
        # A duplicate does the same work as a new file (bureau.blobs, "Duplicate uploads").
        created = await run_in_threadpool(incoming.keep, request.headers.get("content-type", ""))
        size = incoming.size
    body = {"status": "created" if created else "held", "sha256": name, "size": size}
    return JSONResponse(body, status_code=201 if created else 200)


@router.api_route("/blobs/{sha256}", methods=["GET", "HEAD"])
def get_blob(sha256: str, request: Request) -> Response:
    """Serve a held file (licences the bureau issued, and uploaded materials) to the portal."""
    settings, store = _settings(request), _store(request)
    # A GET is signed over the empty body.
    signing.verify(settings.secret, request.headers.get(signing.PORTAL_HEADER), b"")
    name = _blob_name(sha256)
    size = store.size(name)
    if size is None:
        raise NotFound("文件不存在。")
    headers = {
        "Content-Length": str(size),
        "ETag": f'"{name}"',
        "Cache-Control": "private, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
    }
    media = store.content_type(name)
    if request.method == "HEAD":
        return Response(headers=headers, media_type=media)
    # Decrypted chunk by chunk as it is sent, in the threadpool (a sync iterator).
    return StreamingResponse(store.open_for_response(name), media_type=media, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise TooLarge("事件内容过大。")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge("事件内容过大。")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/events")
async def post_event(request: Request, session: DbSession) -> JSONResponse:
    """Receive one event: 401 signature, 200 ok/duplicate, 404, 409, 422 as the contract says."""
    settings, store = _settings(request), _store(request)
    body = await _read_body(request, MAX_EVENT_BYTES)
    # Verified over the raw bytes exactly as received, never a re-serialisation.
    signing.verify(settings.secret, request.headers.get(signing.PORTAL_HEADER), body)
    result = await run_in_threadpool(inbound.receive_event, session, body=body, store=store)
    return JSONResponse(result, status_code=200)
