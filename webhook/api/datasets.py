"""Datasets: upload a CSV table or an images zip, inspect it, preview it, download, publish, delete.

An upload streams: each chunk of the body is hashed and written to a staging file as it
arrives, and a CSV is inspected from the same chunks (``fitwire.datasets.inspect_csv``),
so a 2 GiB table is never whole in memory. A zip must be whole on disk before it can be
read (its directory is at its end): it is checked there, member by member, without being
unpacked. Only a valid dataset is kept, under its hash (``datasets/<sha256>``: the same
file uploaded twice is stored once); any refusal removes the staging file, so nothing is
stored and nothing stored before changes.

Who may do what: the owner sees, previews, downloads and deletes their datasets; every user
sees and downloads public ones; admins see every dataset (``?all=true``), publish and delete
any. A running job's token reads the one dataset its job names, and nothing else; node
tokens read no dataset (the agent fetches with the job's token).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, request, send_file

from fitwire.artifacts import LocalArtifacts
from fitwire.contract import DatasetRef, new_id
from fitwire.contract.artifacts import ARTIFACT_CHUNK_BYTES, dataset_key
from fitwire.contract.datasets import (
    DATASET_FORMATS,
    DATASET_NAME_PATTERN,
    TRAINING_DIR,
    VALIDATION_DIR,
    DatasetInvalid,
    dataset_name_problem,
)
from fitwire.contract.entities import Dataset
from fitwire.contract.enums import JOB_ENDED
from fitwire.contract.errors import (
    AlreadyExists,
    BadRequest,
    InvalidState,
    NotFound,
    PermissionDenied,
)
from fitwire.contract.http import DatasetPatch
from fitwire.webhook.api.artifacts import artifacts
from fitwire.webhook.api.common import (
    admin_only,
    authenticated,
    now,
    parse_body,
    raw_body,
    store,
    to_json,
)
from fitwire.webhook.api.nodes import user_or_job

bp = Blueprint("datasets", __name__, url_prefix="/api/v1/datasets")

ZIP_MAGIC = b"PK\x03\x04"
MAX_PAGE = 500
"""Most rows or images one preview page holds."""


def _files() -> LocalArtifacts:
    """Datasets are read in place (zip members, preview pages): they need the local file store."""
    found = artifacts()
    if not isinstance(found, LocalArtifacts):
        raise BadRequest("Datasets need the webhook's local artifact store (ARTIFACTS_DIR).")
    return found


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"Query parameter {name!r} must be a whole number.") from None
    if not low <= value <= high:
        raise BadRequest(f"Query parameter {name!r} must be between {low} and {high}.")
    return value


def _check_name_free(name: str) -> None:
    """Fail before a long upload when the name is surely taken (the store checks again at the end)."""
    for seen in store().list_datasets(g.user.id):
        if seen.name == name:
            raise AlreadyExists(f"You have a dataset named {name!r} already." if seen.owner_id == g.user.id
                                else f"A public dataset is named {name!r}; choose another name.")


def _body_chunks(staging: Path, digest: Any, sizes: list[int]) -> Iterator[bytes]:
    """The request body in chunks, each hashed and written to ``staging`` before it is handed on."""
    with staging.open("wb") as out:
        while chunk := request.stream.read(ARTIFACT_CHUNK_BYTES):
            digest.update(chunk)
            out.write(chunk)
            sizes.append(len(chunk))
            yield chunk


def _format_of(first: bytes) -> str:
    wanted = request.args.get("format")
    if wanted is None:
        return "images" if first.startswith(ZIP_MAGIC) else "csv"
    if wanted not in DATASET_FORMATS:
        raise BadRequest(f"Query parameter 'format' must be one of {', '.join(DATASET_FORMATS)}.")
    return wanted


def _receive(staging: Path) -> tuple[str, str, int, Any]:
    """Stream the body to ``staging`` and inspect it: (format, sha256, size, info).

    Raises: BadRequest naming what is wrong (DatasetInvalid's message); a 413 from Werkzeug
    when the body passes the limit."""
    from fitwire.datasets.csv_inspect import inspect_csv
    from fitwire.datasets.images_inspect import inspect_images

    digest, sizes = hashlib.sha256(), list[int]()
    chunks = _body_chunks(staging, digest, sizes)
    first = next(chunks, b"")
    fmt = _format_of(first)

    def body() -> Iterator[bytes]:
        if first:
            yield first
        yield from chunks

    settings = current_app.config
    try:
        if fmt == "csv":
            info: Any = inspect_csv(body(), label_limit=settings["DATASET_LABEL_LIMIT"])
            for _ in chunks:  # the inspector may stop early on a refusal; the file must be whole anyway
                pass
        else:
            for _ in body():
                pass
            info = inspect_images(staging)
    except DatasetInvalid as exc:
        raise BadRequest(f"Not a usable {fmt} dataset: {exc}") from None
    return fmt, digest.hexdigest(), sum(sizes), info


@bp.post("")
@raw_body
@authenticated
def upload() -> tuple[dict[str, Any], int]:
    """201 ``Dataset``. ``?name=NAME`` (required) and ``?format=csv|images`` (else from the content)."""
    name = request.args.get("name", "")
    problem = dataset_name_problem(name)
    if problem:
        raise BadRequest(problem)
    _check_name_free(name)
    request.max_content_length = current_app.config["DATASET_MAX_BYTES"]
    files = _files()
    staging = files.staging_file()
    try:
        fmt, sha256, size, info = _receive(staging)
        dataset = Dataset(dataset_id=new_id(), name=name, owner=g.user.username, owner_id=g.user.id, public=False,
                          format=fmt, size=size, sha256=sha256, created_at=now(), info=info)  # type: ignore[arg-type]
        new_file = files.adopt(dataset_key(sha256), staging)
        try:
            store().create_dataset(dataset)
        except Exception:
            if new_file and not any(d.sha256 == sha256 for d in store().list_datasets()):
                files.delete(dataset_key(sha256))
            raise
    finally:
        staging.unlink(missing_ok=True)
    return to_json(dataset), 201


@bp.get("")
@authenticated
def list_datasets() -> dict[str, Any]:
    """Your datasets and the public ones; an admin's ``?all=true``: everybody's."""
    every = request.args.get("all", "").lower() in ("1", "true", "yes")
    if every and not g.user.is_admin:
        raise PermissionDenied("Only an admin may list every user's datasets.")
    return {"datasets": [to_json(d) for d in store().list_datasets(None if every else g.user.id)]}


def _readable(dataset_id: str) -> Dataset:
    """The dataset, when the caller may read it. Raises: NotFound (also for others' private ones)."""
    if g.job is not None:  # a job token reads the one dataset its job trains on
        ref = g.job.spec.get("dataset") or {}
        if ref.get("dataset_id") != dataset_id:
            raise PermissionDenied(f"This job token reads job {g.job.job_id}'s own dataset only.")
        return store().get_dataset(dataset_id)
    return store().get_dataset(dataset_id, None if g.user.is_admin else g.user.id)


@bp.get("/<dataset_id>")
@user_or_job
def show(dataset_id: str) -> dict[str, Any]:
    return to_json(_readable(dataset_id))


def _local(dataset: Dataset) -> Path:
    path = _files().local_path(dataset_key(dataset.sha256))
    if path is None:
        raise NotFound(f"The file of dataset {dataset.name!r} is missing from the artifact store.")
    return path


@bp.get("/<dataset_id>/file")
@user_or_job
def download(dataset_id: str) -> Response:
    """The original upload, streamed (``Content-Length``, ranges, ``ETag`` = its hash)."""
    dataset = _readable(dataset_id)
    suffix = ".csv" if dataset.format == "csv" else ".zip"
    response = send_file(_local(dataset), mimetype="text/csv" if dataset.format == "csv" else "application/zip",
                         as_attachment=True, download_name=dataset.name + suffix, conditional=True,
                         etag=dataset.sha256)
    response.headers["X-Content-SHA256"] = dataset.sha256
    return response


@bp.get("/<dataset_id>/rows")
@user_or_job
def rows(dataset_id: str) -> dict[str, Any]:
    """A page of a CSV dataset: ``?offset=0&limit=50`` (rows after the header)."""
    from fitwire.datasets.csv_inspect import csv_page

    dataset = _readable(dataset_id)
    if dataset.format != "csv":
        raise BadRequest(f"Dataset {dataset.name!r} is images; its pages are /images.")
    offset, limit = _int_arg("offset", 0, 0, 10**12), _int_arg("limit", 50, 1, MAX_PAGE)
    header, page = csv_page(_local(dataset), offset, limit)
    return {"header": header, "rows": page, "offset": offset, "total": dataset.info.rows}  # type: ignore[union-attr]


def _class_of(dataset: Dataset, name: str) -> None:
    if dataset.format != "images":
        raise BadRequest(f"Dataset {dataset.name!r} is a CSV table; its pages are /rows.")
    if name not in {c.name for c in dataset.info.classes}:  # type: ignore[union-attr]
        raise NotFound(f"Dataset {dataset.name!r} has no class {name!r}.")


@bp.get("/<dataset_id>/images")
@user_or_job
def images(dataset_id: str) -> dict[str, Any]:
    """A page of a class's images: ``?class=NAME&split=training|validation&offset=0&limit=50``."""
    from fitwire.datasets.images_inspect import class_members

    dataset = _readable(dataset_id)
    cls, split = request.args.get("class", ""), request.args.get("split", "training")
    _class_of(dataset, cls)
    if split not in ("training", "validation"):
        raise BadRequest("Query parameter 'split' must be training or validation.")
    offset, limit = _int_arg("offset", 0, 0, 10**9), _int_arg("limit", 50, 1, MAX_PAGE)
    folder = TRAINING_DIR if split == "training" else VALIDATION_DIR
    total, members = class_members(_local(dataset), folder, cls, offset, limit)
    return {"class": cls, "split": split, "offset": offset, "total": total, "images": members}


@bp.get("/<dataset_id>/thumbnail")
@user_or_job
def thumbnail(dataset_id: str) -> Response:
    """A JPEG of at most ``size``×``size`` (16–512, default 128) of ``?member=PATH``, or of ``?class=NAME``'s
    sample. Immutable: a dataset's content never changes."""
    from fitwire.datasets.images_inspect import thumbnail as make_thumbnail

    dataset = _readable(dataset_id)
    member = request.args.get("member")
    if member is None:
        cls = request.args.get("class", "")
        _class_of(dataset, cls)
        member = next(c.sample for c in dataset.info.classes if c.name == cls)  # type: ignore[union-attr]
    elif dataset.format != "images":
        raise BadRequest(f"Dataset {dataset.name!r} is a CSV table; it has no images.")
    try:
        data = make_thumbnail(_local(dataset), member, _int_arg("size", 128, 16, 512))
    except DatasetInvalid as exc:
        raise NotFound(str(exc)) from None
    response = Response(data, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


@bp.patch("/<dataset_id>")
@admin_only
def publish(dataset_id: str) -> dict[str, Any]:
    """``{"public": true|false}`` (admins): a public dataset is every user's to see and train on."""
    body = parse_body(DatasetPatch)
    return to_json(store().set_dataset_public(dataset_id, body.public))


def users_of(dataset: Dataset) -> list[str]:
    """Ids of the jobs not yet ended that train on ``dataset``."""
    return [job.job_id for job in store().list_jobs()
            if job.state not in JOB_ENDED and (job.spec.get("dataset") or {}).get("dataset_id") == dataset.dataset_id]


@bp.delete("/<dataset_id>")
@authenticated
def delete(dataset_id: str) -> tuple[str, int]:
    """204. Refused (409) while a queued or running job trains on the dataset or a model is shaped to it,
    unless ``?force=true``."""
    dataset = store().get_dataset(dataset_id, None if g.user.is_admin else g.user.id)
    if dataset.owner_id != g.user.id and not g.user.is_admin:
        raise PermissionDenied(f"Dataset {dataset.name!r} is {dataset.owner}'s; only they or an admin delete it.")
    force = request.args.get("force", "").lower() in ("1", "true", "yes")
    jobs = users_of(dataset)
    models = [f"{m.owner}'s {m.name!r}" for m in store().models_using_dataset(dataset.dataset_id)]
    if (jobs or models) and not force:
        used = [f"the queued or running job(s) {', '.join(jobs)}"] if jobs else []
        used += [f"the model(s) {', '.join(models)}"] if models else []
        raise InvalidState(f"Dataset {dataset.name!r} is used by {' and '.join(used)}; delete it anyway with "
                           "force=true.")
    if store().delete_dataset(dataset_id):
        _files().delete(dataset_key(dataset.sha256))
    return "", 204


def dataset_ref(owner_id: str, name: object) -> dict[str, Any]:
    """The reference a job spec stores for the dataset ``name`` the owner submitted (their own or a
    public one): never the submitter's own word for its id or hash. Raises: BadRequest; NotFound."""
    if not isinstance(name, str):
        raise BadRequest("In 'spec': 'dataset' is the name of one of your datasets or of a public one.")
    for found in store().list_datasets(owner_id):
        if found.name == name:
            ref = DatasetRef(dataset_id=found.dataset_id, name=found.name, format=found.format,
                             sha256=found.sha256, size=found.size)
            return ref.model_dump()
    raise NotFound(f"No dataset named {name!r} (yours or public).")


def datasets_paths() -> dict[str, dict[str, Any]]:
    """The OpenAPI paths of these routes."""
    from fitwire.webhook.openapi import _I, _S, _obj, _ok, _op, model_ref

    dataset = model_ref(Dataset, "serialization")
    ids = ("dataset_id",)

    def query(op: dict[str, Any], *names: tuple[str, dict[str, Any], bool]) -> dict[str, Any]:
        op["parameters"] = [*op.get("parameters", []),
                            *({"name": n, "in": "query", "required": req, "schema": s} for n, s, req in names)]
        return op

    upload_op = query(_op("Upload a CSV table or an images zip (raw body, streamed); inspected on arrival.",
                          _ok(dataset, "201")),
                      ("name", {"type": "string", "pattern": DATASET_NAME_PATTERN}, True),
                      ("format", {"type": "string", "enum": list(DATASET_FORMATS)}, False))
    upload_op["requestBody"] = {"required": True, "content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary"}}}}
    binary = {"200": {"description": "The file.", "content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary"}}}}}
    jpeg = {"200": {"description": "A JPEG.", "content": {"image/jpeg": {"schema": {"type": "string",
                                                                                     "format": "binary"}}}}}
    page = ("offset", {"type": "integer", "minimum": 0}, False), ("limit", {"type": "integer", "minimum": 1,
                                                                            "maximum": MAX_PAGE}, False)
    strings = {"type": "array", "items": _S}
    return {
        "/api/v1/datasets": {
            "get": query(_op("Your datasets and the public ones (admins: every user's with all=true).",
                             _ok(_obj(datasets={"type": "array", "items": dataset}))),
                         ("all", {"type": "boolean"}, False)),
            "post": upload_op,
        },
        "/api/v1/datasets/{dataset_id}": {
            "get": _op("One dataset, with what inspecting it found.", _ok(dataset), params=ids),
            "patch": _op("Admin: publish or unpublish.", _ok(dataset), DatasetPatch, params=ids),
            "delete": query(_op("Delete (409 while a queued or running job uses it, unless force=true).",
                                _ok(None, "204"), params=ids), ("force", {"type": "boolean"}, False)),
        },
        "/api/v1/datasets/{dataset_id}/file": {"get": _op("The original upload.", binary, params=ids)},
        "/api/v1/datasets/{dataset_id}/rows": {"get": query(_op(
            "A page of a CSV dataset's rows.",
            _ok(_obj(header=strings, rows={"type": "array", "items": strings}, offset=_I, total=_I)),
            params=ids), *page)},
        "/api/v1/datasets/{dataset_id}/images": {"get": query(_op(
            "A page of one class's images (zip member paths).",
            _ok(_obj(**{"class": _S}, split=_S, offset=_I, total=_I, images=strings)), params=ids),
            ("class", _S, True), ("split", {"type": "string", "enum": ["training", "validation"]}, False), *page)},
        "/api/v1/datasets/{dataset_id}/thumbnail": {"get": query(_op(
            "A thumbnail of an image (member) or of a class's sample (class).", jpeg, params=ids),
            ("member", _S, False), ("class", _S, False), ("size", {"type": "integer", "minimum": 16, "maximum": 512},
                                                         False))},
    }
