"""``GET /api/v1/models/<key>/experiment``: a shaped model as a zip to train offline (:mod:`fitwire.webhook.experiment`).

The zip is written whole to a temporary file first (the trained models in it may weigh
hundreds of MB; never in memory), then streamed. Its file goes on any error, and once it is
open for sending it is unlinked at once where the OS allows (an open file stays readable on
POSIX), else when the response closes: no download, finished or cut, leaves it behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, g, send_file

from fitwire.artifacts import LocalArtifacts
from fitwire.contract.artifacts import trained_metadata_key
from fitwire.contract.datasets import CsvInfo
from fitwire.contract.entities import Model
from fitwire.contract.errors import InvalidState
from fitwire.webhook.api.artifacts import artifacts
from fitwire.webhook.api.common import authenticated, store
from fitwire.webhook.api.trained import trained_key
from fitwire.webhook.experiment import NotShaped, TrainedFiles, folder_name, write_experiment
from fitwire.webhook.store.base import DoesNotExist

log = logging.getLogger(__name__)

bp = Blueprint("experiment", __name__, url_prefix="/api/v1/models")


def _csv_info(model: Model) -> CsvInfo | None:
    """A CSV model's dataset columns (types, delimiter): what its script reads the table with."""
    design = model.design
    if design is None or design.spec.format != "csv" or design.dataset_id is None:
        return None
    try:
        dataset = store().get_dataset(design.dataset_id, g.user.id)
    except DoesNotExist:
        raise InvalidState(f"Model {model.name!r} is shaped to dataset {design.dataset_name!r}, which no longer "
                           "exists; shape it to another.") from None
    return dataset.info if isinstance(dataset.info, CsvInfo) else None


def _trained_files(model: Model) -> list[TrainedFiles]:
    """The model's trained models whose files the artifact store holds."""
    found = artifacts()
    if not isinstance(found, LocalArtifacts) or model.design is None:
        return []  # only local files can be zipped in place (as trained.download serves them)
    files = []
    for entry in model.design.trained:
        key = trained_key(entry.run_id)
        path = found.local_path(key)
        if path is None:
            log.warning("model %s: the trained model of run %s is missing from the artifact store; left out of "
                        "its experiment", model.key, entry.run_id)
            continue
        files.append(TrainedFiles(entry.run_id, path, found.local_path(trained_metadata_key(key))))
    return files


def _temporary_zip() -> Path:
    """A new path for the zip: in the artifact store's staging folder when it is local (where big files
    are expected to go), else in the system's temporary folder."""
    found = artifacts()
    if isinstance(found, LocalArtifacts):
        return found.staging_file()
    fd, name = tempfile.mkstemp(prefix="fitwire-experiment-", suffix=".zip")
    os.close(fd)
    return Path(name)


@bp.get("/<key>/experiment")
@authenticated
def download(key: str) -> Response:
    """A zip to train the shaped model offline: train.py, spec.json, requirements.txt, Dockerfile,
    README.md and the model's trained models."""
    model = store().get_model(g.user.id, key)  # the owner's only: another user's model is a 404
    csv_info = _csv_info(model)
    path = _temporary_zip()
    try:
        write_experiment(model, _trained_files(model), csv_info, path)
        handle = path.open("rb")
    except NotShaped as exc:
        path.unlink(missing_ok=True)
        raise InvalidState(str(exc)) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # Windows keeps an open file: then it goes when the response closes
        path.unlink()
    response = send_file(handle, mimetype="application/zip", as_attachment=True,
                         download_name=f"{folder_name(model)}.zip", max_age=0)
    response.headers["Content-Length"] = str(os.fstat(handle.fileno()).st_size)
    response.call_on_close(lambda: path.unlink(missing_ok=True))
    return response


def experiment_paths() -> dict[str, dict[str, Any]]:
    """The OpenAPI path of this route."""
    from fitwire.webhook.openapi import _op

    return {"/api/v1/models/{key}/experiment": {"get": _op(
        "A zip to train the shaped model offline: train.py (Keras), spec.json, requirements.txt, a GPU "
        "Dockerfile, README.md and models/ with its trained models (409 for a dynamic model).",
        {"200": {"description": "The zip.", "content": {
            "application/zip": {"schema": {"type": "string", "format": "binary"}}}}},
        params=("key",))}}
