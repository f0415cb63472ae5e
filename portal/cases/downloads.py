"""The files the bureau issued on a case, as the page and the API hand them out."""

from __future__ import annotations

from urllib.parse import quote

from fastapi.responses import StreamingResponse

from portal.cases.models import Case
from portal.cases.view import issued_licence
from portal.errors import NotFound
from portal.materials.storage import BlobStore


def document_response(store: BlobStore, case: Case, number: str) -> StreamingResponse:
    """One document's file, byte for byte as issued; 404 unknown or not fetched yet."""
    found = next((d for d in case.documents or [] if d.get("number") == number), None)
    if found is None or not found.get("stored"):
        raise NotFound("没有该文书，或文书正在从审批局获取中。", code="document_not_found")
    return StreamingResponse(
        store.chunks(found["sha256"]),
        media_type=found.get("content_type") or "application/pdf",
        headers={
            "Content-Disposition": "attachment; filename*=UTF-8''"
            + quote(found.get("filename") or f"{number}.pdf"),
            "Cache-Control": "private, no-store",
        },
    )


def licence_response(store: BlobStore, case: Case) -> StreamingResponse:
    """The stored licence file as its owner downloads it; 404 before it exists."""
    licence = issued_licence(case)
    if not licence or not licence.get("stored"):
        raise NotFound("电子证照尚未签发或正在获取中。", code="licence_not_ready")
    filename = licence.get("filename") or f"{licence.get('number', 'licence')}.pdf"
    return StreamingResponse(
        store.chunks(licence["sha256"]),
        media_type=licence.get("content_type") or "application/pdf",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "Cache-Control": "private, no-store",
        },
    )
