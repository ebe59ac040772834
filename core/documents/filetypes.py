"""What a file really is, judged from its bytes, and whether Quorum can index it.

The extension says what the user claims; the content decides. A `.pdf` that is really a
PNG, a `.docx` that is a plain ZIP or a `.txt` full of binary is refused with a message
naming the file and what it turned out to be. Binary formats are recognised by their
signatures (and, for Office files, by the parts inside the ZIP); text formats by decoding.
"""

from __future__ import annotations

import codecs
import re
import zipfile
from dataclasses import dataclass
from typing import IO

import puremagic

from core.platform.errors import InvalidInput

HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class FileKind:
    """A file type Quorum can index."""

    name: str  # pdf, docx, xlsx, text, markdown, html, csv
    label: str
    content_type: str  # canonical MIME type stored with the document
    extension: str  # used for the storage key, never the user's own
    is_text: bool


KINDS: dict[str, FileKind] = {
    kind.name: kind
    for kind in (
        FileKind("pdf", "PDF", "application/pdf", ".pdf", False),
        FileKind(
            "docx",
            "Word document (.docx)",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ".docx",
            False,
        ),
        FileKind(
            "xlsx",
            "Excel workbook (.xlsx)",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ".xlsx",
            False,
        ),
        FileKind("text", "plain text", "text/plain", ".txt", True),
        FileKind("markdown", "Markdown", "text/markdown", ".md", True),
        FileKind("html", "HTML", "text/html", ".html", True),
        FileKind("csv", "CSV", "text/csv", ".csv", True),
    )
}

EXTENSIONS: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".xlsx": "xlsx",
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".csv": "csv",
}

# What the browser's file picker offers, one extension per kind in the order people know them:
# the picker lists them as its hint, so aliases (.markdown, .text) would read as clutter.
# ".htm" is paired with ".html" by the uploader itself; the aliases still index from the CLI.
UPLOAD_PICKER_EXTENSIONS = (".pdf", ".docx", ".xlsx", ".txt", ".md", ".html", ".csv")

SUPPORTED_DESCRIPTION = "PDF, Word (.docx), Excel (.xlsx), plain text (.txt), Markdown (.md), HTML and CSV"

_KIND_BY_CONTENT_TYPE = {kind.content_type: kind for kind in KINDS.values()}
_HTML_TAG = re.compile(
    rb"<\s*(!doctype\s+html|html|head|body|title|p|div|span|a|h[1-6]|table|ul|ol|li|section|article|main|br)\b",
    re.IGNORECASE,
)
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_ALLOWED_CONTROLS = frozenset("\t\n\r\f\v\x1b")

# Types that a browser would run or render as active content; never served as themselves.
_SAFE_DOWNLOAD_TYPES = frozenset(
    {
        "application/pdf",
        "text/plain",
        "text/csv",
        "text/markdown",
        KINDS["docx"].content_type,
        KINDS["xlsx"].content_type,
    }
)


def kind_for_content_type(content_type: str) -> FileKind | None:
    return _KIND_BY_CONTENT_TYPE.get(content_type.split(";")[0].strip().lower())


def safe_download_type(content_type: str) -> str:
    """The Content-Type to send a stored file with: inert types as they are, anything else
    (text/html, image/svg+xml, unknown) as application/octet-stream so it is never rendered."""
    base = content_type.split(";")[0].strip().lower()
    if base in _SAFE_DOWNLOAD_TYPES:
        return f"{base}; charset=utf-8" if base.startswith("text/") else base
    return "application/octet-stream"


def stream_size(stream: IO[bytes]) -> int | None:
    """Size of an upload without reading it: its .size attribute, else seek/tell; None if unknown."""
    size = getattr(stream, "size", None)
    if isinstance(size, int) and size >= 0:
        return size
    try:
        if not stream.seekable():
            return None
        position = stream.tell()
        end = stream.seek(0, 2)
        stream.seek(position)
        return int(end - position)
    except (AttributeError, OSError, ValueError):
        return None


def decode_text(data: bytes) -> str:
    """Decode text bytes: BOM first, then UTF-8, then Windows-1252 (never raises)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _looks_like_text(head: bytes, complete: bool) -> bool:
    """True when `head` decodes as text with almost no control characters."""
    if any(head.startswith(bom) for bom, _ in _BOMS):
        text = decode_text(head)
    else:
        if b"\x00" in head:
            return False
        try:
            # A head cut mid-character is still UTF-8: ignore an incomplete tail.
            text = codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
        except UnicodeDecodeError:
            text = head.decode("cp1252", errors="replace")
    if not text:
        return False
    controls = sum(1 for ch in text if ch < " " and ch not in _ALLOWED_CONTROLS) + text.count("\ufffd")
    return controls <= max(1, len(text) // 200)


def _describe_binary(head: bytes) -> str:
    """A human name for an unsupported binary, e.g. "a PNG image (Portable Network Graphics file)"."""
    try:
        matches = puremagic.magic_string(head)
    except (puremagic.PureError, ValueError):
        matches = []
    if matches:
        best = matches[0]
        return f"a {best.extension.lstrip('.').upper()} file ({best.name})"
    return "binary data"


def _zip_kind(stream: IO[bytes]) -> str:
    """docx / xlsx for Office Open XML files; a description of anything else in a ZIP."""
    stream.seek(0)
    try:
        with zipfile.ZipFile(stream) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return "a damaged ZIP archive"
    finally:
        stream.seek(0)
    if "word/document.xml" in names:
        return "docx"
    if "xl/workbook.xml" in names:
        return "xlsx"
    if any(name.startswith("ppt/") for name in names):
        return "a PowerPoint presentation (.pptx)"
    return "a ZIP archive"


def _detect(stream: IO[bytes], head: bytes, complete: bool) -> str:
    """A KINDS name for a supported binary, "text" for text, else a description of the content."""
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(stream)
    if head.startswith(_OLE_SIGNATURE):
        return "an old Microsoft Office file (.doc/.xls/.ppt: save it as .docx or .xlsx)"
    if _looks_like_text(head, complete):
        return "text"
    return _describe_binary(head)


def detect_kind(*, filename: str, stream: IO[bytes]) -> FileKind:
    """The kind of an upload from its content, checked against its extension.

    `stream` must be seekable; it is left at position 0. Reads at most HEAD_BYTES plus, for
    ZIP-based files, the ZIP directory. Raises InvalidInput with a message naming the file
    when it is empty, unsupported, or not what its extension says.
    """
    stream.seek(0)
    head = stream.read(HEAD_BYTES + 1)
    complete = len(head) <= HEAD_BYTES
    head = head[:HEAD_BYTES]
    stream.seek(0)
    if not head:
        raise InvalidInput(f"{filename}: the file is empty.")

    dot = filename.rfind(".")
    extension = filename[dot:].lower() if dot > 0 else ""
    claimed = EXTENSIONS.get(extension)
    found = _detect(stream, head, complete)

    if extension and claimed is None:
        raise InvalidInput(f"{filename}: {extension} files are not supported. Supported: {SUPPORTED_DESCRIPTION}.")
    if claimed is None:  # no extension: the content decides
        if found in KINDS:
            return KINDS[found]
        raise InvalidInput(f"{filename}: the content is {found}, which is not supported.")

    kind = KINDS[claimed]
    if kind.is_text:
        if found != "text":
            what = KINDS[found].label if found in KINDS else found
            raise InvalidInput(f"{filename}: named {extension} but the content is not text (it is {what}).")
        if kind.name == "html" and not _HTML_TAG.search(head):
            raise InvalidInput(f"{filename}: named {extension} but the content has no HTML markup.")
        return kind
    if found != kind.name:
        what = KINDS[found].label if found in KINDS else found
        if found == "text":
            what = "plain text"
        raise InvalidInput(f"{filename}: named {extension} but the content is {what}, not a {kind.label}.")
    return kind
