"""Who may see and change a document: one rule, also applied inside the retrieval SQL.

Who sees what (`visible_documents_clause`):
- a "team" document: everyone holding read_documents; a team transcript or minutes document
  (made from a recording) also needs read_transcripts, as the recording itself does;
- a "private" document: its uploader only;
- holders of delete_documents (admins; core.meetings.recording_access.SEE_ALL_PRIVATE) see every document,
  since they must see what they may delete;
- an uploader always sees their own documents, whatever their other permissions.
A document the actor may not see is reported as NotFound, never as "forbidden".

Who may change a document: re-index and retry need delete_documents, or being its uploader
while holding ingest_documents. Delete needs delete_documents.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.orm import Session

from core.access.rbac import Actor
from core.meetings.recording_access import SEE_ALL_PRIVATE
from core.platform.errors import NotFound, PermissionDenied
from core.platform.models import Document
from core.platform.statuses import DocumentType, Visibility


def visible_documents_clause(actor: Actor) -> ColumnElement[bool]:
    """SQL condition over Document: the documents `actor` may see (rule in the module doc).

    Used by listings here and by retrieval inside its one search statement.
    """
    if actor.can(SEE_ALL_PRIVATE):
        return true()
    own = Document.uploaded_by == actor.id
    if not actor.can("read_documents"):
        return own
    team = Document.visibility == Visibility.TEAM
    if not actor.can("read_transcripts"):
        team = and_(team, Document.document_type == DocumentType.GENERAL)
    return or_(own, team)


def searchable_documents_clause(actor: Actor) -> ColumnElement[bool]:
    """Visible documents that have searchable chunks (an active generation), whatever their
    status: a document being re-indexed stays searchable through its previous chunks.
    Join chunks with ``DocumentChunk.generation == Document.active_generation``."""
    return and_(visible_documents_clause(actor), Document.active_generation > 0)


def may_manage_document(actor: Actor, document: Document) -> bool:
    return actor.can("delete_documents") or (
        document.uploaded_by == actor.id and document.uploaded_by is not None and actor.can("ingest_documents")
    )


def visible_document_row(session: Session, actor: Actor, document_id: int, *, lock: bool = False) -> Document:
    statement = select(Document).where(Document.id == document_id, visible_documents_clause(actor))
    if lock:
        statement = statement.with_for_update(of=Document)
    document = session.scalar(statement)
    if document is None:
        raise NotFound(f"Document {document_id} was not found.")
    return document


def managed_document_row(session: Session, actor: Actor, document_id: int) -> Document:
    document = visible_document_row(session, actor, document_id, lock=True)
    if not may_manage_document(actor, document):
        raise PermissionDenied("Only the uploader or an admin can re-index or retry this document.")
    return document
