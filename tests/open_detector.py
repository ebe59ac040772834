"""Tell whether a program opened a file: a named pipe that notices being opened for reading."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from pathlib import Path
from types import TracebackType


class OpenDetector:
    """A FIFO at `path`. A reader that opens it blocks until a writer comes; the watcher
    thread is that writer, so `opened` turns True exactly when something opened the path
    (and the reader then gets a few bytes of junk and end of file, so it never hangs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.opened = False
        self._stop = threading.Event()
        os.mkfifo(path)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as error:
                if error.errno != errno.ENXIO:  # ENXIO: nobody is reading yet
                    raise
                time.sleep(0.01)
                continue
            self.opened = True
            with contextlib.suppress(OSError):  # the reader may already be gone
                os.write(fd, b"not audio\n" * 10)
            os.close(fd)

    def __enter__(self) -> OpenDetector:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(5)
        self.path.unlink(missing_ok=True)
