"""Positions in a recording as people read them."""

from __future__ import annotations


def short_clock(seconds: float) -> str:
    """2:03 below an hour, 1:02:03 from an hour on (fractions dropped)."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
