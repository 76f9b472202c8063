"""Client-side rendering of SQL parameters, shared by both ClickHouse backends. Pure.

ClickHouse 18.16 has no server-side parameters and chdb has no client-side ones, so perfplat
renders literals itself: ``%(name)s`` placeholders are replaced by escaped literals. Values
come from typed query objects, never from raw input concatenated into SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\0": "\\0",
    "\b": "\\b",
    "\f": "\\f",
}
_ESCAPE_RE = re.compile("[\\\\'\n\r\t\0\b\f]")


def quote_string(value: str) -> str:
    return "'" + _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], value) + "'"


def literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("non-finite float cannot be a SQL literal")
        return repr(value)
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime cannot be a SQL literal")
        return f"toDateTime({quote_string(value.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S'))}, 'UTC')"
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return "(" + ", ".join(literal(v) for v in value) + ")" if value else "(NULL)"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def render(sql: str, params: Mapping[str, Any] | None = None) -> str:
    """Replace every ``%(name)s`` with the literal of ``params[name]``; a missing name raises."""
    if not params:
        if _PLACEHOLDER.search(sql):
            raise KeyError("SQL has placeholders but no parameters were given")
        return sql
    return _PLACEHOLDER.sub(lambda m: literal(params[m.group(1)]), sql)


def identifier(name: str) -> str:
    """A database/table name from settings, checked rather than quoted."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
        raise ValueError(f"not a safe identifier: {name!r}")
    return name
