"""Documents: upload, file types, text extraction, chunking and the indexing job."""
