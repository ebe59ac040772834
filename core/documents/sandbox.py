"""Read an untrusted document in a child process held to a deadline and a memory cap.

A few KB can be built to make a parser run for hours or allocate gigabytes (PDF pages that
share one compressed content stream, an XLSX repeating one shared string in every cell).
The character and page limits stop most of that inside the extractor; this module bounds
the rest: the extractor runs in a forked child process whose address space is capped, so a
runaway allocation fails there with MemoryError, and which is killed at the deadline.

Why fork: a fresh interpreter would import the parsers again for every document (over a
second on a busy machine), and multiprocessing's spawn and forkserver methods re-run the
parent's main script in the child. A forked child only parses one file with pure-Python
code and leaves with os._exit, never touching the parent's connections; Python re-creates
the import and logging locks after a fork, so other threads of a worker cannot block it.
"""

from __future__ import annotations

import gc
import importlib
import logging
import multiprocessing
import resource
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from core.documents.extraction import ExtractionLimits, Section, extract_sections
from core.documents.filetypes import FileKind
from core.platform.config import get_settings
from core.platform.errors import InvalidInput

log = logging.getLogger(__name__)

_EXIT_GRACE_SECONDS = 5.0
# The parser a kind needs, imported in this process once so every child starts with it.
_PARSERS = {"pdf": "pypdf", "docx": "docx", "xlsx": "openpyxl", "html": "bs4"}


def _context() -> Any:
    return multiprocessing.get_context("fork")


def _current_address_space() -> int:
    """Bytes of address space this process already maps (the child inherits the parent's)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def _extract_in_child(
    connection: Connection, path: str, kind: str, filename: str, limits: ExtractionLimits, memory_bytes: int
) -> None:
    """The child's whole life: cap its memory, extract, send ("ok", sections) or (kind, message)."""
    outcome: tuple[str, Any] = ("error", "no result")
    try:
        if memory_bytes > 0:
            cap = _current_address_space() + memory_bytes
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        with open(path, "rb") as stream:
            outcome = ("ok", extract_sections(stream, kind, filename=filename, limits=limits))
    except InvalidInput as error:
        outcome = ("invalid", str(error))
    except MemoryError:
        outcome = ("memory", "")
    except Exception as error:  # noqa: BLE001 - any parser failure is the file's, reported as such
        outcome = ("error", f"{type(error).__name__}: {error}"[:300])
    # Sent after the except blocks, once the failed parse's frames are gone; parse trees
    # are cyclic, so collect them to get the memory back for sending.
    gc.collect()
    try:
        connection.send(outcome)
    except MemoryError:
        connection.send(("memory", ""))
    finally:
        connection.close()


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
    parser = _PARSERS.get(kind.name)
    if parser is not None:
        importlib.import_module(parser)
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_extract_in_child,
        args=(sender, str(path), kind.name, filename, limits, settings.extraction_memory_mb * 1024 * 1024),
        name=f"quorum-extract-{kind.name}",
        daemon=True,
    )
    # Objects the parent holds now are never collected in the child: their finalizers could
    # wait there for a lock another thread of the parent held at the fork, and hang the child.
    gc.freeze()
    try:
        child.start()
    finally:
        gc.unfreeze()
    sender.close()  # the child holds the only writing end: its exit makes recv() see EOF
    try:
        if not receiver.poll(settings.extraction_timeout_seconds):
            log.warning("reading %s passed %.0f s; stopped", filename, settings.extraction_timeout_seconds)
            raise InvalidInput(
                f"{filename} took longer than {settings.extraction_timeout_seconds:.0f} s to read and was stopped "
                "(QUORUM_EXTRACTION_TIMEOUT_SECONDS). It may be built to overload document readers; "
                "save it again from the program that made it, or split it."
            )
        try:
            outcome, payload = receiver.recv()
        except EOFError:
            child.join(_EXIT_GRACE_SECONDS)
            log.warning("reading %s: the reader exited with %s", filename, child.exitcode)
            raise InvalidInput(
                f"{filename} could not be read: the document reader stopped on it (out of memory or a crash)."
            ) from None
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(_EXIT_GRACE_SECONDS)
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
