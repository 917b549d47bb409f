"""How real OpenAI-compatible servers take or refuse structured output, imitated by the stub.

``OpenAIStubServer(dialect=...)`` answers a request in a form its server takes (with the schema
as the grammar) and refuses one in a form it does not, with that server's status and message:

- ``openai`` (default): every form taken (lenient, as the stub always was).
- ``llama_cpp_python``: llama-cpp-python 0.3.x. ``response_format.type`` must be ``text`` or
  ``json_object`` (the schema beside the type); ``json_schema`` fails pydantic validation, which
  that server answers with HTTP **500**. Fields it does not know (``guided_json``,
  ``structured_outputs``) are dropped silently. Its ``top_logprobs`` come from the model before
  the grammar constrains it (``pre_grammar_logprobs``).
- ``vllm_guided_json``: an older vLLM: ``guided_json`` taken; ``response_format`` ``json_schema``
  or a schema beside ``json_object`` and any unknown field are 400 validation errors.
- ``vllm_structured_outputs``: the same with ``structured_outputs: {json: ...}`` as the one form.
- ``no_response_format``: any ``response_format``, ``guided_json`` or ``structured_outputs`` is a
  400 "Unrecognized request argument"; only the plain prompt passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Request forms, as ``ChatRequest.dialect`` names them (``act_backend.dialects`` spells them).
FORMS = (
    "json_schema",
    "json_object_schema",
    "structured_outputs",
    "guided_json",
    "json_object",
)
_FIELD = {"structured_outputs": "structured_outputs", "guided_json": "guided_json"}


@dataclass(frozen=True)
class ServerDialect:
    """Which request forms a server answers, which it drops silently, and how it refuses."""

    accepts: frozenset[str]
    ignores: frozenset[str] = frozenset()
    refusal_status: int = 400
    refusal_type: str = "invalid_request_error"
    style: str = "pydantic"
    pre_grammar_logprobs: bool = False

    def refusal(self, form: str, body: dict[str, Any]) -> tuple[int, str, str]:
        """(status, error type, message) refusing a request in ``form``."""
        field = _FIELD.get(form, "response_format")
        if self.style == "unrecognized":
            return (
                self.refusal_status,
                self.refusal_type,
                (f"Unrecognized request argument supplied: {field}"),
            )
        return self.refusal_status, self.refusal_type, _pydantic_message(form, field, body)


def _pydantic_message(form: str, field: str, body: dict[str, Any]) -> str:
    if form == "json_schema":
        return (
            "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': "
            "\"Input should be 'text' or 'json_object'\", 'input': 'json_schema', 'ctx': "
            "{'expected': \"'text' or 'json_object'\"}}]"
        )
    where = "response_format.schema" if form == "json_object_schema" else field
    return (
        f"1 validation error for ChatCompletionRequest\n{where}\n  Extra inputs are not "
        "permitted [type=extra_forbidden]"
    )


_OTHERS = frozenset({"guided_json", "structured_outputs"})
SERVER_DIALECTS: dict[str, ServerDialect] = {
    "openai": ServerDialect(accepts=frozenset(FORMS)),
    "llama_cpp_python": ServerDialect(
        accepts=frozenset({"json_object", "json_object_schema"}),
        ignores=_OTHERS,
        refusal_status=500,
        refusal_type="internal_server_error",
        pre_grammar_logprobs=True,
    ),
    "vllm_guided_json": ServerDialect(
        accepts=frozenset({"json_object", "guided_json"}), refusal_type="BadRequestError"
    ),
    "vllm_structured_outputs": ServerDialect(
        accepts=frozenset({"json_object", "structured_outputs"}), refusal_type="BadRequestError"
    ),
    "no_response_format": ServerDialect(accepts=frozenset(), style="unrecognized"),
}


def requested_form(body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """(form, schema) of a request's structured output: which fields ask for it, and the
    schema the answer must follow (None for plain JSON mode or a plain prompt).

    >>> requested_form({"response_format": {"type": "json_object", "schema": {}}})
    ('json_object_schema', {})
    >>> requested_form({"guided_json": {"type": "object"}})
    ('guided_json', {'type': 'object'})
    >>> requested_form({})
    (None, None)
    """
    rf = body.get("response_format")
    rf = rf if isinstance(rf, dict) else {}
    if rf.get("type") == "json_schema":
        js = rf.get("json_schema")
        schema = js.get("schema") if isinstance(js, dict) else None
        return "json_schema", schema if isinstance(schema, dict) else None
    if rf.get("type") == "json_object":
        schema = rf.get("schema")
        return ("json_object_schema", schema) if isinstance(schema, dict) else ("json_object", None)
    outputs = body.get("structured_outputs")
    if isinstance(outputs, dict) and isinstance(outputs.get("json"), dict):
        return "structured_outputs", outputs["json"]
    if isinstance(body.get("guided_json"), dict):
        return "guided_json", body["guided_json"]
    return None, None


#: Tokens a model likes before a JSON grammar masks them (llama-cpp-python's top_logprobs).
PRE_GRAMMAR_TOKENS = {"JSON": -0.4, "The": -1.1, "Sure": -1.9}


def pre_grammar(positions: list[dict[str, float]]) -> list[dict[str, float]]:
    """Each position as an unconstrained model saw it: the generated token first (as the stub
    orders them), now unlikely, beside the tokens the grammar masked.

    >>> pre_grammar([{'{"': -0.01}])
    [{'{"': -3.01, 'JSON': -0.4, 'The': -1.1, 'Sure': -1.9}]
    """
    out = []
    for pos in positions:
        if not pos:
            out.append(pos)
            continue
        sampled = next(iter(pos))
        rest = {t: lp - 3.0 for t, lp in pos.items() if t != sampled}
        out.append({sampled: pos[sampled] - 3.0, **PRE_GRAMMAR_TOKENS, **rest})
    return out
