"""File type detection and text extraction on real files made in the test."""

from __future__ import annotations

import io

import pytest

from core.documents.extraction import Section, extract_sections
from core.documents.filetypes import KINDS, decode_text, detect_kind, safe_download_type, stream_size
from core.platform.errors import InvalidInput
from tests.doc_factory import (
    PNG_BYTES,
    make_docx,
    make_image_only_pdf,
    make_pdf,
    make_plain_zip,
    make_xlsx,
    make_zip_bomb_docx,
)


def kind_of(filename: str, data: bytes) -> str:
    return detect_kind(filename=filename, stream=io.BytesIO(data)).name


# ---------------------------------------------------------------- detection


def test_real_types_are_detected_from_content() -> None:
    assert kind_of("report.pdf", make_pdf(["Hello"])) == "pdf"
    assert kind_of("notes.docx", make_docx([("p", "Hello")])) == "docx"
    assert kind_of("sheet.xlsx", make_xlsx({"A": [["x"], [1]]})) == "xlsx"
    assert kind_of("a.txt", b"plain words") == "text"
    assert kind_of("a.MD", b"# Title") == "markdown"
    assert kind_of("a.htm", b"<p>Hi</p>") == "html"
    assert kind_of("a.csv", b"a,b\n1,2\n") == "csv"
    # No extension: the content decides.
    assert kind_of("README", b"just some text") == "text"
    assert kind_of("scan", make_pdf(["Hello"])) == "pdf"


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("report.pdf", PNG_BYTES, "report.pdf: named .pdf but the content is a PNG file"),
        ("report.pdf", b"plain text pretending", "named .pdf but the content is plain text"),
        ("notes.docx", make_plain_zip(), "named .docx but the content is a ZIP archive"),
        ("notes.docx", make_pdf(["x"]), "named .docx but the content is PDF"),
        ("notes.txt", PNG_BYTES, "named .txt but the content is not text"),
        ("page.html", b"no markup at all", "named .html but the content has no HTML markup"),
        ("tool.exe", b"MZ\x90\x00", ".exe files are not supported"),
        ("old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, ".doc files are not supported"),
        ("blob", b"\x00\x01\x02\x03" * 100, "blob: the content is binary data, which is not supported"),
        ("empty.txt", b"", "empty.txt: the file is empty"),
    ],
)
def test_mismatched_unsupported_and_empty_files_are_refused_by_name(filename: str, data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        detect_kind(filename=filename, stream=io.BytesIO(data))
    assert message in str(caught.value)


def test_text_decoding_accepts_utf8_bom_utf16_and_windows_1252() -> None:
    assert kind_of("a.txt", "naïve café".encode("cp1252")) == "text"
    assert kind_of("a.txt", "naïve café".encode("utf-16")) == "text"
    assert decode_text("naïve café".encode("cp1252")) == "naïve café"
    assert decode_text(b"\xef\xbb\xbfhello") == "hello"
    # A multi-byte character cut at the end of the sniffed head is still text.
    assert kind_of("a.txt", ("é" * 40_000).encode("utf-8")) == "text"


def test_size_comes_from_size_attribute_or_seek_without_reading() -> None:
    stream = io.BytesIO(b"x" * 1234)
    stream.seek(10)
    assert stream_size(stream) == 1224
    assert stream.tell() == 10

    class Sized(io.BytesIO):
        size = 99

    assert stream_size(Sized(b"abc")) == 99


def test_download_types_are_inert() -> None:
    assert safe_download_type("application/pdf") == "application/pdf"
    assert safe_download_type("text/plain") == "text/plain; charset=utf-8"
    for active in ("text/html", "image/svg+xml", "application/javascript", "text/html; charset=utf-8", ""):
        assert safe_download_type(active) == "application/octet-stream"
    assert safe_download_type(KINDS["html"].content_type) == "application/octet-stream"


# ---------------------------------------------------------------- extraction


def test_pdf_keeps_page_numbers_and_outline_headings() -> None:
    pdf = make_pdf(
        ["The budget review is due in May.", "More on the budget.", "Hiring two engineers."],
        outline=["Budget", None, "Hiring"],
    )
    sections = extract_sections(io.BytesIO(pdf), "pdf")
    assert [(s.page_number, s.heading) for s in sections] == [(1, "Budget"), (2, "Budget"), (3, "Hiring")]
    assert "budget review is due in May" in sections[0].text


def test_pdf_without_text_and_broken_pdf_fail_clearly() -> None:
    with pytest.raises(InvalidInput, match="no extractable text"):
        extract_sections(io.BytesIO(make_image_only_pdf()), "pdf", filename="scan.pdf")
    with pytest.raises(InvalidInput, match=r"broken\.pdf is damaged or not a valid PDF"):
        extract_sections(io.BytesIO(b"%PDF-1.7\n1 0 obj << /Type /Catalog"), "pdf", filename="broken.pdf")


def test_docx_headings_become_heading_paths_and_tables_are_kept() -> None:
    data = make_docx(
        [
            ("title", "Quarterly plan"),
            ("p", "Opening words."),
            ("h1", "Budget"),
            ("p", "We will spend less on cloud."),
            ("h2", "Details"),
            ("table", "Item|Cost;Cloud|10"),
            ("h1", "Hiring"),
            ("p", "Two engineers."),
        ]
    )
    sections = extract_sections(io.BytesIO(data), "docx")
    assert [s.heading for s in sections] == [
        "Quarterly plan",
        "Quarterly plan > Budget",
        "Quarterly plan > Budget > Details",
        "Quarterly plan > Hiring",
    ]
    assert "Item | Cost\nCloud | 10" in sections[2].text


def test_docx_zip_bomb_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidInput, match=r"bomb\.docx looks like a ZIP bomb"):
        extract_sections(io.BytesIO(make_zip_bomb_docx()), "docx", filename="bomb.docx")


def test_markdown_headings_ignore_code_fences() -> None:
    text = "# Guide\n\nIntro.\n\n## Setup\nRun it.\n```\n# a comment, not a heading\n```\nUsage\n-----\nCall it."
    sections = extract_sections(io.BytesIO(text.encode()), "markdown")
    assert [(s.heading, s.text) for s in sections] == [
        ("Guide", "Intro."),
        ("Guide > Setup", "Run it.\n```\n# a comment, not a heading\n```"),
        ("Guide > Usage", "Call it."),
    ]


def test_html_uses_h1_to_h6_and_drops_scripts() -> None:
    html = (
        b"<html><head><title>Ignored</title><script>alert('x')</script></head><body>"
        b"<h1>Handbook</h1><p>Welcome <b>all</b>.</p><style>p{}</style>"
        b"<h3>Leave</h3><ul><li>Ten days</li><li>Ask early</li></ul>"
        b"<table><tr><th>Type</th><th>Days</th></tr><tr><td>Sick</td><td>5</td></tr></table></body></html>"
    )
    sections = extract_sections(io.BytesIO(html), "html")
    assert sections == [
        Section("Welcome all.", None, "Handbook"),
        Section("Ten days\nAsk early\n\nType | Days\nSick | 5", None, "Handbook > Leave"),
    ]


def test_csv_rows_carry_their_column_names_and_huge_fields_are_read() -> None:
    huge = "word " * 60_000  # one 300 kB field, over csv's default field limit
    data = f'name;notes\nann;"short"\nbob;"{huge}"\n'.encode()
    [section] = extract_sections(io.BytesIO(data), "csv")
    assert section.heading == "Columns: name, notes"
    lines = section.text.split("\n")
    assert lines[0] == "Row 1: name: ann; notes: short"
    assert lines[1].startswith("Row 2: name: bob; notes: word word")


def test_xlsx_sheets_become_sections() -> None:
    data = make_xlsx({"Costs": [["Item", "Amount"], ["Cloud", 10]], "Blank": [], "Team": [["Name"], ["Ann"]]})
    sections = extract_sections(io.BytesIO(data), "xlsx")
    assert [(s.heading, s.text) for s in sections] == [
        ("Sheet Costs > Columns: Item, Amount", "Row 1: Item: Cloud; Amount: 10"),
        ("Sheet Team > Columns: Name", "Row 1: Name: Ann"),
    ]


def test_empty_text_files_have_no_extractable_text() -> None:
    with pytest.raises(InvalidInput, match=r"blank\.txt has no extractable text"):
        extract_sections(io.BytesIO(b" \n\n \t"), "text", filename="blank.txt")
