"""``ls-act sync --soft-lambda k``: per-row λ_i = λ (1 − p̂_i)^k, p̂_i read without row i's review.

``build_rows`` alone, on hand-made Label Studio task dicts (no server).
"""

from __future__ import annotations

import numpy as np
import pytest

from act_backend.labeling import parse_label_config
from act_plugin.act_math import cross_fitted_probabilities
from act_plugin.sync import build_rows
from tests.support.projects import CHOICES, choice

N = 10
DRAW = {"draw_id": "d", "n_tasks": N, "drawn_at": "2026-01-01T00:00Z"}
SUSPICION = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
PI = [1.0, 0.5, 0.5, 0.25, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25]
DRAWN = [True, True, True, True, False, True, False, False, True, False]
WRONG = [True, True, False, True, False, False, False, False, False, False]  # machine wrong


def task(i: int, wrong: list[bool]) -> dict:
    review = {"id": 100 + i, "completed_by": 3, "updated_by": 3}
    review["result"] = choice("negative" if wrong[i] else "positive")
    return {
        "id": i + 1,
        "data": {},
        "meta": {"act": {**DRAW, "pi": PI[i], "delta": int(DRAWN[i])}},
        "predictions": [
            {"model_version": "m", "score": 1 - SUSPICION[i], "result": choice("positive")}
        ],
        "annotations": [review] if DRAWN[i] else [],
    }


def rows_of(wrong: list[bool], **options) -> list[dict]:
    tasks = [task(i, wrong) for i in range(N)]
    rows, problems = build_rows(tasks, parse_label_config(CHOICES), model_version="m", **options)
    assert problems == []
    return rows


def test_off_by_default_one_lambda_for_every_row():
    rows = rows_of(WRONG, lam=0.8)
    undrawn = [r["weight_machine"] for r, d in zip(rows, DRAWN, strict=True) if not d]
    assert undrawn == [0.8] * DRAWN.count(False)


def test_machine_labels_that_look_wrong_weigh_less():
    rows = rows_of(WRONG, lam=0.8, soft_power=4)
    p = cross_fitted_probabilities(SUSPICION, WRONG, DRAWN, PI)
    lam = 0.8 * (1 - p) ** 4
    expected_machine = lam * (1 - np.array(DRAWN) / np.array(PI))
    np.testing.assert_allclose([r["weight_machine"] for r in rows], expected_machine, atol=1e-12)
    np.testing.assert_allclose(
        [r["weight_human"] for r in rows], np.array(DRAWN) / np.array(PI), atol=1e-12
    )
    undrawn = [r["weight_machine"] for r, d in zip(rows, DRAWN, strict=True) if not d]
    assert undrawn == sorted(undrawn) and undrawn[0] < 0.5 * undrawn[-1]  # by suspicion


@pytest.mark.parametrize("row", [1, 3, 5])
def test_a_row_lambda_does_not_read_its_own_review(row):
    flipped = list(WRONG)
    flipped[row] = not flipped[row]
    before, after = rows_of(WRONG, soft_power=2), rows_of(flipped, soft_power=2)
    lam_before = before[row]["weight_machine"] / (1 - 1 / PI[row])
    lam_after = after[row]["weight_machine"] / (1 - 1 / PI[row])
    assert lam_after == pytest.approx(lam_before, abs=1e-12)
    # while the other rows' λ do read it (a calibration that learns from the reviews)
    others = [i for i in range(N) if i != row and not DRAWN[i]]
    assert any(
        before[i]["weight_machine"] != pytest.approx(after[i]["weight_machine"]) for i in others
    )


def test_a_given_wrong_probability_replaces_the_rows_own_and_is_checked():
    """``ls-act scale sync`` computes p̂ over every block and passes each block's share."""
    given = np.linspace(0.05, 0.6, N)
    rows = rows_of(WRONG, lam=0.8, soft_power=2, wrong_probability=given)
    expected = 0.8 * (1 - given) ** 2 * (1 - np.array(DRAWN) / np.array(PI))
    np.testing.assert_allclose([r["weight_machine"] for r in rows], expected, atol=1e-12)
    assert rows_of(WRONG, lam=0.8, wrong_probability=given)[4]["weight_machine"] == 0.8  # k = 0
    with pytest.raises(ValueError, match="wrong_probability must hold 10 values"):
        rows_of(WRONG, soft_power=2, wrong_probability=given[:-1])
