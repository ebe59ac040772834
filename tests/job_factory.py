"""Transcription jobs and roles for the minutes and exports tests, written to the real database."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select

from core.access.rbac import Actor
from core.platform.db import session_scope
from core.platform.models import Permission, Role, RolePermission, TranscriptionJob
from tests.conftest import unique


def insert_job(
    owner: Actor | None,
    *,
    segments: list[dict[str, Any]] | None = None,
    text: str | None = None,
    status: str = "COMPLETED",
    visibility: str = "team",
    filename: str | None = None,
    duration_seconds: float | None = None,
    minutes: dict[str, Any] | None = None,
    minutes_markdown: str | None = None,
) -> int:
    """A transcription_jobs row as the worker leaves it after transcribing. Returns its id."""
    name = filename or f"{unique('meeting')}.mp3"
    if text is None and segments is not None:
        text = " ".join(str(s["text"]) for s in segments)
    if duration_seconds is None and segments:
        duration_seconds = max(float(s["end"]) for s in segments)
    with session_scope() as session:
        job = TranscriptionJob(
            owner_id=owner.id if owner else None,
            filename=name,
            content_type="audio/mpeg",
            size_bytes=1234,
            storage_key=f"audio/{unique('key')}.mp3",
            sha256=hashlib.sha256(name.encode()).hexdigest(),
            duration_seconds=duration_seconds,
            language="en",
            visibility=visibility,
            status=status,
            transcript_text=text,
            transcript_segments=segments,
            minutes=minutes,
            minutes_markdown=minutes_markdown,
        )
        session.add(job)
        session.flush()
        return job.id


def load_job(job_id: int) -> TranscriptionJob:
    """The job row, detached (read its columns, not its relationships)."""
    with session_scope() as session:
        job = session.get(TranscriptionJob, job_id)
        assert job is not None
        session.expunge(job)
        return job


def make_role(*permissions: str) -> str:
    """A new role granting exactly `permissions`. Returns its name."""
    name = unique("role")
    with session_scope() as session:
        role = Role(name=name, description="test role")
        session.add(role)
        session.flush()
        for permission_id in session.scalars(select(Permission.id).where(Permission.name.in_(permissions))):
            session.add(RolePermission(role_id=role.id, permission_id=permission_id))
    return name
