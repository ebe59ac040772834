"""A small knowledge base the retrieval and chat tests build: ~30 chunks in four documents.

Documents go straight into the tables (status COMPLETED, chunks of the active generation,
embeddings from the provider under test), so these tests do not depend on the indexer.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from core.platform.db import session_scope
from core.platform.models import Document, DocumentChunk, TranscriptionJob

Embed = Callable[[Sequence[str]], list[list[float]]]


@dataclass(frozen=True)
class ChunkSpec:
    key: str
    text: str
    page: int | None = None
    heading: str | None = None
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class DocSpec:
    filename: str
    document_type: str
    chunks: tuple[ChunkSpec, ...]
    visibility: str = "team"


HANDBOOK = DocSpec(
    "employee-handbook.pdf",
    "general_document",
    (
        ChunkSpec(
            "vacation",
            "Every full-time employee receives 25 days of paid vacation per calendar year. Unused vacation "
            "days can be carried over until the end of March of the following year.",
            page=4,
            heading="Vacation",
        ),
        ChunkSpec(
            "sick",
            "Sick leave does not count against vacation. Employees who are ill for more than three "
            "consecutive days must send a doctor's note to the people team.",
            page=5,
            heading="Sick leave",
        ),
        ChunkSpec(
            "expenses",
            "Travel expenses are reimbursed within 14 days when the receipt is uploaded to the finance "
            "portal. Hotel costs above 180 euros per night need approval from a director.",
            page=7,
            heading="Expenses",
        ),
        ChunkSpec(
            "laptop",
            "Company laptops must use full-disk encryption and a screen lock after five minutes. Lost or "
            "stolen laptops are reported to the security desk immediately.",
            page=9,
            heading="Security",
        ),
        ChunkSpec(
            "passwords",
            "Passwords need at least sixteen characters and are kept in the shared password manager. "
            "Multi-factor authentication is mandatory for email and source control.",
            page=9,
            heading="Security",
        ),
        ChunkSpec(
            "remote",
            "Staff may work remotely up to three days a week. Remote work from another country needs "
            "written agreement from human resources because of tax rules.",
            page=11,
            heading="Remote work",
        ),
        ChunkSpec(
            "onboarding",
            "New hires get a buddy for their first month. The onboarding checklist covers the payroll "
            "form, the laptop handover and an introduction to every team lead.",
            page=2,
            heading="Onboarding",
        ),
        ChunkSpec(
            "parental",
            "Parental leave is sixteen weeks at full salary for every parent, taken within the first "
            "year after the birth or adoption of a child.",
            page=6,
            heading="Parental leave",
        ),
    ),
)

ARCHITECTURE = DocSpec(
    "architecture-notes.md",
    "general_document",
    (
        ChunkSpec(
            "database",
            "The primary database is PostgreSQL 16 with the pgvector extension. Nightly backups are kept "
            "for thirty days in object storage.",
            heading="Storage",
        ),
        ChunkSpec(
            "cache",
            "Redis caches session data and rate-limit counters. Cache entries expire after fifteen "
            "minutes, so a stale price is never shown for long.",
            heading="Caching",
        ),
        ChunkSpec(
            "deploy",
            "Deployments run through the pipeline on every merge to main. A canary receives five percent "
            "of traffic for an hour before the rollout completes.",
            heading="Deployment",
        ),
        ChunkSpec(
            "monitoring",
            "Alerts page the on-call engineer when the error rate exceeds two percent or latency at the "
            "95th percentile passes 800 milliseconds.",
            heading="Monitoring",
        ),
        ChunkSpec(
            "search",
            "Search combines full-text ranking with vector similarity. The HNSW index is rebuilt only "
            "when the embedding model changes.",
            heading="Search",
        ),
        ChunkSpec(
            "queues",
            "Background jobs use Dramatiq workers on Redis. Each job is idempotent, so a redelivered "
            "message never duplicates work.",
            heading="Jobs",
        ),
        ChunkSpec(
            "auth",
            "Single sign-on goes through the identity provider using OpenID Connect. Service accounts use "
            "short-lived tokens that rotate every hour.",
            heading="Authentication",
        ),
    ),
)

TRANSCRIPT = DocSpec(
    "q3-planning.m4a transcript",
    "full_transcript",
    (
        ChunkSpec(
            "kickoff",
            "Maria: Welcome everyone to the third quarter planning meeting. Today we look at the budget, "
            "the hiring plan and the office move.",
            start=0.0,
            end=42.5,
        ),
        ChunkSpec(
            "budget",
            "Tom: The marketing budget for the third quarter is 120 thousand dollars, which is ten percent "
            "less than last quarter because the trade fair was cancelled.",
            start=42.5,
            end=118.0,
        ),
        ChunkSpec(
            "hiring",
            "Maria: We will hire two backend engineers and one designer. Interviews start in August and "
            "the recruiter already has twelve candidates.",
            start=118.0,
            end=201.0,
        ),
        ChunkSpec(
            "office",
            "Lena: The office move to the Harbour Street building happens on the 14th of October. Movers "
            "pack the desks on Friday afternoon.",
            start=201.0,
            end=260.0,
        ),
        ChunkSpec(
            "vendor",
            "Tom: For the cloud migration we picked Northwind Hosting as the vendor because their support "
            "contract includes a named engineer.",
            start=260.0,
            end=333.0,
        ),
        ChunkSpec(
            "coffee",
            "Lena: Someone asked about the coffee machine. A new espresso machine arrives with the move, "
            "paid from the facilities fund.",
            start=333.0,
            end=371.0,
        ),
        ChunkSpec(
            "risks",
            "Maria: The biggest risk is the data centre contract ending in November before the migration "
            "finishes. Tom will negotiate a two-month extension.",
            start=371.0,
            end=449.0,
        ),
        ChunkSpec(
            "wrapup",
            "Maria: Thanks all. Next planning session is in four weeks, same room, and the minutes go out tomorrow.",
            start=449.0,
            end=470.0,
        ),
    ),
)

MINUTES = DocSpec(
    "q3-planning.m4a minutes",
    "meeting_minutes",
    (
        ChunkSpec(
            "summary",
            "Summary: the team agreed the third quarter budget, the hiring plan and the date of the office "
            "move, and chose a hosting vendor for the cloud migration.",
            start=0.0,
            end=470.0,
        ),
        ChunkSpec(
            "decisions",
            "Decisions: marketing budget set at 120 thousand dollars; Northwind Hosting selected for the "
            "cloud migration; office move on 14 October.",
            start=42.5,
            end=333.0,
        ),
        ChunkSpec(
            "actions",
            "Action items: Tom negotiates the data centre contract extension by 30 September; Maria "
            "schedules the engineer interviews; Lena books the movers.",
            start=118.0,
            end=449.0,
        ),
        ChunkSpec(
            "topics",
            "Topics: budget, hiring, office move, cloud migration, data centre contract, coffee machine.",
            start=0.0,
            end=470.0,
        ),
    ),
)

TEAM_CORPUS = (HANDBOOK, ARCHITECTURE, TRANSCRIPT, MINUTES)

PRIVATE_DOC = DocSpec(
    "salary-review-private.docx",
    "general_document",
    (
        ChunkSpec(
            "salary",
            "Confidential: the salary review moves Priya Raman to the senior band with a raise of "
            "nine percent from January.",
            page=1,
        ),
        ChunkSpec(
            "bonus",
            "Confidential: the retention bonus for the platform team is paid in two instalments, in "
            "April and in October.",
            page=2,
        ),
    ),
    visibility="private",
)


@dataclass
class Corpus:
    """What build_corpus inserted: document ids and chunk ids by key."""

    documents: dict[str, int] = field(default_factory=dict)  # filename -> document id
    chunks: dict[str, int] = field(default_factory=dict)  # chunk key -> chunk id
    job_id: int | None = None

    @property
    def document_ids(self) -> tuple[int, ...]:
        return tuple(self.documents.values())


def build_corpus(
    embed: Embed,
    *,
    uploaded_by: int,
    specs: Sequence[DocSpec] = TEAM_CORPUS,
    upload_date: datetime | None = None,
    suffix: str | None = None,
) -> Corpus:
    """Insert `specs` as COMPLETED documents with embedded chunks. Commits.

    Chunk keys get `suffix` (random by default) prepended only in filenames, so several
    corpora can live in one test database. Transcript and minutes documents share one
    COMPLETED transcription job, as the audio pipeline would make them.
    """
    suffix = suffix or uuid.uuid4().hex[:8]
    corpus = Corpus()
    with session_scope() as session:
        job: TranscriptionJob | None = None
        for spec in specs:
            texts = [chunk.text for chunk in spec.chunks]
            vectors = embed(texts)
            if spec.document_type != "general_document" and job is None:
                job = TranscriptionJob(
                    owner_id=uploaded_by,
                    filename=f"q3-planning-{suffix}.m4a",
                    storage_key=f"test/{suffix}.m4a",
                    sha256=hashlib.sha256(suffix.encode()).hexdigest(),
                    status="COMPLETED",
                    duration_seconds=470.0,
                )
                session.add(job)
                session.flush()
                corpus.job_id = job.id
            document = Document(
                filename=f"{suffix}-{spec.filename}",
                sha256=hashlib.sha256(f"{suffix}{spec.filename}".encode()).hexdigest(),
                uploaded_by=uploaded_by,
                visibility=spec.visibility,
                status="COMPLETED",
                document_type=spec.document_type,
                transcription_job_id=job.id if job and spec.document_type != "general_document" else None,
                chunks_total=len(spec.chunks),
                chunks_done=len(spec.chunks),
                active_generation=1,
            )
            if upload_date is not None:
                document.upload_date = upload_date
            session.add(document)
            session.flush()
            corpus.documents[spec.filename] = document.id
            for index, (chunk, vector) in enumerate(zip(spec.chunks, vectors, strict=True)):
                row = DocumentChunk(
                    document_id=document.id,
                    generation=1,
                    chunk_index=index,
                    content=chunk.text,
                    token_count=len(chunk.text.split()),
                    page_number=chunk.page,
                    heading=chunk.heading,
                    start_seconds=chunk.start,
                    end_seconds=chunk.end,
                    embedding=vector,
                )
                session.add(row)
                session.flush()
                corpus.chunks[chunk.key] = row.id
            # A stale generation of the same document: never searchable.
            stale = DocumentChunk(
                document_id=document.id,
                generation=0,
                chunk_index=0,
                content=f"Outdated draft of {spec.filename}: " + spec.chunks[0].text,
                token_count=10,
                embedding=vectors[0],
            )
            session.add(stale)
            session.flush()
            corpus.chunks[f"stale:{spec.filename}"] = stale.id
    return corpus
