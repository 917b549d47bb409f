"""The rows of ``ls-act sync`` as validated arrays: the one place a report reads them.

Rows are mappings with the columns ``task_id``, ``machine_label``, ``human_label``,
``reviewed``, ``in_sample``, ``outside_sample``, ``pending``, ``suspicion``, ``pi``, ``delta``,
``machine_correct``, ``annotator`` (others are ignored). A bad row raises ``ValueError`` quoting
its index and task_id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from act_plugin.validation import check_real

__all__ = ["Table", "parse_rows"]

_NO_LABEL = "(no label)"
_UNKNOWN_ANNOTATOR = "unknown"


@dataclass(frozen=True)
class Table:
    """The rows as arrays, one entry per row; validated."""

    label_key: list[str]  # machine label(s), sorted and joined with ", "
    annotator: list[str]
    reviewed: np.ndarray  # bool
    wrong: np.ndarray  # bool; False where not reviewed
    suspicion: np.ndarray  # float in [0, 1]
    pi: np.ndarray  # float; NaN where no draw; 1 for outside-sample rows
    delta: np.ndarray  # bool
    in_design: np.ndarray  # bool: has a drawn π (outside-sample rows excluded)
    in_sample: np.ndarray  # bool
    outside: np.ndarray  # bool
    pending: np.ndarray  # bool
    round: np.ndarray  # int: the round of a review in rounds that drew the row, 0 if none
    pi_rounds: np.ndarray | None  # (R, N): π of each row in each round; None unless R > 1

    @property
    def in_estimate(self) -> np.ndarray:
        """Rows in the ACT estimate: with a draw (π known) and not pending."""
        return ~np.isnan(self.pi) & ~self.pending


def _row_error(row: Mapping[str, Any], index: int, message: str) -> ValueError:
    task = row.get("task_id", "?") if isinstance(row, Mapping) else "?"
    return ValueError(f"row {index} (task_id {task!r}): {message}")


def _flag(row: Mapping[str, Any], index: int, key: str) -> bool:
    value = row.get(key, False)
    if value is None:
        return False
    if isinstance(value, (bool, np.bool_)) or value in (0, 1):
        return bool(value)
    raise _row_error(row, index, f"{key} must be a boolean; got {value!r}")


def _label_key(labels: object) -> str:
    if labels is None:
        return _NO_LABEL
    if isinstance(labels, str):
        return labels or _NO_LABEL
    items = sorted(str(label) for label in labels)  # type: ignore[attr-defined]
    return ", ".join(items) if items else _NO_LABEL


def _is_wrong(row: Mapping[str, Any], index: int) -> bool:
    """e_i from ``machine_correct``; if that is missing, label sets compared as sorted lists."""
    correct = row.get("machine_correct")
    if correct is not None:
        if not isinstance(correct, (bool, np.bool_)):
            raise _row_error(row, index, f"machine_correct must be a boolean; got {correct!r}")
        return not bool(correct)
    human = row.get("human_label")
    if human is None:
        raise _row_error(row, index, "reviewed, but both machine_correct and human_label are None")
    return _label_key(row.get("machine_label")) != _label_key(human)


def _number(row: Mapping[str, Any], index: int, key: str) -> float:
    try:
        return check_real(row.get(key), key, low=0, high=1, closed="both")
    except ValueError as err:
        raise _row_error(row, index, str(err)) from None


@dataclass(frozen=True)
class _Row:
    label_key: str
    annotator: str
    reviewed: bool
    wrong: bool
    suspicion: float
    pi: float  # NaN where no draw
    delta: bool
    in_design: bool
    in_sample: bool
    outside: bool
    pending: bool
    round: int
    pi_rounds: tuple[float, ...] | None


#: Table field → the boolean column of ``ls-act sync`` it is read from.
_FLAGS = {
    "reviewed": "reviewed",
    "in_sample": "in_sample",
    "outside": "outside_sample",
    "pending": "pending",
}


def _read_row(row: Mapping[str, Any], i: int) -> _Row:
    if not isinstance(row, Mapping):
        raise ValueError(f"row {i} must be a mapping; got {type(row).__name__}")
    flags = {field: _flag(row, i, column) for field, column in _FLAGS.items()}
    delta_value = row.get("delta", 0)
    if delta_value not in (0, 1):  # True/False pass too
        raise _row_error(row, i, f"delta must be 0 or 1; got {delta_value!r}")
    delta = delta_value == 1
    suspicion = _number(row, i, "suspicion")
    in_design = not flags["outside"] and row.get("pi") is not None
    pi = 1.0 if flags["outside"] else _number(row, i, "pi") if in_design else np.nan
    if delta and not flags["reviewed"]:
        raise _row_error(row, i, "delta is 1 but the row is not reviewed")
    if delta and not pi > 0.0:
        raise _row_error(row, i, f"delta is 1 but pi is {row.get('pi')!r} (must be > 0)")
    if flags["pending"] and flags["reviewed"]:
        raise _row_error(row, i, "pending and reviewed at once")
    who = row.get("annotator")
    drawn_in = row.get("round")
    if drawn_in is not None and (isinstance(drawn_in, bool) or not isinstance(drawn_in, int)
                                 or drawn_in < 1):  # fmt: skip
        raise _row_error(row, i, f"round must be an int >= 1 or None; got {drawn_in!r}")
    return _Row(
        label_key=_label_key(row.get("machine_label")),
        annotator=_UNKNOWN_ANNOTATOR if who is None else str(who),
        wrong=flags["reviewed"] and _is_wrong(row, i),
        suspicion=suspicion,
        pi=pi,
        delta=delta,
        in_design=in_design,
        round=drawn_in or 0,
        pi_rounds=_pi_rounds(row, i),
        **flags,
    )


def _pi_rounds(row: Mapping[str, Any], index: int) -> tuple[float, ...] | None:
    """The row's π in each round (None when a round's π is unknown or there are no rounds)."""
    values = row.get("pi_rounds")
    if values is None:
        return None
    if not isinstance(values, list):
        raise _row_error(row, index, f"pi_rounds must be a list or None; got {values!r}")
    if any(v is None for v in values):
        return None
    return tuple(_number({"pi": v, "task_id": row.get("task_id")}, index, "pi") for v in values)


def _round_matrix(parsed: Sequence[_Row]) -> np.ndarray | None:
    """(R, N) π of a review in rounds over every row; None unless every row knows R > 1 π."""
    first = parsed[0].pi_rounds
    if first is None or len(first) < 2:
        return None
    if any(r.pi_rounds is None or len(r.pi_rounds) != len(first) for r in parsed):
        return None
    return np.array([r.pi_rounds for r in parsed], dtype=float).T


def parse_rows(rows: Sequence[Mapping[str, Any]]) -> Table:
    """Validate the rows of ``ls-act sync`` into a :class:`Table`; raises ``ValueError``."""
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence):
        raise ValueError(f"rows must be a sequence of mappings; got {type(rows).__name__}")
    if len(rows) == 0:
        raise ValueError("rows is empty: nothing to report (run `ls-act sync` first?)")
    parsed = [_read_row(row, i) for i, row in enumerate(rows)]

    def column(name: str, dtype: type) -> np.ndarray:
        return np.array([getattr(r, name) for r in parsed], dtype=dtype)

    flags = ("reviewed", "wrong", "delta", "in_design", "in_sample", "outside", "pending")
    return Table(
        label_key=[r.label_key for r in parsed],
        annotator=[r.annotator for r in parsed],
        suspicion=column("suspicion", float),
        pi=column("pi", float),
        round=column("round", int),
        pi_rounds=_round_matrix(parsed),
        **{name: column(name, bool) for name in flags},
    )
