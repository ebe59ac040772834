"""BM25 term statistics of the searchable chunks: how they are kept, read and checked.

The counts (chunks per lexeme in search_term_stats; searchable chunks and their total
length in search_corpus_stats) cover exactly the chunks of each document's active
generation. They change only through one database function, ``quorum_apply_term_statistics``,
which triggers (migration 0003) call inside the transaction that changes the searchable
set, whatever code runs it:

- chunks inserted, updated or deleted in an active generation (direct writes, the tail a
  re-index cuts off, a bulk COPY into document_chunks);
- documents.active_generation moving (the generation swap: the new chunks in, the old out);
- a document deleted, directly or by a cascade (a recording or a user deleted);
- TRUNCATE of document_chunks (a full recount).

So a writer never has to remember to call it, and a rolled-back write leaves no trace.
Chunks written into a generation that is not active yet cost one empty join and take no
lock: parallel indexing contends only at the swap, where every writer locks the single
totals row first (a queue, so no deadlock between the per-lexeme upserts) and sees the
counts the previous writer committed. A writer that stages chunks outside document_chunks
needs nothing either: they count when they enter that table in an active generation, or
when their generation is swapped in.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class TermStatistics:
    """The corpus as BM25 sees it: searchable chunks, their total length, chunks per lexeme."""

    chunks: int
    total_length: int
    chunks_per_lexeme: dict[str, int]

    @property
    def average_length(self) -> float:
        return self.total_length / self.chunks if self.chunks else 0.0


def stored_term_statistics(session: Session) -> TermStatistics:
    """The maintained counts, as retrieval reads them. Read-only."""
    chunks, total_length = session.execute(text("SELECT chunks, total_length FROM search_corpus_stats")).one()
    terms = session.execute(text("SELECT lexeme, chunks FROM search_term_stats")).all()
    return TermStatistics(int(chunks), int(total_length), {row.lexeme: int(row.chunks) for row in terms})


def counted_term_statistics(session: Session) -> TermStatistics:
    """The same counts recomputed from the chunks themselves (slow: a full scan). Read-only."""
    searchable = (
        "FROM document_chunks c JOIN documents d "
        "ON d.id = c.document_id AND d.active_generation = c.generation AND c.generation > 0"
    )
    chunks, total_length = session.execute(
        text(f"SELECT count(*), coalesce(sum(c.search_length), 0) {searchable}")
    ).one()
    words = "unnest(tsvector_to_array(c.search_vector)) AS lexeme"
    terms = session.execute(text(f"SELECT lexeme, count(*) AS chunks {searchable}, {words} GROUP BY 1")).all()
    return TermStatistics(int(chunks), int(total_length), {row.lexeme: int(row.chunks) for row in terms})


def recount_term_statistics(session: Session) -> None:
    """Rebuild the counts from the chunks (repair after a manual edit of the tables). Does not commit.

    Takes the writers' lock, so indexing waits until the caller's transaction ends.
    """
    session.execute(text("SELECT quorum_recount_term_statistics()"))


__all__ = ["TermStatistics", "counted_term_statistics", "recount_term_statistics", "stored_term_statistics"]
