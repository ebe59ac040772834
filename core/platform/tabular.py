"""CSV and XLSX bytes from plain rows, safe to open in a spreadsheet.

Exports carry text users typed (questions, corrections, notes, filenames). A cell that
starts with = + - @ is run as a formula by Excel and LibreOffice ("CSV injection"), so
such text is written as text: prefixed with ' in CSV, stored as a string cell in XLSX.
Datetimes are written in UTC without a zone (Excel has no time zones).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import TYPE_STRING
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_MAX_COLUMN_WIDTH = 60


def _plain(value: Any) -> Any:
    """A value a spreadsheet cell can hold: numbers, text, naive UTC datetimes, dates."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date):
        return value
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return "; ".join(value)
    return json.dumps(value, default=str, ensure_ascii=False)


def to_csv_bytes(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    """UTF-8 CSV (with a BOM so Excel reads the accents) of `columns` from each row. Pure."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        cells = []
        for column in columns:
            value = _plain(row.get(column))
            if isinstance(value, datetime):
                value = value.isoformat(sep=" ", timespec="seconds")
            elif isinstance(value, str) and value.startswith(_FORMULA_STARTS):
                value = "'" + value
            cells.append("" if value is None else value)
        writer.writerow(cells)
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx_bytes(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, sheet_name: str) -> bytes:
    """An .xlsx workbook with one sheet: a bold header row, then `columns` of each row. Pure."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = sheet_name[:31]
    sheet.append(list(columns))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    widths = [len(column) for column in columns]
    for row in rows:
        values = [_plain(row.get(column)) for column in columns]
        sheet.append(values)
        for index, value in enumerate(values):
            if isinstance(value, str):
                widths[index] = max(widths[index], min(len(value), _MAX_COLUMN_WIDTH))
                if value.startswith("="):
                    # openpyxl stores text starting with "=" as a formula unless told otherwise.
                    sheet.cell(row=sheet.max_row, column=index + 1).data_type = TYPE_STRING
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = max(10, width + 2)
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
