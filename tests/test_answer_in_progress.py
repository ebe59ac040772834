"""The background reader of a streamed answer (ui/answer_in_progress.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from core.platform.errors import ProviderError, QuorumError
from ui.answer_in_progress import AnswerInProgress


def _paced(pieces: list[str], gate: threading.Event, *, fail_with: Exception | None = None) -> Iterator[str]:
    yield pieces[0]
    gate.wait(5)
    yield from pieces[1:]
    if fail_with is not None:
        raise fail_with


def test_follow_gives_the_text_so_far_then_the_rest() -> None:
    gate = threading.Event()
    answer = AnswerInProgress(_paced(["The office ", "moves to ", "Harbour Street."], gate))
    seen = answer.follow()
    assert next(seen) == "The office "  # available before the rest is generated
    assert not answer.finished
    gate.set()
    assert "".join(seen) == "moves to Harbour Street."
    assert answer.finished and answer.error is None
    # A second view (the page opened again) replays everything.
    assert "".join(answer.follow()) == "The office moves to Harbour Street."


def test_the_stream_is_read_to_the_end_without_anyone_following() -> None:
    consumed: list[str] = []

    def stream() -> Iterator[str]:
        for piece in ("a", "b", "c"):
            consumed.append(piece)
            yield piece
        consumed.append("stored")  # where core stores the answer: after the last piece

    answer = AnswerInProgress(stream())
    assert answer.wait(timeout=5)
    assert consumed == ["a", "b", "c", "stored"]


def test_a_provider_failure_ends_the_answer_with_its_message() -> None:
    gate = threading.Event()
    gate.set()
    failure = ProviderError("The AI provider timed out; try again.")
    answer = AnswerInProgress(_paced(["Partial ", "text"], gate, fail_with=failure))
    assert "".join(answer.follow()) == "Partial text"
    assert answer.error is failure


def test_an_unexpected_error_still_ends_the_answer_with_a_readable_message() -> None:
    gate = threading.Event()
    gate.set()
    answer = AnswerInProgress(_paced(["x"], gate, fail_with=RuntimeError("bug")))
    assert answer.wait(timeout=5)
    assert isinstance(answer.error, QuorumError)
    assert "internal error" in str(answer.error)
