"""Read an untrusted document in a child process held to a deadline and a memory cap.

A few KB can be built to make a parser run for hours or allocate gigabytes (PDF pages that
share one compressed content stream, an XLSX repeating one shared string in every cell).
The character and page limits stop most of that inside the extractor; this module bounds
the rest: the extractor runs in a forked child process whose address space is capped, so a
runaway allocation fails there with MemoryError, and which is killed at the deadline.

Why fork: a fresh interpreter would import the parsers again for every document (over a
second on a busy machine), and multiprocessing's spawn and forkserver methods re-run the
parent's main script in the child. A forked child only parses files with pure-Python code
and leaves with os._exit, never touching the parent's connections; Python re-creates the
import and logging locks after a fork, so other threads of a worker cannot block it.

Why one child reads many documents: a fork of a worker process costs ~25 ms of CPU, more
than reading a small document, and bulk ingest reads thousands (benchmarks/ingest_stages.py).
So a child that finished a document cleanly goes back to an idle pool and reads the next
one. It is retired instead (killed; the next document gets a fresh one) after it hit its
memory cap, the deadline or crashed, once its address space grew by a quarter of the cap
over what it started with (so a later document always has most of its cap), and after
_DOCUMENTS_PER_READER documents. Each document still gets the same deadline; a child
serves one document at a time, and the pool is shared by the threads of a process.
"""

from __future__ import annotations

import gc
import importlib
import logging
import multiprocessing
import resource
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from core.documents.extraction import ExtractionLimits, Section, extract_sections
from core.documents.filetypes import FileKind
from core.platform.config import get_settings
from core.platform.errors import InvalidInput

log = logging.getLogger(__name__)

_EXIT_GRACE_SECONDS = 5.0
_DOCUMENTS_PER_READER = 500
_IDLE_READERS = 4  # children kept between documents, per process
# Parsers imported in this process before a child is forked, so every child starts with them.
_PARSERS = ("pypdf", "docx", "openpyxl", "bs4")


def _context() -> Any:
    return multiprocessing.get_context("fork")


def _current_address_space() -> int:
    """Bytes of address space this process already maps (the child inherits the parent's)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def _extract_one(path: str, kind: str, filename: str, limits: ExtractionLimits) -> tuple[str, Any]:
    """("ok", sections) or (kind of failure, message), in the child."""
    try:
        with open(path, "rb") as stream:
            return "ok", extract_sections(stream, kind, filename=filename, limits=limits)
    except InvalidInput as error:
        return "invalid", str(error)
    except MemoryError:
        return "memory", ""
    except Exception as error:  # noqa: BLE001 - any parser failure is the file's, reported as such
        return "error", f"{type(error).__name__}: {error}"[:300]


def _serve_in_child(connection: Connection, parent_end: Connection, memory_bytes: int) -> None:
    """The child's whole life: cap its memory once, then read each requested file and reply
    (outcome, payload, address space grown since start) until the parent closes the pipe."""
    parent_end.close()  # else the pipe outlives the parent and this child waits for ever
    if memory_bytes > 0:
        cap = _current_address_space() + memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    baseline = _current_address_space()
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            break
        outcome = _extract_one(*request)
        # Sent once the failed parse's frames are gone; parse trees are cyclic, so collect
        # them to get the memory back for sending (and for the next document).
        gc.collect()
        try:
            connection.send((*outcome, _current_address_space() - baseline))
        except MemoryError:
            connection.send(("memory", "", memory_bytes))
    connection.close()


class _Reader:
    """One forked reading child and the parent's end of its pipe."""

    def __init__(self, memory_bytes: int) -> None:
        for parser in _PARSERS:
            importlib.import_module(parser)
        context = _context()
        self.connection, child_end = context.Pipe(duplex=True)
        self.memory_bytes = memory_bytes
        self.documents = 0
        self.process = context.Process(
            target=_serve_in_child,
            args=(child_end, self.connection, memory_bytes),
            name="quorum-extract",
            daemon=True,
        )
        # Objects the parent holds now are never collected in the child: their finalizers could
        # wait there for a lock another thread of the parent held at the fork, and hang the child.
        gc.freeze()
        try:
            self.process.start()
        finally:
            gc.unfreeze()
        child_end.close()  # the child holds the other end: its exit makes recv() see EOF

    def read(self, request: tuple[str, str, str, ExtractionLimits], timeout: float) -> tuple[str, Any, int] | None:
        """The child's reply, or None at the deadline. Raises EOFError when the child died."""
        self.documents += 1
        self.connection.send(request)
        if not self.connection.poll(timeout):
            return None
        reply: tuple[str, Any, int] = self.connection.recv()
        return reply

    def healthy_after(self, reply: tuple[str, Any, int]) -> bool:
        outcome, _, grown = reply
        if outcome in ("memory", "error") or self.documents >= _DOCUMENTS_PER_READER:
            return False
        return self.memory_bytes <= 0 or grown < self.memory_bytes // 4

    def close(self) -> None:
        self.connection.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(_EXIT_GRACE_SECONDS)


_idle_readers: list[_Reader] = []
_idle_lock = threading.Lock()


def _take_reader(memory_bytes: int) -> _Reader:
    with _idle_lock:
        while _idle_readers:
            reader = _idle_readers.pop()
            if reader.memory_bytes == memory_bytes and reader.process.is_alive():
                return reader
            reader.close()
    return _Reader(memory_bytes)


def _give_back(reader: _Reader) -> None:
    with _idle_lock:
        if len(_idle_readers) < _IDLE_READERS:
            _idle_readers.append(reader)
            return
    reader.close()


def close_readers() -> None:
    """End the idle reading children of this process (they also end when it exits)."""
    with _idle_lock:
        readers = list(_idle_readers)
        _idle_readers.clear()
    for reader in readers:
        reader.close()


def read_document(path: Path, kind: FileKind, *, filename: str) -> list[Section]:
    """The Sections of the stored file at `path`, read in a sandboxed child process.

    Limits come from the settings: pages and characters (checked while reading),
    extraction_timeout_seconds and extraction_memory_mb (a timeout of 0 reads in this
    process, without either). Raises InvalidInput with a message naming the file and the
    limit it hit, for unreadable files, and for files with no text.
    """
    settings = get_settings()
    limits = ExtractionLimits.from_settings(settings)
    if settings.extraction_timeout_seconds <= 0:
        with path.open("rb") as stream:
            return extract_sections(stream, kind, filename=filename, limits=limits)
    memory_bytes = settings.extraction_memory_mb * 1024 * 1024
    reader = _take_reader(memory_bytes)
    healthy = False
    try:
        try:
            reply = reader.read((str(path), kind.name, filename, limits), settings.extraction_timeout_seconds)
        except (EOFError, OSError):
            reader.process.join(_EXIT_GRACE_SECONDS)
            log.warning("reading %s: the reader exited with %s", filename, reader.process.exitcode)
            raise InvalidInput(
                f"{filename} could not be read: the document reader stopped on it (out of memory or a crash)."
            ) from None
        if reply is None:
            log.warning("reading %s passed %.0f s; stopped", filename, settings.extraction_timeout_seconds)
            raise InvalidInput(
                f"{filename} took longer than {settings.extraction_timeout_seconds:.0f} s to read and was stopped "
                "(QUORUM_EXTRACTION_TIMEOUT_SECONDS). It may be built to overload document readers; "
                "save it again from the program that made it, or split it."
            )
        healthy = reader.healthy_after(reply)
        outcome, payload, _ = reply
    finally:
        if healthy:
            _give_back(reader)
        else:
            reader.close()
    if outcome == "ok":
        sections: list[Section] = payload
        return sections
    if outcome == "invalid":
        raise InvalidInput(payload)
    if outcome == "memory":
        raise InvalidInput(
            f"{filename} needs more than {settings.extraction_memory_mb:,} MB of memory to read and was stopped "
            "(QUORUM_EXTRACTION_MEMORY_MB). Split it into smaller files."
        )
    raise InvalidInput(f"{filename} could not be read ({payload}).")
