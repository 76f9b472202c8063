"""Backdrop write requests: a request body in, validated ``Record``s out, or every reason why not. Pure.

Owns the original write API's body rules (reference §1.4: content type, gzip, JSON) and its record
pipeline (§1.5, §1.6), with the original's error texts, which clients match on. The steps run in
the original's order over the whole batch: schema, auto ids, timestamps, per-record checks; the
errors of every step and every record are collected (step by step, each in record order) and
raised together as ``RecordsRejected``. A batch is stored whole or not at all.

Where the original crashed or was silently wrong, perfplat answers 400 with its own text: a body
that is not an object or array, an item that is not an object, JSON nested deeper than
``MAX_DEPTH``, a timestamp with an unknown zone name or without a year, month or day (the original
took them from today), a date the store cannot hold (outside 1970 .. 2105). Limits of our own,
not in the original: ``MAX_STRING_CHARS`` per string value and ``MAX_KEYS`` per record.
"""

from __future__ import annotations

import base64
import functools
import math
import re
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import orjson
from dateutil.parser import isoparse, parse
from jsonschema import Draft4Validator, FormatChecker

from pipeline.errors import BadInput
from pipeline.windows import Period, period_start
from schemas.records import Record, Scalar

MAX_DECOMPRESSED_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 64
MAX_STRING_CHARS = 64 * 1024
MAX_KEYS = 1000
CONTENT_TYPE_MESSAGE = "ValidationError('Expected header: Content-type: application/json',)"
TIMESTAMP_FIELDS = ("_timestamp", "_start_at", "_end_at")
INTERNAL_FIELDS = frozenset({*TIMESTAMP_FIELDS, "_id"})
PERIOD_KEYS: tuple[Period, ...] = ("hour", "day", "week", "month", "quarter", "year")
VALID_KEY = re.compile(r"[a-z_][a-z0-9_]+")
_WHITESPACE = re.compile(r"\s")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_END = datetime(2106, 1, 1, tzinfo=UTC)  # the store keeps DateTime seconds, which end in 2106
_MAX_DATE_CHARS = 100  # no date is longer; spares the lenient parser megabytes of text
# two defaults for the lenient parser: a result that differs between them took a part from them
_DEFAULTS = (datetime(2001, 1, 1, tzinfo=UTC), datetime(2002, 2, 2, tzinfo=UTC))
_UTC_NAMES = frozenset({"UTC", "GMT", "Z", "UT"})


class MessagesRejected(BadInput):
    """A 400 the original answered as ``{"messages": [...]}`` (no ``status`` key): ``body``."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages
        self.body: dict[str, list[str]] = {"messages": messages}


class RecordsRejected(MessagesRejected):
    """All validation errors of all records of one request; none of its records is stored."""


class _Invalid(ValueError):
    pass


# -- the body ------------------------------------------------------------------------------------


def decode_body(content_type: str | None, content_encoding: str | None, body: bytes) -> list[Any]:
    """The request's items as loose JSON values (an object becomes a one-item list). Raises
    BadInput: 400 with the original's texts, 413 when a gzip body inflates past 10 MiB."""
    if (content_type or "").split(";", 1)[0].strip().lower() != "application/json":
        raise MessagesRejected([CONTENT_TYPE_MESSAGE])
    if content_encoding and "gzip" in content_encoding.lower():
        body = _gunzip(body)
    if not body:
        raise BadInput("Expected JSON request body but received zero bytes.")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadInput(f'Error parsing JSON: "{exc}"') from None
    if _too_deep(doc):
        raise BadInput(f'Error parsing JSON: "nested deeper than {MAX_DEPTH} levels"')
    if isinstance(doc, dict):
        return [doc]
    if not isinstance(doc, list):
        raise BadInput("Expected a JSON object or a JSON array of objects as the request body")
    return doc


def _gunzip(body: bytes) -> bytes:
    """Inflate every gzip member, never producing more than one byte over the limit."""
    out = bytearray()
    rest = body
    while rest:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(rest, MAX_DECOMPRESSED_BYTES + 1 - len(out))
        except zlib.error as exc:
            raise BadInput(f"Content-Encoding is gzip but the body is not valid gzip: {exc}") from None
        if len(out) > MAX_DECOMPRESSED_BYTES:
            raise BadInput(
                f"The decompressed request body is larger than {MAX_DECOMPRESSED_BYTES} bytes", status=413
            )
        if not inflater.eof:
            raise BadInput("Content-Encoding is gzip but the body is not valid gzip: it is truncated")
        rest = inflater.unused_data
    return bytes(out)


def _too_deep(doc: Any) -> bool:
    """Deeper documents would make ``repr`` (error texts, auto ids) exceed Python's recursion limit."""
    stack = [(doc, 1)] if isinstance(doc, dict | list) else []
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


# -- the records ---------------------------------------------------------------------------------


def validate_records(
    items: list[Any], auto_ids: tuple[str, ...], schema: dict[str, Any] | None, new_id: Callable[[], str]
) -> list[Record]:
    """Every item as a ``Record``, or RecordsRejected listing every error of every item.

    ``_id`` is the client's, or the auto id when ``auto_ids`` is set (``id_given`` true), else
    ``new_id()``; ``ts_ms`` is ``_timestamp`` in UTC epoch ms; ``fields`` are the other keys as
    posted, with ``_start_at``/``_end_at`` as UTC ISO text.
    """
    records = [item for item in items if isinstance(item, dict)]
    errors = [
        f"record {i} is not a JSON object" for i, item in enumerate(items) if not isinstance(item, dict)
    ]
    if schema is not None:
        errors += _schema_errors(records, schema)
    if auto_ids:
        missing = _missing_id_fields(records, auto_ids)
        if missing:
            errors.append(f"The following required id fields are missing: {', '.join(missing)}")
        else:
            records = [{**record, "_id": _auto_id(record, auto_ids)} for record in records]
    stamps = [_timestamps(record) for record in records]
    errors += [error for _, failed in stamps for error in failed]
    times = [parsed for parsed, _ in stamps]
    errors += [e for record, ts in zip(records, times, strict=True) if (e := _record_error(record, ts))]
    if errors:
        raise RecordsRejected(errors)
    return [_record(record, ts, new_id) for record, ts in zip(records, times, strict=True)]


def _schema_errors(records: list[dict[str, Any]], schema: dict[str, Any]) -> list[str]:
    """The first jsonschema error of each record (the original stopped at a record's first)."""
    validator = _validator(orjson.dumps(schema).decode())
    return [error.message for record in records if (error := next(validator.iter_errors(record), None))]


_FORMATS = FormatChecker()


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """As the original's isodate-based checker: ISO 8601 date and time joined by one ``T``."""
    if isinstance(value, str):
        if value.count("T") != 1:
            return False
        isoparse(value)
    return True


@functools.lru_cache(maxsize=64)
def _validator(schema_text: str) -> Draft4Validator:
    schema = orjson.loads(schema_text)
    Draft4Validator.check_schema(schema)
    return Draft4Validator(schema, format_checker=_FORMATS)


def _missing_id_fields(records: list[dict[str, Any]], auto_ids: tuple[str, ...]) -> list[str]:
    """The first record's missing auto-id fields: one error for the batch, as the original."""
    for record in records:
        missing = [name for name in auto_ids if name not in record]
        if missing:
            return missing
    return []


def _auto_id(record: dict[str, Any], auto_ids: tuple[str, ...]) -> str:
    """Base64 of the ``.``-joined raw values, printed as Python 2's ``str()`` printed them."""
    text = ".".join(_py2_str(record[name]) for name in auto_ids)
    return base64.b64encode(text.encode("utf-8", "xmlcharrefreplace")).decode("ascii")


def _py2_str(value: Any) -> str:
    if isinstance(value, float):  # Python 2 printed 12 significant digits, and ".0" on integers
        text = format(value, ".12g")
        return text if any(c in text for c in ".en") else text + ".0"
    return str(value)


def _timestamps(record: dict[str, Any]) -> tuple[dict[str, int], list[str]]:
    """The record's timestamp fields as UTC epoch ms, and an error for each that fails."""
    parsed: dict[str, int] = {}
    errors: list[str] = []
    for name in TIMESTAMP_FIELDS:
        if name in record:
            try:
                parsed[name] = _timestamp_ms(name, record[name])
            except _Invalid as bad:
                errors.append(str(bad))
    return parsed, errors


def _timestamp_ms(name: str, value: Any) -> int:
    """A posted timestamp as UTC epoch ms: lenient ISO 8601, then dateutil; naive means UTC."""
    if not isinstance(value, str):
        raise _Invalid(f"the {name} must be a date in the format yyyy-MM-ddT00:00:00Z")
    try:
        parsed = _parse_datetime(value)
    except (ValueError, OverflowError):
        parsed = None
    if parsed is None or not _EPOCH <= parsed < _END:
        raise _Invalid(f"{value} in the {name} field is not a valid date")
    return (parsed - _EPOCH) // timedelta(milliseconds=1)


def _parse_datetime(text: str) -> datetime:
    if len(text) > _MAX_DATE_CHARS:
        raise ValueError("too long for a date")
    try:
        value = isoparse(text)
    except ValueError:
        value = parse(text, default=_DEFAULTS[0], tzinfos=_zone)
        if parse(text, default=_DEFAULTS[1], tzinfos=_zone) != value:
            raise ValueError("no year, month or day") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _zone(name: str | None, offset: int | None) -> tzinfo:
    """Numeric offsets and UTC's names (none means UTC); other zone names are refused, not ignored."""
    if offset is not None:
        return timezone(timedelta(seconds=offset))
    if name is None or name.upper() in _UTC_NAMES:
        return UTC
    raise ValueError(f"unknown time zone {name}")


def _record_error(record: dict[str, Any], parsed: dict[str, int]) -> str | None:
    """The record's first failing key (in posted order); a timestamp that failed is already reported."""
    if len(record) > MAX_KEYS:
        return f"a record has {len(record)} fields; the limit is {MAX_KEYS}"
    for key, value in record.items():
        if key in TIMESTAMP_FIELDS and key not in parsed:
            continue
        message = _key_error(key) or _value_error(key, value)
        if message:
            return message
    return None


def _key_error(key: str) -> str | None:
    if not key.isascii() or not VALID_KEY.fullmatch(key.lower()):
        return f"{key} is not a valid key"
    if key.startswith("_") and key not in INTERNAL_FIELDS:
        return f"{key} is not a recognised internal field"
    return None


def _value_error(key: str, value: Any) -> str | None:
    if not (value is None or isinstance(value, str | int | float)) or (
        isinstance(value, float) and not math.isfinite(value)
    ):
        return f"{key} has an invalid value"
    if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
        return f"{key} has a value longer than {MAX_STRING_CHARS} characters"
    if key == "_id" and not (isinstance(value, str) and value and not _WHITESPACE.search(value)):
        return f'_id "{value}" is not a valid id'
    return None


def _record(record: dict[str, Any], parsed: dict[str, int], new_id: Callable[[], str]) -> Record:
    fields: dict[str, Scalar] = {
        key: timestamp_iso(parsed[key]) if key in parsed else value
        for key, value in record.items()
        if key not in ("_id", "_timestamp")
    }
    if "_id" in record:
        return Record(record["_id"], True, parsed.get("_timestamp"), fields)
    return Record(new_id(), False, parsed.get("_timestamp"), fields)


# -- time as text --------------------------------------------------------------------------------


def timestamp_iso(ts_ms: int) -> str:
    """``2014-01-02T02:34:05+00:00``, with milliseconds only when there are some."""
    value = _EPOCH + timedelta(milliseconds=ts_ms)
    return value.isoformat(timespec="milliseconds" if ts_ms % 1000 else "seconds")


def period_keys(ts_ms: int) -> dict[str, str]:
    """The six period starts the original added to every record with a ``_timestamp``."""
    value = _EPOCH + timedelta(milliseconds=ts_ms)
    return {f"_{period}_start_at": period_start(value, period).isoformat() for period in PERIOD_KEYS}
