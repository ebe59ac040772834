"""Answers that finish even when the page run that asked for them does not.

Streamlit stops a script run at its next element call whenever a rerun arrives: a click,
a component reporting back, the user opening another page. An answer streamed inside that
run would stop half-way, and core stores an answer only once its stream is exhausted, so
the question would be left without one. Here the stream is consumed by a thread of its
own; the page only follows it, and can stop following at any moment.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from core.platform.errors import QuorumError

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.5


class AnswerInProgress:
    """A streamed answer being read to the end in a background thread."""

    def __init__(self, chunks: Iterator[str]) -> None:
        self._pieces: list[str] = []
        self._error: QuorumError | None = None
        self._finished = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._consume, args=(chunks,), name="quorum-answer", daemon=True)
        self._thread.start()

    def _consume(self, chunks: Iterator[str]) -> None:
        error: QuorumError | None = None
        try:
            for piece in chunks:
                with self._changed:
                    self._pieces.append(piece)
                    self._changed.notify_all()
        except QuorumError as failure:
            error = failure
        except Exception:  # a bug must still end the answer with a message, not hang the page
            log.exception("answer stream failed")
            error = QuorumError("The answer could not be finished because of an internal error.")
        finally:
            with self._changed:
                self._error = error
                self._finished = True
                self._changed.notify_all()

    @property
    def finished(self) -> bool:
        with self._changed:
            return self._finished

    @property
    def error(self) -> QuorumError | None:
        with self._changed:
            return self._error

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the answer is complete (stored) or failed; False on timeout."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def follow(self) -> Iterator[str]:
        """The text so far, then each new piece as it comes, until the answer is complete."""
        sent = 0
        while True:
            with self._changed:
                while sent == len(self._pieces) and not self._finished:
                    self._changed.wait(_POLL_SECONDS)
                fresh = self._pieces[sent:]
                sent = len(self._pieces)
                finished = self._finished
            yield from fresh
            if finished:
                return
