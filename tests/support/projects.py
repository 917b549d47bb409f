"""Helpers for e2e tests that need ACT predictions in a real Label Studio (no annotate command)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import httpx
from label_studio_sdk import LabelStudio

from act_backend.records import review_records
from tests.support.configs import TEXT

MODEL_VERSION = "act-gpt-4o+gpt-4o-mini-cot"

CHOICES = TEXT  # sentiment choices with the critic's rationale field

TEXTAREA = """<View>
  <Text name="question" value="$question"/>
  <TextArea name="answer" toName="question"/>
  <TextArea name="act_rationale" toName="question" editable="false"/>
</View>"""


def choice(value: str, control: str = "sentiment") -> list[dict[str, Any]]:
    """A Choices result (one region)."""
    return [
        {"from_name": control, "to_name": "text", "type": "choices", "value": {"choices": [value]}}
    ]


def text_answer(value: str) -> list[dict[str, Any]]:
    """A TextArea result for the TEXTAREA config."""
    return [
        {
            "from_name": "answer",
            "to_name": "question",
            "type": "textarea",
            "value": {"text": [value]},
        }
    ]


def rationale(text: str, to_name: str = "text") -> dict[str, Any]:
    return {
        "from_name": "act_rationale",
        "to_name": to_name,
        "type": "textarea",
        "value": {"text": [text]},
    }


def task_ids(client: LabelStudio, project_id: int) -> list[int]:
    return sorted(int(t.id) for t in client.tasks.list(project=project_id) if t.id is not None)


def read_tasks(client: LabelStudio, project_id: int) -> dict[int, dict[str, Any]]:
    """Every task with meta, predictions and annotations, read through the SDK."""
    tasks = client.tasks.list(project=project_id, fields="all", page_size=100)
    return {int(t.id): t.model_dump() for t in tasks if t.id is not None}


def review_records_of(client: LabelStudio, project_id: int) -> dict[int, dict[str, Any] | None]:
    """Each task's review record (None without one), ledgers spread over the tasks they hold."""
    tasks = read_tasks(client, project_id)
    records = review_records({t: task.get("meta") for t, task in tasks.items()})
    return {t: records.get(t) for t in tasks}


def write_act_predictions(
    client: LabelStudio,
    suspicion: Mapping[int, float],
    *,
    labels: Mapping[int, str] | None = None,
    model_version: str = MODEL_VERSION,
    backend_style: Collection[int] = (),
) -> None:
    """One ACT prediction per task: score = 1 − suspicion, mislabeling = suspicion.

    Tasks in ``backend_style`` get no mislabeling (as the ML backend writes them): their
    suspicion is read back as 1 − score.
    """
    for task_id, eps in suspicion.items():
        label = (labels or {}).get(task_id, "positive")
        extra = {} if task_id in backend_style else {"mislabeling": eps}
        client.predictions.create(
            task=task_id,
            result=[*choice(label), rationale(f"why {task_id}")],
            score=1.0 - eps,
            model_version=model_version,
            **extra,
        )


def client_at(url: str, token: str) -> LabelStudio:
    """An SDK client for ``url`` (e.g. a proxy in front of the test server)."""
    return LabelStudio(
        base_url=url, api_key=token, httpx_client=httpx.Client(timeout=30, trust_env=False)
    )


def ls_http(label_studio: Any) -> httpx.Client:
    """Plain HTTP to the test server with the legacy token."""
    return httpx.Client(
        base_url=label_studio.url, headers=label_studio.headers, timeout=60, trust_env=False
    )


def view_task_ids(http: httpx.Client, project_id: int, view_id: int) -> list[int]:
    """The tasks a Data Manager view shows, in its order."""
    response = http.get(
        "/api/tasks", params={"project": project_id, "view": view_id, "page_size": 1000}
    )
    response.raise_for_status()
    return [int(t["id"]) for t in response.json()["tasks"]]
