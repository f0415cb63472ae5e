"""Uploads for one material of a case: the same path for the pages and the API, for a draft's
materials, a returned (退回/补正) file replaced in one step, and 补交 (容缺 materials).

A page form sends either one file (`file`) or photos from the phone's camera (`photos`,
several for a multi-page material). The photos become one material: a PDF of as many
pages, made here with Pillow (each page) and pypdf (the whole), so the bureau receives
one document per material, in the order taken. Choosing both is refused before anything
is kept: which one the citizen meant is theirs to say. The API sends one `file`
(portal/materials/upload.py).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from PIL import Image, ImageOps
from pypdf import PdfReader, PdfWriter
from python_multipart.multipart import MAX_BOUNDARY_LENGTH, MultipartParser, parse_options_header
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from portal.accounts.models import Account
from portal.cases.models import Case
from portal.cases.states import require_material_editable
from portal.catalogue.models import Item
from portal.errors import DomainError, Forbidden, TooLarge, UnsupportedType
from portal.library import service as library
from portal.materials import service as materials
from portal.materials.models import CaseFile
from portal.materials.sniff import check_content, check_stored, sniff
from portal.materials.storage import BlobStore, BlobWriter
from portal.materials.upload import (
    MAX_FIELD_BYTES,
    MULTIPART_OVERHEAD,
    WRITE_BATCH,
    BadUpload,
    ReceivedFile,
    clean_filename,
    receive_file,
    too_large_message,
)

log = logging.getLogger(__name__)
PHOTOS = "photos"
MAX_PHOTOS = materials.MAX_FILES_PER_MATERIAL
# The long side of a page made from a photo: an A4 page at about 170 dpi, sharp enough to
# read a stamp and small (a few hundred KB a page) for the bureau and a phone line.
PAGE_LONG_SIDE = 2000
A4_LONG_INCHES = 11.69
CHUNK = 1 << 16
CONFIRMATION = "upload_confirmation"

FILE_AND_PHOTOS = (
    "您既选择了文件，又拍了照片，一次只能上传其中一种，本次没有保存。"
    "请只保留一种后重新上传：交扫描件或电子文件的，用“选择文件”；"
    "用手机拍的，用“拍照”（多页材料每页一张，会合成一份材料）。"
)


@dataclass
class PageUpload(ReceivedFile):
    pages: int = 1  # photos combined into this PDF (1: the file as sent)


@dataclass
class Uploaded:
    case_file: CaseFile
    pages: int


class FileAndPhotos(DomainError):
    status = 422
    code = "file_and_photos"


class _Parts:
    """python-multipart callbacks: the CSRF token, then one `file` or several `photos`."""

    def __init__(self, store: BlobStore, max_bytes: int, csrf_check) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.csrf_check = csrf_check
        self.csrf_ok = False
        self.parts = 0
        self.headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self.current: str | None = None  # "file", "csrf", "skip", "drain"
        self.field_buffer = bytearray()
        self.files: list[tuple[str, str, BlobWriter]] = []  # (field, filename, writer)
        self.finished = 0
        self.fields: set[str] = set()

    @property
    def mixed(self) -> bool:
        return len(self.fields) > 1

    def discard(self) -> None:
        for _, _, writer in self.files:
            writer.discard()

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PHOTOS + 4:
            raise BadUpload(
                f"表单字段过多，一次最多拍 {MAX_PHOTOS} 张照片。", code="too_many_parts"
            )
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
        if name in ("file", PHOTOS) and options.get(b"filename"):
            if not self.csrf_ok:
                # The token field comes first in our forms; a file without one before it is
                # refused before a single byte of it is stored.
                raise Forbidden("页面已过期或来源不明，请刷新页面后重新上传。", code="csrf")
            self.fields.add(name)
            if self.mixed:
                # Keep reading (and dropping) the rest, so the browser gets the answer
                # after its upload rather than a connection cut in the middle of it.
                self.discard()
                self.current = "drain"
                return
            if name == "file" and self.files:
                raise BadUpload("一次只能上传一个文件。", code="one_file")
            if len(self.files) >= MAX_PHOTOS:
                raise BadUpload(f"一次最多拍 {MAX_PHOTOS} 张照片。", code="too_many_photos")
            filename = options[b"filename"].decode("utf-8", "replace")
            self.files.append((name, filename, self.store.writer()))
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
            writer = self.files[-1][2]
            if writer.size + len(chunk) > self.max_bytes:
                raise TooLarge(too_large_message(self.max_bytes), code="too_large")
            writer.write(chunk)
        elif self.current in ("csrf", "skip"):
            self.field_buffer += chunk
            if len(self.field_buffer) > MAX_FIELD_BYTES:
                raise BadUpload("表单字段过长。", code="field_too_long")

    def on_part_end(self) -> None:
        if self.current == "csrf":
            self.csrf_ok = self.csrf_check(self.field_buffer.decode("utf-8", "replace"))
        elif self.current == "file":
            self.finished += 1


async def receive_page_upload(
    request: Request,
    store: BlobStore,
    *,
    session: Session,
    max_bytes: int,
    csrf_check: Callable[[str | None], bool],
    material: dict,
) -> PageUpload:
    """A page's upload, streamed and checked like the API's: one file, or photos as one PDF.

    As in materials.upload.receive_file, the request's transaction is committed before
    the first byte is read (a phone may take minutes to send its photos).
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise BadUpload("请通过页面上的表单上传文件。", code="not_multipart")
    if not 1 <= len(params[b"boundary"]) <= MAX_BOUNDARY_LENGTH:
        raise BadUpload("上传的内容格式有误，请重新选择文件上传。", code="bad_multipart")
    await run_in_threadpool(session.commit)
    parts = _Parts(store, max_bytes, csrf_check)
    callbacks = {
        name: getattr(parts, name)
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
    # The whole request, photos together, stays within one upload's limit (BodyLimit
    # counts the same bytes for every route).
    limit = max_bytes + MULTIPART_OVERHEAD
    parser = MultipartParser(params[b"boundary"], callbacks)  # type: ignore[arg-type]
    received = 0
    pending = bytearray()
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise TooLarge(too_large_message(max_bytes), code="too_large")
            pending += chunk
            if len(pending) >= WRITE_BATCH:
                # Parsed, hashed and encrypted in a worker thread, as receive_file does.
                await run_in_threadpool(parser.write, bytes(pending))
                pending.clear()
        if pending:
            await run_in_threadpool(parser.write, bytes(pending))
        parser.finalize()
    except DomainError:
        parts.discard()
        raise
    except ClientDisconnect:
        parts.discard()
        raise BadUpload("上传中断，请重新上传。", code="disconnected") from None
    except Exception:
        parts.discard()
        raise BadUpload("上传的内容格式有误，请重新选择文件上传。", code="bad_multipart") from None
    if parts.mixed:
        parts.discard()
        raise FileAndPhotos(FILE_AND_PHOTOS)
    if not parts.files or parts.finished < len(parts.files):
        parts.discard()
        if not parts.csrf_ok:
            raise Forbidden("页面已过期或来源不明，请刷新页面后重新上传。", code="csrf")
        raise BadUpload("请先点“选择文件”或“拍照”，再点“上传”。", code="no_file")
    try:
        checked = [
            await _checked(store, writer, filename, photo=field == PHOTOS)
            for field, filename, writer in parts.files
        ]
        if len(checked) == 1:
            upload = PageUpload(**vars(checked[0]))
        else:
            upload = await run_in_threadpool(_combine, store, checked, material)
        # Kept (synced, renamed) now, before the attach transaction, as receive_file does;
        # the photos of a combined PDF are not kept, only their pages in it.
        await run_in_threadpool(store.put, upload.writer, upload.sha256, thumbnail=upload.thumbnail)
    except BaseException:
        parts.discard()
        raise
    if upload.pages > 1:
        parts.discard()
    return upload


async def _checked(store: BlobStore, writer: BlobWriter, filename: str, *, photo: bool):
    """The checks of materials.upload.receive_file, for one part of a page's upload."""
    sha256 = writer.close()
    if writer.size == 0:
        raise BadUpload("文件是空的，请重新选择。", code="empty_file")
    kind = sniff(bytes(writer.head[:16]))
    if kind is None and photo:
        # Most often an iPhone's HEIC photo sent as it is.
        raise UnsupportedType(
            "照片格式无法识别，只能上传 JPG 或 PNG 照片。请把手机相机的格式设为“兼容性最佳”后重拍，"
            "或用“选择文件”上传 JPG、PNG 或 PDF 文件。",
            code="photo_format",
        )
    if kind is None:
        raise UnsupportedType("只能上传 PDF、JPG 或 PNG 文件（按文件内容识别，改扩展名无效）。")
    if photo and kind == "application/pdf":
        raise UnsupportedType(
            "“拍照”只能上传 JPG 或 PNG 照片；PDF 文件请用“选择文件”上传。", code="photo_is_pdf"
        )
    check_content(kind, bytes(writer.head), writer.tail, writer.scanner)
    thumbnail = await run_in_threadpool(_check_stored, store, writer, kind)
    return ReceivedFile(
        writer=writer,
        sha256=sha256,
        size=writer.size,
        content_type=kind,
        filename=clean_filename(filename, kind),
        thumbnail=thumbnail,
    )


def _check_stored(store: BlobStore, writer: BlobWriter, kind: str) -> bytes | None:
    with store.open_staged(writer) as plain:
        return check_stored(kind, plain)


def _page_of(store: BlobStore, photo: ReceivedFile) -> bytes:
    """One photo as a one-page PDF: upright, on white, its long side an A4 page's."""
    with store.open_staged(photo.writer) as plain, Image.open(plain) as im:
        im.draft("RGB", (PAGE_LONG_SIDE, PAGE_LONG_SIDE))
        page = ImageOps.exif_transpose(im)
        page.load()  # before the file closes
    if page.mode in ("RGBA", "LA", "PA") or "transparency" in page.info:
        # A screenshot with transparency: on white paper, not black.
        rgba = page.convert("RGBA")
        page = Image.new("RGB", rgba.size, "white")
        page.paste(rgba, mask=rgba.getchannel("A"))
    page = page.convert("RGB")
    page.thumbnail((PAGE_LONG_SIDE, PAGE_LONG_SIDE))
    one = io.BytesIO()
    page.save(one, "PDF", resolution=max(page.size) / A4_LONG_INCHES, quality=85)
    return one.getvalue()


def _combine(store: BlobStore, photos: list[ReceivedFile], material: dict) -> PageUpload:
    """The photos (already checked) as one PDF, a page each, upright and on an A4 page.

    One page is decoded at a time (Pillow's JPEG draft mode decodes a phone photo at
    the reduced size directly); pypdf then joins the one-page PDFs.
    """
    joined = PdfWriter()
    for number, photo in enumerate(photos, 1):
        try:
            joined.append(PdfReader(io.BytesIO(_page_of(store, photo))))
        except (OSError, ValueError) as exc:  # checked already, so not expected: say so calmly
            log.warning("photo %d of %d could not become a PDF page: %s", number, len(photos), exc)
            raise UnsupportedType(
                f"第 {number} 张照片无法合成，请重新拍摄这一页，或用“选择文件”上传。",
                code="photo_unreadable",
            ) from None
    joined.add_metadata({"/Title": material["name"]})
    out = io.BytesIO()
    joined.write(out)
    data = out.getvalue()
    writer = store.writer()
    try:
        for start in range(0, len(data), CHUNK):
            writer.write(data[start : start + CHUNK])
        sha256 = writer.close()
        # Our own output passes the same gate as any upload, so what the bureau
        # receives has always been through it.
        check_content("application/pdf", bytes(writer.head), writer.tail, writer.scanner)
        _check_stored(store, writer, "application/pdf")
    except BaseException:
        writer.discard()
        raise
    name = material["name"].replace("/", "、")  # not a path
    return PageUpload(
        writer=writer,
        sha256=sha256,
        size=writer.size,
        content_type="application/pdf",
        filename=clean_filename(f"{name}（{len(photos)}页）.pdf", "application/pdf"),
        pages=len(photos),
    )


async def upload_to_case(
    request: Request,
    session: Session,
    *,
    account: Account,
    case: Case,
    item: Item,
    material_code: str,
    attach: Callable[..., CaseFile],
) -> CaseFile:
    """The API's upload: one `file`, streamed in outside any transaction, then `attach`ed.

    The caller has checked, before any byte is read, that the material may take a file;
    `attach` (materials.attach_file, cases.service.attach_supplement_file) checks again
    under the write lock, since the upload may have taken minutes.
    """
    received = await receive_file(
        request,
        request.app.state.store,
        session=session,
        max_bytes=request.app.state.settings.max_upload_bytes,
    )
    return await _attach(request, session, account, case, item, material_code, attach, received)


async def upload_from_page(
    request: Request,
    session: Session,
    *,
    account: Account,
    case: Case,
    item: Item,
    material_code: str,
    attach: Callable[..., CaseFile],
    csrf_check: Callable[[str | None], bool],
) -> Uploaded:
    """A page's upload: one file or photos (as one PDF), then `attach`ed like the API's."""
    received = await receive_page_upload(
        request,
        request.app.state.store,
        session=session,
        max_bytes=request.app.state.settings.max_upload_bytes,
        csrf_check=csrf_check,
        material=materials.material_of(item, material_code),
    )
    case_file = await _attach(
        request, session, account, case, item, material_code, attach, received
    )
    return Uploaded(case_file=case_file, pages=received.pages)


async def _attach(request, session, account, case, item, material_code, attach, received):
    """Attach the received file and keep it in the citizen's library, in one transaction."""
    store = request.app.state.store

    def attach_and_keep() -> CaseFile:
        case_file = attach(
            session,
            case=case,
            item=item,
            material_code=material_code,
            received=received,
            store=store,
        )
        library.keep_upload(
            session,
            account_id=account.id,
            case_no=case.case_no,
            material=materials.material_of(item, material_code),
            case_file=case_file,
        )
        return case_file

    try:
        # Into the store before the attach transaction: never under the write lock.
        await run_in_threadpool(materials.put_received, store, received)
        return await run_in_threadpool(attach_and_keep)
    finally:
        received.writer.discard()  # no-op once kept


def check_can_replace(session: Session, *, case: Case, item: Item, material_code: str, file_id):
    """Before any byte is read: the file is this material's and the material may change."""
    materials.material_of(item, material_code)
    materials.get_case_file(session, case=case, file_id=file_id, material_code=material_code)
    require_material_editable(case, material_code)


def replace_file(
    session: Session,
    *,
    case: Case,
    item: Item,
    material_code: str,
    received: ReceivedFile,
    store: BlobStore,
    file_id: int,
) -> CaseFile:
    """One step for a returned file: the old one goes and the new one comes, or neither."""
    session.refresh(case, with_for_update=True)
    materials.remove_file(session, case=case, file_id=file_id, material_code=material_code)
    session.flush()
    return materials.attach_file(
        session,
        case=case,
        item=item,
        material_code=material_code,
        received=received,
        store=store,
    )


def replacing(file_id: int) -> tuple[Callable[..., None], Callable[..., CaseFile]]:
    """The check and the attach step of a replacement of one file."""
    return partial(check_can_replace, file_id=file_id), partial(replace_file, file_id=file_id)


def confirm(request: Request, *, material_code: str, uploaded: Uploaded, replaced: bool) -> None:
    """The 已上传 line shown next to the material on the next page (with JS or without)."""
    name = uploaded.case_file.filename
    if uploaded.pages > 1:
        message = f"已上传“{name}”：{uploaded.pages} 张照片已合成一份材料"
    else:
        message = f"已上传“{name}”"
    if replaced:
        message += "，原文件已替换"
    request.session[CONFIRMATION] = {"material": material_code, "message": message + "。"}


def take_confirmation(request: Request) -> dict | None:
    return request.session.pop(CONFIRMATION, None)
