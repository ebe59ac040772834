"""Document actors: indexing an uploaded document. Thin: one core call each."""

from __future__ import annotations

from core.documents import index_document as index_document_job
from core.platform.jobs import DOCUMENTS
from workers.job_actor import job_actor


@job_actor(DOCUMENTS, min_backoff_ms=5_000)
def index_document(document_id: int) -> None:
    """Extract, chunk, embed and store document `document_id` (core.documents.indexing.index_document).
    A retry resumes with the chunks already written."""
    index_document_job(document_id)
