"""Documents: upload, file types, text extraction, chunking, the indexing job, the catalogue,
and a recording's transcript and minutes as documents.

Pages, workers and other packages use the names below; the modules behind them may move.
"""

from core.documents.access import searchable_documents_clause, visible_documents_clause
from core.documents.catalog import (
    ChunkInfo,
    DocumentDownload,
    DocumentInfo,
    delete_documents,
    document_chunks,
    download_document,
    get_document,
    list_documents,
    list_uploaders,
    reindex_document,
    retry_document,
)
from core.documents.chunk_store import write_chunks
from core.documents.filetypes import SUPPORTED_DESCRIPTION, UPLOAD_PICKER_EXTENSIONS
from core.documents.from_recordings import index_recording_documents, index_text_document
from core.documents.indexing import index_document
from core.documents.upload import IngestedPath, UploadedFileLike, UploadOutcome, ingest_paths, upload_documents

__all__ = [
    "SUPPORTED_DESCRIPTION",
    "UPLOAD_PICKER_EXTENSIONS",
    "ChunkInfo",
    "DocumentDownload",
    "DocumentInfo",
    "IngestedPath",
    "UploadOutcome",
    "UploadedFileLike",
    "delete_documents",
    "document_chunks",
    "download_document",
    "get_document",
    "index_document",
    "index_recording_documents",
    "index_text_document",
    "ingest_paths",
    "list_documents",
    "list_uploaders",
    "reindex_document",
    "retry_document",
    "searchable_documents_clause",
    "upload_documents",
    "visible_documents_clause",
    "write_chunks",
]
