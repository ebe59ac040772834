"""Who may see and change a transcription job. One rule for minutes, exports and the page.

- Read: the owner; anyone holding read_transcripts when the job's visibility is "team";
  and holders of SEE_ALL_PRIVATE (admins), as for documents in core.admin.dashboard.
- Manage (edit or regenerate the minutes): the owner, or a holder of SEE_ALL_PRIVATE.

A job the actor may not read is reported as NotFound, never as "forbidden", so ids of
private recordings do not leak.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, or_, select, true
from sqlalchemy.orm import Session

from core.access.rbac import Actor
from core.platform.errors import NotFound, PermissionDenied
from core.platform.models import TranscriptionJob
from core.platform.statuses import Visibility

# Admins see every private document and recording. A permission, not a role name.
SEE_ALL_PRIVATE = "delete_documents"


def recording_visible_clause(actor: Actor) -> ColumnElement[bool]:
    """SQL condition: the transcription_jobs rows `actor` may read."""
    if actor.can(SEE_ALL_PRIVATE):
        return true()
    return or_(
        TranscriptionJob.owner_id == actor.id,
        TranscriptionJob.visibility == Visibility.TEAM if actor.can("read_transcripts") else false(),
    )


def may_manage_recording(actor: Actor, job: TranscriptionJob) -> bool:
    """True when `actor` may change the job's minutes (owner or admin)."""
    return job.owner_id == actor.id or actor.can(SEE_ALL_PRIVATE)


def load_readable_recording(session: Session, *, actor: Actor, job_id: int) -> TranscriptionJob:
    """The job row when `actor` may read it. Does not commit. Raises NotFound otherwise."""
    job = session.scalar(select(TranscriptionJob).where(TranscriptionJob.id == job_id, recording_visible_clause(actor)))
    if job is None:
        raise NotFound(f"Recording {job_id} was not found.")
    return job


def load_managed_recording(
    session: Session, *, actor: Actor, job_id: int, for_update: bool = False
) -> TranscriptionJob:
    """The job row when `actor` owns it or may manage everyone's. Does not commit.

    Raises NotFound when the actor may not even read it, PermissionDenied when they may
    read but not change it. `for_update` locks the row for the rest of the transaction.
    """
    statement = select(TranscriptionJob).where(TranscriptionJob.id == job_id, recording_visible_clause(actor))
    if for_update:
        # of=: the eager-loaded owner is an outer join, which PostgreSQL cannot lock.
        statement = statement.with_for_update(of=TranscriptionJob)
    job = session.scalar(statement)
    if job is None:
        raise NotFound(f"Recording {job_id} was not found.")
    if not may_manage_recording(actor, job):
        raise PermissionDenied("Only the owner of this recording or an admin can change its minutes.")
    return job
