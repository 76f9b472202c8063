"""Field rules shared by the event kinds that services send (transaction, satisfaction, cost). Pure.

Each helper reads one field of an incoming JSON object (from the HTTP write API or the Python SDK)
and returns it normalised, or raises ``InvalidEvent`` with a message that names the field and says
what is wrong. Messages never quote a field's value (a comment may hold personal data), only the
field's name and the rule it broke. A field that is absent or JSON ``null`` counts as not given.

``validate_all`` runs one kind's ``validate`` over a batch the way ``pipeline.beacon`` does: a bad
event becomes a ``Drop`` (its index, the field, a reason from beacon's closed set, a message) and
never takes its valid neighbours down with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeVar

import orjson

from pipeline.beacon import EVENT_ID, SLUG, Drop, DropReason

E = TypeVar("E")
S = TypeVar("S", bound=str)

CHANNELS = ("digital", "phone", "paper", "face_to_face", "assisted_digital")
MIN_TS_MS = 946_684_800_000
"""2000-01-01T00:00:00Z: nothing older is a performance figure, and is most likely a unit mistake."""
MAX_FUTURE_MS = 5 * 60_000
"""How far ahead of ``now`` a timestamp may be: clock skew between a service and us."""
MAX_POUNDS = 1_000_000_000
MONEY_PLACES = 4
MONEY_SCALE = 10_000
"""Money travels as integer ten-thousandths of a pound (``cost_e4``, ``amount_e4``)."""
_ID_MESSAGE = "id must be 1 to 64 letters, digits or _ . : -"
_SLUG_MESSAGE = (
    "must be a service slug: 1 to 64 lower-case letters, digits, - or _, starting with a letter or digit"
)
_INSTANT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))?",
    re.ASCII,
)
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SHOWN_NAME_CHARS = 40


class InvalidEvent(ValueError):
    """One event that cannot be accepted. ``str()`` is the message; ``field`` is None when the event
    as a whole is at fault."""

    def __init__(self, field: str | None, reason: DropReason, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason
        self.message = message


def event_object(raw: object, allowed: Collection[str]) -> Mapping[str, Any]:
    """``raw`` as a JSON object whose keys are all in ``allowed``."""
    if not isinstance(raw, dict):
        raise InvalidEvent(None, DropReason.NOT_AN_OBJECT, "event must be a JSON object")
    for name in raw:
        if name not in allowed:
            raise InvalidEvent(None, DropReason.BAD_FORMAT, f"unknown field {_shown_name(name)}")
    return raw


def _shown_name(name: object) -> str:
    """A client's field name, quoted and escaped so it cannot break a log line, and cut short."""
    text = name if isinstance(name, str) else repr(name)
    cut = text[:_SHOWN_NAME_CHARS]
    shown = orjson.dumps(without_surrogates(cut)).decode()
    return shown + ("…" if len(text) > _SHOWN_NAME_CHARS else "")


def without_surrogates(value: str) -> str:
    """``value`` with each lone surrogate (which a Python str may hold but no JSON writer takes)
    replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", value)


def required(obj: Mapping[str, Any], name: str) -> Any:
    """The value of a field that must be given (``null`` is not a value)."""
    value = obj.get(name)
    if value is None:
        raise InvalidEvent(name, DropReason.MISSING, f"{name} is required")
    return value


def client_id(value: Any) -> str | None:
    """The client's ``id`` (beacon's ``EVENT_ID``), or None when none was given: the caller then takes
    one from its ``id_factory`` once the event has passed, so a refused event uses up no id."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent("id", DropReason.WRONG_TYPE, "id must be a string")
    if not EVENT_ID.fullmatch(value):
        raise InvalidEvent("id", DropReason.BAD_FORMAT, _ID_MESSAGE)
    return value


def slug(value: Any, name: str) -> str:
    """A service slug (beacon's ``SLUG``), exactly: a service's back end can spell its own name."""
    if not isinstance(value, str):
        raise InvalidEvent(name, DropReason.WRONG_TYPE, f"{name} must be a string")
    if not SLUG.fullmatch(value):
        raise InvalidEvent(name, DropReason.BAD_FORMAT, f"{name} {_SLUG_MESSAGE}")
    return value


def choice(value: Any, name: str, options: tuple[S, ...]) -> S:
    """``value`` when it is exactly one of ``options``."""
    if not isinstance(value, str) or value not in options:
        reason = DropReason.BAD_FORMAT if isinstance(value, str) else DropReason.WRONG_TYPE
        raise InvalidEvent(name, reason, f"{name} must be one of {', '.join(options)}")
    return value


def channel(value: Any, name: str, options: tuple[str, ...]) -> str:
    """One of ``options``, case-insensitively, with ``-`` or a space accepted for ``_``:
    "Face to face", "face-to-face" and "ASSISTED DIGITAL" are ``face_to_face`` and ``assisted_digital``."""
    if isinstance(value, str):
        value = value.lower().replace(" ", "_").replace("-", "_")
    return choice(value, name, options)


def text(value: Any, name: str, max_chars: int) -> str:
    """Free text up to ``max_chars``, kept verbatim (escaping is the page's job); "" when absent.
    Refuses NUL and lone surrogates, which no store or JSON writer takes."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidEvent(name, DropReason.WRONG_TYPE, f"{name} must be a string")
    if len(value) > max_chars:
        raise InvalidEvent(name, DropReason.TOO_LONG, f"{name} is longer than {max_chars} characters")
    if "\x00" in value:
        raise InvalidEvent(name, DropReason.BAD_FORMAT, f"{name} contains a NUL character")
    if _SURROGATE.search(value):
        raise InvalidEvent(name, DropReason.BAD_FORMAT, f"{name} is not valid Unicode text")
    return value


def reference(value: Any, name: str, max_chars: int) -> str:
    """An identifier such as a transaction id: 1 to ``max_chars`` printable characters (no control
    characters, no line breaks); "" when absent."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidEvent(name, DropReason.WRONG_TYPE, f"{name} must be a string")
    if not 1 <= len(value) <= max_chars:
        reason = DropReason.TOO_LONG if value else DropReason.BAD_FORMAT
        raise InvalidEvent(name, reason, f"{name} must be 1 to {max_chars} characters")
    if not value.isprintable():
        raise InvalidEvent(name, DropReason.BAD_FORMAT, f"{name} must hold only printable characters")
    return value


def money_e4(value: Any, name: str) -> int:
    """An amount of pounds as an exact integer of ten-thousandths of a pound; -1 when absent.

    A JSON number arrives as a float, so its shortest text (``repr``, which is the number as written
    for anything of 15 significant digits or fewer) is read as a decimal: 0.1 is 1000, not 999.
    A float that needs more places (0.1 + 0.2 computed in a client) is refused, never rounded.
    """
    if value is None:
        return -1
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent(name, DropReason.WRONG_TYPE, f"{name} must be a number of pounds")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidEvent(name, DropReason.OUT_OF_RANGE, f"{name} must be a finite number")
    if value < 0:
        raise InvalidEvent(name, DropReason.OUT_OF_RANGE, f"{name} must not be negative")
    if value > MAX_POUNDS:
        raise InvalidEvent(name, DropReason.OUT_OF_RANGE, f"{name} must be at most {MAX_POUNDS} pounds")
    if isinstance(value, int):
        return value * MONEY_SCALE
    scaled = Decimal(repr(value)).scaleb(MONEY_PLACES)
    if scaled != scaled.to_integral_value():
        raise InvalidEvent(
            name, DropReason.BAD_FORMAT, f"{name} must have at most {MONEY_PLACES} decimal places"
        )
    return int(scaled)


def instant(value: Any, name: str, now_ms: int) -> int | None:
    """An instant (ISO 8601 with an offset, or integer epoch milliseconds) as UTC epoch ms, from
    2000-01-01 to ``now_ms`` + 5 minutes; None when absent."""
    if value is None:
        return None
    if isinstance(value, str):
        ms = instant_ms(value, name)
    elif isinstance(value, int) and not isinstance(value, bool):
        ms = value
    else:
        raise InvalidEvent(name, DropReason.WRONG_TYPE, _instant_message(name))
    check_time(ms, name, now_ms)
    return ms


def check_time(ms: int, name: str, now_ms: int) -> None:
    """The common bounds of every time a client sends."""
    if ms < MIN_TS_MS:
        raise InvalidEvent(name, DropReason.OUT_OF_RANGE, f"{name} is before 2000-01-01")
    if ms > now_ms + MAX_FUTURE_MS:
        raise InvalidEvent(name, DropReason.OUT_OF_RANGE, f"{name} is more than 5 minutes in the future")


def _instant_message(name: str) -> str:
    return (
        f"{name} must be an ISO 8601 date-time with an offset "
        "(like 2026-11-22T10:00:00+01:00 or 2026-11-22T09:00:00Z) or integer epoch milliseconds"
    )


def instant_ms(value: str, name: str) -> int:
    """``YYYY-MM-DDThh:mm[:ss[.fff]]`` with ``Z`` or ``±hh[:]mm``, as UTC epoch ms (digits past the
    millisecond are dropped). Parsed by hand so that only this spelling is accepted: no week dates,
    no non-ASCII digits, no lenient guessing."""
    match = _INSTANT.fullmatch(value)
    if match is None:
        raise InvalidEvent(name, DropReason.BAD_FORMAT, _instant_message(name))
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if zulu is None and sign is None:
        raise InvalidEvent(name, DropReason.BAD_FORMAT, f"{name} needs a UTC offset (Z or +hh:mm)")
    try:
        offset = timedelta(0)
        if sign is not None:
            if int(off_m) > 59:
                raise ValueError("offset minutes past 59")
            offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (1 if sign == "+" else -1)
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=timezone(offset)
        )
    except ValueError:
        raise InvalidEvent(name, DropReason.BAD_FORMAT, f"{name} is not a real date and time") from None
    return to_ms(moment) + int((fraction or "0")[:3].ljust(3, "0"))


def date_or_instant(value: Any, name: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an instant as ``instant_ms`` reads it, as an aware UTC datetime."""
    if not isinstance(value, str):
        raise InvalidEvent(
            name, DropReason.WRONG_TYPE, f"{name} must be a date (YYYY-MM-DD) or a date-time with an offset"
        )
    if _INSTANT.fullmatch(value):
        return from_ms(instant_ms(value, name))
    match = _DATE.fullmatch(value)
    if match is None:
        raise InvalidEvent(
            name, DropReason.BAD_FORMAT, f"{name} must be a date (YYYY-MM-DD) or a date-time with an offset"
        )
    try:
        day = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise InvalidEvent(name, DropReason.BAD_FORMAT, f"{name} is not a real date") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def from_ms(ms: int) -> datetime:
    """Epoch ms as an aware UTC datetime, exactly."""
    return _EPOCH + ms * _MS


def to_ms(moment: datetime) -> int:
    """An aware datetime as epoch ms, exactly (no float on the way)."""
    return (moment - _EPOCH) // _MS


def validate_all(items: list[Any], validate: Callable[[object], E]) -> tuple[list[E], list[Drop]]:
    """Every item validated on its own: the good ones in order, and a ``Drop`` per bad one whose
    message starts ``event <index>:`` as beacon's do."""
    events: list[E] = []
    drops: list[Drop] = []
    for index, raw in enumerate(items):
        try:
            events.append(validate(raw))
        except InvalidEvent as bad:
            drops.append(Drop(index, bad.field, bad.reason, f"event {index}: {bad.message}"))
    return events, drops
