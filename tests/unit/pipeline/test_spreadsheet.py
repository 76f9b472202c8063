"""Spreadsheet upload parsing (``pipeline.spreadsheet``): backdrop's CSV and Excel rules
(performance-platform.md §1.9), each rule a table row; error strings are the original's."""

from __future__ import annotations

import io
import struct
from datetime import date, datetime, time
from typing import Any

import pytest
from openpyxl import Workbook

from pipeline.errors import BadInput
from pipeline.records import RecordsRejected, validate_records
from pipeline.spreadsheet import (
    FEWER_VALUES,
    MAX_UPLOAD_BYTES,
    MORE_VALUES,
    NON_UTF8,
    check_upload,
    excel_kind,
    iter_csv_records,
    parse_csv,
    parse_excel,
    parse_spreadsheet,
)

# --- CSV --------------------------------------------------------------------------------------

CSV_CASES: list[tuple[str, bytes, list[dict[str, Any]]]] = [
    ("header names the fields", b"a,b\nx,y\n", [{"a": "x", "b": "y"}]),
    ("no trailing newline", b"a,b\nx,y", [{"a": "x", "b": "y"}]),
    ("CRLF line ends", b"a,b\r\nx,y\r\n", [{"a": "x", "b": "y"}]),
    ("bare CR line ends", b"a,b\rx,y\r", [{"a": "x", "b": "y"}]),
    ("UTF-8 text kept", "name\ncafé ☕\n".encode(), [{"name": "café ☕"}]),
    ("UTF-8 BOM stripped", b"\xef\xbb\xbfa,b\n1,2\n", [{"a": 1, "b": 2}]),
    ("BOM then comment line", b"\xef\xbb\xbf# about\na\n1\n", [{"a": 1}]),
    ("# lines skipped anywhere", b"# top\na,b\n# middle\n1,2\n#end\n", [{"a": 1, "b": 2}]),
    ("# inside a later cell is data", b"a,b\nx,#y\n", [{"a": "x", "b": "#y"}]),
    ('quoted "#" cell is data', b'a,b\n"#x",1\n', [{"a": "#x", "b": 1}]),
    (
        "# line inside a quoted cell is data",
        b'a,b\n"one\n#two",1\n',
        [{"a": "one\n#two", "b": 1}],
    ),
    ("comment column dropped", b"a,comment,b\n1,note,2\n", [{"a": 1, "b": 2}]),
    ("comment column last", b"a,comment\n1,note\n", [{"a": 1}]),
    ("a missing last comment cell is not missed", b"a,b,comment\n1,2\n", [{"a": 1, "b": 2}]),
    ("only the exact name", b"a,Comment,comments\n1,x,y\n", [{"a": 1, "Comment": "x", "comments": "y"}]),
    ("row empty but for its comment", b"a,comment\n,why\n2,\n", [{"a": 2}]),
    ("empty rows skipped", b"a,b\n\n1,2\n,\n\n3,4\n", [{"a": 1, "b": 2}, {"a": 3, "b": 4}]),
    ("leading empty rows before header", b"\n,,\na\n1\n", [{"a": 1}]),
    ("whitespace is not empty", b"a\n \n", [{"a": " "}]),
    ("empty cell stays ''", b"a,b\n1,\n", [{"a": 1, "b": ""}]),
    ("header only", b"a,b\n", []),
    ("nothing at all", b"", []),
    ("only comments", b"# a\n# b\n", []),
    ("header cells are never numbers", b"2014,1.5\nx,y\n", [{"2014": "x", "1.5": "y"}]),
    ("quoted comma", b'a,b\n"x, y",2\n', [{"a": "x, y", "b": 2}]),
    ("quoted newline", b'a,b\n"line1\nline2",2\n', [{"a": "line1\nline2", "b": 2}]),
    ("quoted CRLF", b'a,b\r\n"l1\r\nl2",2\r\n', [{"a": "l1\r\nl2", "b": 2}]),
    ("doubled quote", b'a\n"say ""hi"""\n', [{"a": 'say "hi"'}]),
    ("quoted number is still a number", b'a\n"12"\n', [{"a": 12}]),
    ("duplicate header: the last wins", b"a,a\n1,2\n", [{"a": 2}]),
    ("unicode separators stay in cells", "a\nx\u2028y\x0cz\n".encode(), [{"a": "x\u2028y\x0cz"}]),
]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in CSV_CASES], ids=[c[0] for c in CSV_CASES])
def test_csv_rules(data: bytes, expected: list[dict[str, Any]]) -> None:
    assert parse_csv(data) == expected


CELL_CASES: list[tuple[str, Any]] = [
    ("12", 12),
    ("-7", -7),
    ("+3", 3),
    ("007", 7),
    (" 42 ", 42),
    ("1.5", 1.5),
    ("-0.25", -0.25),
    (".5", 0.5),
    ("1e3", 1000.0),
    ("2E-2", 0.02),
    ("12345678901234567890", 12345678901234567890),
    ("abc", "abc"),
    ("12abc", "12abc"),
    ("1,000", "1,000"),
    ("1_000", "1_000"),  # Python 3 would read it as a number; the Python 2 original did not
    ("nan", "nan"),  # non-finite floats have no JSON form
    ("inf", "inf"),
    ("-Infinity", "-Infinity"),
    ("true", "true"),
    ("", ""),
    ("2014-01-01T00:00:00+00:00", "2014-01-01T00:00:00+00:00"),
]


@pytest.mark.parametrize(("cell", "expected"), CELL_CASES, ids=[repr(c[0]) for c in CELL_CASES])
def test_csv_cells_become_int_then_float_else_stay_text(cell: str, expected: Any) -> None:
    data = b"v\n" + (f'"{cell}"' if "," in cell else cell).encode() + b"\n"
    if not cell:
        data = b"v,w\n,x\n"
    [record] = parse_csv(data)
    assert record["v"] == expected
    assert type(record["v"]) is type(expected)


@pytest.mark.parametrize(
    "data",
    [
        "a\ncafé\n".encode("latin-1"),
        b"a,b\n1,2\n\xff,3\n",
        b"\xe9,b\n1,2\n",
        "# commentaire é\na\n1\n".encode("cp1252"),  # even a line that would be skipped
        b"a\n\xe2\x82\n",  # a truncated multi-byte sequence
        "a\n1\n".encode("utf-16"),
    ],
    ids=["latin-1 cell", "0xff byte", "latin-1 header", "latin-1 comment line", "truncated", "utf-16"],
)
def test_non_utf8_csv_is_refused(data: bytes) -> None:
    with pytest.raises(BadInput) as caught:
        parse_csv(data)
    assert caught.value.message == NON_UTF8 == "Non-UTF8 characters found."
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"a,b\n1,2,3\n", "Some rows in the CSV file contain more values than columns"),
        (b"a,b\n1,2,\n", "Some rows in the CSV file contain more values than columns"),
        (b"a,b\n1\n", "Some rows in the CSV file contain fewer values than columns"),
        (b"a,comment,b\n1,x\n", "Some rows in the CSV file contain fewer values than columns"),
        (b"a,b\n1,2\n3,4,5\n", "Some rows in the CSV file contain more values than columns"),
    ],
    ids=["wider", "wider by an empty cell", "narrower", "narrower than with comment", "later row"],
)
def test_ragged_csv_rows_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_csv(data)
    assert caught.value.message == message
    assert message in (MORE_VALUES, FEWER_VALUES)


def test_a_field_over_the_csv_module_limit_is_bad_input() -> None:
    with pytest.raises(BadInput, match="could not be read at line 2"):
        parse_csv(b"a\n" + b"x" * 200_000 + b"\n")


def test_iter_csv_records_streams_lines_from_a_file_and_yields_one_at_a_time() -> None:
    lines = iter([b"\xef\xbb\xbfa,b\n", b"# note\n", b"1,2\n", b"3,oops\xff\n"])
    records = iter_csv_records(lines)
    assert next(records) == {"a": 1, "b": 2}  # the bad line is not read yet
    with pytest.raises(BadInput, match="Non-UTF8"):
        next(records)


def test_iter_csv_records_takes_a_binary_file() -> None:
    source = io.BytesIO(b"a,b\r\n" + b"".join(f"{i},x{i}\r\n".encode() for i in range(1000)))
    records = list(iter_csv_records(source))
    assert len(records) == 1000
    assert records[999] == {"a": 999, "b": "x999"}


# --- Excel (.xlsx, built here with openpyxl) ------------------------------------------------


def xlsx(*sheets: list[list[Any]]) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for n, rows in enumerate(sheets):
        sheet = book.create_sheet(f"Sheet{n + 1}")
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row, start=1):
                if value is not None:
                    sheet.cell(row=r, column=c, value=value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


XLSX_CASES: list[tuple[str, list[list[Any]], list[dict[str, Any]]]] = [
    (
        "datetime is a UTC ISO string",
        [["_timestamp"], [datetime(2014, 1, 1)]],  # noqa: DTZ001 (a sheet holds wall-clock times)
        [{"_timestamp": "2014-01-01T00:00:00+00:00"}],
    ),
    (
        "datetime with a time of day",
        [["t"], [datetime(2014, 6, 30, 23, 59, 58)]],  # noqa: DTZ001
        [{"t": "2014-06-30T23:59:58+00:00"}],
    ),
    ("date only", [["d"], [date(2014, 2, 3)]], [{"d": "2014-02-03T00:00:00+00:00"}]),
    ("time only", [["t"], [time(18, 30)]], [{"t": "18:30:00"}]),
    ("integral number is an int", [["n"], [12]], [{"n": 12}]),
    ("integral float is an int", [["n"], [3.0]], [{"n": 3}]),
    ("float stays float", [["n"], [1.5]], [{"n": 1.5}]),
    ("negative float", [["n"], [-0.25]], [{"n": -0.25}]),
    ("booleans", [["a", "b"], [True, False]], [{"a": True, "b": False}]),
    ("text stays text, numbers in text too", [["s", "n"], ["abc", "12"]], [{"s": "abc", "n": "12"}]),
    ("empty cell is None", [["a", "b", "c"], [1, None, 3]], [{"a": 1, "b": None, "c": 3}]),
    ("trailing empty cells are None", [["a", "b", "c"], [1]], [{"a": 1, "b": None, "c": None}]),
    ("error cell #N/A", [["a", "b"], [1, "#N/A"]], [{"a": 1, "b": {"error": "#N/A"}}]),
    ("error cell #DIV/0!", [["a"], ["#DIV/0!"]], [{"a": {"error": "#DIV/0!"}}]),
    ("empty rows skipped", [["a"], [1], [], [None], [2]], [{"a": 1}, {"a": 2}]),
    ("leading empty rows", [[], [], ["a"], [1]], [{"a": 1}]),
    ("comment column dropped", [["a", "comment", "b"], [1, "why", 2]], [{"a": 1, "b": 2}]),
    ("# rows skipped", [["# about"], ["a", "b"], ["#note", 9], [1, 2]], [{"a": 1, "b": 2}]),
    ("header numbers become names", [[2014, "x"], [1, 2]], [{"2014": 1, "x": 2}]),
    ("header only", [["a", "b"]], []),
    ("empty sheet", [], []),
]


@pytest.mark.parametrize(("rows", "expected"), [c[1:] for c in XLSX_CASES], ids=[c[0] for c in XLSX_CASES])
def test_xlsx_rules(rows: list[list[Any]], expected: list[dict[str, Any]]) -> None:
    assert parse_excel(xlsx(rows), "book.xlsx") == expected


def test_xlsx_error_cells_are_written_as_errors() -> None:
    """The sentinel must come from the cell's error type, not from its text."""
    book = Workbook()
    sheet = book.active
    sheet["A1"], sheet["A2"] = "a", "#N/A"
    assert sheet["A2"].data_type == "e"
    sheet["B1"], sheet["B2"] = "b", "#hashtag"
    assert sheet["B2"].data_type == "s"
    out = io.BytesIO()
    book.save(out)
    assert parse_excel(out.getvalue()) == [{"a": {"error": "#N/A"}, "b": "#hashtag"}]


@pytest.mark.parametrize("fmt", ["xlsx", "xls"])
def test_error_cells_fail_record_validation_and_good_cells_pass(fmt: str) -> None:
    """The sentinel's whole point: the write pipeline refuses the sheet, naming the field."""
    error: Any = "#DIV/0!" if fmt == "xlsx" else ("error", 0x07)
    rows: list[list[Any]] = [["_timestamp", "count", "rate"], [datetime(2014, 1, 1), 3, error]]  # noqa: DTZ001
    if fmt == "xls":
        rows[1][0] = ("date", 41640.0)
    parsed = parse_excel(xlsx(rows) if fmt == "xlsx" else xls(rows))
    with pytest.raises(RecordsRejected) as caught:
        validate_records(parsed, (), None, lambda: "id")
    assert caught.value.messages == ["rate has an invalid value"]
    del parsed[0]["rate"]
    [record] = validate_records(parsed, (), None, lambda: "id")
    assert record.ts_ms == 1388534400000


def test_xlsx_only_the_first_sheet_is_read() -> None:
    assert parse_excel(xlsx([["a"], [1]], [["b"], [2]])) == [{"a": 1}]


def test_xlsx_row_wider_than_the_header_is_refused() -> None:
    with pytest.raises(BadInput) as caught:
        parse_excel(xlsx([["a", "b"], [1, 2, 3]]))
    assert caught.value.message == MORE_VALUES


def test_xlsx_datetimes_round_to_the_second() -> None:
    rows: list[list[Any]] = [["t"], [datetime(2014, 1, 1, 10, 0, 0, 999_000)]]  # noqa: DTZ001
    assert parse_excel(xlsx(rows)) == [{"t": "2014-01-01T10:00:01+00:00"}]


# --- Excel (.xls, BIFF8 written here: xlwt is not available) ----------------------------------


def _biff(op: int, data: bytes = b"") -> bytes:
    return struct.pack("<HH", op, len(data)) + data


def xls(rows: list[list[Any]]) -> bytes:
    """A minimal BIFF8 workbook in an OLE2 compound file: one sheet; cells are None, str,
    bool, int/float, ("date", excel serial) or ("error", BIFF error code)."""

    def bof(kind: int) -> bytes:
        return _biff(0x0809, struct.pack("<HHHHII", 0x0600, kind, 0x0DBB, 0x07CC, 0, 6))

    def xf(number_format: int) -> bytes:
        return _biff(0x00E0, struct.pack("<HHHBBBBIiH", 0, number_format, 1, 0x20, 0, 0, 0, 0, 0, 0x20C0))

    cells = b""
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            head = struct.pack("<HHH", r, c, 1 if isinstance(v, tuple) and v[0] == "date" else 0)
            if v is None:
                continue
            if isinstance(v, tuple) and v[0] == "date":
                cells += _biff(0x0203, head + struct.pack("<d", v[1]))  # NUMBER in a date format
            elif isinstance(v, tuple):
                cells += _biff(0x0205, head + struct.pack("<BB", v[1], 1))  # BOOLERR, error
            elif isinstance(v, bool):
                cells += _biff(0x0205, head + struct.pack("<BB", int(v), 0))  # BOOLERR, boolean
            elif isinstance(v, int | float):
                cells += _biff(0x0203, head + struct.pack("<d", float(v)))
            elif v == "":
                cells += _biff(0x0201, head)  # BLANK
            else:
                cells += _biff(0x0204, head + struct.pack("<HB", len(v), 1) + v.encode("utf-16-le"))
    width = max((len(row) for row in rows), default=0)
    sheet = bof(0x10) + _biff(0x0200, struct.pack("<IIHHH", 0, len(rows), 0, width, 0)) + cells + _biff(0x0A)
    font = _biff(0x0031, struct.pack("<HHHHHBBBBBB", 200, 0, 0x7FFF, 400, 0, 0, 0, 0, 0, 5, 0) + b"Arial")

    def book_globals(sheet_at: int) -> bytes:
        boundsheet = struct.pack("<IBBBB", sheet_at, 0, 0, 6, 0) + b"Sheet1"
        return (
            bof(0x05)
            + _biff(0x0042, struct.pack("<H", 1200))  # CODEPAGE: UTF-16
            + _biff(0x0022, struct.pack("<H", 0))  # DATEMODE: 1900
            + font * 5
            + xf(0)
            + xf(14)  # XF 1: the built-in date format m/d/yy
            + xf(0) * 14
            + _biff(0x0085, boundsheet)
            + _biff(0x0A)
        )

    stream = book_globals(len(book_globals(0))) + sheet
    stream = stream.ljust(max(4096, -(-len(stream) // 512) * 512), b"\0")  # no mini stream
    sectors = len(stream) // 512
    end, free, fat_sector, none = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF
    fat = [fat_sector, end, *range(3, 2 + sectors), end]
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + bytes(16)
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + bytes(6)
        + struct.pack("<9I", 0, 1, 1, 0, 4096, end, 0, end, 0)
        + struct.pack("<109I", 0, *[free] * 108)
    )

    def entry(name: str, kind: int, child: int, start: int, size: int) -> bytes:
        raw = name.encode("utf-16-le") + b"\0\0" if name else b""
        return (
            raw.ljust(64, b"\0")
            + struct.pack("<HBBIII", len(raw), kind, 1, none, none, child)
            + bytes(36)
            + struct.pack("<III", start, size, 0)
        )

    directory = (
        entry("Root Entry", 5, 1, end, 0)
        + entry("Workbook", 2, none, 2, len(stream))
        + entry("", 0, none, 0, 0) * 2
    )
    return header + struct.pack("<128I", *fat, *[free] * (128 - len(fat))) + directory + stream


XLS_CASES: list[tuple[str, list[list[Any]], list[dict[str, Any]]]] = [
    ("date is a UTC ISO string", [["d"], [("date", 41640.0)]], [{"d": "2014-01-01T00:00:00+00:00"}]),
    ("date with time", [["d"], [("date", 41640.5)]], [{"d": "2014-01-01T12:00:00+00:00"}]),
    ("time only", [["t"], [("date", 0.75)]], [{"t": "18:00:00"}]),
    ("bad date is an error value", [["d"], [("date", -1.0)]], [{"d": {"error": "#DATE!"}}]),
    ("numbers", [["i", "f"], [12, 1.5]], [{"i": 12, "f": 1.5}]),
    ("booleans", [["a", "b"], [True, False]], [{"a": True, "b": False}]),
    ("text", [["s"], ["héllo"]], [{"s": "héllo"}]),
    ("blank and empty are None", [["a", "b", "c"], [1, "", None]], [{"a": 1, "b": None, "c": None}]),
    ("error #DIV/0!", [["e"], [("error", 0x07)]], [{"e": {"error": "#DIV/0!"}}]),
    ("error #N/A", [["e"], [("error", 0x2A)]], [{"e": {"error": "#N/A"}}]),
    ("empty rows skipped", [["a"], [1], [None], [2]], [{"a": 1}, {"a": 2}]),
    ("comment column and # rows", [["a", "comment"], ["#x", 1], [1, "why"]], [{"a": 1}]),
]


@pytest.mark.parametrize(("rows", "expected"), [c[1:] for c in XLS_CASES], ids=[c[0] for c in XLS_CASES])
def test_xls_rules(rows: list[list[Any]], expected: list[dict[str, Any]]) -> None:
    data = xls(rows)
    assert excel_kind(data) == "xls"
    assert parse_excel(data, "book.xls") == expected


def test_xls_row_wider_than_the_header_is_refused() -> None:
    with pytest.raises(BadInput) as caught:
        parse_excel(xls([["a"], [1, 2]]))
    assert caught.value.message == MORE_VALUES


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xd0\xcf\x11\xe0" + b"garbage" * 100, "book.xls could not be read as an Excel workbook"),
        (b"PK\x03\x04" + b"garbage" * 100, "book.xls could not be read as an Excel workbook"),
        (b"a,b\n1,2\n", "book.xls is not an Excel workbook (.xlsx or .xls)"),
        (b"", "book.xls is not an Excel workbook (.xlsx or .xls)"),
    ],
    ids=["garbage OLE2", "garbage zip", "CSV bytes", "empty"],
)
def test_unreadable_workbooks_are_bad_input(data: bytes, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_excel(data, "book.xls")
    assert caught.value.message.startswith(message)
    assert caught.value.status == 400


# --- format dispatch --------------------------------------------------------------------------


def test_excel_kind_reads_the_magic_bytes() -> None:
    assert excel_kind(xlsx([["a"]])) == "xlsx"
    assert excel_kind(xls([["a"]])) == "xls"
    assert excel_kind(b"a,b\n") is None


@pytest.mark.parametrize(
    ("upload_format", "filename", "kind"),
    [
        ("csv", "x.csv", "csv"),
        ("CSV", "", "csv"),
        ("excel", "x.xlsx", "xlsx"),
        ("excel", "x.xls", "xls"),
        ("", "x.xlsx", "xlsx"),
        ("", "x.xls", "xls"),
        ("", "", "csv"),
        ("", "data.csv", "csv"),
        ("", "misnamed.csv", "xlsx"),  # the bytes win over the name
    ],
)
def test_parse_spreadsheet_dispatches(upload_format: str, filename: str, kind: str) -> None:
    data = {"csv": b"a\n1\n", "xlsx": xlsx([["a"], [1]]), "xls": xls([["a"], [1]])}[kind]
    assert parse_spreadsheet(data, upload_format, filename) == [{"a": 1}]


def test_parse_spreadsheet_refuses_csv_bytes_named_excel_and_unknown_formats() -> None:
    with pytest.raises(BadInput, match="is not an Excel workbook"):
        parse_spreadsheet(b"a\n1\n", "", "book.xlsx")
    with pytest.raises(BadInput, match="is not an Excel workbook"):
        parse_spreadsheet(b"a\n1\n", "excel", "book.csv")
    with pytest.raises(BadInput, match="unknown upload format 'json'"):
        parse_spreadsheet(b"[]", "json")
    # forced csv reads an Excel file as (non-UTF-8) text, as the original would have
    with pytest.raises(BadInput, match="Non-UTF8"):
        parse_spreadsheet(xls([["a"]]), "csv")


# --- the upload check -------------------------------------------------------------------------

SIZE = MAX_UPLOAD_BYTES
CHECK_CASES: list[tuple[str, str, int, str | None, int]] = [
    ("data.csv", "data.csv", 10, None, 0),
    ("txt", "data.txt", 10, None, 0),
    ("json", "data.json", 10, None, 0),
    ("xls", "data.xls", 10, None, 0),
    ("xlsx", "data.xlsx", 10, None, 0),
    ("upper-case extension", "DATA.XLSX", 10, None, 0),
    ("just under the limit", "data.csv", SIZE - 1, None, 0),
    ("empty", "data.csv", 0, "Invalid file upload data.csv - file is empty", 400),
    (
        "exactly the limit",
        "data.csv",
        SIZE,
        f"Invalid file upload data.csv - file too big ({SIZE})",
        413,
    ),
    (
        "too big",
        "data.csv",
        SIZE + 5,
        f"Invalid file upload data.csv - file too big ({SIZE + 5})",
        413,
    ),
    (
        "wrong extension",
        "run.exe",
        10,
        "Invalid file upload run.exe - strange content type of application/octet-stream",
        400,
    ),
    ("no extension", "data", 10, "Invalid file upload data - strange content type of None", 400),
    ("html", "page.html", 10, "Invalid file upload page.html - strange content type of text/html", 400),
    (
        "empty and wrong type",
        "x.png",
        0,
        "Invalid file upload x.png - file is empty and strange content type of image/png",
        400,
    ),
    (
        "too big and wrong type",
        "x.pdf",
        SIZE,
        f"Invalid file upload x.pdf - file too big ({SIZE}) and strange content type of application/pdf",
        400,
    ),
]


@pytest.mark.parametrize(
    ("filename", "size", "message", "status"), [c[1:] for c in CHECK_CASES], ids=[c[0] for c in CHECK_CASES]
)
def test_check_upload(filename: str, size: int, message: str | None, status: int) -> None:
    data = b"x" * size
    if message is None:
        check_upload(filename, data)
        return
    with pytest.raises(BadInput) as caught:
        check_upload(filename, data)
    assert caught.value.message == message
    assert caught.value.status == status


def test_check_upload_takes_its_limit_and_ignores_the_content() -> None:
    with pytest.raises(BadInput, match=r"file too big \(5\)"):
        check_upload("data.csv", b"12345", limit=5)
    check_upload("data.xlsx", b"not really a workbook")  # the type comes from the name alone
