"""Tests of the ACT report (act_plugin.report).

Every figure is checked against a value computed independently here: by hand on a small row set
(``hand_rows``, each number derived in a comment) or by brute force (explicit loops over items
and pairs) on a seeded random row set. Rendering tests check that the HTML is self-contained
and carries the key numbers, and that the PNG is a valid image.
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from scipy.stats import gamma as gamma_dist

from act_plugin.act_math import error_count_estimate, roc_points
from act_plugin.report import ReportFigures, compute_report, write_report

Z95 = 1.959963984540054  # Φ⁻¹(0.975)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_row(
    task_id: int,
    *,
    label: str | list[str] = "a",
    human: str | list[str] | None = None,
    suspicion: float = 0.5,
    pi: float | None = None,
    in_sample: bool = False,
    outside: bool = False,
    pending: bool = False,
    annotator: int | None = None,
) -> dict[str, Any]:
    """One row as ``ls-act sync`` writes it; reviewed iff ``human`` is given."""
    machine = [label] if isinstance(label, str) else label
    human_label = None if human is None else ([human] if isinstance(human, str) else human)
    reviewed = human_label is not None
    delta = int(reviewed and (in_sample or outside))
    return {
        "task_id": task_id,
        "data": {"text": f"item {task_id}"},
        "machine_label": machine,
        "human_label": human_label,
        "reviewed": reviewed,
        "in_sample": in_sample,
        "outside_sample": outside,
        "pending": pending,
        "suspicion": suspicion,
        "pi": 1.0 if outside else pi,
        "delta": delta,
        "weight_machine": 0.0,
        "weight_human": 0.0,
        "machine_correct": (machine == human_label) if reviewed else None,
        "model_version": "test",
        "annotation_id": task_id if reviewed else None,
        "annotator": annotator,
        "draw_id": "d1" if pi is not None else None,
    }


def hand_rows() -> list[dict[str, Any]]:
    """12 rows whose figures are derived by hand below."""
    return [
        # drawn with π = 1 and reviewed: one wrong, one right
        make_row(0, label="a", human="b", suspicion=0.9, pi=1.0, in_sample=True, annotator=1),
        make_row(1, label="a", human="a", suspicion=0.8, pi=1.0, in_sample=True, annotator=1),
        # drawn with π = 0.5, reviewed, wrong: weight 2
        make_row(2, label="b", human="a", suspicion=0.3, pi=0.5, in_sample=True, annotator=2),
        make_row(3, label="b", suspicion=0.2, pi=0.5),  # not drawn
        make_row(4, label="a", suspicion=0.7, pi=0.5, in_sample=True, pending=True),
        make_row(5, label="b", suspicion=0.1, pi=0.25),
        make_row(6, label="b", human="b", suspicion=0.4),  # reviewed without a draw
        make_row(7, label="a", human="a", suspicion=0.35, outside=True, annotator=2),
        *(make_row(i, label="b", suspicion=0.05 + 0.01 * i, pi=0.25) for i in range(8, 12)),
    ]


@pytest.fixture(scope="module")
def hand() -> ReportFigures:
    return compute_report(hand_rows(), cost_per_human_label=0.1, llm_cost=0.2, top_k=2)


# --------------------------------------------------------------------------------------------
# Figures by hand
# --------------------------------------------------------------------------------------------


def test_counts_by_hand(hand: ReportFigures) -> None:
    assert hand.n_items == 12
    assert hand.n_reviewed == 5  # rows 0, 1, 2, 6, 7
    assert hand.n_reviewed_wrong == 2  # rows 0, 2
    assert hand.n_drawn == 4  # rows 0, 1, 2, 4
    assert hand.n_reviewed_in_sample == 3
    assert hand.n_pending == 1
    assert hand.n_outside_sample == 1
    assert hand.n_no_draw == 1  # row 6
    # estimate: rows with π known and not pending = 0, 1, 2, 3, 5, 7, 8, 9, 10, 11
    assert hand.n_estimate == 10
    assert hand.n_zero_pi == 0
    # Σπ over drawn-design rows (outside-sample row 7 excluded): 1+1+.5+.5+.5+.25·5
    assert hand.expected_reviews == pytest.approx(4.75)
    assert hand.human_share == pytest.approx(5 / 12)
    assert hand.provisional


def test_act_accuracy_by_hand(hand: ReportFigures) -> None:
    acc = hand.accuracy
    assert acc is not None
    # errors weighted δ/π: row 0 → 1/1, row 2 → 1/0.5 = 2; acc = 1 − 3/10
    assert acc.estimate == pytest.approx(0.7)
    # V = (1/10²)·[(1−1)/1² + (1−0.5)/0.5²] = 2/100
    assert acc.stderr == pytest.approx(math.sqrt(0.02))
    # Fay–Feuer bounds on the error count T: row 0 (π = 1) counts exactly; the rest has
    # Y = 2, V = 2; one more error would weigh J = 1/0.25 = 4 (rows 5, 8–11 unreviewed),
    # J(J − 1) = 12. Low = 1 + G_0.025(mean 2, var 2), at least the 2 found; high = 1 +
    # G_0.975(mean 6, var 14), at most 2 found + 6 unreviewed rows (3, 5, 8–11).
    low = max(2.0, 1.0 + gamma_dist.ppf(0.025, 2.0**2 / 2.0, scale=2.0 / 2.0))
    high = min(8.0, 1.0 + gamma_dist.ppf(0.975, 6.0**2 / 14.0, scale=14.0 / 6.0))
    assert (low, high) == (2.0, 8.0)  # both clipped: 1 + 0.24 and 1 + 14.2
    assert acc.ci_low == pytest.approx(1.0 - high / 10)
    assert acc.ci_high == pytest.approx(1.0 - low / 10)
    assert acc.n == 10
    assert acc.n_reviewed == 4  # rows 0, 1, 2, 7 (row 6 has no draw)
    # estimated total errors 3, found 2 (rows 0 and 2)
    assert hand.estimated_remaining_errors == pytest.approx(1.0)
    assert hand.remaining_errors_ci == pytest.approx((low - 2.0, high - 2.0))


def test_naive_and_agreement_by_hand(hand: ReportFigures) -> None:
    assert hand.naive_accuracy == pytest.approx(3 / 5)
    by_reviewer = {a.annotator: (a.reviewed, a.agreed) for a in hand.annotators}
    assert by_reviewer == {"1": (2, 1), "2": (2, 1), "unknown": (1, 1)}
    assert [a.annotator for a in hand.annotators] == ["1", "2", "unknown"]


def test_critic_by_hand(hand: ReportFigures) -> None:
    # reviewed: wrong {0.9, 0.3}; right {0.8, 0.4, 0.35}; 0.9 beats 3, 0.3 beats none
    assert hand.auroc == pytest.approx(3 / 6)
    # weighted (rows with a draw: 0 w π1, 1 r π1, 2 w π.5, 7 r π1): pairs (0,1), (0,7) → 2
    # of total weight (1 + 2) · (1 + 1) = 6
    assert hand.weighted_auroc == pytest.approx(2 / 6)
    # top 2 by suspicion: 0.9 (wrong), 0.8 (right)
    assert hand.top_k == 2
    assert hand.precision_at_k == pytest.approx(0.5)
    # m = round(0.1·5) = round(0.5) = 1 and round(0.2·5) = 1: the top row is wrong → 1 of 2
    assert hand.recall_at == ((0.1, pytest.approx(0.5)), (0.2, pytest.approx(0.5)))


def test_cost_by_hand(hand: ReportFigures) -> None:
    assert hand.labels_avoided == 7
    assert hand.labels_avoided_share == pytest.approx(7 / 12)
    assert hand.money_saved == pytest.approx(7 * 0.1 - 0.2)
    assert hand.money_saved_share == pytest.approx(0.5 / 1.2)


def test_per_label_by_hand(hand: ReportFigures) -> None:
    b, a = hand.per_label  # most rows first
    assert (b.label, b.count, b.reviewed, b.reviewed_wrong) == ("b", 8, 2, 1)
    assert (a.label, a.count, a.reviewed, a.reviewed_wrong) == ("a", 4, 3, 1)
    # b in the estimate: rows 2, 3, 5, 8–11 (7 rows), one error with weight 2
    assert b.error_rate == pytest.approx(2 / 7)
    # Fay–Feuer: G_0.025(2, 2) = 0.24 → at least the 1 found; G_0.975(2 + 4, 2 + 12) = 14.2
    # → at most 1 found + 6 unreviewed (rows 3, 5, 8–11)
    assert b.error_ci == pytest.approx((1 / 7, 7 / 7))
    # a in the estimate: rows 0, 1, 7, all reviewed: row 0 wrong → exactly 1/3
    assert a.error_rate == pytest.approx(1 / 3)
    assert a.error_ci == pytest.approx((1 / 3, 1 / 3))


# --------------------------------------------------------------------------------------------
# Figures by brute force on random rows
# --------------------------------------------------------------------------------------------


def random_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Random rows: distinct suspicions, π from a floor + threshold, some pending/outside."""
    rng = random.Random(seed)
    suspicions = rng.sample(range(1, 10_000), n)
    rows = []
    for i, s in enumerate(suspicions):
        suspicion = s / 10_000
        wrong = rng.random() < 0.1 + 0.6 * suspicion
        pi = 1.0 if suspicion > 0.8 else 0.2
        drawn = rng.random() < pi
        pending = drawn and rng.random() < 0.1
        outside = not drawn and rng.random() < 0.03
        reviewed = (drawn and not pending) or outside
        human = ("x" if wrong else "a") if reviewed else None
        rows.append(
            make_row(
                i,
                label=rng.choice(["a", "c"]) if not wrong else "a",
                human=human,
                suspicion=suspicion,
                pi=pi,
                in_sample=drawn,
                outside=outside,
                pending=pending,
                annotator=rng.choice([1, 2]) if reviewed else None,
            )
        )
        if reviewed and not wrong:
            rows[-1]["human_label"] = rows[-1]["machine_label"]
            rows[-1]["machine_correct"] = True
    return rows


def brute_force(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The report's main figures with explicit loops."""
    est = [r for r in rows if r["pi"] is not None and not r["pending"]]
    total_err = 0.0
    var = 0.0
    found = 0
    certain = 0
    jump = 0.0  # 1/π of the unreviewed row with the smallest 0 < π < 1
    for r in est:
        if r["delta"] == 1 and r["machine_correct"] is False:
            total_err += 1.0 / r["pi"]
            var += (1.0 - r["pi"]) / r["pi"] ** 2
            found += 1
            certain += r["pi"] == 1.0
        if r["delta"] == 0 and 0.0 < r["pi"] < 1.0:
            jump = max(jump, 1.0 / r["pi"])
    sampled = total_err - certain
    unreviewed = sum(r["delta"] == 0 and r["pi"] > 0 for r in est)
    low = certain + (gamma_dist.ppf(0.025, sampled**2 / var, scale=var / sampled) if var else 0)
    up_mean, up_var = sampled + jump, var + jump * (jump - 1)
    high = certain + gamma_dist.ppf(0.975, up_mean**2 / up_var, scale=up_var / up_mean)
    low, high = min(max(low, found), found + unreviewed), min(high, found + unreviewed)
    reviewed = [r for r in rows if r["reviewed"]]
    wrong = [r for r in reviewed if not r["machine_correct"]]
    right = [r for r in reviewed if r["machine_correct"]]
    pairs = sum(
        1.0 if w["suspicion"] > c["suspicion"] else 0.5 if w["suspicion"] == c["suspicion"] else 0
        for w in wrong
        for c in right
    )
    weighted = [r for r in est if r["delta"] == 1]
    ww = [r for r in weighted if not r["machine_correct"]]
    wr = [r for r in weighted if r["machine_correct"]]
    wpairs = sum(
        (1 / w["pi"]) * (1 / c["pi"]) * (w["suspicion"] > c["suspicion"]) for w in ww for c in wr
    )
    ranked = sorted(reviewed, key=lambda r: -r["suspicion"])
    top10 = math.floor(0.1 * len(reviewed) + 0.5)
    return {
        "estimate": 1.0 - total_err / len(est),
        "stderr": math.sqrt(var) / len(est),
        "remaining": total_err - found,
        "ci": (1.0 - high / len(est), 1.0 - low / len(est)),
        "naive": len(right) / len(reviewed),
        "auroc": pairs / (len(wrong) * len(right)),
        "weighted_auroc": wpairs / (sum(1 / r["pi"] for r in ww) * sum(1 / r["pi"] for r in wr)),
        "precision_at_5": sum(not r["machine_correct"] for r in ranked[:5]) / 5,
        "recall_at_10": sum(not r["machine_correct"] for r in ranked[:top10]) / len(wrong),
        "expected": sum(r["pi"] for r in rows if r["pi"] is not None and not r["outside_sample"]),
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_figures_match_brute_force(seed: int) -> None:
    rows = random_rows(300, seed)
    expected = brute_force(rows)
    fig = compute_report(rows, top_k=5, estimator="horvitz-thompson")
    assert fig.accuracy is not None
    assert fig.accuracy.estimate == pytest.approx(expected["estimate"])
    assert fig.accuracy.stderr == pytest.approx(expected["stderr"])
    assert fig.estimated_remaining_errors == pytest.approx(expected["remaining"])
    assert (fig.accuracy.ci_low, fig.accuracy.ci_high) == pytest.approx(expected["ci"])
    assert fig.naive_accuracy == pytest.approx(expected["naive"])
    assert fig.auroc == pytest.approx(expected["auroc"])
    assert fig.weighted_auroc == pytest.approx(expected["weighted_auroc"])
    assert fig.precision_at_k == pytest.approx(expected["precision_at_5"])
    assert fig.recall_at[0][1] == pytest.approx(expected["recall_at_10"])
    assert fig.expected_reviews == pytest.approx(expected["expected"])
    # the per-label error counts partition the reviewed errors
    assert sum(item.reviewed_wrong for item in fig.per_label) == fig.n_reviewed_wrong
    assert sum(item.count for item in fig.per_label) == fig.n_items


def test_the_report_uses_the_model_assisted_estimate_where_the_design_allows() -> None:
    rows = random_rows(300, 1)  # π = 0.2 below suspicion 0.8: ~48 expected floor reviews
    fig = compute_report(rows)
    est = [r for r in rows if r["pi"] is not None and not r["pending"]]
    expected = error_count_estimate(
        [r["machine_correct"] is False for r in est],
        [r["delta"] for r in est],
        [r["pi"] for r in est],
        suspicion=[r["suspicion"] for r in est],
    )
    assert fig.estimator == expected.method == "model-assisted"
    assert fig.accuracy is not None
    assert fig.accuracy.estimate == pytest.approx(1.0 - expected.estimate / len(est))
    assert fig.remaining_errors_ci == pytest.approx(expected.remaining_ci)
    ht = compute_report(rows, estimator="horvitz-thompson")
    assert ht.accuracy is not None and ht.accuracy.estimate != fig.accuracy.estimate


def test_weighted_auroc_ties_count_half() -> None:
    rows = [
        make_row(0, human="x", suspicion=0.5, pi=0.5, in_sample=True),
        make_row(1, human="a", suspicion=0.5, pi=1.0, in_sample=True),
        make_row(2, human="a", suspicion=0.2, pi=0.25, in_sample=True),
    ]
    fig = compute_report(rows)
    # wrong row 0 (weight 2) vs right rows 1 (weight 1, tie → ½) and 2 (weight 4, beaten)
    assert fig.weighted_auroc == pytest.approx((2 * 1 * 0.5 + 2 * 4) / (2 * 5))
    assert fig.auroc == pytest.approx(0.75)


def test_roc_points_area_equals_auroc() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 40) / 4.0  # many ties
    wrong = rng.random(40) < 0.4
    fpr, tpr = roc_points(scores, wrong)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    pairs = sum(
        1.0 if a > b else 0.5 if a == b else 0.0 for a in scores[wrong] for b in scores[~wrong]
    )
    assert area == pytest.approx(pairs / (wrong.sum() * (~wrong).sum()))


# --------------------------------------------------------------------------------------------
# Choices and edge cases
# --------------------------------------------------------------------------------------------


def test_empty_rows_raise() -> None:
    with pytest.raises(ValueError, match="empty"):
        compute_report([])


def test_nothing_reviewed_is_undefined_not_an_error(tmp_path: Path) -> None:
    rows = [make_row(i, suspicion=i / 10, pi=0.3) for i in range(10)]
    fig = compute_report(rows)
    assert fig.accuracy is None
    assert "no drawn row has been reviewed" in fig.undefined["accuracy"]
    assert fig.naive_accuracy is None
    assert fig.auroc is None and fig.precision_at_k is None
    assert fig.recall_at == ((0.1, None), (0.2, None))
    assert fig.labels_avoided == 10
    html = write_report(fig, rows, tmp_path, title="Empty").html.read_text(encoding="utf-8")
    assert "cannot be estimated yet" in html
    assert "undefined: no drawn row has been reviewed yet" in html


def test_all_pending() -> None:
    rows = [make_row(i, suspicion=0.9, pi=1.0, in_sample=True, pending=True) for i in range(4)]
    fig = compute_report(rows)
    assert fig.accuracy is None
    assert "pending" in fig.undefined["accuracy"]
    assert (fig.n_pending, fig.n_estimate, fig.n_drawn) == (4, 0, 4)
    assert fig.provisional


def test_no_draw_at_all() -> None:
    rows = [make_row(0, human="a"), make_row(1, human="b"), make_row(2)]
    fig = compute_report(rows)
    assert fig.accuracy is None and fig.expected_reviews is None
    assert "no review draw" in fig.undefined["accuracy"]
    assert fig.n_no_draw == 3
    assert fig.naive_accuracy == pytest.approx(0.5)  # reviewed rows still count here


def test_single_class_reviewed(tmp_path: Path) -> None:
    rows = [make_row(i, human="a", suspicion=i / 5, pi=1.0, in_sample=True) for i in range(5)]
    rows.append(make_row(5, suspicion=0.0, pi=0.1))
    fig = compute_report(rows)
    assert fig.auroc is None and fig.weighted_auroc is None
    assert fig.undefined["auroc"].startswith("only one class reviewed")
    assert fig.recall_at == ((0.1, None), (0.2, None))
    assert fig.precision_at_k == 0.0
    assert fig.accuracy is not None and fig.accuracy.estimate == 1.0
    html = write_report(fig, rows, tmp_path, title="One class").html.read_text(encoding="utf-8")
    assert "undefined: only one class reviewed" in html


def test_all_reviewed_wrong_keeps_recall() -> None:
    rows = [make_row(i, human="z", suspicion=i / 5, pi=1.0, in_sample=True) for i in range(5)]
    fig = compute_report(rows)
    assert fig.auroc is None
    assert fig.recall_at[1] == (0.2, pytest.approx(1 / 5))  # m = 1 of 5 wrong
    assert fig.accuracy is not None and fig.accuracy.estimate == 0.0


def test_zero_pi_rows_are_counted_and_flagged() -> None:
    rows = [make_row(0, human="z", suspicion=0.9, pi=1.0, in_sample=True)]
    rows += [make_row(i, suspicion=0.1, pi=0.0) for i in range(1, 4)]
    fig = compute_report(rows)
    assert fig.n_zero_pi == 3
    assert fig.accuracy is not None and fig.accuracy.estimate == pytest.approx(0.75)


def test_multi_label_keys_and_missing_machine_correct() -> None:
    row = make_row(0, label=["b", "a"], human=["a", "b"], suspicion=0.4, pi=1.0, in_sample=True)
    row["machine_correct"] = None  # falls back to comparing the label sets
    other = make_row(1, label=[], suspicion=0.1, pi=0.5)
    fig = compute_report([row, other])
    assert fig.n_reviewed_wrong == 0
    assert {item.label for item in fig.per_label} == {"a, b", "(no label)"}


def test_free_labels_make_the_share_undefined() -> None:
    fig = compute_report(hand_rows(), cost_per_human_label=0.0)
    assert fig.money_saved == 0.0
    assert fig.money_saved_share is None
    assert "llm_cost" in fig.undefined


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"suspicion": 1.5}, "task_id 0.*suspicion must lie in"),
        ({"suspicion": None}, "suspicion must be a number"),
        ({"pi": 0.0}, "delta is 1 but pi"),
        ({"delta": 2}, "delta must be 0 or 1"),
        ({"pending": True}, "pending and reviewed"),
        ({"reviewed": "yes"}, "reviewed must be a boolean"),
    ],
)
def test_invalid_rows_are_quoted(change: dict[str, Any], message: str) -> None:
    row = make_row(0, human="a", pi=1.0, in_sample=True) | change
    with pytest.raises(ValueError, match=message):
        compute_report([row])


@pytest.mark.parametrize(
    "options",
    [
        {"cost_per_human_label": -1.0},
        {"llm_cost": math.nan},
        {"confidence": 1.0},
        {"top_k": 0},
    ],
)
def test_invalid_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        compute_report(hand_rows(), **options)


def test_as_dict_is_strict_json(hand: ReportFigures) -> None:
    data = json.loads(json.dumps(hand.as_dict(), allow_nan=False))
    assert data["accuracy"]["estimate"] == pytest.approx(0.7)
    assert data["provisional"] is True


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, hand: ReportFigures) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("report") / "nested"
    paths = write_report(hand, hand_rows(), out, title="Hand <rows> & co")
    assert paths.html == out / "report.html" and paths.png == out / "report.png"
    return paths.html.read_text(encoding="utf-8"), paths.png


def test_html_is_self_contained(written: tuple[str, Path]) -> None:
    html, _ = written
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(?!data:)[a-z]+:""", html, re.IGNORECASE)
    assert "<script" not in html.lower() and "<link" not in html.lower()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(images) == 5
    for data in images:
        assert base64.b64decode(data).startswith(PNG_SIGNATURE)


def test_html_has_the_key_numbers(written: tuple[str, Path]) -> None:
    html, _ = written
    assert "Hand &lt;rows&gt; &amp; co" in html  # title escaped
    assert "70.0%" in html  # ACT estimate
    assert "20.0% – 80.0%" in html  # its interval (test_act_accuracy_by_hand)
    assert "1.0 (0.0 – 6.0)" in html  # wrong labels left
    assert "60.0%" in html and "biased" in html  # naive, labelled
    assert "0.500" in html and "0.333" in html  # AUROC, weighted AUROC
    assert "5 of 12 (41.7%)" in html  # human share
    assert "4.8 expected · 4 drawn" in html  # budget
    assert "0.50 (41.7% of labelling everything by hand)" in html  # money saved
    assert "Provisional" in html and "biased toward suspicious rows" in html
    assert "How to read this" in html


def test_png_is_valid(written: tuple[str, Path]) -> None:
    _, png = written
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.size[0] >= 1000 and image.size[1] >= 600


def test_write_report_rejects_other_rows(hand: ReportFigures, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="same rows"):
        write_report(hand, hand_rows()[:3], tmp_path, title="x")
