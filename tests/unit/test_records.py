"""The wire formats of act_backend.records: what is written reads back the same."""

from __future__ import annotations

import pytest

from act_backend.domain import MachineLabel
from act_backend.labeling import parse_label_config
from act_backend.records import (
    DRAW_FIELDS,
    META_KEY,
    answer_labels,
    encode_prediction,
    record_pi,
    review_record,
    review_record_of,
    suspicion_of,
    with_review_record,
)
from tests.support.configs import TEXT_MULTI as MULTI
from tests.support.projects import CHOICES, TEXTAREA

DRAW = {
    "draw_id": "d1", "rule": "thresholded", "budget": 3, "floor": 0.1, "beta": 10.0, "seed": 7,
    "model_version": "m", "drawn_at": "2026-01-01T00:00:00+00:00", "n_tasks": 5,
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
