"""`ls-act demo`: the whole ACT loop on one machine, with no API key and no download.

A real Label Studio 1.23.2 (SQLite, 127.0.0.1, data in ``data_dir``), our backend on the
configured engine (the offline embedding default when nothing is configured), a project built
from the packaged Debian package descriptions, bulk annotation, and a budgeted review sample.
A second run on the same ``data_dir`` reuses everything it finds there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from label_studio_sdk import LabelStudio
from pydantic import SecretStr
from werkzeug.serving import make_server

from act_backend.app import create_app
from act_backend.predictor import Credentials, Outcome, build_predictor
from act_backend.settings import Settings

from .annotate import AnnotateResult, annotate_project
from .connect import connect_backend
from .demo_data import DEBIAN_SECTIONS, load_debian_dataset
from .local_ls import LocalLabelStudio, start_label_studio
from .review import ReviewDraw, draw_sample

PROJECT_TITLE = "ACT demo: Debian packages by section"
DEMO_SEED = 2025


def demo_label_config() -> str:
    """Text classification over the packaged sections, with the critic's rationale shown."""
    choices = "\n".join(
        f'    <Choice value="{section}" hint="{hint}"/>'
        for section, hint in DEBIAN_SECTIONS.items()
    )
    return f"""<View>
  <Text name="text" value="$text"/>
  <Choices name="section" toName="text" choice="single" showInline="true">
{choices}
  </Choices>
  <Header value="Critic's note (machine)"/>
  <TextArea name="act_rationale" toName="text" editable="false" rows="2"/>
</View>"""


@dataclass
class DemoState:
    """What a demo run set up, for the final instructions."""

    label_studio: LocalLabelStudio
    backend_url: str
    project_id: int
    imported: int
    annotation: AnnotateResult
    draw: ReviewDraw

    def project_url(self, view_id: int | None = None) -> str:
        tab = f"?tab={view_id}" if view_id else ""
        return f"{self.label_studio.url}/projects/{self.project_id}/data{tab}"


@contextmanager
def serve_in_thread(settings: Settings, port: int) -> Iterator[str]:
    """Our backend on 127.0.0.1:port in a background thread; stopped on exit."""
    app = create_app(settings)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        app.config["ACT_SERVICE"].close()


def ensure_project(client: LabelStudio) -> tuple[int, int]:
    """The demo project (created and filled once); returns (project id, tasks imported now)."""
    for project in client.projects.list():
        if project.title == PROJECT_TITLE and project.id is not None:
            return project.id, 0
    project = client.projects.create(title=PROJECT_TITLE, label_config=demo_label_config())
    rows = load_debian_dataset()
    # Only the description: the section would give the answer away, and so would most package
    # names (fonts-*, postgresql-*).
    tasks = [{"data": {"text": r["text"]}} for r in rows]
    client.projects.import_tasks(id=project.id, request=tasks)  # type: ignore[arg-type]
    return int(project.id), len(tasks)  # type: ignore[arg-type]


@contextmanager
def run_demo(
    settings: Settings,
    data_dir: Path,
    *,
    ls_port: int | None = 8080,
    backend_port: int = 9090,
    budget: float = 0.2,
    on_stage: Callable[[str], None] = lambda stage: None,
    on_annotate_start: Callable[[int], None] | None = None,
    on_task: Callable[[Outcome], None] | None = None,
) -> Iterator[DemoState]:
    """Bring everything up and set the project up; everything stops when the block exits."""
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = settings.model_copy(update={"cache_dir": data_dir / "backend-cache"})
    on_stage("starting Label Studio 1.23.2 (the first start runs migrations, ~30 s)")
    with start_label_studio(data_dir / "label-studio", port=ls_port) as ls:
        settings = settings.model_copy(
            update={"label_studio_url": ls.url, "label_studio_api_key": SecretStr(ls.token)}
        )
        on_stage("starting the backend")
        with serve_in_thread(settings, backend_port) as backend_url:
            client = ls.client()
            project_id, imported = ensure_project(client)
            on_stage(f"connecting the backend to project {project_id}")
            connect_backend(
                client, project_id, backend_url, model_version=settings.resolved_model_version
            )
            on_stage("annotating (machine labels + critic suspicion)")
            predictor = build_predictor(settings)
            try:
                annotation = annotate_project(
                    client,
                    project_id,
                    predictor,
                    model_version=settings.resolved_model_version,
                    credentials=Credentials(ls.url, ls.token),
                    rationale_field=settings.rationale_field,
                    on_start=on_annotate_start,
                    on_task=on_task,
                )
            finally:
                predictor.close()
            on_stage(f"drawing the review sample ({budget:.0%} budget)")
            draw = draw_sample(client, project_id, budget=budget, seed=DEMO_SEED)
            yield DemoState(ls, backend_url, project_id, imported, annotation, draw)


def instructions(state: DemoState) -> list[tuple[str, Any]]:
    """What to tell the person at the keyboard: where to go and what to click."""
    ls = state.label_studio
    draw = state.draw
    return [
        ("Label Studio", ls.url),
        ("login", f"{ls.username} / {ls.password}"),
        ("API token", ls.token),
        ("backend", state.backend_url),
        ("review sample", state.project_url(draw.view_id)),
        ("all tasks, most suspicious first", state.project_url(draw.suspicious_view_id)),
        (
            "what to click",
            'Open the "ACT review sample" tab, then Label → "Label Tasks As Displayed": '
            f"{draw.drawn} tasks, most suspicious first. Fix or accept each machine label.",
        ),
        (
            "afterwards",
            f"ls-act sync --project {state.project_id} --out training-set "
            f"--label-studio-url {ls.url} --api-key <API token>; then ls-act report",
        ),
    ]
