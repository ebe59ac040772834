"""Document uploads: validate, store, record PENDING and queue for indexing; the CLI's ingest of paths."""

from __future__ import annotations

import logging
import multiprocessing
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.access.rbac import Actor, require
from core.ai.usage import check_ai_budget
from core.documents.access import visible_documents_clause
from core.documents.filetypes import detect_kind, stream_size
from core.documents.indexing import index_document
from core.documents.vector_segments import maintain_vector_index, maintenance_due
from core.platform.config import get_settings
from core.platform.db import session_scope
from core.platform.errors import InvalidInput, QuorumError, describe_error
from core.platform.jobs import DOCUMENTS, send
from core.platform.models import Document
from core.platform.statuses import DocumentStatus, DocumentType
from core.platform.storage import get_storage
from core.platform.uploads import check_visibility, clean_filename

log = logging.getLogger(__name__)

DOCUMENT_KIND = "documents"  # storage key prefix of uploaded originals


class UploadedFileLike(Protocol):
    """What upload_documents accepts: Streamlit's UploadedFile, an open file, a BytesIO with
    a .name. A .size attribute or seek/tell lets the size be checked before reading."""

    @property
    def name(self) -> str: ...

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class UploadOutcome:
    """What happened to one uploaded file. `message` is written for the user."""

    filename: str
    status: Literal["accepted", "duplicate", "rejected"]
    message: str
    document_id: int | None = None


@dataclass(frozen=True)
class IngestedPath:
    """One path given to ingest_paths and what became of it."""

    path: str
    outcome: UploadOutcome
    status: str | None = None  # the document's status after waiting, when accepted
    chunks: int = 0
    error: str | None = None


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _seekable(file: Any, max_bytes: int) -> tuple[IO[bytes], int]:
    """The upload as a seekable stream and its size, reading at most max_bytes + 1 bytes.

    A stream that knows its size (or can seek) is used as it is; anything else is spooled
    to a temporary file, stopping one byte past the limit.
    """
    size = stream_size(file)
    seekable = bool(getattr(file, "seekable", lambda: False)())
    if size is not None and seekable:
        return file, size
    if size is not None and size > max_bytes:
        return file, size  # refused before a byte is read
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - closed by the caller
    copied = 0
    while copied <= max_bytes and (block := file.read(min(1024 * 1024, max_bytes + 1 - copied))):
        spool.write(block)
        copied += len(block)
    spool.seek(0)
    return spool, copied  # type: ignore[return-value]


def _lock_content(session: Session, sha256: str) -> None:
    """Serialise uploads of the same content until the transaction ends (duplicate check)."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"document:{sha256}"})


def _accept_one(actor: Actor, file: UploadedFileLike, visibility: str, *, send: bool) -> UploadOutcome:
    settings = get_settings()
    filename = clean_filename(getattr(file, "name", None))
    limit = settings.max_document_bytes
    stream, size = _seekable(file, limit)
    try:
        if size == 0:
            return UploadOutcome(filename, "rejected", f"{filename}: the file is empty.")
        if size > limit:
            return UploadOutcome(
                filename,
                "rejected",
                f"{filename}: the file is {_megabytes(size)}; the limit is {settings.max_document_mb} MB.",
            )
        try:
            kind = detect_kind(filename=filename, stream=stream)
        except InvalidInput as error:
            return UploadOutcome(filename, "rejected", str(error))
        storage = get_storage()
        try:
            stored = storage.put(stream, kind=DOCUMENT_KIND, suffix=kind.extension, max_bytes=limit)
        except InvalidInput:
            return UploadOutcome(
                filename, "rejected", f"{filename}: the file is larger than the limit of {settings.max_document_mb} MB."
            )
    finally:
        if stream is not file:
            stream.close()

    duplicate: Document | None = None
    document_id: int | None = None
    try:
        with session_scope() as session:
            _lock_content(session, stored.sha256)
            duplicate = session.scalar(
                select(Document)
                .where(Document.sha256 == stored.sha256, visible_documents_clause(actor))
                .order_by(Document.id)
                .limit(1)
            )
            if duplicate is None:
                document = Document(
                    filename=filename,
                    content_type=kind.content_type,
                    size_bytes=stored.size_bytes,
                    storage_key=stored.key,
                    sha256=stored.sha256,
                    uploaded_by=actor.id,
                    visibility=visibility,
                    status=DocumentStatus.PENDING,
                    document_type=DocumentType.GENERAL,
                )
                session.add(document)
                session.flush()
                document_id = document.id
    except BaseException:
        storage.delete(stored.key)
        raise
    if duplicate is not None:
        storage.delete(stored.key)
        return UploadOutcome(
            filename,
            "duplicate",
            f"{filename}: the same content is already in the knowledge base as "
            f"“{duplicate.filename}” (document {duplicate.id}, {duplicate.status.lower()}); it was not added again.",
            duplicate.id,
        )
    assert document_id is not None
    log.info("document %s (%s, %s) uploaded by %s", document_id, filename, kind.name, actor.username)
    if not send:
        return UploadOutcome(filename, "accepted", f"{filename}: stored as {kind.label}.", document_id)
    return UploadOutcome(filename, "accepted", send_for_indexing(document_id, filename), document_id)


def accept_upload(actor: Actor, file: UploadedFileLike, visibility: str, *, send: bool) -> UploadOutcome:
    """_accept_one, with any failure turned into a "rejected" outcome so the batch goes on."""
    try:
        return _accept_one(actor, file, visibility, send=send)
    except QuorumError as error:
        filename = clean_filename(getattr(file, "name", None))
        return UploadOutcome(filename, "rejected", f"{filename}: {error}")
    except Exception as error:
        filename = clean_filename(getattr(file, "name", None))
        log.exception("upload of %s failed", filename)
        return UploadOutcome(
            filename, "rejected", f"{filename}: could not be stored ({describe_error(error)}). Try again."
        )


def send_for_indexing(document_id: int, filename: str) -> str:
    """Enqueue indexing; a message for the user either way (the row is already committed)."""
    if not send(DOCUMENTS, document_id):
        return (
            f"{filename}: stored, but the indexing queue is unreachable; press Retry once it is back "
            "(the system also sends it by itself then)."
        )
    return f"{filename}: uploaded; indexing has been queued."


def upload_documents(
    *, actor: Actor, files: Sequence[UploadedFileLike], visibility: str = "team"
) -> list[UploadOutcome]:
    """Validate, store and queue each file for indexing; one outcome per file, in order.

    Per file: size (from .size or seek/tell, before reading), the real type from the
    content, then the bytes are streamed to storage while hashing. Empty, oversized,
    unsupported and mismatched files are "rejected" with a message; content identical
    (sha256) to a document the actor can see is a "duplicate" pointing to it (content the
    actor cannot see is stored again, privately to them or for the team, so no private
    document leaks). An accepted file gets a PENDING row, committed, then an index_document
    message. One bad file never stops the rest of the batch.

    Commits once per accepted file. Raises PermissionDenied without ingest_documents and
    InvalidInput for an unknown visibility (nothing is stored then).
    """
    require(actor, "ingest_documents")
    check_visibility(visibility)
    check_ai_budget(actor)  # indexing embeds what is uploaded
    return [accept_upload(actor, file, visibility, send=True) for file in files]


def _expand(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # Hidden means hidden inside the folder given: the folder itself may live under
            # a dot-directory (~/.data/minutes) and must still be read.
            yield from sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            yield path


def ingest_paths(
    *,
    actor: Actor,
    paths: Iterable[str | Path],
    visibility: str = "team",
    wait: bool = True,
    processes: int = 1,
) -> list[IngestedPath]:
    """The CLI's ingest: upload files (folders recursively, hidden files skipped) as `actor`.

    wait=True indexes each accepted file here and reports its final status (no worker
    needed), in `processes` processes at once; meanwhile this process builds the vector
    indexes of the chunks written (core.documents.vector_segments), as a worker would.
    wait=False queues them for the workers like the Hub does. Results are in the order of
    the paths. Commits per file. Raises PermissionDenied without ingest_documents,
    InvalidInput for a bad visibility.
    """
    require(actor, "ingest_documents")
    check_visibility(visibility)
    files = list(_expand(paths))
    if not wait or processes <= 1 or len(files) <= 1:
        return _ingest_files(actor, files, visibility, wait=wait)
    # Spawned, not forked: each process opens its own database connections.
    batches = [files[start : start + _INGEST_BATCH_FILES] for start in range(0, len(files), _INGEST_BATCH_FILES)]
    with ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_ingest_files, actor, batch, visibility, wait=True) for batch in batches]
        pending = set(futures)
        while pending:
            _, pending = wait_for(pending, timeout=_MAINTENANCE_POLL_SECONDS)
            _maintain_if_due()
        results = [item for future in futures for item in future.result()]
    _maintain_if_due()
    return results


_INGEST_BATCH_FILES = 8  # files per task handed to an ingest process
_MAINTENANCE_POLL_SECONDS = 2.0


def _maintain_if_due() -> None:
    try:
        if maintenance_due():
            maintain_vector_index()
    except Exception:
        log.warning("vector index maintenance failed; a worker or the next run will redo it", exc_info=True)


def _ingest_files(actor: Actor, files: Sequence[Path], visibility: str, *, wait: bool) -> list[IngestedPath]:
    """Ingest `files` in order. With an embedding API, several files at once in threads, so
    its requests overlap (settings.embedding_requests_in_flight; the CPU work still takes turns)."""
    threads = get_settings().embedding_requests_in_flight if wait else 1
    if threads <= 1 or len(files) <= 1:
        return [_ingest_file(actor, path, visibility, wait=wait) for path in files]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ingest") as pool:
        return list(pool.map(lambda path: _ingest_file(actor, path, visibility, wait=wait), files))


def _ingest_file(actor: Actor, path: Path, visibility: str, *, wait: bool) -> IngestedPath:
    if not path.is_file():
        return IngestedPath(str(path), UploadOutcome(path.name, "rejected", f"{path.name}: no such file."))
    with path.open("rb") as handle:
        outcome = accept_upload(actor, handle, visibility, send=not wait)
    if outcome.status != "accepted" or not wait:
        return IngestedPath(str(path), outcome)
    assert outcome.document_id is not None
    try:
        index_document(outcome.document_id)
    except Exception as error:
        log.exception("indexing %s failed", path)
        return IngestedPath(str(path), outcome, DocumentStatus.PENDING, 0, describe_error(error))
    with session_scope() as session:
        row = session.execute(
            select(Document.status, Document.chunks_total, Document.error).where(Document.id == outcome.document_id)
        ).one()
    return IngestedPath(str(path), outcome, row.status, int(row.chunks_total), row.error)
