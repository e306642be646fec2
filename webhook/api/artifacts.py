"""Artifacts: job bundles and checkpoints, as files under the data dir.

Behind :class:`fitwire.agent.backends.ArtifactStore`, so an object store can take
the place of the files later. Nodes read anything and write checkpoints;
bundles arrive with ``POST /api/v1/jobs``; admins may read.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, g, request

from fitwire.agent.backends import ArtifactStore, LocalArtifacts
from fitwire.settings import Settings
from fitwire.webhook.api.common import ID_PATTERN
from fitwire.webhook.api.nodes import user_or_node
from fitwire.webhook.store.base import DoesNotExist, InvalidRequest, PermissionDenied

bp = Blueprint("artifacts", __name__, url_prefix="/api/v1")

ARTIFACT_MAX_BYTES = 512 * 1024 * 1024
"""Checkpoints of real models are far above the JSON body limit."""


def artifacts() -> ArtifactStore:
    """The app's artifact store: ``ARTIFACTS`` (a ready store), else files under ``ARTIFACTS_DIR``
    or the data dir's ``artifacts/``."""
    found = current_app.extensions.get("fitwire_artifacts") or current_app.config.get("ARTIFACTS")
    if found is None:
        root = current_app.config.get("ARTIFACTS_DIR") or Settings.from_env().data_dir / "artifacts"
        found = LocalArtifacts(Path(root))
    current_app.extensions["fitwire_artifacts"] = found
    return found  # type: ignore[no-any-return]


def _key(kind: str, name: str) -> str:
    if kind not in ("bundles", "checkpoints") or not ID_PATTERN.match(name):
        raise InvalidRequest("An artifact key is bundles/<id> or checkpoints/<job id>.")
    return f"{kind}/{name}"


@bp.put("/artifacts/<kind>/<name>")
@user_or_node
def put_artifact(kind: str, name: str) -> tuple[str, int]:
    if g.node is None:
        raise PermissionDenied("Only trainer nodes write artifacts; submit bundles with POST /api/v1/jobs.")
    key = _key(kind, name)
    if kind != "checkpoints":
        raise PermissionDenied("Nodes write checkpoints only.")
    request.max_content_length = ARTIFACT_MAX_BYTES
    artifacts().put(key, request.get_data())
    return "", 204


@bp.get("/artifacts/<kind>/<name>")
@user_or_node
def get_artifact(kind: str, name: str) -> Response:
    if g.node is None and not g.user.is_admin:
        raise PermissionDenied("Only trainer nodes and admins read artifacts.")
    key = _key(kind, name)
    data = artifacts().get(key)
    if data is None:
        raise DoesNotExist(f"No artifact {key!r}.")
    return Response(data, mimetype="application/octet-stream")
