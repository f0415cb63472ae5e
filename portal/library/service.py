"""材料一套清: keep every upload and issued licence once, offer them again by material type."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.accounts.models import Account
from portal.cases.models import Case
from portal.catalogue.models import Item
from portal.catalogue.service import find_item
from portal.clock import today_cst, utcnow
from portal.errors import Conflict, Invalid, NotFound
from portal.library.models import LibraryDocument
from portal.materials.models import Blob, CaseFile

ATTACHABLE = frozenset({"application/pdf", "image/jpeg", "image/png"})
# An application form belongs to one application; offering last year's would only mislead.
NOT_OFFERED_KINDS = frozenset({"application_form"})
# Licences that other items ask for as a material: the item's licence name -> material kind.
# (Other licences are kept too, under a kind of their own, and simply match nothing.)
LICENCE_KINDS = {
    "营业执照": "business_licence",
    "营业执照（个体工商户）": "business_licence",
    "江苏省投资项目备案证": "project_filing",
    "建设工程规划许可证": "planning_permit",
}
NOT_FOUND_MESSAGE = "材料库中没有这份材料。"


def licence_kind(item: Item) -> str:
    """The material kind an item's licence serves as, e.g. 营业执照 -> business_licence."""
    return LICENCE_KINDS.get(item.licence_name) or f"licence_{item.code.lower()}"


def is_expired(document: LibraryDocument, today: date | None = None) -> bool:
    return document.valid_to is not None and document.valid_to < (today or today_cst())


def _keep(session: Session, document: LibraryDocument) -> LibraryDocument:
    """Insert once per (account, hash); a document already kept is only marked as used."""
    existing = session.scalars(
        select(LibraryDocument).where(
            LibraryDocument.account_id == document.account_id,
            LibraryDocument.sha256 == document.sha256,
        )
    ).first()
    if existing is not None:
        existing.last_used_at = utcnow()
        if document.source == "licence" and existing.source != "licence":
            # The bureau's own copy is better evidence than an upload of the same bytes.
            for key in ("kind", "title", "source", "licence_number", "valid_from", "valid_to"):
                setattr(existing, key, getattr(document, key))
        return existing
    try:
        with session.begin_nested():
            session.add(document)
    except IntegrityError:  # the same file arrived in a parallel request just now
        return _keep(session, document)
    return document


def keep_upload(
    session: Session,
    *,
    account_id: int,
    case_no: str,
    material: dict[str, Any],
    case_file: CaseFile,
) -> LibraryDocument:
    """Every file a citizen uploads lands in their library, typed by the material it was for."""
    return _keep(
        session,
        LibraryDocument(
            account_id=account_id,
            sha256=case_file.sha256,
            kind=material["kind"],
            title=material["name"],
            filename=case_file.filename,
            content_type=case_file.content_type,
            size=case_file.size,
            source="upload",
            case_no=case_no,
        ),
    )


def keep_licence(session: Session, *, case: Case) -> LibraryDocument | None:
    """The licence issued on `case`, once its file is held: kept with its validity."""
    licence = case.licence or {}
    blob = session.get(Blob, licence.get("sha256", ""))
    if not licence.get("stored") or blob is None or blob.content_type not in ATTACHABLE:
        return None
    item = find_item(session, case.item_code)
    assert item is not None
    valid_to = licence.get("valid_to")
    return _keep(
        session,
        LibraryDocument(
            account_id=case.account_id,
            sha256=blob.sha256,
            kind=licence_kind(item),
            title=licence.get("name") or item.licence_name or item.name,
            filename=licence.get("filename") or f"{licence.get('number', 'licence')}.pdf",
            content_type=blob.content_type,
            size=blob.size,
            source="licence",
            case_no=case.case_no,
            licence_number=licence.get("number"),
            valid_from=date.fromisoformat(licence["valid_from"])
            if licence.get("valid_from")
            else None,
            valid_to=date.fromisoformat(valid_to) if valid_to else None,
        ),
    )


def list_documents(session: Session, *, account: Account) -> list[LibraryDocument]:
    """The account's library, newest first."""
    query = (
        select(LibraryDocument)
        .where(LibraryDocument.account_id == account.id)
        .order_by(LibraryDocument.created_at.desc(), LibraryDocument.id.desc())
    )
    return list(session.scalars(query))


def offers_for(
    session: Session,
    *,
    account: Account,
    kind: str,
    exclude: frozenset[str] | set[str] = frozenset(),
) -> list[LibraryDocument]:
    """Documents that can stand in for a material of `kind`: same type, valid, not yet attached."""
    if kind in NOT_OFFERED_KINDS or "\x00" in kind:
        return []
    today = today_cst()
    query = (
        select(LibraryDocument)
        .where(LibraryDocument.account_id == account.id, LibraryDocument.kind == kind)
        .order_by(LibraryDocument.last_used_at.desc(), LibraryDocument.id.desc())
    )
    return [
        d
        for d in session.scalars(query)
        if not is_expired(d, today) and d.content_type in ATTACHABLE and d.sha256 not in exclude
    ]


def offers_by_kind(
    session: Session, *, account: Account, kinds: set[str]
) -> dict[str, list[LibraryDocument]]:
    """`offers_for` of several kinds in one query (a case page offers for every material)."""
    wanted = {k for k in kinds if k not in NOT_OFFERED_KINDS and "\x00" not in k}
    if not wanted:
        return {}
    today = today_cst()
    query = (
        select(LibraryDocument)
        .where(LibraryDocument.account_id == account.id, LibraryDocument.kind.in_(wanted))
        .order_by(LibraryDocument.last_used_at.desc(), LibraryDocument.id.desc())
    )
    found: dict[str, list[LibraryDocument]] = {}
    for d in session.scalars(query):
        if not is_expired(d, today) and d.content_type in ATTACHABLE:
            found.setdefault(d.kind, []).append(d)
    return found


def get_own_document(session: Session, *, account: Account, document_id: int) -> LibraryDocument:
    """The account's document; another account's is 404 exactly like a missing one."""
    document = session.scalars(
        select(LibraryDocument).where(
            LibraryDocument.id == document_id, LibraryDocument.account_id == account.id
        )
    ).first()
    if document is None:
        raise NotFound(NOT_FOUND_MESSAGE, code="document_not_found")
    return document


def delete_document(session: Session, *, account: Account, document_id: int) -> None:
    """Remove a document from the library; cases keep their own copies of what they submitted."""
    session.delete(get_own_document(session, account=account, document_id=document_id))


def set_valid_to(
    session: Session, *, account: Account, document_id: int, valid_to: str
) -> LibraryDocument:
    """The citizen records until when an uploaded document is valid (blank: no end)."""
    document = get_own_document(session, account=account, document_id=document_id)
    if document.source == "licence":
        raise Conflict("证照的有效期以发证机关的记录为准，不能修改。", code="licence_validity")
    text = (valid_to or "").strip()
    if not text:
        document.valid_to = None
        return document
    try:
        parsed = date.fromisoformat(text)
    except ValueError:
        raise Invalid({"valid_to": "请按 YYYY-MM-DD 格式填写日期，例如 2030-12-31"}) from None
    if len(text) != 10 or not 2000 <= parsed.year <= 2100:
        raise Invalid({"valid_to": "请按 YYYY-MM-DD 格式填写日期，例如 2030-12-31"})
    document.valid_to = parsed
    return document


def usable_document(
    session: Session, *, account: Account, document_id: int, kind: str
) -> LibraryDocument:
    """A document the account may attach to a material of `kind` now (type, validity)."""
    document = get_own_document(session, account=account, document_id=document_id)
    if document.kind != kind or kind in NOT_OFFERED_KINDS:
        raise Invalid(
            {"document_id": f"“{document.title}”不是这项材料需要的文件类型"},
            "所选材料的类型与这项材料不符。",
        )
    if is_expired(document):
        raise Invalid(
            {"document_id": f"“{document.title}”已于 {document.valid_to} 过期，不能再用"},
            "所选材料已过期。",
        )
    if document.content_type not in ATTACHABLE:
        raise Invalid({"document_id": "该文件不是 PDF、JPG 或 PNG，不能直接选用"})
    return document


def attach_to_case(
    session: Session,
    *,
    account: Account,
    case: Case,
    item: Item,
    material_code: str,
    document_id: int,
) -> CaseFile:
    """One tap: the library file becomes a file of the case's material; no bytes move."""
    from portal.materials.service import check_can_upload

    material = check_can_upload(session, case=case, item=item, material_code=material_code)
    document = usable_document(
        session, account=account, document_id=document_id, kind=material["kind"]
    )
    already = session.scalar(
        select(CaseFile.id).where(
            CaseFile.case_id == case.id,
            CaseFile.material_code == material_code,
            CaseFile.sha256 == document.sha256,
        )
    )
    if already is not None:
        raise Conflict(f"“{document.filename}”已经添加到这项材料。", code="already_attached")
    case_file = CaseFile(
        case_id=case.id,
        material_code=material_code,
        sha256=document.sha256,
        filename=document.filename,
        content_type=document.content_type,
        size=document.size,
    )
    session.add(case_file)
    case.updated_at = case_file.uploaded_at = document.last_used_at = utcnow()
    session.flush()
    return case_file


def document_view(document: LibraryDocument, today: date | None = None) -> dict[str, Any]:
    """A library document as the JSON API returns it."""
    return {
        "id": document.id,
        "kind": document.kind,
        "title": document.title,
        "filename": document.filename,
        "content_type": document.content_type,
        "size": document.size,
        "sha256": document.sha256,
        "source": document.source,
        "case_no": document.case_no,
        "licence_number": document.licence_number,
        "valid_from": document.valid_from,
        "valid_to": document.valid_to,
        "expired": is_expired(document, today),
        "created_at": document.created_at,
    }
