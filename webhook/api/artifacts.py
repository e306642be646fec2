"""Artifacts: job bundles and checkpoints, as files under the data dir.

Behind :class:`fitwire.contract.artifacts.StreamingArtifactStore`, so an object store can
take the place of the files later. Bundles arrive with ``POST /api/v1/jobs``; a running
job's token (its child) reads its own bundle and reads and writes its own checkpoint, and
nothing else; admins may read. Node tokens read trained models only (``trained/<run id>`` and
its ``-meta``): an agent's predictor serves predictions from them; the job's child does the rest.

Artifacts go both ways as streams: an upload is copied to a temporary file next to
its artifact in chunks and renamed over it only when complete, so a checkpoint of
gigabytes is never whole in the webhook's memory, and an upload over
``ARTIFACT_MAX_BYTES`` (``FITWIRE_ARTIFACT_MAX_BYTES``) is a 413 naming that limit
that leaves any artifact stored under the key as it was.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, g, request, send_file

from fitwire.artifacts import LocalArtifacts
from fitwire.contract.artifacts import StreamingArtifactStore, trained_metadata_key
from fitwire.contract.errors import BadRequest, NotFound, PermissionDenied
from fitwire.contract.http import ID_PATTERN
from fitwire.settings import Settings
from fitwire.webhook.api.common import raw_body
from fitwire.webhook.api.nodes import user_or_node

bp = Blueprint("artifacts", __name__, url_prefix="/api/v1")


def artifacts() -> StreamingArtifactStore:
    """The app's artifact store: ``ARTIFACTS`` (a ready store), else files under ``ARTIFACTS_DIR``
    or the data dir's ``artifacts/``."""
    found = current_app.extensions.get("fitwire_artifacts") or current_app.config.get("ARTIFACTS")
    if found is None:
        root = current_app.config.get("ARTIFACTS_DIR") or Settings.from_env().data_dir / "artifacts"
        found = LocalArtifacts(Path(root))
    current_app.extensions["fitwire_artifacts"] = found
    return found  # type: ignore[no-any-return]


ARTIFACT_KINDS = ("bundles", "checkpoints", "trained")


def _key(kind: str, name: str) -> str:
    if kind not in ARTIFACT_KINDS or not ID_PATTERN.match(name):
        raise BadRequest("An artifact key is bundles/<id>, checkpoints/<job id> or trained/<run id>.")
    return f"{kind}/{name}"


def _job_writes(kind: str, name: str) -> bool:
    """What a running job writes: its own checkpoint, and a spec training its trained model."""
    if kind == "checkpoints":
        return bool(name == g.job.job_id)
    output = (g.job.spec.get("train_spec") or {}).get("output_key")
    return kind == "trained" and output is not None and f"{kind}/{name}" in (output, trained_metadata_key(output))


def _job_reads(kind: str, name: str) -> bool:
    """What a running job reads: its bundle, its checkpoint, and the trained model it retrains from."""
    if kind == "bundles":
        return bool(name == g.job.spec.get("bundle"))
    train_spec = g.job.spec.get("train_spec") or {}
    return _job_writes(kind, name) or train_spec.get("initial_weights") == f"{kind}/{name}"


@bp.put("/artifacts/<kind>/<name>")
@raw_body
@user_or_node
def put_artifact(kind: str, name: str) -> tuple[str, int]:
    key = _key(kind, name)
    if g.job is None or not _job_writes(kind, name):
        raise PermissionDenied("Only a running job writes an artifact: its own checkpoint (and a spec training its "
                               "trained model), with its job token; submit bundles with POST /api/v1/jobs.")
    # Checkpoints of real models are far above the JSON body limit: this request has its own,
    # which Werkzeug's stream enforces (413, naming it) before or while the body is read.
    request.max_content_length = current_app.config["ARTIFACT_MAX_BYTES"]
    if request.content_length == 0 or (
        request.content_length is None and not request.environ.get("wsgi.input_terminated")
    ):  # Werkzeug would read that as an empty stream: an empty checkpoint over a good one
        raise BadRequest("An artifact upload needs a body, with a Content-Length or chunked.")
    artifacts().put_stream(key, request.stream)
    return "", 204


@bp.get("/artifacts/<kind>/<name>")
@user_or_node
def get_artifact(kind: str, name: str) -> Response:
    key = _key(kind, name)
    if g.job is not None:
        if not _job_reads(kind, name):
            raise PermissionDenied(f"This job token reads job {g.job.job_id}'s own bundle and checkpoint only.")
    elif g.node is not None:
        if kind != "trained":  # a predictor's read: trained models, to predict from
            raise PermissionDenied("A node token reads trained models only (for predictions).")
    elif not g.user.is_admin:
        raise PermissionDenied("Only admins, a node (trained models) and a running job (its own bundle and "
                               "checkpoint) read artifacts.")
    stream = artifacts().open(key)
    if stream is None:
        raise NotFound(f"No artifact {key!r}.")
    return send_file(stream, mimetype="application/octet-stream")  # streamed; closed when sent
