"""Spreadsheet upload: CSV and Excel bytes in, backdrop records (loose dicts) out. Pure.

The rules are backdrop's upload parsers (performance-platform.md §1.9; BD ``core/upload/``,
ADM ``application/files/parsers/``): the first non-empty row names the fields; lines starting
with ``#`` are skipped; a column named exactly ``comment`` is dropped; all-empty rows are
skipped; a row wider or narrower than the header is refused. CSV must be UTF-8 (a BOM is
stripped) and its cells become ``int``, else ``float``, else stay text. Excel (first sheet only)
gives dates as UTC ISO strings, integral numbers as ``int``, empty cells as ``None`` and error
cells as ``{"error": "#DIV/0!"}``, a nested value the record validation refuses with
``{key} has an invalid value`` - so a sheet with an error cell is never stored half-read.

The records are not validated here: they go through the write pipeline like any POSTed body.
``check_upload`` is the admin app's check of an uploaded file (size, emptiness, type by name).
"""

from __future__ import annotations

import csv
import io
import math
import mimetypes
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pipeline.errors import BadInput

MAX_UPLOAD_BYTES = 1_000_000  # the admin app's limit; exclusive, so a file of exactly this size is refused
MAX_XLSX_UNPACKED_BYTES = 256 * 1024 * 1024  # declared inflated size of an .xlsx: refuses zip bombs

NON_UTF8 = "Non-UTF8 characters found."
MORE_VALUES = "Some rows in the CSV file contain more values than columns"
FEWER_VALUES = "Some rows in the CSV file contain fewer values than columns"

ALLOWED_MIME_TYPES = frozenset(
    {
        "text/plain",
        "text/csv",
        "application/json",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
)

_BOM = b"\xef\xbb\xbf"
_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0"
_EXCEL_EXTENSIONS = (".xls", ".xlsx", ".xlsm")

# Python's built-in table only, plus .xlsx: the answer must not depend on the host's mime.types.
_MIME = mimetypes.MimeTypes()
_MIME.add_type("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx")


# --- the file check ---------------------------------------------------------------------------


def check_upload(filename: str, data: bytes, limit: int = MAX_UPLOAD_BYTES) -> None:
    """Refuse an uploaded file the way backdrop's admin app did (``uploaded_file.py``).

    Every problem is named, joined with `` and ``: ``Invalid file upload {name} - file is empty
    and strange content type of None``. The type is guessed from the file name, never the bytes
    or the browser's header. Status 413 when the size is the only problem, else 400. (The
    original's ClamAV scan is not done here.)
    """
    problems: list[str] = []
    if not data:
        problems.append("file is empty")
    too_big = len(data) >= limit
    if too_big:
        problems.append(f"file too big ({len(data)})")
    mime, _ = _MIME.guess_type(filename, strict=False)
    if mime not in ALLOWED_MIME_TYPES:
        problems.append(f"strange content type of {mime}")
    if problems:
        status = 413 if too_big and len(problems) == 1 else 400
        raise BadInput(f"Invalid file upload {filename} - {' and '.join(problems)}", status)


# --- dispatch ---------------------------------------------------------------------------------


def excel_kind(data: bytes) -> str | None:
    """``"xlsx"`` for a zip (OOXML), ``"xls"`` for an OLE2 compound file, else None."""
    if data.startswith(_XLSX_MAGIC):
        return "xlsx"
    if data.startswith(_XLS_MAGIC):
        return "xls"
    return None


def parse_spreadsheet(data: bytes, upload_format: str, filename: str = "") -> list[dict[str, Any]]:
    """Records from a file in the data set's ``upload_format`` (``csv``, ``excel``, or ``""``
    to guess: Excel magic bytes first, then an Excel file extension, else CSV)."""
    fmt = upload_format.strip().lower()
    if fmt == "csv":
        return parse_csv(data)
    if fmt == "excel":
        return parse_excel(data, filename)
    if fmt:
        raise BadInput(f"unknown upload format {upload_format!r}: use csv or excel")
    if excel_kind(data) or filename.lower().endswith(_EXCEL_EXTENSIONS):
        return parse_excel(data, filename)
    return parse_csv(data)


# --- rows to records (both formats) -----------------------------------------------------------


def _is_empty_row(row: Sequence[Any]) -> bool:
    return all(cell is None or cell == "" for cell in row)


def _records(
    rows: Iterable[list[Any]], header_of: Callable[[Any], str], cell_of: Callable[[Any], Any]
) -> Iterator[dict[str, Any]]:
    """The shared rules (``#`` rows are gone already): the first non-empty row names the
    fields, ``comment`` is dropped, empty rows are skipped, ragged rows refused."""
    keys: list[str] | None = None
    comment_at: int | None = None
    for row in rows:
        if keys is None:
            if _is_empty_row(row):
                continue
            keys = [header_of(cell) for cell in row]
            if "comment" in keys:
                comment_at = keys.index("comment")
                del keys[comment_at]
            continue
        if comment_at is not None:
            row = row[:comment_at] + row[comment_at + 1 :]
        if _is_empty_row(row):
            continue
        if len(row) > len(keys):
            raise BadInput(MORE_VALUES)
        if len(row) < len(keys):
            raise BadInput(FEWER_VALUES)
        yield {key: cell_of(cell) for key, cell in zip(keys, row, strict=True)}


# --- CSV --------------------------------------------------------------------------------------


def parse_csv(data: bytes) -> list[dict[str, Any]]:
    """Every record of a CSV file; see ``iter_csv_records``."""
    return list(iter_csv_records(io.BytesIO(data)))


def iter_csv_records(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """Records from CSV byte lines as a binary file yields them, one at a time.

    A ``#`` line is skipped only where a record starts (a quoted cell may hold a line that
    begins with ``#``). Empty cells stay ``""``. Errors are raised when the reader reaches
    them, so a caller that must not act on half a file collects the records first.
    """
    at_record_start = True

    def text_lines() -> Iterator[str]:
        nonlocal at_record_start
        first = True
        for chunk in lines:
            if first:
                chunk = chunk.removeprefix(_BOM)
                first = False
            # \r, \n and \r\n end a line, as in the Python 2 original; never \x0b, \x85, \u2028...
            for raw in chunk.splitlines(keepends=True):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise BadInput(NON_UTF8) from None
                if at_record_start and line.startswith("#"):
                    continue
                at_record_start = False
                yield line

    def rows() -> Iterator[list[str]]:
        nonlocal at_record_start
        reader = csv.reader(text_lines())
        try:
            for row in reader:
                at_record_start = True
                yield row
        except csv.Error as exc:
            raise BadInput(f"The CSV file could not be read at line {reader.line_num}: {exc}") from None

    return _records(rows(), str, _csv_cell)


def _csv_cell(cell: str) -> Any:
    """``int``, else a finite ``float``, else the text as it was."""
    if not cell or "_" in cell:  # Python 3 reads "1_000" as a number; the Python 2 original did not
        return cell
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        number = float(cell)
    except ValueError:
        return cell
    return number if math.isfinite(number) else cell  # "nan", "inf" have no JSON form


# --- Excel ------------------------------------------------------------------------------------


def excel_error(code: str) -> dict[str, str]:
    """What an error cell (``#DIV/0!``, ``#N/A``...) becomes: a nested value, which record
    validation refuses (``{key} has an invalid value``)."""
    return {"error": code}


def parse_excel(data: bytes, filename: str = "") -> list[dict[str, Any]]:
    """Every record of the first sheet of an .xlsx (openpyxl) or .xls (xlrd) workbook, the
    format told by the magic bytes; ``filename`` only names the file in errors."""
    name = filename or "the file"
    kind = excel_kind(data)
    if kind is None:
        raise BadInput(f"{name} is not an Excel workbook (.xlsx or .xls)")
    try:
        rows = _xlsx_rows(data) if kind == "xlsx" else _xls_rows(data)
        # comment rows go before padding, so a short ``#`` line never sets the sheet's width
        return list(_records(_padded(_without_comment_rows(rows)), _header_name, _same))
    except BadInput:
        raise
    except Exception as exc:  # each reader has its own zoo of errors for a damaged file
        raise BadInput(f"{name} could not be read as an Excel workbook: {exc}") from None


def _without_comment_rows(rows: Iterable[list[Any]]) -> Iterator[list[Any]]:
    for row in rows:
        if row and isinstance(row[0], str) and row[0].startswith("#"):
            continue
        yield row


def _same(cell: Any) -> Any:
    return cell


def _header_name(cell: Any) -> str:
    return "" if cell is None else str(cell)


def _trimmed(row: list[Any]) -> list[Any]:
    """A sheet row without its trailing empty cells: in a sheet an empty cell at the end of a
    row and a missing one are the same thing (so a short row is padded, never refused)."""
    end = len(row)
    while end and row[end - 1] is None:
        end -= 1
    return row[:end]


def _padded(rows: Iterable[list[Any]]) -> Iterator[list[Any]]:
    width: int | None = None
    for row in rows:
        row = _trimmed(row)
        if width is None:
            if not row:
                continue
            width = len(row)
        elif len(row) < width:
            row = row + [None] * (width - len(row))
        yield row


def _utc_iso(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS+00:00``: a sheet's wall-clock time read as UTC, to the second."""
    if moment.microsecond >= 500_000:
        moment += timedelta(seconds=1)
    return moment.replace(microsecond=0, tzinfo=UTC).isoformat()


def _number(value: float) -> int | float:
    return int(value) if math.isfinite(value) and value == int(value) else value


def _xlsx_rows(data: bytes) -> Iterator[list[Any]]:
    from openpyxl import load_workbook

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    if unpacked > MAX_XLSX_UNPACKED_BYTES:
        raise BadInput(f"the workbook unpacks to more than {MAX_XLSX_UNPACKED_BYTES} bytes", 413)
    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        sheet = book.worksheets[0]
        sheet.reset_dimensions()  # a row is as wide as its cells, whatever the file's <dimension> says
        yield from (list(map(_xlsx_cell, row)) for row in sheet.iter_rows())
    finally:
        book.close()


def _xlsx_cell(cell: Any) -> Any:
    value = cell.value
    if cell.data_type == "e":
        return excel_error(str(value))
    if isinstance(value, datetime):
        return _utc_iso(value)
    if isinstance(value, date):
        return _utc_iso(datetime(value.year, value.month, value.day))  # noqa: DTZ001 (_utc_iso sets UTC)
    if isinstance(value, time):
        return value.replace(microsecond=0).isoformat()
    if isinstance(value, timedelta):
        return _number(value.total_seconds())
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        return value
    return None if value is None else str(value)


def _xls_rows(data: bytes) -> Iterator[list[Any]]:
    import xlrd

    book = xlrd.open_workbook(file_contents=data, on_demand=True, ragged_rows=True, logfile=io.StringIO())
    try:
        sheet = book.sheet_by_index(0)
        yield from ([_xls_cell(cell, book.datemode) for cell in sheet.row(i)] for i in range(sheet.nrows))
    finally:
        book.release_resources()


def _xls_cell(cell: Any, datemode: int) -> Any:
    import xlrd

    kind, value = cell.ctype, cell.value
    if kind in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
        return None
    if kind == xlrd.XL_CELL_ERROR:
        return excel_error(xlrd.error_text_from_code.get(value, f"#ERR{value}"))
    if kind == xlrd.XL_CELL_BOOLEAN:
        return bool(value)
    if kind == xlrd.XL_CELL_NUMBER:
        return _number(value)
    if kind == xlrd.XL_CELL_DATE:
        try:
            parts = xlrd.xldate_as_tuple(value, datemode)
        except xlrd.xldate.XLDateError:
            return excel_error("#DATE!")  # negative, or ambiguous in the 1900 system's first 60 days
        year, month, day, hour, minute, second = parts
        if (year, month, day) == (0, 0, 0):  # a time of day without a date
            return time(hour, minute, second).isoformat()
        return _utc_iso(datetime(year, month, day, hour, minute, second, tzinfo=UTC))
    return value
