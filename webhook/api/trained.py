"""Trained models: what a spec's training leaves, recorded on its model; listed, downloaded, deleted.

A spec training's job writes its trained model (``.keras``) to the artifact store under
``trained/<run id>`` with its job token. When its node reports the job ``succeeded`` and the
file is there, the model records it (``Design.trained``) and becomes *static*; deleting its
last trained model makes it *editable* again. The owner lists, downloads and deletes them.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, g, send_file

from fitwire.artifacts import LocalArtifacts
from fitwire.contract.entities import Design, Job, ListedTrained, TrainedModel
from fitwire.contract.errors import NotFound
from fitwire.webhook.api.artifacts import artifacts
from fitwire.webhook.api.common import authenticated, now, store, to_json
from fitwire.webhook.store.base import DoesNotExist

log = logging.getLogger(__name__)

bp = Blueprint("trained", __name__, url_prefix="/api/v1/models")


def trained_key(run_id: str) -> str:
    return f"trained/{run_id}"


def _size(key: str) -> int | None:
    found = artifacts()
    path = found.local_path(key) if isinstance(found, LocalArtifacts) else None
    return None if path is None else path.stat().st_size


def record_trained(job: Job) -> None:
    """Record the trained model a succeeded spec training stored (idempotent: nodes retry their reports)."""
    key = job.spec["train_spec"]["output_key"]
    size = _size(key)
    if size is None:
        log.warning("job %s succeeded without storing its trained model %s; nothing recorded", job.job_id, key)
        return
    entry = TrainedModel(run_id=job.run_id, job_id=job.job_id, created_at=now(), size=size)

    def change(current: Design | None) -> Design | None:
        if current is None or any(t.run_id == job.run_id for t in current.trained):
            return current  # the spec was removed meanwhile, or recorded already
        return current.model_copy(update={"trained": [*current.trained, entry], "state": "static"})

    store().update_design(job.owner_id, job.model_key, change)


def _trained(key: str, run_id: str) -> TrainedModel:
    model = store().get_model(g.user.id, key)
    for entry in model.design.trained if model.design else ():
        if entry.run_id == run_id:
            return entry
    raise NotFound(f"Model {model.name!r} has no trained model from run {run_id!r}.")


@bp.get("/<key>/trained")
@authenticated
def list_trained(key: str) -> dict[str, Any]:
    """The model's trained models, each with its run's final metrics."""
    model = store().get_model(g.user.id, key)
    entries = []
    for entry in model.design.trained if model.design else ():
        try:
            metrics = store().get_run(g.user.id, entry.run_id).final_logs
        except DoesNotExist:
            metrics = {}  # its run was deleted; the trained model stays until deleted itself
        entries.append(to_json(ListedTrained.of(entry, metrics)))
    return {"trained": entries}


@bp.get("/<key>/trained/<run_id>/file")
@authenticated
def download(key: str, run_id: str) -> Response:
    """The trained model as a ``.keras`` file."""
    _trained(key, run_id)
    found = artifacts()
    path = found.local_path(trained_key(run_id)) if isinstance(found, LocalArtifacts) else None
    if path is None:
        raise NotFound(f"The file of run {run_id}'s trained model is missing from the artifact store.")
    return send_file(path, mimetype="application/octet-stream", as_attachment=True,
                     download_name=f"{key}-{run_id}.keras")


@bp.delete("/<key>/trained/<run_id>")
@authenticated
def delete(key: str, run_id: str) -> tuple[str, int]:
    """Delete a trained model; the model is editable again when it was the last."""
    _trained(key, run_id)

    def change(current: Design | None) -> Design | None:
        if current is None:
            return None
        left = [t for t in current.trained if t.run_id != run_id]
        return current.model_copy(update={"trained": left, "state": current.state if left else "editable"})

    store().update_design(g.user.id, key, change)
    found = artifacts()
    if isinstance(found, LocalArtifacts):
        found.delete(trained_key(run_id))
    return "", 204
