"""Meetings: recordings, transcription, minutes, who may see them, and exports."""
