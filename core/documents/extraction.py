"""Text out of documents, keeping where it came from (page numbers, heading paths).

``extract_sections(stream, kind)`` returns Sections in reading order. A Section is a run of
text under one heading path ("Budget > Q3") on one page; chunks never cross a Section, so a
chunk's page and heading are exact. Raises InvalidInput with a readable reason for files
that cannot be read (broken PDF, password, ZIP bomb, no text at all) and for files that
would cost too much to read (over ExtractionLimits: pages, characters of text).
"""

from __future__ import annotations

import csv
import io
import logging
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from core.documents.filetypes import KINDS, FileKind, decode_text
from core.platform.config import Settings, get_settings
from core.platform.errors import InvalidInput

log = logging.getLogger(__name__)

# ZIP bomb guards for Office files, checked from the ZIP directory before any parsing.
MAX_UNCOMPRESSED_BYTES = 512 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200
MAX_ZIP_MEMBERS = 10_000
MAX_HEADING_CHARS = 300
MAX_TABLE_HEADER_CHARS = 300

_WHITESPACE = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+")
_MD_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_MD_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_MD_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class ExtractionLimits:
    """What reading one document may produce before it is refused (see Settings)."""

    max_pages: int
    max_characters: int
    max_field_bytes: int  # the largest single CSV field

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ExtractionLimits:
        settings = settings or get_settings()
        return cls(
            max_pages=settings.max_document_pages,
            max_characters=settings.max_document_characters,
            max_field_bytes=settings.max_document_bytes,
        )


@dataclass
class _Budget:
    """Counts extracted characters as they are produced, so an expanding file is stopped
    early instead of after it has filled the memory."""

    limits: ExtractionLimits
    filename: str
    used: int = field(default=0)

    def take(self, text: str) -> str:
        self.used += len(text)
        if self.used > self.limits.max_characters:
            raise InvalidInput(
                f"{self.filename} holds more than {self.limits.max_characters:,} characters of text, the most "
                "Quorum indexes from one document (QUORUM_MAX_DOCUMENT_CHARACTERS). Split it into smaller files."
            )
        return text

    def pages(self, count: int) -> None:
        if count > self.limits.max_pages:
            raise InvalidInput(
                f"{self.filename} has {count:,} pages; Quorum indexes documents of up to "
                f"{self.limits.max_pages:,} pages (QUORUM_MAX_DOCUMENT_PAGES). Split it into smaller files."
            )


def _budget(filename: str, budget: _Budget | None) -> _Budget:
    return budget if budget is not None else _Budget(ExtractionLimits.from_settings(), filename)


@dataclass(frozen=True)
class Section:
    """Text from one place in a document: a page and/or a heading path (None when unknown)."""

    text: str
    page_number: int | None = None
    heading: str | None = None


def normalize_text(text: str) -> str:
    """Collapse runs of spaces, keep single line breaks, reduce blank-line runs to one blank line."""
    text = text.replace("\x00", "")
    text = _WHITESPACE.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


class _Outline:
    """Builds Sections while walking a document that has headings."""

    def __init__(self, budget: _Budget) -> None:
        self.budget = budget
        self.sections: list[Section] = []
        self._stack: list[tuple[int, str]] = []
        self._parts: list[str] = []
        self.page: int | None = None

    @property
    def heading(self) -> str | None:
        if not self._stack:
            return None
        return " > ".join(text for _, text in self._stack)[:MAX_HEADING_CHARS]

    def flush(self) -> None:
        text = normalize_text("\n".join(self._parts))
        if text:
            self.sections.append(Section(text=text, page_number=self.page, heading=self.heading))
        self._parts = []

    def add_heading(self, level: int, text: str) -> None:
        text = normalize_text(text).replace("\n", " ")
        if not text:
            return
        self.flush()
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))

    def add_text(self, text: str) -> None:
        self._parts.append(self.budget.take(text))


def check_zip_bomb(stream: IO[bytes], filename: str = "The file") -> None:
    """Refuse an Office file whose ZIP would expand beyond safe limits. Reads only the directory."""
    stream.seek(0)
    try:
        with zipfile.ZipFile(stream) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise InvalidInput(f"{filename} is damaged and cannot be opened ({error}).") from None
    finally:
        stream.seek(0)
    if len(members) > MAX_ZIP_MEMBERS:
        raise InvalidInput(f"{filename} contains too many parts ({len(members)}) to be a normal document.")
    total = sum(member.file_size for member in members)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise InvalidInput(
            f"{filename} expands to {total // (1024 * 1024)} MB when unpacked, above the safe limit of "
            f"{MAX_UNCOMPRESSED_BYTES // (1024 * 1024)} MB."
        )
    for member in members:
        if member.file_size > 1024 * 1024 and member.file_size > MAX_COMPRESSION_RATIO * max(member.compress_size, 1):
            raise InvalidInput(f"{filename} looks like a ZIP bomb (a part compresses over {MAX_COMPRESSION_RATIO}:1).")


# ---------------------------------------------------------------- PDF


def _pdf_outline_pages(reader: Any) -> list[tuple[int, str]]:
    """(page index, title) for every outline entry, sorted by page; [] when there is none."""
    found: list[tuple[int, str]] = []

    def walk(items: Iterable[Any]) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item)
                continue
            try:
                page = reader.get_destination_page_number(item)
            except Exception:  # noqa: BLE001 - a broken outline entry only loses a heading
                continue
            title = str(getattr(item, "title", "") or "").strip()
            if page is not None and page >= 0 and title:
                found.append((page, title[:MAX_HEADING_CHARS]))

    try:
        walk(reader.outline)
    except Exception:  # noqa: BLE001 - outlines are optional and often malformed
        return []
    return sorted(found, key=lambda entry: entry[0])


def extract_pdf(stream: IO[bytes], filename: str = "The PDF", budget: _Budget | None = None) -> list[Section]:
    """One Section per page with text; heading from the PDF outline when it has one."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    budget = _budget(filename, budget)
    try:
        reader = PdfReader(stream)
        if reader.is_encrypted and not reader.decrypt(""):
            raise InvalidInput(f"{filename} is password-protected; upload an unprotected copy.")
        pages = list(reader.pages)
        budget.pages(len(pages))
    except InvalidInput:
        raise
    except FileNotDecryptedError:
        raise InvalidInput(f"{filename} is password-protected; upload an unprotected copy.") from None
    except (PdfReadError, Exception) as error:  # noqa: BLE001 - pypdf raises many types on broken files
        raise InvalidInput(f"{filename} is damaged or not a valid PDF ({type(error).__name__}: {error}).") from None

    outline = _pdf_outline_pages(reader)
    sections: list[Section] = []
    heading: str | None = None
    cursor = 0
    for index, page in enumerate(pages):
        while cursor < len(outline) and outline[cursor][0] <= index:
            heading = outline[cursor][1]
            cursor += 1
        try:
            text = page.extract_text() or ""
        except Exception as error:  # noqa: BLE001 - one bad page should not lose the others
            log.warning("%s: page %s could not be read: %s", filename, index + 1, error)
            continue
        text = normalize_text(budget.take(text))
        if text:
            sections.append(Section(text=text, page_number=index + 1, heading=heading))
    if not sections:
        raise InvalidInput(f"{filename} has no extractable text (it may be scanned images; OCR is not supported).")
    return sections


# ---------------------------------------------------------------- DOCX


def _docx_heading_level(paragraph: Any) -> int | None:
    try:
        name = (paragraph.style.name or "") if paragraph.style is not None else ""
    except (KeyError, ValueError):
        return None
    if name == "Title":
        return 0
    match = re.match(r"Heading\s*(\d)", name)
    return int(match.group(1)) if match else None


def _docx_table_text(table: Any) -> str:
    lines = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = normalize_text(cell.text).replace("\n", " ")
            if not cells or cells[-1] != text:  # merged cells repeat their text
                cells.append(text)
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def extract_docx(stream: IO[bytes], filename: str = "The document", budget: _Budget | None = None) -> list[Section]:
    """Sections split at Heading/Title styles, paragraphs and tables in reading order."""
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    check_zip_bomb(stream, filename)
    try:
        document = docx.Document(stream)
    except Exception as error:  # noqa: BLE001 - python-docx raises KeyError/ValueError/lxml errors
        raise InvalidInput(f"{filename} is damaged or not a valid Word document ({error}).") from None

    outline = _Outline(_budget(filename, budget))
    for element in document.element.body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(element, document)
            level = _docx_heading_level(paragraph)
            if level is not None:
                outline.add_heading(level, paragraph.text)
            else:
                outline.add_text(paragraph.text + "\n")
        elif tag == "tbl":
            outline.add_text(_docx_table_text(Table(element, document)) + "\n\n")
    outline.flush()
    return _require_text(outline.sections, filename)


# ---------------------------------------------------------------- Markdown, HTML, text


def extract_markdown(text: str, filename: str = "The document", budget: _Budget | None = None) -> list[Section]:
    """Sections split at ATX (#) and setext (=== / ---) headings, outside fenced code blocks."""
    outline = _Outline(_budget(filename, budget))
    fence: str | None = None
    pending: str | None = None  # a paragraph line that may turn out to be a setext heading
    for line in text.splitlines():
        fence_match = _MD_FENCE.match(line)
        if fence is not None:
            if fence_match and fence_match.group(1)[0] == fence[0] and len(fence_match.group(1)) >= len(fence):
                fence = None
            outline.add_text(line)
            continue
        if fence_match:
            if pending is not None:
                outline.add_text(pending)
                pending = None
            fence = fence_match.group(1)
            outline.add_text(line)
            continue
        setext = _MD_SETEXT.match(line)
        if setext and pending is not None and pending.strip():
            outline.add_heading(1 if setext.group(1)[0] == "=" else 2, pending)
            pending = None
            continue
        if pending is not None:
            outline.add_text(pending)
            pending = None
        atx = _MD_ATX.match(line)
        if atx:
            outline.add_heading(len(atx.group(1)), atx.group(2))
        elif line.strip():
            pending = line
        else:
            outline.add_text("")
    if pending is not None:
        outline.add_text(pending)
    outline.flush()
    return _require_text(outline.sections, filename)


_HTML_DROP = ["script", "style", "noscript", "template", "svg", "iframe", "object", "embed", "head", "canvas"]
_HTML_BLOCKS = [
    "p", "div", "section", "article", "main", "header", "footer", "aside", "nav", "blockquote", "pre",
    "ul", "ol", "dl", "table", "form", "figure", "figcaption", "address", "hr",
]  # fmt: skip
_HTML_LINES = ["li", "dt", "dd", "tr", "br", "caption"]
_HEADING_MARK = "\x00"


def extract_html(text: str, filename: str = "The page", budget: _Budget | None = None) -> list[Section]:
    """Visible text split at h1-h6; scripts, styles and other inactive parts dropped."""
    from bs4 import BeautifulSoup, NavigableString

    budget = _budget(filename, budget)
    soup = BeautifulSoup(text.replace(_HEADING_MARK, ""), "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_HTML_DROP):
        tag.decompose()
    for string in list(soup.find_all(string=True)):
        if isinstance(string, NavigableString) and string.find_parent("pre") is None:
            string.replace_with(re.sub(r"\s+", " ", str(string)))
    for tag in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        heading = tag.get_text(" ", strip=True)
        tag.replace_with(f"\n{_HEADING_MARK}{tag.name[1]}{heading}{_HEADING_MARK}\n")
    for tag in soup.find_all(["td", "th"]):
        if tag.find_previous_sibling(["td", "th"]) is not None:
            tag.insert_before(" | ")
    for tag in soup.find_all(_HTML_LINES):
        tag.insert_after("\n")
    for tag in soup.find_all(_HTML_BLOCKS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")

    outline = _Outline(budget)
    body = soup.get_text()
    parts = body.split(_HEADING_MARK)
    if title and not any(part[:1] == "1" for part in parts[1::2]):
        outline.add_heading(1, title)
    for number, part in enumerate(parts):
        if number % 2 == 1 and part[:1].isdigit():
            outline.add_heading(int(part[0]), part[1:])
        else:
            outline.add_text(part)
    outline.flush()
    return _require_text(outline.sections, filename)


def extract_plain_text(text: str, filename: str = "The file", budget: _Budget | None = None) -> list[Section]:
    return _require_text([Section(text=normalize_text(_budget(filename, budget).take(text)))], filename)


# ---------------------------------------------------------------- CSV and spreadsheets


def _cell(value: object) -> str:
    return "" if value is None else normalize_text(str(value)).replace("\n", " ")


def _table_sections(rows: Iterator[list[str]], budget: _Budget, *, heading_prefix: str | None = None) -> list[Section]:
    """Rows as "Row n: column: value; ..." lines under a heading naming the columns.

    Every chunk carries the heading, so a row cut out of context still says what its
    columns are. Rows are streamed; only the text is kept.
    """
    header: list[str] | None = None
    lines: list[str] = []
    number = 0
    for row in rows:
        cells = [_cell(value) for value in row]
        if not any(cells):
            continue
        if header is None:
            header = [cell or f"column {i + 1}" for i, cell in enumerate(cells)]
            continue
        number += 1
        pairs = [
            f"{header[i] if i < len(header) else f'column {i + 1}'}: {cell}" for i, cell in enumerate(cells) if cell
        ]
        lines.append(budget.take(f"Row {number}: " + "; ".join(pairs)))
    if header is None:
        return []
    columns = ", ".join(header)
    if len(columns) > MAX_TABLE_HEADER_CHARS:
        columns = columns[: MAX_TABLE_HEADER_CHARS - 1] + "…"
    heading = f"Columns: {columns}"
    if heading_prefix:
        heading = f"{heading_prefix} > {heading}"
    if not lines:  # a header and nothing else is still the document's text
        return [Section(text=", ".join(header), heading=heading_prefix)]
    return [Section(text="\n".join(lines), heading=heading)]


def extract_csv(text: str, filename: str = "The file", budget: _Budget | None = None) -> list[Section]:
    """Rows with their header's column names; the delimiter is sniffed (, ; tab |)."""
    sample = text[:16384]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    # A single huge field is legal CSV: allow fields as large as the upload limit.
    budget = _budget(filename, budget)
    csv.field_size_limit(max(csv.field_size_limit(), budget.limits.max_field_bytes))
    try:
        sections = _table_sections(iter(csv.reader(io.StringIO(text), dialect)), budget)
    except csv.Error as error:
        raise InvalidInput(f"{filename} is not valid CSV ({error}).") from None
    return _require_text(sections, filename)


def extract_xlsx(stream: IO[bytes], filename: str = "The workbook", budget: _Budget | None = None) -> list[Section]:
    """One Section per non-empty sheet, rows with their header's column names (cached values).

    Cells are counted as they are read: a shared string repeated in a million cells (a few
    KB in the file) stops at the character limit instead of filling the memory.
    """
    import openpyxl

    budget = _budget(filename, budget)
    check_zip_bomb(stream, filename)
    try:
        workbook = openpyxl.load_workbook(stream, read_only=True, data_only=True)
    except Exception as error:  # noqa: BLE001 - openpyxl raises many types on broken files
        raise InvalidInput(f"{filename} is damaged or not a valid Excel workbook ({error}).") from None
    sections: list[Section] = []
    try:
        for sheet in workbook.worksheets:
            rows = ([_cell(value) for value in row] for row in sheet.iter_rows(values_only=True))
            sections.extend(_table_sections(rows, budget, heading_prefix=f"Sheet {sheet.title}"))
    finally:
        workbook.close()
    return _require_text(sections, filename)


def check_chunk_count(filename: str, count: int) -> None:
    """Refuse a document that would make more search chunks than the settings allow (each
    chunk costs an embedding and index space)."""
    limit = get_settings().max_document_chunks
    if count > limit:
        raise InvalidInput(
            f"{filename} would make {count:,} search chunks, more than the {limit:,} Quorum indexes from one "
            "document (QUORUM_MAX_DOCUMENT_CHUNKS). Split it into smaller files."
        )


def _require_text(sections: list[Section], filename: str) -> list[Section]:
    sections = [section for section in sections if section.text.strip()]
    if not sections:
        raise InvalidInput(f"{filename} has no extractable text.")
    return sections


def extract_sections(
    stream: IO[bytes], kind: FileKind | str, *, filename: str | None = None, limits: ExtractionLimits | None = None
) -> list[Section]:
    """Extract the text of a stored file of `kind` (a FileKind or its name). Pure but for reading.

    `stream` must be seekable. `limits` default to the settings'. Raises InvalidInput for
    unreadable files, files with no text, and files over the limits (pages, characters).
    Runs in the calling process: untrusted files go through core.documents.sandbox.
    """
    kind = KINDS[kind] if isinstance(kind, str) else kind
    name = filename or "The file"
    budget = _Budget(limits or ExtractionLimits.from_settings(), name)
    stream.seek(0)
    if kind.name == "pdf":
        return extract_pdf(stream, name, budget)
    if kind.name == "docx":
        return extract_docx(stream, name, budget)
    if kind.name == "xlsx":
        return extract_xlsx(stream, name, budget)
    text = decode_text(stream.read())
    if kind.name == "markdown":
        return extract_markdown(text, name, budget)
    if kind.name == "html":
        return extract_html(text, name, budget)
    if kind.name == "csv":
        return extract_csv(text, name, budget)
    return extract_plain_text(text, name, budget)
