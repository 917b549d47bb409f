"""Pull the reviewed tasks of an ACT project into a weighted training set.

Lin et al., "ACT as Human", NeurIPS 2025, arXiv:2511.09833 (step 4, "Train"). One row per task
with an ACT prediction; a reviewed task carries both labels and the weights of the ACT loss

    w_machine = λ (1 − δ/π),   w_human = δ/π     (:func:`act_plugin.act_math.act_weights`),

where δ = 1 iff a human reviewed the task (in the drawn sample, or outside it: then π is taken as
1) and π is the task's inclusion probability from ``ls-act review`` (taken as 1 without a draw).

Which annotations count as a human review (Label Studio 1.23.2, read in its source and checked
on a real server): the task's annotations (drafts are separate objects and never count) that

- are not cancelled ("skipped", ``was_cancelled``);
- were not made by a model: ``completed_by`` not in ``bot_users``; ``last_action`` not one of
  "prediction", "propagated_annotation", "imported" (the Enterprise edition records these; the
  open-source edition never sets ``last_action``); not bulk-created by the server, which leaves
  ``updated_by`` empty (the Data Manager action "Create annotations from predictions", task
  import with annotations) while the labeling UI and the annotations API always set it; and
  not imported (``import_id`` set);

and of those the latest (``updated_at``, then id). Its label is its region of the control that
the machine label fills (``from_name``). A label outside the current label config, or a machine
label outside it (the config changed), makes the task a problem: its row is kept, not reviewed
(human_label None), and listed in :attr:`SyncResult.problems`.

Outputs (``training_set.jsonl``, ``.csv``, ``.parquet``, ``hf_dataset/``) are written to
temporary names and renamed only when everything was fetched and written, so a failure leaves
the previous outputs as they were. The same project state gives byte-identical files (the HF
dataset too: its fingerprint is the SHA-256 of the JSONL).

Data flows one way through the package: :mod:`.fetch` (Label Studio → task records, and the
saved state) → :mod:`.rows` (records → rows and weights) → :mod:`.outputs` (rows → files);
:mod:`.run` drives them.

Incremental sync (verified on Label Studio 1.23.2): creating, updating, cancelling or deleting
an annotation, creating/updating/deleting a prediction, and editing a task's data or meta all
change the task's ``updated_at`` (and the counters ``total_annotations``,
``cancelled_annotations``, ``total_predictions`` where they apply); saving a draft does not.
So each sync lists every task's ``id, updated_at`` and counters (``include=``, no predictions
or annotations), fetches in full (``fields=all``) only tasks that are new or whose fingerprint
changed, drops tasks that disappeared, and rebuilds every output from the merged state in
``.act-sync-state.json`` (the raw task records, so a changed label config or model_version
needs no refetch). ``full=True`` ignores the state.
"""

from .fetch import STATE_FILE
from .outputs import FORMATS, OUTPUT_NAMES, REVIEW_FILE
from .rows import COLUMNS, MODEL_LAST_ACTIONS, Problem, build_rows
from .run import SyncError, SyncResult, sync_training_set

__all__ = [
    "COLUMNS",
    "FORMATS",
    "MODEL_LAST_ACTIONS",
    "OUTPUT_NAMES",
    "REVIEW_FILE",
    "STATE_FILE",
    "Problem",
    "SyncError",
    "SyncResult",
    "build_rows",
    "sync_training_set",
]
