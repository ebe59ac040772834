"""Real test documents made on the fly: PDF (fpdf2), DOCX (python-docx), XLSX (openpyxl)."""

from __future__ import annotations

import io
import zipfile
import zlib
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


def make_pdf_bomb(pages: int, *, lines_per_page: int = 4000) -> bytes:
    """A small PDF whose pages all draw one shared, compressed content stream of many text
    lines: a few KB that extract to `pages` x ~176k characters (a text-expansion bomb)."""
    line = b"(Quorum extraction bomb: one line of text drawn again and again) Tj T* "
    stream = zlib.compress(b"BT /F1 8 Tf 10 800 Td " + line * lines_per_page + b"ET", 9)
    font = 4 + pages
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % (4 + i) for i in range(pages)), pages),
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(stream), stream),
        *[
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % font
        ]
        * pages,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def _replace_parts(archive_bytes: bytes, parts: dict[str, bytes]) -> bytes:
    """The ZIP `archive_bytes` with `parts` added or replacing the members of the same name."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(archive_bytes)) as source,
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as target,
    ):
        for member in source.infolist():
            if member.filename not in parts:
                target.writestr(member, source.read(member))
        for name, data in parts.items():
            target.writestr(name, data)
    return buffer.getvalue()


def make_xlsx_shared_string_bomb(*, rows: int = 2000, columns: int = 50, string_chars: int = 65_536) -> bytes:
    """A real workbook whose every cell points at one long shared string: ~100 KB on disk,
    rows x columns x string_chars characters of cell text (6.5 G with the defaults). Every
    part stays under the ZIP-bomb ratio, so only counting the extracted text stops it."""
    workbook = make_xlsx({"Sheet": [["placeholder"]]})
    text = ("budget " * (string_chars // 7 + 1))[:string_chars]
    shared = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1">'
        f"<si><t>{text}</t></si></sst>"
    )
    letters = [_column_letters(index) for index in range(columns)]
    cells = "".join(
        f'<row r="{row}">' + "".join(f'<c r="{letter}{row}" t="s"><v>0</v></c>' for letter in letters) + "</row>"
        for row in range(1, rows + 1)
    )
    sheet = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<sheetData>{cells}</sheetData></worksheet>"
    )
    with zipfile.ZipFile(io.BytesIO(workbook)) as archive:
        rels = archive.read("xl/_rels/workbook.xml.rels").decode()
        types = archive.read("[Content_Types].xml").decode()
    rels = rels.replace(
        "</Relationships>",
        '<Relationship Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
        'Target="sharedStrings.xml" Id="rIdShared"/></Relationships>',
    )
    types = types.replace(
        "</Types>",
        '<Override PartName="/xl/sharedStrings.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
    )
    return _replace_parts(
        workbook,
        {
            "xl/sharedStrings.xml": shared.encode(),
            "xl/worksheets/sheet1.xml": sheet.encode(),
            "xl/_rels/workbook.xml.rels": rels.encode(),
            "[Content_Types].xml": types.encode(),
        },
    )


def _column_letters(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def make_zip_bomb_xlsx(expanded_mb: int = 20) -> bytes:
    """A real workbook padded with a part that expands to `expanded_mb` MB of zeros (about
    1000:1): refused from the ZIP directory, before anything is unpacked."""
    return _replace_parts(make_xlsx({"Sheet": [["a"]]}), {"xl/media/padding.bin": b"\0" * (expanded_mb * 1024 * 1024)})
