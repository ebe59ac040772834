"""Real test documents made on the fly: PDF (fpdf2), DOCX (python-docx), XLSX (openpyxl)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

import docx
import openpyxl
from fpdf import FPDF

PNG_BYTES = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


def make_pdf(pages: Sequence[str], *, outline: Sequence[str | None] | None = None) -> bytes:
    """A text PDF, one string per page; `outline` gives a bookmark title per page (or None)."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for number, text in enumerate(pages):
        pdf.add_page()
        if outline and outline[number]:
            pdf.start_section(str(outline[number]))
        pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def make_image_only_pdf() -> bytes:
    """A PDF whose one page holds only drawings (what a scan looks like to a text extractor)."""
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")
    pdf.line(10, 10, 150, 150)
    return bytes(pdf.output())


def make_docx(blocks: Sequence[tuple[str, str]]) -> bytes:
    """A DOCX from (kind, text) blocks: kind "h1".."h3", "title", "p", or "table" (rows by ';', cells by '|')."""
    document = docx.Document()
    for kind, text in blocks:
        if kind == "title":
            document.add_heading(text, level=0)
        elif kind.startswith("h"):
            document.add_heading(text, level=int(kind[1:]))
        elif kind == "table":
            rows = [row.split("|") for row in text.split(";")]
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = cell
        else:
            document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_xlsx(sheets: dict[str, list[list[object]]]) -> bytes:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def make_zip_bomb_docx(expanded_mb: int = 20) -> bytes:
    """A .docx-shaped ZIP whose document.xml expands over 1000:1 (a small ZIP bomb)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * (expanded_mb * 1024 * 1024))
    return buffer.getvalue()


def make_plain_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    return buffer.getvalue()
