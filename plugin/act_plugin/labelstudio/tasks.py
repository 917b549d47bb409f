"""Reading the tasks Label Studio returns: timestamps, model_versions, the ACT prediction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from act_backend.records import parse_time

__all__ = ["act_prediction", "model_versions", "parse_time", "resolve_model_version"]


def model_versions(tasks: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """How many tasks carry at least one prediction of each model_version.

    >>> model_versions([{"predictions": [{"model_version": "a"}, {"model_version": "a"}]},
    ...                 {"predictions": [{"model_version": "b"}]}, {"predictions": []}])
    Counter({'a': 1, 'b': 1})
    """
    counts: Counter[str] = Counter()
    for task in tasks:
        versions = {p.get("model_version") for p in task.get("predictions") or []}
        counts.update(v for v in versions if isinstance(v, str) and v)
    return counts


def resolve_model_version(
    requested: str | None, project_version: str | None, versions: Mapping[str, int]
) -> str:
    """Which model_version marks the ACT predictions; ValueError saying what to do otherwise.

    ``requested`` if given (it must occur); else the project's model_version when predictions
    carry it; else the only model_version present.

    >>> resolve_model_version(None, "gone", {"act-1": 3})
    'act-1'
    """
    if not versions:
        raise ValueError("no task of this project has a prediction: run `ls-act annotate` first")
    found = ", ".join(f"{v!r} ({n} tasks)" for v, n in sorted(versions.items()))
    if requested:
        if requested not in versions:
            raise ValueError(
                f"no prediction has model_version {requested!r} (found: {found}); run "
                "`ls-act annotate` first or pick one of those"
            )
        return requested
    if project_version and project_version in versions:
        return project_version
    if len(versions) == 1:
        return next(iter(versions))
    raise ValueError(
        f"the project's model_version {project_version!r} matches no prediction and several "
        f"versions exist ({found}): pass the ACT model_version explicitly"
    )


def act_prediction(task: Mapping[str, Any], model_version: str) -> dict[str, Any] | None:
    """The task's newest prediction of ``model_version`` (by created_at, then id), or None.

    >>> task = {"predictions": [{"id": 1, "model_version": "m"}, {"id": 2, "model_version": "m"}]}
    >>> act_prediction(task, "m")["id"], act_prediction(task, "other")
    (2, None)
    """
    matching = [p for p in task.get("predictions") or [] if p.get("model_version") == model_version]
    if not matching:
        return None
    return max(matching, key=lambda p: (parse_time(p.get("created_at")), p.get("id") or 0))
