"""The fixed values of status, stage, type, visibility, role, rating, review and purpose
columns, as StrEnums (equal to their strings), and the allowed values as tuples in the order
the schema's check constraints list them.

Plain Python with no database import, so pages and UI helpers may use them too.
"""

from __future__ import annotations

from enum import StrEnum


class RecordingStatus(StrEnum):
    """transcription_jobs.status"""

    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class RecordingStage(StrEnum):
    """transcription_jobs.stage: the step a recording is at, in order."""

    QUEUED = "queued"
    NORMALISING = "normalising"
    SPLITTING = "splitting"
    TRANSCRIBING = "transcribing"
    MINUTES = "minutes"
    INDEXING = "indexing"
    DONE = "done"


class DocumentStatus(StrEnum):
    """documents.status"""

    PENDING = "PENDING"
    INDEXING = "INDEXING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class DocumentType(StrEnum):
    GENERAL = "general_document"
    TRANSCRIPT = "full_transcript"
    MINUTES = "meeting_minutes"


class Visibility(StrEnum):
    TEAM = "team"
    PRIVATE = "private"


class MessageRole(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


class Rating(StrEnum):
    GOOD = "good"
    BAD = "bad"


class ReviewStatus(StrEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class UsagePurpose(StrEnum):
    TRANSCRIPTION = "transcription"
    MINUTES = "minutes"
    EMBEDDING = "embedding"
    CHAT = "chat"


# The allowed values as tuples, in the order the check constraints list them.
JOB_STATUSES = tuple(RecordingStatus)
DOCUMENT_STATUSES = tuple(DocumentStatus)
DOCUMENT_TYPES = tuple(DocumentType)
VISIBILITIES = tuple(Visibility)
MESSAGE_ROLES = tuple(MessageRole)
RATINGS = tuple(Rating)
REVIEW_STATUSES = tuple(ReviewStatus)
USAGE_PURPOSES = tuple(UsagePurpose)
ACTION_ITEM_STATUSES = ("open", "done")
