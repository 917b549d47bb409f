"""Pending rows (drawn for review, not reviewed yet) stay out of the ACT weights (issue 10).

``build_rows`` alone, on hand-made Label Studio task dicts (no server).
"""

from __future__ import annotations

import numpy as np

from act_backend.labeling import parse_label_config
from act_plugin.sync import build_rows
from tests.support.projects import CHOICES, choice

DRAW = {"draw_id": "d", "n_tasks": 3, "drawn_at": "2026-01-01T00:00Z"}
PREDICTION = {"model_version": "m", "score": 0.4, "result": choice("positive"), "id": 1}
REVIEW = {"id": 5, "result": choice("negative"), "completed_by": 3, "updated_by": 3}


def task(task_id: int, *, pi: float, drawn: bool, reviewed: bool) -> dict:
    return {
        "id": task_id,
        "data": {},
        "meta": {"act": {**DRAW, "pi": pi, "delta": int(drawn)}},
        "predictions": [PREDICTION],
        "annotations": [REVIEW] if reviewed else [],
    }


def test_pending_rows_are_flagged_and_weigh_nothing() -> None:
    tasks = [
        task(1, pi=0.25, drawn=True, reviewed=True),  # reviewed: 1/π on the human label
        task(2, pi=0.5, drawn=True, reviewed=False),  # pending: not a machine row at weight λ
        task(3, pi=0.5, drawn=False, reviewed=False),  # not drawn: the machine label at λ
    ]
    rows, problems = build_rows(tasks, parse_label_config(CHOICES), model_version="m", lam=0.5)
    assert problems == []
    assert [r["pending"] for r in rows] == [False, True, False]
    np.testing.assert_allclose([r["weight_human"] for r in rows], [4.0, 0.0, 0.0])
    np.testing.assert_allclose([r["weight_machine"] for r in rows], [0.5 * (1 - 4.0), 0.0, 0.5])
    assert rows[1]["pi"] == 0.5 and rows[1]["delta"] == 0  # π kept for when it is reviewed
