"""The home page's overview: what a user can search and what is in progress."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from core.access.rbac import Actor
from core.documents import visible_documents_clause
from core.documents.indexing import indexing_state
from core.meetings.recording_access import recording_visible_clause
from core.meetings.recordings import recording_state
from core.platform.db import session_scope
from core.platform.jobs import JobState
from core.platform.models import Chat, Document, TranscriptionJob
from core.platform.statuses import DocumentStatus, DocumentType, RecordingStatus


@dataclass(frozen=True)
class OverviewItem:
    kind: str  # "Recording" or "Document"
    name: str
    state: JobState  # status, stage, progress as every page shows them
    created_at: datetime
    duration_seconds: float | None = None

    @property
    def status(self) -> str:
        return self.state.status


@dataclass(frozen=True)
class HomeOverview:
    documents_visible: int
    meetings_completed: int
    audio_hours: float
    chats: int
    in_progress: list[OverviewItem]
    recent: list[OverviewItem]


def home_overview(*, actor: Actor, recent_limit: int = 8) -> HomeOverview:
    """Counts and recent items the actor may see. Read-only."""
    documents_visible = visible_documents_clause(actor)
    jobs_visible = recording_visible_clause(actor)
    with session_scope() as session:
        documents = session.scalar(
            select(func.count())
            .select_from(Document)
            .where(documents_visible, Document.status == DocumentStatus.COMPLETED)
        )
        meetings, audio_seconds = session.execute(
            select(func.count(), func.coalesce(func.sum(TranscriptionJob.duration_seconds), 0.0)).where(
                jobs_visible, TranscriptionJob.status == RecordingStatus.COMPLETED
            )
        ).one()
        chats = session.scalar(select(func.count()).select_from(Chat).where(Chat.owner_id == actor.id))

        own_jobs = session.scalars(
            select(TranscriptionJob)
            .where(TranscriptionJob.owner_id == actor.id)
            .order_by(TranscriptionJob.created_at.desc())
            .limit(recent_limit)
        ).all()
        own_documents = session.scalars(
            select(Document)
            .where(Document.uploaded_by == actor.id, Document.document_type == DocumentType.GENERAL)
            .order_by(Document.upload_date.desc())
            .limit(recent_limit)
        ).all()
        items = [
            OverviewItem("Recording", j.filename, recording_state(j), j.created_at, j.duration_seconds)
            for j in own_jobs
        ] + [OverviewItem("Document", d.filename, indexing_state(d), d.upload_date) for d in own_documents]
    items.sort(key=lambda item: item.created_at, reverse=True)
    return HomeOverview(
        documents_visible=int(documents or 0),
        meetings_completed=int(meetings or 0),
        audio_hours=float(audio_seconds or 0.0) / 3600,
        chats=int(chats or 0),
        in_progress=[item for item in items if item.state.active],
        recent=items[:recent_limit],
    )
