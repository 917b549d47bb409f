"""The wire formats of act_backend.records: what is written reads back the same."""

from __future__ import annotations

import pytest

from act_backend.domain import MachineLabel
from act_backend.labeling import parse_label_config
from act_backend.records import (
    DRAW_FIELDS,
    META_KEY,
    REVIEW_VIEW_TITLE,
    answer_labels,
    draw_record,
    draw_record_of,
    encode_prediction,
    id_ranges,
    ids_in,
    is_lean,
    ledger_record,
    record_pi,
    review_record,
    review_record_of,
    review_records,
    suspicion_digest,
    suspicion_of,
    with_review_record,
    without_review_record,
)
from tests.support.configs import TEXT_MULTI as MULTI
from tests.support.projects import CHOICES, TEXTAREA

DRAW = {
    "draw_id": "d1", "rule": "thresholded", "budget": 3, "floor": 0.1, "beta": 10.0, "seed": 7,
    "model_version": "m", "drawn_at": "2026-01-01T00:00:00+00:00", "n_tasks": 5, "n_drawn": 2,
    "suspicion_digest": "ab12", "min_pi_undrawn": 0.06,
}  # fmt: skip


@pytest.mark.parametrize("suspicion", [0.0, 0.123456789, 0.5, 1.0])
def test_a_choice_prediction_reads_back_its_label_and_suspicion(suspicion):
    spec = parse_label_config(CHOICES)
    label = MachineLabel(labels=("negative",))

    prediction = encode_prediction(spec, 12, label, suspicion, "sounds bitter", "m")

    assert answer_labels(prediction["result"], spec) == ["negative"]
    assert suspicion_of(prediction) == pytest.approx(suspicion, abs=1e-6)
    assert prediction["score"] == pytest.approx(1 - suspicion, abs=1e-6)
    assert prediction["mislabeling"] == suspicion
    assert prediction["model_version"] == "m"
    regions = {r["from_name"]: r for r in prediction["result"]}
    assert regions["sentiment"]["id"] == "act-12-sentiment"
    assert regions["act_rationale"]["value"]["text"] == [
        f"suspicion {suspicion:.2f}: sounds bitter"
    ]
    assert spec.interface.validate_prediction(prediction)


def test_multiple_choices_and_free_text_read_back():
    multi = parse_label_config(MULTI)
    labels = MachineLabel(labels=("sports", "politics"))
    prediction = encode_prediction(multi, 1, labels, 0.3, "", "m")
    assert answer_labels(prediction["result"], multi) == ["politics", "sports"]
    assert [r["from_name"] for r in prediction["result"]] == ["topics"]  # no rationale field

    text = parse_label_config(TEXTAREA)
    answer = MachineLabel(answer="Paris")
    prediction = encode_prediction(text, 2, answer, 0.8, "unsure", "m")
    assert answer_labels(prediction["result"], text) == ["Paris"]
    assert suspicion_of(prediction) == pytest.approx(0.8)


def test_an_answer_without_its_region():
    assert answer_labels([], parse_label_config(CHOICES)) is None
    assert answer_labels(None, parse_label_config(MULTI)) == []  # nothing chosen


def test_a_prediction_written_by_the_ml_backend_is_read_from_its_score():
    assert suspicion_of({"score": 0.3, "mislabeling": 0.0}) == pytest.approx(0.7)
    assert suspicion_of({"score": 0.3}) == pytest.approx(0.7)
    assert suspicion_of({"score": float("nan")}) == 0.0
    assert suspicion_of({"mislabeling": 1.5}) == 1.0  # clipped


def test_a_review_record_reads_back_from_the_task_meta():
    record = review_record(DRAW, suspicion=0.4, pi=0.25, delta=True)
    meta = with_review_record({"source": "import-7"}, record)

    assert meta["source"] == "import-7"  # other meta keys kept
    read = review_record_of(meta)
    assert read == record
    assert list(read) == [*DRAW_FIELDS, "suspicion", "pi", "delta"]
    assert {k: read[k] for k in DRAW_FIELDS} == DRAW
    assert (read["suspicion"], read["pi"], read["delta"]) == (0.4, 0.25, 1)
    assert record_pi(read) == 0.25


def test_a_ledger_gives_each_drawn_task_the_record_it_would_carry():
    entries = [(3, 0.4, 0.25), (8, 0.9, 1.0), (11, 0.1, 0.05)]
    carrier = with_review_record({"source": "x"}, ledger_record(DRAW, entries))
    records = review_records({3: carrier, 5: {}, 8: None, 11: {"source": "y"}})

    assert sorted(records) == [3, 8, 11]  # task 5 was not drawn
    for task_id, suspicion, pi in entries:
        alone = review_record(DRAW, suspicion=suspicion, pi=pi, delta=True)
        assert records[task_id] == alone  # the ledger itself is not part of any record
    # the copy on the last task reads the same; a carrier outside its ledger gets no record
    assert review_records({3: {}, 11: carrier}) == records
    assert sorted(review_records({5: carrier})) == [3, 8, 11]


def test_a_task_gets_the_record_of_the_newest_draw_that_holds_it():
    older = review_record(DRAW, suspicion=0.4, pi=0.5, delta=True)  # one record per task
    newer = {**DRAW, "draw_id": "d2", "drawn_at": "2026-01-02T00:00:00+00:00"}
    ledger = ledger_record(newer, [(2, 0.7, 0.3), (4, 0.4, 0.6)])
    records = review_records({2: {META_KEY: ledger}, 4: {META_KEY: older}, 6: {META_KEY: older}})

    assert records[4]["draw_id"] == "d2" and records[4]["pi"] == 0.6  # the ledger is newer
    assert records[6] == older  # not in the newer draw: keeps its own
    stale = ledger_record({**newer, "drawn_at": "2025-12-31T00:00:00+00:00"}, [(2, 0.7, 0.3)])
    swapped = review_records({2: {META_KEY: stale}, 4: {META_KEY: older}})
    assert swapped[4] == older


def test_malformed_ledger_entries_are_left_out():
    ledger = ledger_record(DRAW, [(1, 0.5, 0.5)])
    ledger["drawn"] += [[2, 0.5], ["3", 0.5, 0.5], [4, True, 0.5], [5, 0.5, None], "6", [7, 0, 1]]
    assert sorted(review_records({1: {META_KEY: ledger}})) == [1, 7]
    ledger["drawn"] = "all"
    assert review_records({1: {META_KEY: ledger}}) == {}


def test_invalid_review_records_are_rejected():
    with pytest.raises(ValueError, match="seed"):
        review_record({k: v for k, v in DRAW.items() if k != "seed"}, suspicion=0, pi=1, delta=0)
    for meta in (
        None,
        [],
        {},
        {META_KEY: "d1"},
        {META_KEY: {"pi": 0.5}},
        {META_KEY: {"draw_id": 3}},
    ):
        assert review_record_of(meta) is None
    record = review_record(DRAW, suspicion=0.4, pi=0.25, delta=True)
    for bad in ({"pi": 0.0}, {"pi": 1.5}, {"pi": True}, {"pi": "0.5"}, {"pi": None}):
        assert record_pi({**record, **bad}) is None
    assert record_pi({**record, "pi": 0.0, "delta": 0}) == 0.0  # not drawn: π = 0 is possible


def test_the_draw_record_of_the_review_view_reads_back():
    record = draw_record(DRAW, [9, 3, 4, 5, 11])
    assert record["task_ids"] == [[3, 5], [9, 9], [11, 11]]
    assert ids_in(record["task_ids"]) == {3, 4, 5, 9, 11}
    view = {"data": {"title": REVIEW_VIEW_TITLE, "act_draw_id": "d1", META_KEY: record}}
    assert draw_record_of(view) == record and is_lean(record)
    # the UI may rewrite a view's data: the commit mark alone still names the draw
    assert draw_record_of({"data": {"title": REVIEW_VIEW_TITLE, "act_draw_id": "d1"}}) == {
        "draw_id": "d1"
    }
    assert draw_record_of({"data": {"title": "other", META_KEY: record}}) is None
    assert not is_lean({"draw_id": "old", "n_tasks": 5})  # every task carried one
    for bad in ([[1]], [[1, "2"]], "1-3", [[1.0, 2]]):
        assert ids_in(bad) is None
    assert id_ranges([]) == [] and ids_in([]) == set()


def test_the_suspicion_digest_sees_any_change():
    base = suspicion_digest([1, 2, 3], [0.1, 0.2, 0.3])
    assert base == suspicion_digest([1, 2, 3], [0.1, 0.2, 0.3])
    assert base != suspicion_digest([1, 2, 4], [0.1, 0.2, 0.3])
    assert base != suspicion_digest([1, 2], [0.1, 0.2])
    assert base != suspicion_digest([1, 2, 3], [0.1, 0.2, 0.30000000000000004])
    assert without_review_record({"a": 1, META_KEY: {"draw_id": "d"}}) == {"a": 1}
