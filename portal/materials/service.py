"""Attaching uploaded files to a case's materials, removing them, reading them back."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.cases.models import Case
from portal.cases.states import require_material_editable
from portal.catalogue.models import Item
from portal.clock import utcnow
from portal.errors import Conflict, NotFound
from portal.materials.models import Blob, CaseFile
from portal.materials.storage import BlobStore, BlobWriter
from portal.materials.upload import ReceivedFile

log = logging.getLogger(__name__)
MAX_FILES_PER_MATERIAL = 20


def material_of(item: Item, code: str) -> dict:
    material = item.material(code)
    if material is None:
        raise NotFound("该事项没有这项材料。", code="material_not_found")
    return material


def check_can_upload(session: Session, *, case: Case, item: Item, material_code: str) -> dict:
    """Before any byte is read: the material exists and the case is editable."""
    material = material_of(item, material_code)
    require_material_editable(case, material_code)
    count = len(
        session.scalars(
            select(CaseFile.id).where(
                CaseFile.case_id == case.id, CaseFile.material_code == material_code
            )
        ).all()
    )
    if count >= MAX_FILES_PER_MATERIAL:
        raise Conflict(f"每项材料最多上传 {MAX_FILES_PER_MATERIAL} 个文件。", code="too_many_files")
    return material


def ensure_blob(session: Session, store: BlobStore, received: ReceivedFile) -> Blob:
    """The row of a file `receive_file` has already put in the store (once by hash)."""
    if not received.writer.kept:
        # Every upload path puts its file before the attach transaction opens (the sync
        # and rename stay out of the write lock); one that did not still keeps its file.
        log.warning("upload %s put inside a transaction", received.sha256[:12])
        put_received(store, received)
    return ensure_blob_row(
        session, sha256=received.sha256, size=received.size, content_type=received.content_type
    )


def ensure_blob_row(session: Session, *, sha256: str, size: int, content_type: str) -> Blob:
    """The blob's row, created when missing, and held until the caller's commit.

    FOR KEY SHARE (PostgreSQL; SQLite runs one writer at a time anyway): retention's
    delete of the same row waits for this transaction and then finds it referenced,
    and a row retention deleted a moment ago is seen as gone, so it is created again
    rather than referenced while it disappears. The file itself is safe either way:
    the upload touched it (`BlobStore.put`), so `remove` keeps it.
    """
    query = select(Blob).where(Blob.sha256 == sha256).with_for_update(key_share=True)
    blob = session.scalars(query).first()
    if blob is None:
        blob = Blob(sha256=sha256, size=size, content_type=content_type)
        try:
            with session.begin_nested():
                session.add(blob)
        except IntegrityError:  # another request stored the same content just now
            blob = session.scalars(query).one()
    return blob


def attach_file(
    session: Session,
    *,
    case: Case,
    item: Item,
    material_code: str,
    received: ReceivedFile,
    store: BlobStore,
) -> CaseFile:
    """Record an uploaded file against one material of a case.

    The case is read again first (and locked on PostgreSQL): the upload may have
    taken minutes outside any transaction, and it may have been submitted meanwhile.
    """
    session.refresh(case, with_for_update=True)
    check_can_upload(session, case=case, item=item, material_code=material_code)
    return record_file(session, store, case=case, material_code=material_code, received=received)


def record_file(
    session: Session, store: BlobStore, *, case: Case, material_code: str, received: ReceivedFile
) -> CaseFile:
    """Keep the blob (once by hash) and name it under one material of the case."""
    ensure_blob(session, store, received)
    case_file = CaseFile(
        case_id=case.id,
        material_code=material_code,
        sha256=received.sha256,
        filename=received.filename,
        content_type=received.content_type,
        size=received.size,
    )
    session.add(case_file)
    case.updated_at = case_file.uploaded_at = utcnow()
    session.flush()
    return case_file


def get_case_file(
    session: Session, *, case: Case, file_id: int, material_code: str | None = None
) -> CaseFile:
    query = select(CaseFile).where(CaseFile.id == file_id, CaseFile.case_id == case.id)
    if material_code is not None:
        query = query.where(CaseFile.material_code == material_code)
    case_file = session.scalars(query).first()
    if case_file is None:
        raise NotFound("没有找到该文件。", code="file_not_found")
    return case_file


def remove_file(
    session: Session, *, case: Case, file_id: int, material_code: str | None = None
) -> None:
    """Take a file off a draft, a returned case or a named 补正 material; the blob stays while
    anything uses it."""
    case_file = get_case_file(session, case=case, file_id=file_id, material_code=material_code)
    require_material_editable(case, case_file.material_code)
    session.delete(case_file)


def file_chunks(store: BlobStore, case_file: CaseFile) -> Iterator[bytes]:
    return store.chunks(case_file.sha256)


def put_issued(store: BlobStore, sha256: str, content: bytes | BlobWriter) -> tuple[int, str]:
    """Keep a file the bureau issued (staged as it was fetched, or small bytes): size, type.

    Put before the caller's transaction, like an upload; ValueError when the content is
    not the one `sha256` names.
    """
    writer = content if isinstance(content, BlobWriter) else store.writer()
    try:
        if not isinstance(content, BlobWriter):
            writer.write(content)
            if writer.close() != sha256:
                raise ValueError("content does not match its SHA-256")
        is_pdf = bytes(writer.head[:5]) == b"%PDF-"
        size = writer.size
        store.put(writer, sha256)
    finally:
        writer.discard()
    return size, "application/pdf" if is_pdf else "application/octet-stream"


def put_received(store: BlobStore, received: ReceivedFile) -> None:
    """Keep a received file in the store, before the transaction that records it (idempotent)."""
    if not received.writer.kept:
        store.put(received.writer, received.sha256, thumbnail=received.thumbnail)
