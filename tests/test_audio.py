"""core.meetings.audio with real files made by espeak-ng and ffmpeg: probing, normalising, silences,
segment planning within the request limits, and cutting."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import pytest

from core.meetings.audio import (
    SEGMENT_BITRATE_KBPS,
    Silence,
    detect_silences,
    export_segment,
    extension_of,
    max_segment_seconds,
    normalise_audio,
    plan_segments,
    probe_audio,
    silence_threshold_db,
)
from core.platform.config import Settings
from core.platform.errors import InvalidInput
from tests import audio_samples


def _stream_facts(path: Path) -> dict[str, str]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,sample_rate,channels:format=duration",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    data = json.loads(out)
    stream = data["streams"][0]
    return {**stream, "duration": data["format"]["duration"]}


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("spoken")
    return audio_samples.speech(folder / "speech.wav", "The quarterly budget review is on Thursday afternoon.")


@pytest.mark.parametrize(
    ("suffix", "extra"),
    [
        (".mp3", ()),
        (".m4a", ()),
        (".wav", ()),
        (".ogg", ("-c:a", "libvorbis")),
        (".webm", ("-c:a", "libopus")),
        (".flac", ()),
    ],
)
def test_probe_accepts_audio_formats(spoken: Path, tmp_path: Path, suffix: str, extra: tuple[str, ...]) -> None:
    path = audio_samples.convert(spoken, tmp_path / f"meeting{suffix}", *extra)
    info = probe_audio(path)
    expected = float(_stream_facts(spoken)["duration"])
    assert info.duration_seconds == pytest.approx(expected, abs=0.2)
    assert info.channels == 1 and not info.has_video


@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
def test_probe_accepts_the_audio_track_of_a_video(spoken: Path, tmp_path: Path, suffix: str) -> None:
    path = audio_samples.with_video(spoken, tmp_path / f"call{suffix}")
    info = probe_audio(path)
    assert info.has_video and info.codec == "aac"
    normalised = normalise_audio(path, tmp_path / "out.wav")
    facts = _stream_facts(normalised.path)
    assert (facts["codec_type"], facts["sample_rate"], facts["channels"]) == ("audio", "16000", 1)


def test_unsupported_extensions_are_refused_with_the_list() -> None:
    assert extension_of("Team Sync.MP3") == "mp3"
    with pytest.raises(InvalidInput, match=r"notes\.txt is not a supported recording.*mp3, m4a, wav"):
        extension_of("notes.txt")


def test_damaged_and_non_audio_files_get_clear_messages(spoken: Path, tmp_path: Path) -> None:
    text = tmp_path / "minutes.wav"
    text.write_text("These are not sounds, just words in a text file.\n" * 20)
    with pytest.raises(InvalidInput, match=r"minutes\.wav is not a recording we can read: .*damaged or is not audio"):
        probe_audio(text)

    random_bytes = tmp_path / "noise.mp3"
    random_bytes.write_bytes(bytes(range(256)) * 200)
    with pytest.raises(InvalidInput, match="not a recording we can read"):
        probe_audio(random_bytes)

    with pytest.raises(InvalidInput, match=r"screen\.mp4 has no audio track we can read\."):
        probe_audio(audio_samples.video_only(tmp_path / "screen.mp4"))

    mp3 = audio_samples.convert(spoken, tmp_path / "good.mp3")
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(mp3.read_bytes()[:2000] + bytes(reversed(range(256))) * 100)
    with pytest.raises(InvalidInput, match=r"damaged\.mp3 has no audio track we can read: its audio is damaged"):
        probe_audio(damaged)


def test_probe_names_the_upload_not_the_stored_file(tmp_path: Path) -> None:
    stored = tmp_path / "0f3a9c.wav"
    stored.write_text("not audio")
    with pytest.raises(InvalidInput, match=r"^Board meeting\.wav is not a recording"):
        probe_audio(stored, filename="Board meeting.wav")


def test_normalise_measures_loudness_and_silences_are_found_where_they_are(tmp_path: Path) -> None:
    parts = [
        audio_samples.tone(tmp_path / "a.wav", 3.0, rate=44_100),
        audio_samples.silence(tmp_path / "s1.wav", 2.0, rate=44_100),
        audio_samples.tone(tmp_path / "b.wav", 4.0, rate=44_100),
        audio_samples.silence(tmp_path / "s2.wav", 1.5, rate=44_100),
        audio_samples.tone(tmp_path / "c.wav", 2.0, rate=44_100),
    ]
    source = audio_samples.concat(tmp_path / "pattern.ogg", parts, rate=44_100)
    audio = normalise_audio(source, tmp_path / "norm.wav")
    assert audio.duration_seconds == pytest.approx(12.5, abs=0.1)
    assert -40 < audio.mean_volume_db < -5
    silences = detect_silences(audio.path, threshold_db=silence_threshold_db(audio), duration=audio.duration_seconds)
    found = [(s.start, s.end) for s in silences]
    assert found == [
        (pytest.approx(3.0, abs=0.1), pytest.approx(5.0, abs=0.1)),
        (pytest.approx(9.0, abs=0.1), pytest.approx(10.5, abs=0.1)),
    ]


def test_a_silent_recording_is_one_long_silence_and_plans_nothing_to_send(tmp_path: Path) -> None:
    source = audio_samples.silence(tmp_path / "quiet.wav", 20.0)
    audio = normalise_audio(source, tmp_path / "norm.wav")
    silences = detect_silences(audio.path, threshold_db=silence_threshold_db(audio), duration=audio.duration_seconds)
    plans = plan_segments(duration=audio.duration_seconds, silences=silences, max_seconds=8, overlap_seconds=1)
    assert len(plans) == 4
    assert all(plan.is_silent for plan in plans)


def test_plan_cuts_at_the_latest_good_pause_and_overlaps_both_sides() -> None:
    silences = [Silence(100.0, 100.3), Silence(400.0, 402.0), Silence(500.0, 500.4), Silence(700.0, 701.6)]
    plans = plan_segments(duration=900.0, silences=silences, max_seconds=604.0, overlap_seconds=2.0)
    # Core limit 600 s: the long pause at 400-402 wins over the short one at 500 s.
    assert [(p.start, p.end) for p in plans] == [(0.0, 401.0), (401.0, 900.0)]
    first, second = plans
    assert (first.audio_start, first.audio_end) == (0.0, 403.0)
    assert (second.audio_start, second.audio_end) == (399.0, 900.0)
    assert first.speech_seconds == pytest.approx(401.0 - 0.3 - 1.0)


def test_plan_cuts_hard_when_there_is_no_pause() -> None:
    plans = plan_segments(duration=1000.0, silences=[], max_seconds=304.0, overlap_seconds=2.0)
    assert [p.end for p in plans] == [300.0, 600.0, 900.0, 1000.0]
    assert all(p.audio_duration <= 304.0 for p in plans)
    assert plan_segments(duration=1000.0, silences=[], max_seconds=304.0, overlap_seconds=2.0) == plans


def test_segment_limit_is_the_smallest_of_length_model_cap_and_request_size() -> None:
    base = Settings(transcription_segment_seconds=1500, transcription_max_request_mb=24)
    assert max_segment_seconds(base, "whisper-1") == 1500
    assert max_segment_seconds(base, "gpt-4o-transcribe-diarize") == 1400
    small = Settings(transcription_segment_seconds=1500, transcription_max_request_mb=1)
    by_size = max_segment_seconds(small, "whisper-1")
    assert by_size * SEGMENT_BITRATE_KBPS * 1000 / 8 < 1024 * 1024


def test_two_hour_recording_is_split_within_every_limit(tmp_path: Path) -> None:
    """The worker's splitting on a synthetic two-hour meeting (talk bursts and pauses):
    every segment is under the duration cap, cut at a pause, and its encoding fits."""
    source = audio_samples.long_recording(tmp_path / "two-hours.mp3", hours=2.0)
    assert probe_audio(source).duration_seconds > 7000
    settings = Settings(transcription_segment_seconds=1500, transcription_max_request_mb=5)
    limit = max_segment_seconds(settings, "gpt-4o-transcribe-diarize")
    assert limit < 1000  # 5 MB at 48 kbps is the binding limit here

    audio = normalise_audio(source, tmp_path / "norm.wav")
    silences = detect_silences(audio.path, threshold_db=silence_threshold_db(audio), duration=audio.duration_seconds)
    plans = plan_segments(duration=audio.duration_seconds, silences=silences, max_seconds=limit, overlap_seconds=2.0)

    assert len(plans) == pytest.approx(audio.duration_seconds / limit, abs=2)
    assert plans[0].start == 0 and plans[-1].end == pytest.approx(audio.duration_seconds)
    assert all(a.end == b.start for a, b in itertools.pairwise(plans))
    assert all(p.audio_duration <= limit + 1e-6 for p in plans)
    assert all(not p.is_silent for p in plans)
    for cut in (p.end for p in plans[:-1]):  # every cut is inside a pause, not a hard cut
        assert any(s.start <= cut <= s.end for s in silences)

    longest = max(plans, key=lambda p: p.audio_duration)
    segment = export_segment(audio.path, longest, tmp_path / "longest.mp3", max_bytes=5 * 1024 * 1024)
    assert segment.stat().st_size < 5 * 1024 * 1024
    assert float(_stream_facts(segment)["duration"]) == pytest.approx(longest.audio_duration, abs=0.2)
