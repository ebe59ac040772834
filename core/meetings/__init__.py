"""Meetings: recordings (upload, listing, retry, delete), the transcription job, minutes,
who may see a recording, and exports.

Pages, workers and other packages use the names below; the modules behind them may move.
The audio toolchain (core.meetings.audio) and the stitching helpers
(core.meetings.stitching) are used by the transcription job and its tests directly.
"""

from core.meetings.exports import (
    ExportFile,
    export_minutes,
    export_recording,
    export_recordings_csv,
    export_recordings_zip,
    export_transcript,
)
from core.meetings.minutes import (
    MinutesView,
    get_minutes,
    regenerate_minutes,
    update_minutes,
    write_minutes_for_recording,
)
from core.meetings.minutes_format import Minutes, MinutesActionItem, MinutesItem
from core.meetings.recording_access import (
    load_managed_recording,
    load_readable_recording,
    may_manage_recording,
    recording_visible_clause,
)
from core.meetings.recording_upload import submit_recording
from core.meetings.recordings import (
    STAGE_LABELS,
    RecordingDetail,
    RecordingFile,
    RecordingSummary,
    delete_recording,
    get_recording,
    get_recording_summary,
    list_recordings,
    read_recording,
    retry_recording,
)
from core.meetings.transcription import transcribe_recording

__all__ = [
    "STAGE_LABELS",
    "ExportFile",
    "Minutes",
    "MinutesActionItem",
    "MinutesItem",
    "MinutesView",
    "RecordingDetail",
    "RecordingFile",
    "RecordingSummary",
    "delete_recording",
    "export_minutes",
    "export_recording",
    "export_recordings_csv",
    "export_recordings_zip",
    "export_transcript",
    "get_minutes",
    "get_recording",
    "get_recording_summary",
    "list_recordings",
    "load_managed_recording",
    "load_readable_recording",
    "may_manage_recording",
    "read_recording",
    "recording_visible_clause",
    "regenerate_minutes",
    "retry_recording",
    "submit_recording",
    "transcribe_recording",
    "update_minutes",
    "write_minutes_for_recording",
]
