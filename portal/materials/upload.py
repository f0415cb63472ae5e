"""Receiving one uploaded file from a multipart request, streamed: never whole in memory.

The body is fed to python-multipart's push parser in batches as it arrives, in a
worker thread; the file part's bytes go straight into a BlobWriter (hashed and
encrypted on the way to a temp file). Limits are enforced while streaming, so an oversized or
malicious request is cut off without being stored.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from python_multipart.multipart import MAX_BOUNDARY_LENGTH, MultipartParser, parse_options_header
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from portal.errors import DomainError, Forbidden, TooLarge, UnsupportedType
from portal.materials.sniff import check_content, check_stored, sniff
from portal.materials.storage import BlobStore, BlobWriter

MAX_PARTS = 8
MAX_FIELD_BYTES = 1024
MULTIPART_OVERHEAD = 16 * 1024
# Parsing, hashing, encrypting and writing run in a worker thread, never on the event
# loop; the body is handed over in batches of this size so a 20 MB upload takes ~80
# thread hops, not one per network read.
WRITE_BATCH = 256 * 1024


def too_large_message(max_bytes: int) -> str:
    return f"文件超过 {max_bytes // (1024 * 1024)} MB 的上限，请压缩或分页扫描后再上传。"


class BadUpload(DomainError):
    status = 400
    code = "bad_upload"


@dataclass
class ReceivedFile:
    writer: BlobWriter
    sha256: str
    size: int
    content_type: str
    filename: str
    thumbnail: bytes | None = None  # a JPEG preview of an image, made while it was checked


def clean_filename(raw: str | None, content_type: str) -> str:
    """A display name: no path, no control characters, at most 100 characters, right extension."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().strip(".")
    if not name:
        name = "材料"
    stem, dot, ext = name.rpartition(".")
    expected = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}[content_type]
    if not dot or ext.lower() not in {expected, "jpeg" if expected == "jpg" else expected}:
        stem, ext = name, expected
    return f"{stem[:90]}.{ext.lower()}"


class _Receiver:
    def __init__(self, store: BlobStore, max_bytes: int, csrf_check) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.csrf_check = csrf_check  # None for API calls (bearer tokens, no cookies)
        self.csrf_ok = csrf_check is None
        self.parts = 0
        self.headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self.current: str | None = None  # "file", "csrf", "skip"
        self.field_buffer = bytearray()
        self.writer: BlobWriter | None = None
        self.filename: str | None = None
        self.done_file = False

    # python-multipart callbacks -------------------------------------------------
    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise BadUpload("表单字段过多，请只上传一个文件。", code="too_many_parts")
        self.headers = {}
        self.current = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name == "file" and options.get(b"filename"):
            if self.done_file:
                raise BadUpload("一次只能上传一个文件。", code="one_file")
            if not self.csrf_ok:
                # The token field comes first in our forms; a file without one before it is refused
                # before a single byte of it is stored.
                raise Forbidden("页面已过期或来源不明，请刷新页面后重新上传。", code="csrf")
            self.filename = options[b"filename"].decode("utf-8", "replace")
            self.writer = self.store.writer()
            self.current = "file"
        elif name == "csrf_token":
            self.current = "csrf"
            self.field_buffer = bytearray()
        else:
            self.current = "skip"
            self.field_buffer = bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.current == "file":
            assert self.writer is not None
            if self.writer.size + len(chunk) > self.max_bytes:
                raise TooLarge(self._too_large_message(), code="too_large")
            self.writer.write(chunk)
        else:
            self.field_buffer += chunk
            if len(self.field_buffer) > MAX_FIELD_BYTES:
                raise BadUpload("表单字段过长。", code="field_too_long")

    def on_part_end(self) -> None:
        if self.current == "csrf" and self.csrf_check is not None:
            self.csrf_ok = self.csrf_check(self.field_buffer.decode("utf-8", "replace"))
        elif self.current == "file":
            self.done_file = True

    def _too_large_message(self) -> str:
        return too_large_message(self.max_bytes)


async def receive_file(
    request: Request, store: BlobStore, *, session: Session, max_bytes: int, csrf_check=None
) -> ReceivedFile:
    """Stream the `file` part of a multipart request into the store's temp area, checked.

    `csrf_check(token) -> bool` is given for cookie-authenticated pages. The file is
    in the store when this returns (kept once by hash, its thumbnail beside it); the
    caller records it (`materials.ensure_blob`). Kept before the caller's transaction
    opens, so the sync, the rename and the thumbnail's write never run under the write
    lock; a file no transaction then records is a stray, removed after a day
    (`retention.remove_strays`).

    The request's transaction (`session`) is committed before the first byte is
    read: a phone on a slow line may take minutes to send its file, and an open
    transaction would hold SQLite's write lock, or a PostgreSQL connection, all that
    time. The caller's attach step re-reads what it checks (`session.refresh`).
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise BadUpload(
            "请以 multipart/form-data 方式上传，文件字段名为 file。", code="not_multipart"
        )
    if not 1 <= len(params[b"boundary"]) <= MAX_BOUNDARY_LENGTH:
        # The parser refuses a longer one in its constructor (RFC 2046 allows 70 characters).
        raise BadUpload("上传的内容格式有误，请重新选择文件上传。", code="bad_multipart")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD:
        raise TooLarge(too_large_message(max_bytes), code="too_large")
    await run_in_threadpool(session.commit)
    receiver = _Receiver(store, max_bytes, csrf_check)
    callbacks = {
        name: getattr(receiver, name)
        for name in (
            "on_part_begin",
            "on_part_data",
            "on_part_end",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
        )
    }
    limit = max_bytes + MULTIPART_OVERHEAD
    parser = MultipartParser(params[b"boundary"], callbacks)  # type: ignore[arg-type]
    received = 0  # BodyLimit (portal.middleware) counts the same bytes, for every route
    pending = bytearray()
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise TooLarge(receiver._too_large_message(), code="too_large")
            pending += chunk
            if len(pending) >= WRITE_BATCH:
                await run_in_threadpool(parser.write, bytes(pending))
                pending.clear()
        if pending:
            await run_in_threadpool(parser.write, bytes(pending))
        parser.finalize()
    except DomainError:
        if receiver.writer:
            receiver.writer.discard()
        raise
    except ClientDisconnect:
        if receiver.writer:
            receiver.writer.discard()
        raise BadUpload("上传中断，请重新上传。", code="disconnected") from None
    except Exception:
        if receiver.writer:
            receiver.writer.discard()
        raise BadUpload("上传的内容格式有误，请重新选择文件上传。", code="bad_multipart") from None
    writer = receiver.writer
    if writer is None or not receiver.done_file:
        if writer:
            writer.discard()
        if not receiver.csrf_ok:
            raise Forbidden("页面已过期或来源不明，请刷新页面后重新上传。", code="csrf")
        raise BadUpload("请选择要上传的文件。", code="no_file")
    try:
        sha256 = writer.close()
        if writer.size == 0:
            raise BadUpload("文件是空的，请重新选择。", code="empty_file")
        kind = sniff(bytes(writer.head[:16]))
        if kind is None:
            raise UnsupportedType("只能上传 PDF、JPG 或 PNG 文件（按文件内容识别，改扩展名无效）。")
        check_content(kind, bytes(writer.head), writer.tail, writer.scanner)
        # Then parsed whole, from the stored temp file (read in pieces, decrypted as
        # read), in a worker thread: a PDF walk or an image decode takes CPU time.
        thumbnail = await run_in_threadpool(_check_stored_file, store, writer, kind)
        await run_in_threadpool(store.put, writer, sha256, thumbnail=thumbnail)
    except BaseException:
        writer.discard()
        raise
    return ReceivedFile(
        writer=writer,
        sha256=sha256,
        size=writer.size,
        content_type=kind,
        filename=clean_filename(receiver.filename, kind),
        thumbnail=thumbnail,
    )


def _check_stored_file(store: BlobStore, writer: BlobWriter, kind: str) -> bytes | None:
    with store.open_staged(writer) as plain:
        return check_stored(kind, plain)
