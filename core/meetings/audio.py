"""Audio files: probe, normalise, find silences, plan and cut segments for transcription.

Everything heavy runs in ffmpeg/ffprobe subprocesses that stream the file, so a two-hour
recording never sits in this process's memory: normalising writes a 16 kHz mono WAV to
disk, silence detection reads it with ffmpeg's silencedetect filter, and each segment is
cut from it (sample-exact, PCM seeks) only when it is about to be transcribed.

Pure planning (`plan_segments`) is separate from the ffmpeg calls so it can be tested on
any duration without audio.

Uploads are untrusted: ffmpeg and ffprobe read them only through the file protocol and with
the demuxer their extension names (an HLS playlist or an ffconcat script named .mp3 is
read as MP3, so never opens the files or URLs it lists), and no step decodes more than the
longest recording Quorum accepts (Settings.max_recording_hours).
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.platform.config import Settings
from core.platform.errors import InvalidInput, PermanentError, QuorumError

log = logging.getLogger(__name__)

# What users may upload (the audio track of mp4/mov included) and what ffprobe must find.
ACCEPTED_EXTENSIONS = ("mp3", "m4a", "wav", "ogg", "webm", "flac", "mp4", "mov", "mpga", "oga", "opus")
_ACCEPTED_CONTAINERS = frozenset({"mp3", "mov", "mp4", "m4a", "wav", "ogg", "matroska", "webm", "flac"})
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "mpga": "audio/mpeg",
    "m4a": "audio/mp4",
    "wav": "audio/wav",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "opus": "audio/ogg",
    "webm": "audio/webm",
    "flac": "audio/flac",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
}

# The one demuxer ffmpeg may use for each accepted extension (never guessed from the content).
INPUT_FORMATS = {
    "mp3": "mp3",
    "mpga": "mp3",
    "m4a": "mov",
    "mp4": "mov",
    "mov": "mov",
    "wav": "wav",
    "ogg": "ogg",
    "oga": "ogg",
    "opus": "ogg",
    "webm": "matroska",
    "flac": "flac",
}

SAMPLE_RATE = 16_000  # Whisper's own rate: more is wasted bytes, less loses speech
# Segments go to the API as 16 kHz mono MP3 at this bitrate: every transcription model
# accepts mp3, and 48 kbps keeps speech intact at 0.36 MB a minute.
SEGMENT_BITRATE_KBPS = 48
SEGMENT_SUFFIX = ".mp3"
_BYTES_SAFETY = 0.9  # MP3 frame overhead and rounding stay inside the request limit

MIN_SILENCE_SECONDS = 0.5  # pauses shorter than this are not places to cut
MIN_SPEECH_SECONDS = 0.5  # a segment with less non-silent audio is not sent (Whisper invents text on silence)
_PREFERRED_SILENCE_SECONDS = 1.5  # a pause this long is a good cut; take the latest one near the target
_CUT_WINDOW = 0.5  # cuts are searched in the last half of the allowed length
_PROBE_DECODE_SECONDS = 30  # decode this much at upload to catch damaged files early
_SUBPROCESS_TIMEOUT = 3600.0
_WAV_BYTES_PER_SECOND = 2 * SAMPLE_RATE  # 16-bit mono
_DISK_RESERVE_BYTES = 256 * 1024 * 1024  # left free for everything else on the machine


class NotEnoughDisk(QuorumError):
    """Too little free disk to prepare a recording now; another attempt may find more."""


@dataclass(frozen=True)
class AudioInfo:
    """What ffprobe says about an uploaded file."""

    duration_seconds: float
    container: str
    codec: str
    sample_rate: int
    channels: int
    bit_rate: int | None
    has_video: bool


@dataclass(frozen=True)
class NormalisedAudio:
    """A 16 kHz mono PCM WAV made from an upload, with its loudness."""

    path: Path
    duration_seconds: float
    mean_volume_db: float
    max_volume_db: float


@dataclass(frozen=True)
class Silence:
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class SegmentPlan:
    """One segment to transcribe.

    [start, end) is the stretch of the recording this segment owns; the audio sent is
    [audio_start, audio_end), which adds the overlap on both sides so a word cut at a hard
    boundary is heard whole by one of the two neighbours. speech_seconds is the non-silent
    time inside [start, end).
    """

    index: int
    start: float
    end: float
    audio_start: float
    audio_end: float
    speech_seconds: float

    @property
    def audio_duration(self) -> float:
        return self.audio_end - self.audio_start

    @property
    def is_silent(self) -> bool:
        return self.speech_seconds < MIN_SPEECH_SECONDS


def extension_of(filename: str) -> str:
    """The lower-case extension of `filename` if Quorum accepts it; raises InvalidInput otherwise."""
    suffix = Path(filename).suffix.lower().lstrip(".")
    if suffix not in ACCEPTED_EXTENSIONS:
        accepted = ", ".join(ACCEPTED_EXTENSIONS)
        raise InvalidInput(f"{filename or 'This file'} is not a supported recording. Upload one of: {accepted}.")
    return suffix


def input_args(path: Path, *, extension: str | None = None) -> list[str]:
    """ffmpeg/ffprobe arguments that open `path` as a plain local file with the demuxer of its
    extension (`extension`, else the path's own). Raises InvalidInput for other extensions."""
    return ["-protocol_whitelist", "file", "-f", INPUT_FORMATS[extension or extension_of(path.name)], "-i", str(path)]


def format_hours(seconds: float) -> str:
    """7 h 5 min, 45 min, 30 s."""
    minutes = int(seconds // 60)
    if minutes >= 60:
        return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"
    return f"{minutes} min" if minutes else f"{seconds:.0f} s"


def _too_long(name: str, seconds: float, max_seconds: float, *, at_least: bool = False) -> InvalidInput:
    length = f"at least {format_hours(seconds)}" if at_least else format_hours(seconds)
    return InvalidInput(
        f"{name} is {length} long; recordings are limited to {format_hours(max_seconds)} "
        "(QUORUM_MAX_RECORDING_HOURS). Split it and upload the parts."
    )


def _run(args: Sequence[str], *, timeout: float = _SUBPROCESS_TIMEOUT) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(args), capture_output=True, text=True, errors="replace", timeout=timeout, check=False
        )
    except FileNotFoundError as error:  # ffmpeg missing is an installation problem, not the user's
        raise PermanentError(f"{args[0]} is not installed on the server; install ffmpeg.") from error


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def _demuxed_seconds(path: Path, *, limit_seconds: float | None) -> float:
    """How long the first audio track lasts, from its packets' timestamps (copied, not
    decoded: cheap even for hours of audio), reading no further than `limit_seconds`."""
    limit = ["-t", f"{limit_seconds:.0f}"] if limit_seconds is not None else []
    result = _run(["ffmpeg", "-nostdin", "-v", "error", *input_args(path), "-map", "0:a:0", "-c", "copy",
                   *limit, "-f", "null", "-progress", "pipe:1", "-"])  # fmt: skip
    times = re.findall(r"^out_time_us=(\d+)$", result.stdout, flags=re.MULTILINE)
    return int(times[-1]) / 1e6 if times else 0.0


def probe_audio(path: Path, *, filename: str | None = None, max_seconds: float | None = None) -> AudioInfo:
    """Read the container and the first audio stream of `path` and decode its first seconds.

    Never decodes the whole file: the length comes from the container, or (browser
    recordings carry none) from the packets' timestamps. Raises InvalidInput with a message
    for the uploader when the file is not a readable recording: not media at all, damaged,
    in a container Quorum does not accept or not the one its extension names, without an
    audio track, empty, or longer than `max_seconds`.
    """
    name = filename or path.name
    result = _run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                   *input_args(path)])  # fmt: skip
    try:
        data: dict[str, Any] = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        data = {}
    if result.returncode != 0 or "format" not in data:
        log.info("ffprobe rejected %s: %s", name, _last_line(result.stderr))
        raise InvalidInput(f"{name} is not a recording we can read: the file is damaged or is not audio.")
    container_names = set(str(data["format"].get("format_name", "")).split(","))
    streams: list[dict[str, Any]] = data.get("streams", [])
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if audio is None:
        raise InvalidInput(f"{name} has no audio track we can read.")
    if not container_names & _ACCEPTED_CONTAINERS:
        raise InvalidInput(
            f"{name} is a {data['format'].get('format_long_name') or 'media'} file; "
            f"upload one of: {', '.join(ACCEPTED_EXTENSIONS)}."
        )
    duration = _float(audio.get("duration")) or _float(data["format"].get("duration"))
    if duration is not None and max_seconds is not None and duration > max_seconds:
        raise _too_long(name, duration, max_seconds)
    check = _run(["ffmpeg", "-nostdin", "-v", "error", "-xerror", "-t", str(_PROBE_DECODE_SECONDS), *input_args(path),
                  "-map", "0:a:0", "-f", "null", "-"])  # fmt: skip
    if check.returncode != 0:
        log.info("decoding %s failed: %s", name, _last_line(check.stderr))
        raise InvalidInput(f"{name} has no audio track we can read: its audio is damaged.")

    if duration is None:  # browser recordings (webm) often carry no duration: count it
        duration = _demuxed_seconds(path, limit_seconds=None if max_seconds is None else max_seconds + 1)
        if max_seconds is not None and duration > max_seconds:
            raise _too_long(name, duration, max_seconds, at_least=True)
    if duration <= 0:
        raise InvalidInput(f"{name} contains no audio: the recording is empty.")
    return AudioInfo(
        duration_seconds=duration,
        container=str(data["format"].get("format_name", "")),
        codec=str(audio.get("codec_name", "")),
        sample_rate=int(audio.get("sample_rate") or 0),
        channels=int(audio.get("channels") or 0),
        bit_rate=int(data["format"]["bit_rate"]) if str(data["format"].get("bit_rate", "")).isdigit() else None,
        has_video=any(s.get("codec_type") == "video" and not _is_cover_art(s) for s in streams),
    )


def _is_cover_art(stream: dict[str, Any]) -> bool:
    return bool(stream.get("disposition", {}).get("attached_pic"))


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _volume(stderr: str, name: str) -> float:
    match = re.search(rf"{name}: (-?[\d.]+|-inf) dB", stderr)
    if match is None or match.group(1) == "-inf":
        return -91.0  # digital silence
    return float(match.group(1))


def check_free_disk(folder: Path, *, seconds: float) -> None:
    """Refuse to normalise `seconds` of audio into `folder` unless the WAV (and what is cut
    from it) fits with room to spare. Raises NotEnoughDisk, which a later attempt may pass."""
    needed = int(seconds * _WAV_BYTES_PER_SECOND * 1.1) + _DISK_RESERVE_BYTES
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise NotEnoughDisk(
            f"Not enough free disk space to prepare the recording: it needs {needed / 1e9:.1f} GB in {folder.parent}, "
            f"{free / 1e9:.1f} GB are free. Free some space (or point TMPDIR at a larger disk); the job will retry."
        )


def normalise_audio(source: Path, dest: Path, *, max_seconds: float | None = None) -> NormalisedAudio:
    """Decode the first audio track of `source` to a 16 kHz mono 16-bit WAV at `dest`.

    Streams through ffmpeg (constant memory) and measures loudness on the way; decodes no
    more than `max_seconds` (plus one), so a file whose header lies about its length cannot
    fill the disk. Raises PermanentError when nothing can be decoded, InvalidInput when the
    recording is longer than `max_seconds`.
    """
    limit = ["-t", f"{max_seconds + 1:.0f}"] if max_seconds is not None else []
    result = _run([
        "ffmpeg", "-nostdin", "-nostats", "-v", "info", "-y", *input_args(source),
        "-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(SAMPLE_RATE), *limit,
        "-af", "volumedetect", "-c:a", "pcm_s16le", "-rf64", "auto", "-f", "wav", str(dest),
    ])  # fmt: skip
    if result.returncode != 0 or not dest.exists():
        raise PermanentError(f"The recording could not be decoded: {_last_line(result.stderr)}")
    pcm_bytes = max(dest.stat().st_size - 44, 0)
    duration = pcm_bytes / _WAV_BYTES_PER_SECOND
    if max_seconds is not None and duration > max_seconds:
        dest.unlink(missing_ok=True)
        raise _too_long("The recording", duration, max_seconds, at_least=True)
    if duration <= 0.05:
        raise PermanentError("The recording could not be decoded: it holds no audio.")
    return NormalisedAudio(
        path=dest,
        duration_seconds=duration,
        mean_volume_db=_volume(result.stderr, "mean_volume"),
        max_volume_db=_volume(result.stderr, "max_volume"),
    )


def silence_threshold_db(audio: NormalisedAudio) -> float:
    """Loudness below which audio counts as silence: 16 dB under the mean, kept in [-60, -30] dB."""
    return min(max(audio.mean_volume_db - 16.0, -60.0), -30.0)


def detect_silences(
    path: Path, *, threshold_db: float, min_seconds: float = MIN_SILENCE_SECONDS, duration: float | None = None
) -> list[Silence]:
    """Pauses of at least `min_seconds` quieter than `threshold_db`, in order. Streams the file."""
    result = _run(["ffmpeg", "-nostdin", "-nostats", "-v", "info", *input_args(path, extension="wav"),
                   "-af", f"silencedetect=noise={threshold_db:.1f}dB:d={min_seconds}", "-f", "null", "-"])  # fmt: skip
    if result.returncode != 0:
        raise PermanentError(f"The recording could not be analysed: {_last_line(result.stderr)}")
    silences: list[Silence] = []
    start: float | None = None
    for match in re.finditer(r"silence_(start|end): (-?[\d.]+)", result.stderr):
        value = max(float(match.group(2)), 0.0)
        if match.group(1) == "start":
            start = value
        elif start is not None:
            silences.append(Silence(start, value))
            start = None
    if start is not None and duration is not None and duration > start:  # silent to the end
        silences.append(Silence(start, duration))
    return silences


def max_segment_seconds(settings: Settings, model: str | None) -> float:
    """Longest audio one request may carry, overlap included.

    The smallest of: the configured segment length, the model's duration cap, and the
    length whose MP3 encoding fits the request size limit.
    """
    by_size = settings.transcription_max_request_mb * 1024 * 1024 * 8 / (SEGMENT_BITRATE_KBPS * 1000) * _BYTES_SAFETY
    limits = [settings.transcription_segment_seconds, by_size]
    if model and model in settings.model_duration_caps:
        limits.append(settings.model_duration_caps[model])
    return min(limits)


def _silent_time(silences: Sequence[Silence], start: float, end: float) -> float:
    return sum(max(0.0, min(s.end, end) - max(s.start, start)) for s in silences)


def _choose_cut(silences: Sequence[Silence], low: float, high: float) -> float:
    """Where to end a segment that may end anywhere in [low, high].

    The middle of the latest pause in the window that is long enough to be a real break
    (or of the longest pause when none is); `high` when the window holds no pause.
    """
    inside = [s for s in silences if low <= (s.start + s.end) / 2 <= high]
    if not inside:
        return high
    wanted = min(_PREFERRED_SILENCE_SECONDS, max(s.duration for s in inside))
    best = max((s for s in inside if s.duration >= wanted), key=lambda s: s.start)
    return (best.start + best.end) / 2


def plan_segments(
    *, duration: float, silences: Sequence[Silence], max_seconds: float, overlap_seconds: float
) -> list[SegmentPlan]:
    """Split [0, duration) into segments cut at pauses, each sent with `overlap_seconds` each side.

    Every segment's audio (overlap included) is at most `max_seconds` long. Deterministic:
    the same inputs give the same plan, which is what lets a retried job resume by index.
    Raises ValueError when the overlap leaves no room for audio.
    """
    core_limit = max_seconds - 2 * overlap_seconds
    if core_limit <= 1.0:
        raise ValueError(f"segment length {max_seconds}s leaves no room beside a {overlap_seconds}s overlap")
    cuts = [0.0]
    while duration - cuts[-1] > core_limit:
        position = cuts[-1]
        cuts.append(_choose_cut(silences, position + core_limit * _CUT_WINDOW, position + core_limit))
    cuts.append(duration)
    plans = []
    for index, (start, end) in enumerate(itertools.pairwise(cuts)):
        plans.append(
            SegmentPlan(
                index=index,
                start=round(start, 3),
                end=round(end, 3),
                audio_start=round(max(0.0, start - overlap_seconds), 3),
                audio_end=round(min(duration, end + overlap_seconds), 3),
                speech_seconds=round((end - start) - _silent_time(silences, start, end), 3),
            )
        )
    return plans


def export_segment(source: Path, plan: SegmentPlan, dest: Path, *, max_bytes: int | None = None) -> Path:
    """Cut plan's audio range from the normalised WAV `source` into an MP3 at `dest`.

    Raises PermanentError if ffmpeg fails or the file would exceed `max_bytes`.
    """
    result = _run([
        "ffmpeg", "-nostdin", "-v", "error", "-y",
        "-ss", f"{plan.audio_start:.3f}", "-t", f"{plan.audio_duration:.3f}", *input_args(source, extension="wav"),
        "-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "libmp3lame", "-b:a", f"{SEGMENT_BITRATE_KBPS}k", str(dest),
    ])  # fmt: skip
    if result.returncode != 0 or not dest.exists():
        raise PermanentError(f"Segment {plan.index + 1} could not be cut: {_last_line(result.stderr)}")
    size = dest.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise PermanentError(
            f"Segment {plan.index + 1} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB request limit; "
            "lower QUORUM_TRANSCRIPTION_SEGMENT_SECONDS."
        )
    return dest
