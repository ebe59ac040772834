"""Meetings: recordings (upload, listing, retry, delete), the transcription job, minutes,
who may see a recording, and exports.

Pages, workers and other packages use the names below; the modules behind them may move.
The audio toolchain (core.meetings.audio) and the stitching helpers
(core.meetings.stitching) are used by the transcription job and its tests directly.
"""

from core.meetings.action_items import (
    ActionItemView,
    action_item_owners,
    export_action_items,
    list_action_items,
    my_open_action_items,
    update_action_item,
)
from core.meetings.audio import ACCEPTED_EXTENSIONS
from core.meetings.exports import (
    MINUTES_FORMATS,
    TRANSCRIPT_FORMATS,
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
from core.meetings.speakers import (
    SpeakerInfo,
    SpeakersView,
    default_display,
    get_speakers,
    known_speaker_names,
    rename_speakers,
    suggest_speaker_names,
)
from core.meetings.stitching import TranscriptLine
from core.meetings.transcription import transcribe_recording

__all__ = [
    "ACCEPTED_EXTENSIONS",
    "MINUTES_FORMATS",
    "STAGE_LABELS",
    "TRANSCRIPT_FORMATS",
    "ActionItemView",
    "ExportFile",
    "Minutes",
    "MinutesActionItem",
    "MinutesItem",
    "MinutesView",
    "RecordingDetail",
    "RecordingFile",
    "RecordingSummary",
    "SpeakerInfo",
    "SpeakersView",
    "TranscriptLine",
    "action_item_owners",
    "default_display",
    "delete_recording",
    "export_action_items",
    "export_minutes",
    "export_recording",
    "export_recordings_csv",
    "export_recordings_zip",
    "export_transcript",
    "get_minutes",
    "get_recording",
    "get_recording_summary",
    "get_speakers",
    "known_speaker_names",
    "list_action_items",
    "list_recordings",
    "load_managed_recording",
    "load_readable_recording",
    "may_manage_recording",
    "my_open_action_items",
    "read_recording",
    "recording_visible_clause",
    "regenerate_minutes",
    "rename_speakers",
    "retry_recording",
    "submit_recording",
    "suggest_speaker_names",
    "transcribe_recording",
    "update_action_item",
    "update_minutes",
    "write_minutes_for_recording",
]
