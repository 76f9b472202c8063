"""The golden payloads in ``schemas/golden`` (format in its README): every valid one validates to its
pinned row and round-trips through the envelope; every invalid one fails with its pinned message."""

from __future__ import annotations

import re
from itertools import zip_longest
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

import schemas
from pipeline.beacon import Drop
from schemas import availability, cost, satisfaction, transaction
from schemas.fields import InvalidEvent

GOLDEN = Path(schemas.__file__).parent / "golden"
NAME = re.compile(r"(?P<kind>[a-z]+)\.(?P<validity>valid|invalid)\.(?P<name>[a-z0-9-]+)\.json")
SENT_BY_SERVICES: dict[str, ModuleType] = {m.SCHEMA: m for m in (transaction, satisfaction, cost)}
KINDS = [*SENT_BY_SERVICES, availability.SCHEMA]
GENERATED_ID = "generated-id"


def golden(kind: str, validity: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(GOLDEN.glob(f"{kind}.{validity}.*.json")):
        doc = orjson.loads(path.read_bytes())
        assert isinstance(doc, dict)
        out.append((path.stem, doc))
    return out


def cases(kinds: list[str], validity: str) -> list[Any]:
    return [pytest.param(kind, doc, id=stem) for kind in kinds for stem, doc in golden(kind, validity)]


def generated_id() -> str:
    return GENERATED_ID


def test_every_golden_file_is_named_for_a_kind_and_is_used() -> None:
    files = sorted(p.name for p in GOLDEN.glob("*.json"))
    for name in files:
        match = NAME.fullmatch(name)
        assert match is not None, f"{name} is not <kind>.<valid|invalid>.<name>.json"
        assert match["kind"] in KINDS, name
    for kind in KINDS:
        assert len(golden(kind, "valid")) >= 4, kind
        assert len(golden(kind, "invalid")) >= 6, kind


@pytest.mark.parametrize(("kind", "doc"), cases(list(SENT_BY_SERVICES), "valid"))
def test_valid_payloads_validate_to_their_row_and_round_trip(kind: str, doc: dict[str, Any]) -> None:
    module = SENT_BY_SERVICES[kind]
    event = module.validate(doc["payload"], doc["received_ms"], doc["now_ms"], generated_id)
    assert event.as_row() == doc["row"]
    decoded = module.decode_envelope(module.encode_envelope([event]))
    assert (decoded.events, decoded.rejects) == ([event], [])


@pytest.mark.parametrize(("kind", "doc"), cases(list(SENT_BY_SERVICES), "invalid"))
def test_invalid_payloads_fail_with_their_message(kind: str, doc: dict[str, Any]) -> None:
    module = SENT_BY_SERVICES[kind]
    with pytest.raises(InvalidEvent) as caught:
        module.validate(doc["payload"], doc["received_ms"], doc["now_ms"], generated_id)
    assert str(caught.value) == doc["error"]


@pytest.mark.parametrize("kind", list(SENT_BY_SERVICES))
def test_all_goldens_of_a_kind_as_one_batch(kind: str) -> None:
    """The valid ones are accepted in order; each invalid one is reported at its own index."""
    module = SENT_BY_SERVICES[kind]
    good = [doc for _, doc in golden(kind, "valid")]
    bad = [doc for _, doc in golden(kind, "invalid")]
    docs = [doc for pair in zip_longest(bad, good) for doc in pair if doc is not None]
    received_ms, now_ms = docs[0]["received_ms"], docs[0]["now_ms"]
    assert all((d["received_ms"], d["now_ms"]) == (received_ms, now_ms) for d in docs)
    events, drops = module.validate_batch([d["payload"] for d in docs], received_ms, now_ms, generated_id)
    assert [e.as_row() for e in events] == [d["row"] for d in docs if "row" in d]
    assert [(d.index, d.message) for d in drops] == [
        (i, f"event {i}: {d['error']}") for i, d in enumerate(docs) if "error" in d
    ]
    assert all(isinstance(d, Drop) for d in drops)


@pytest.mark.parametrize(("kind", "doc"), cases([availability.SCHEMA], "valid"))
def test_valid_probe_results_build_their_row_and_round_trip(kind: str, doc: dict[str, Any]) -> None:
    event = availability.probe_result(**doc["probe"])
    assert event.as_row() == doc["row"]
    decoded = availability.decode_envelope(availability.encode_envelope([event]))
    assert (decoded.events, decoded.rejects) == ([event], [])


@pytest.mark.parametrize(("kind", "doc"), cases([availability.SCHEMA], "invalid"))
def test_invalid_availability_rows_are_rejected_with_their_reason(kind: str, doc: dict[str, Any]) -> None:
    value = orjson.dumps({"schema": kind, "v": 1, "events": [doc["row"]]})
    decoded = availability.decode_envelope(value)
    assert (decoded.events, decoded.rejects) == ([], [(0, doc["error"])])


def test_golden_comments_never_reach_a_message() -> None:
    for _, doc in golden("satisfaction", "invalid"):
        comment = doc["payload"].get("comment") if isinstance(doc["payload"], dict) else None
        if isinstance(comment, str) and comment:
            assert comment[:20] not in doc["error"]
