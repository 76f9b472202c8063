"""Client-side SQL literals (``pipeline.sql``): every value becomes one well-formed ClickHouse
literal, placeholders are replaced only from parameters, identifiers are checked, not quoted."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.sql import identifier, literal, quote_string, render

# The backslash escapes ClickHouse reads inside a single-quoted string.
_UNESCAPE = {"\\": "\\", "'": "'", "n": "\n", "r": "\r", "t": "\t", "0": "\0", "b": "\b", "f": "\f"}


def unescape(text: str) -> str:
    """Read one ClickHouse string literal that must span all of ``text``; refuse anything else."""
    if len(text) < 2 or text[0] != "'" or text[-1] != "'":
        raise AssertionError(f"not a quoted literal: {text!r}")
    out: list[str] = []
    i, end = 1, len(text) - 1
    while i < end:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= end:
                raise AssertionError(f"dangling backslash escapes the closing quote: {text!r}")
            nxt = text[i + 1]
            if nxt not in _UNESCAPE:
                raise AssertionError(f"unknown escape \\{nxt} in {text!r}")
            out.append(_UNESCAPE[nxt])
            i += 2
        elif ch == "'" and i + 1 < end and text[i + 1] == "'":
            out.append("'")  # ClickHouse also reads a doubled quote as one
            i += 2
        elif ch == "'":
            raise AssertionError(f"unescaped quote ends the literal early: {text!r}")
        elif ch in "\n\r\0":
            raise AssertionError(f"raw control character inside the literal: {text!r}")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def test_the_unescaper_refuses_broken_literals() -> None:
    """The checker itself must be able to fail, or the properties below prove nothing."""
    for broken in ["abc", "'abc", "'a'b'", "'a\\'", "'\\q'", "'a\nb'"]:
        with pytest.raises(AssertionError):
            unescape(broken)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "NULL"),
        (True, "1"),
        (False, "0"),
        (0, "0"),
        (-5, "-5"),
        (2**64 - 1, str(2**64 - 1)),
        ("", "''"),
        ("checkout", "'checkout'"),
        ((), "(NULL)"),
        ([], "(NULL)"),
        ((1, "a", None), "(1, 'a', NULL)"),
        (["a", "b"], "('a', 'b')"),
        ([1, [2, 3]], "(1, (2, 3))"),
    ],
)
def test_literal_table(value: Any, expected: str) -> None:
    assert literal(value) == expected


@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_finite_floats_read_back_exactly(value: float) -> None:
    assert float(literal(value)) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 3, 10, 12, 0, 5, tzinfo=UTC), "2024-03-10 12:00:05"),
        (
            datetime(2024, 3, 10, 17, 0, 5, 999_999, tzinfo=timezone(timedelta(hours=5))),
            "2024-03-10 12:00:05",
        ),
        (datetime(2024, 12, 31, 20, 0, tzinfo=timezone(timedelta(hours=-5))), "2025-01-01 01:00:00"),
    ],
)
def test_aware_datetimes_become_utc_datetime_literals(value: datetime, expected: str) -> None:
    assert literal(value) == f"toDateTime('{expected}', 'UTC')"


@pytest.mark.parametrize(
    "value",
    [
        "'; DROP TABLE x; --",
        "it's",
        "\\",
        "\\'",
        "a\\' OR 1=1 --",
        "line\nbreak\r\n",
        "tab\there",
        "nul\x00byte",
        "\b\f",
        "%(other)s",
        "''",
        "é ünïcode ✓",
    ],
)
def test_hostile_strings_become_one_well_formed_literal(value: str) -> None:
    assert unescape(literal(value)) == value
    assert literal(value) == quote_string(value)


@given(value=st.text())
@settings(max_examples=200)
def test_any_text_round_trips_through_a_literal(value: str) -> None:
    assert unescape(literal(value)) == value


@given(value=st.text(alphabet="'\\\n\r\t\x00\b\f%()s;-x"))
@settings(max_examples=200)
def test_any_hostile_text_round_trips_through_a_literal(value: str) -> None:
    assert unescape(literal(value)) == value


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (datetime(2024, 3, 10, 12), ValueError),  # noqa: DTZ001 - naive on purpose
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        (float("-inf"), ValueError),
        ([1, float("nan")], ValueError),
        (b"bytes", TypeError),
        (bytearray(b"x"), TypeError),
        ({"a": 1}, TypeError),
        ({1, 2}, TypeError),
        (Decimal("1.5"), TypeError),
        (date(2024, 3, 10), TypeError),
        (object(), TypeError),
    ],
    ids=lambda v: type(v).__name__,
)
def test_values_without_a_safe_literal_raise(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        literal(value)


# --- render --------------------------------------------------------------------------------------


def test_render_replaces_every_placeholder_with_its_literal() -> None:
    params = {"service": "it's", "start": datetime(2024, 3, 10, tzinfo=UTC), "ids": ("a", "b"), "n": 3}
    sql = (
        "SELECT %(n)s FROM t WHERE service = %(service)s AND ts >= %(start)s "
        "AND id IN %(ids)s OR s = %(service)s"
    )
    expected = (
        f"SELECT {literal(3)} FROM t WHERE service = {literal(params['service'])} AND ts >= "
        f"{literal(params['start'])} AND id IN {literal(('a', 'b'))} OR s = {literal(params['service'])}"
    )
    assert render(sql, params) == expected


def test_render_does_not_expand_placeholders_inside_values() -> None:
    out = render("SELECT %(a)s, %(b)s", {"a": "%(b)s", "b": "x"})
    assert out == "SELECT '%(b)s', 'x'"


def test_render_without_placeholders_or_params_leaves_the_text_alone() -> None:
    sql = "SELECT count() FROM t WHERE path LIKE '/apply%'"
    assert render(sql) == sql
    assert render(sql, {}) == sql
    assert render(sql, {"unused": 1}) == sql


def test_render_raises_for_a_missing_name() -> None:
    with pytest.raises(KeyError, match="service"):
        render("SELECT %(service)s, %(n)s", {"n": 1})


@pytest.mark.parametrize("params", [None, {}])
def test_render_raises_for_placeholders_without_params(params: dict[str, Any] | None) -> None:
    with pytest.raises(KeyError):
        render("SELECT %(n)s", params)


# --- identifiers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["perfplat", "_x", "t_1", "A", "a" * 64, "perfplat_test_01"])
def test_safe_identifiers_pass_through(name: str) -> None:
    assert identifier(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "1abc", "a-b", "a.b", "a b", "a;DROP TABLE x", "a" * 65, "é", "`a`", "a\n", "a'"],
)
def test_unsafe_identifiers_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        identifier(name)
