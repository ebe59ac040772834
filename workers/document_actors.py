"""Document actors: indexing an uploaded document. Thin: one core call each."""

from __future__ import annotations

import dramatiq

from core.documents import index_document as index_document_job
from core.platform.config import get_settings
from core.platform.errors import PermanentError
from core.platform.jobs import DOCUMENTS
from workers import broker  # noqa: F401  (the broker must be set up before actors are declared)

_settings = get_settings()


@dramatiq.actor(
    actor_name=DOCUMENTS.actor_name,
    queue_name=DOCUMENTS.queue_name,
    # The job counts its own claims and fails itself at job_max_attempts, so Dramatiq
    # needs one fewer retry; a retry resumes with the chunks already written.
    max_retries=max(_settings.job_max_attempts - 1, 0),
    min_backoff=5_000,
    max_backoff=300_000,
    time_limit=_settings.job_time_limit_seconds * 1000,
    throws=(PermanentError,),
)
def index_document(document_id: int) -> None:
    """Extract, chunk, embed and store document `document_id` (core.documents.indexing.index_document)."""
    index_document_job(document_id)
