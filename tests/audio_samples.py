"""Real audio for the tests, made on the spot with espeak-ng and ffmpeg (no fixtures on disk)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def speech(path: Path, text: str, *, speed: int = 150) -> Path:
    """`text` spoken by espeak-ng, written as a WAV at `path`."""
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(speed), "-w", str(path), text], check=True)
    return path


def silence(path: Path, seconds: float, *, rate: int = 16_000) -> Path:
    _ffmpeg("-f", "lavfi", "-i", f"anullsrc=r={rate}:cl=mono", "-t", f"{seconds}", str(path))
    return path


def tone(path: Path, seconds: float, *, frequency: int = 440, rate: int = 16_000) -> Path:
    _ffmpeg("-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate={rate}:duration={seconds}", str(path))
    return path


def concat(path: Path, parts: Sequence[Path], *, rate: int = 16_000) -> Path:
    """The parts one after another, resampled to one mono rate; format from `path`'s suffix."""
    inputs: list[str] = []
    for part in parts:
        inputs += ["-i", str(part)]
    streams = "".join(f"[{i}:a]aresample={rate},aformat=channel_layouts=mono[a{i}];" for i in range(len(parts)))
    joined = "".join(f"[a{i}]" for i in range(len(parts)))
    _ffmpeg(*inputs, "-filter_complex", f"{streams}{joined}concat=n={len(parts)}:v=0:a=1[out]", "-map", "[out]",
            str(path))  # fmt: skip
    return path


def convert(source: Path, dest: Path, *extra: str) -> Path:
    """`source` re-encoded to the format of `dest`'s suffix (ffmpeg's default codec for it)."""
    _ffmpeg("-i", str(source), *extra, str(dest))
    return dest


def with_video(source: Path, dest: Path) -> Path:
    """A video file (mp4/mov) whose audio track is `source`."""
    _ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=64x64:r=5", "-i", str(source), "-shortest",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(dest))  # fmt: skip
    return dest


def video_only(dest: Path, seconds: float = 1.0) -> Path:
    _ffmpeg("-f", "lavfi", "-i", f"testsrc=d={seconds}:s=64x64", "-pix_fmt", "yuv420p", str(dest))
    return dest


def long_recording(dest: Path, *, hours: float = 2.0, talk_seconds: float = 5.0, pause_seconds: float = 2.0) -> Path:
    """A long 16 kHz mono MP3 (16 kbps) of tone bursts and pauses: one unit looped by stream
    copy, so two hours take well under a second to make."""
    unit = dest.with_name(dest.stem + "-unit.mp3")
    _ffmpeg("-f", "lavfi", "-i", f"sine=frequency=300:sample_rate=16000:duration={talk_seconds}",
            "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-filter_complex", "[0][1]concat=n=2:v=0:a=1",
            "-t", f"{talk_seconds + pause_seconds}", "-ac", "1", "-c:a", "libmp3lame", "-b:a", "16k",
            str(unit))  # fmt: skip
    loops = int(hours * 3600 / (talk_seconds + pause_seconds))
    _ffmpeg("-stream_loop", str(loops - 1), "-i", str(unit), "-c", "copy", str(dest))
    unit.unlink()
    return dest


def long_silent_flac(path: Path, *, hours: float) -> Path:
    """Hours of digital silence as a real FLAC of a few dozen KB (long frames at a low rate)."""
    _ffmpeg("-f", "lavfi", "-i", "anullsrc=r=4000:cl=mono", "-t", f"{hours * 3600:.0f}",
            "-c:a", "flac", "-frame_size", "16384", str(path))  # fmt: skip
    return path


def browser_webm(path: Path, source: Path) -> Path:
    """`source` as Opus in WebM written to a pipe, so the file carries no duration (as browsers record)."""
    with path.open("wb") as out:
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(source), "-c:a", "libopus", "-f", "webm",
                        "pipe:1"], stdout=out, check=True)  # fmt: skip
    return path
