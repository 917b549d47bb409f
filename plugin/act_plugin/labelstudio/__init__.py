"""Label Studio, as ACT reaches it: the :class:`Gateway` (one HTTP client, one retry policy) and
helpers that read the tasks it returns. annotate, review, connect and sync all go through it."""

from .gateway import Gateway, LabelStudioError, LabelStudioUnavailable
from .tasks import act_prediction, model_versions, parse_time, resolve_model_version

__all__ = [
    "Gateway",
    "LabelStudioError",
    "LabelStudioUnavailable",
    "act_prediction",
    "model_versions",
    "parse_time",
    "resolve_model_version",
]
