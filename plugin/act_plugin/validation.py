"""One home for argument checks: every public entry point validates with these.

Each check returns the value in its canonical type or raises ``ValueError`` with one message
template, "NAME must REQUIREMENT; got VALUE" (callers with their own error type re-raise it).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt


def first_bad(values: np.ndarray, bad: np.ndarray, name: str, requirement: str) -> str:
    """The message for the first entry of ``values`` flagged in ``bad``."""
    index = int(np.flatnonzero(bad)[0])
    return f"{name} must {requirement}; got {values[index].item()!r} at index {index}"


def as_vector(values: npt.ArrayLike, name: str, *, n: int | None = None) -> np.ndarray:
    """A non-empty 1-D float array of finite numbers (of length ``n`` when given)."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of numbers; got {values!r:.200}") from err
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} must not be empty")
    if n is not None and array.size != n:
        raise ValueError(f"{name} must have length {n} (one entry per item); got {array.size}")
    return array


def as_finite(values: npt.ArrayLike, name: str, *, n: int | None = None) -> np.ndarray:
    array = as_vector(values, name, n=n)
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(first_bad(array, bad, name, "be finite"))
    return array


def as_weights(values: npt.ArrayLike, name: str, *, n: int | None = None) -> np.ndarray:
    """A 1-D float array of finite numbers ≥ 0."""
    array = as_finite(values, name, n=n)
    bad = array < 0.0
    if bad.any():
        raise ValueError(first_bad(array, bad, name, "be >= 0"))
    return array


def as_unit(values: npt.ArrayLike, name: str, *, n: int | None = None) -> np.ndarray:
    """A 1-D float array with every entry in [0, 1]."""
    array = as_vector(values, name, n=n)
    bad = ~((array >= 0.0) & (array <= 1.0))  # also catches NaN
    if bad.any():
        raise ValueError(first_bad(array, bad, name, "lie in [0, 1]"))
    return array


def as_indicator(values: npt.ArrayLike, name: str, *, n: int | None = None) -> np.ndarray:
    """A 1-D bool array from booleans or numbers that are exactly 0 or 1."""
    array = as_vector(values, name, n=n)
    bad = ~((array == 0.0) | (array == 1.0))
    if bad.any():
        raise ValueError(first_bad(array, bad, name, "be 0/1 or boolean"))
    return array == 1.0


def as_review(delta: npt.ArrayLike, pi: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validated (δ, π): same length, π ∈ [0, 1], and π > 0 wherever δ = 1."""
    pi_array = as_unit(pi, "pi")
    delta_array = as_indicator(delta, "delta", n=pi_array.size)
    bad = delta_array & (pi_array == 0.0)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"delta is 1 where pi is 0 (index {index}): an item drawn with probability 0 "
            "cannot have been reviewed"
        )
    return delta_array, pi_array


def check_real(value: object, name: str, *, low: float, high: float, closed: str) -> float:
    """``value`` as a float in the interval [low, high] with ends open/closed per ``closed``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number; got {value!r}")
    number = float(value)
    low_ok = number >= low if closed in ("both", "left") else number > low
    high_ok = number <= high if closed in ("both", "right") else number < high
    if math.isnan(number) or not (low_ok and high_ok):
        left = "[" if closed in ("both", "left") else "("
        right = "]" if closed in ("both", "right") else ")"
        raise ValueError(f"{name} must lie in {left}{low}, {high}{right}; got {value!r}")
    return number


def check_lam(lam: object) -> float:
    """λ, the machine labels' weight in the ACT loss, as a float in [0, 1]."""
    return check_real(lam, "lam", low=0.0, high=1.0, closed="both")


def check_soft_power(power: object) -> float:
    """k of the per-row λ_i = λ(1 − p̂_i)^k of a sync, as a float ≥ 0 (0: one λ for all)."""
    return check_real(power, "soft_power", low=0.0, high=math.inf, closed="left")


def budget_count(budget: object, n: int) -> float:
    """B as an expected count: an int in [1, N], or a float fraction in (0, 1) times N."""
    if isinstance(budget, (int, np.integer)) and not isinstance(budget, bool):
        if not 1 <= budget <= n:
            raise ValueError(
                f"budget as a count must be an int from 1 to N={n} (the number of items); "
                f"got {budget!r}"
            )
        return float(budget)
    if isinstance(budget, (float, np.floating)):
        if not 0.0 < budget < 1.0:
            raise ValueError(
                "budget as a float is a fraction of the items and must lie in (0, 1); "
                f"got {budget!r} (pass an int for a count)"
            )
        return float(budget) * n
    raise ValueError(f"budget must be an int count or a float fraction in (0, 1); got {budget!r}")
