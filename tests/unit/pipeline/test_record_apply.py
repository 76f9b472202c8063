"""Planning record rows from write operations: literal operations in, literal rows out."""

from __future__ import annotations

from pipeline.record_apply import Current, DataSetState, ids_to_look_up, plan
from pipeline.record_rows import ROW_COLUMNS, SLOTS, SlotMap
from schemas.records import Record, WriteOp

COL = {name: i for i, name in enumerate(ROW_COLUMNS)}


def _rows(p_rows: list[tuple[object, ...]], *cols: str) -> list[tuple[object, ...]]:
    return [tuple(r[COL[c]] for c in cols) for r in p_rows]


def test_post_of_new_records_writes_one_row_each_with_rising_versions() -> None:
    op = WriteOp(
        "post", "o1", "g_t", 5_000, (Record("a", True, 1_000, {"x": 1}), Record("b", False, None, {}))
    )
    state = DataSetState()
    out = plan("g_t", [op], state, {}, set())
    assert _rows(out.rows, "id", "sign", "version", "epoch", "ts", "has_ts", "s0", "updated") == [
        ("a", 1, 1, 0, 1, 1, "1", 5),
        ("b", 1, 2, 0, 0, 0, "", 5),
    ]
    assert out.new_slots == [("g_t", "x", 0)]
    assert state.next_version == 3


def test_replacing_an_existing_id_cancels_the_current_row_first() -> None:
    current = {"a": Current(1_000, {"x": 1})}
    op = WriteOp("post", "o2", "g_t", 9_000, (Record("a", True, 2_000, {"x": 2}),))
    out = plan("g_t", [op], DataSetState(next_version=10, slots=SlotMap({"x": 0})), current, set())
    assert _rows(out.rows, "id", "sign", "ts", "s0") == [("a", -1, 1, "1"), ("a", 1, 2, "2")]
    assert current == {"a": Current(2_000, {"x": 2})}


def test_delete_and_patch() -> None:
    current = {"a": Current(1_000, {"x": 1, "y": "k"})}
    ops = [
        WriteOp("patch", "p", "g_t", 0, (Record("a", True, None, {"x": 5}),)),
        WriteOp("delete", "d", "g_t", 0, (Record("a", True, None, {}),)),
        WriteOp("delete", "d2", "g_t", 0, (Record("zz", True, None, {}),)),
    ]
    out = plan("g_t", ops, DataSetState(slots=SlotMap({"x": 0, "y": 1})), current, set())
    assert _rows(out.rows, "id", "sign", "s0", "s1", "op") == [
        ("a", -1, "1", '"k"', "p"),
        ("a", 1, "5", '"k"', "p"),
        ("a", -1, "5", '"k"', "d"),
    ]
    assert out.op_rows == {"p": 2, "d": 1, "d2": 0}
    assert current == {}


def test_empty_starts_an_epoch_and_skips_what_it_wipes() -> None:
    ops = [
        WriteOp("post", "before", "g_t", 0, (Record("a", True, None, {}),)),
        WriteOp("empty", "e", "g_t", 7_000),
        WriteOp("post", "after", "g_t", 0, (Record("a", True, None, {}),)),
    ]
    state = DataSetState(epoch=0, next_version=4)
    out = plan("g_t", ops, state, {"a": Current(None, {})}, set())
    assert out.epochs == [("g_t", 4, "e", 7)]
    assert _rows(out.rows, "id", "sign", "epoch", "op") == [("a", 1, 4, "after")]  # no cancel: new epoch
    assert "before" not in out.op_rows


def test_applied_operations_are_skipped() -> None:
    op = WriteOp("post", "o1", "g_t", 0, (Record("a", True, None, {"x": 1}),))
    out = plan("g_t", [op], DataSetState(), {}, {"o1"})
    assert out.rows == [] and out.op_rows == {}


def test_slots_run_out_and_later_fields_stay_in_doc() -> None:
    fields = {f"f{i}": i for i in range(SLOTS + 3)}
    out = plan(
        "g_t",
        [WriteOp("post", "o", "g_t", 0, (Record("a", False, None, fields),))],
        DataSetState(),
        {},
        set(),
    )
    assert len(out.new_slots) == SLOTS
    row = out.rows[0]
    assert row[COL["doc"]].count(":") == SLOTS + 3
    assert (
        SlotMap({n: s for _, n, s in out.new_slots}).slot_expr(f"f{SLOTS}")
        == "visitParamExtractRaw(doc, 'f24')"
    )


def test_only_client_given_ids_are_looked_up() -> None:
    ops = [
        WriteOp("post", "o", "g_t", 0, (Record("a", True, None, {}), Record("gen", False, None, {}))),
        WriteOp("empty", "e", "g_t", 0),
        WriteOp("delete", "d", "g_t", 0, (Record("b", True, None, {}),)),
    ]
    assert ids_to_look_up(ops) == {"a", "b"}
