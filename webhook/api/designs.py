"""Model specs: a model designed as JSON, validated with its shapes, shaped to a dataset, trained by a job.

A model may carry a design (``Model.design``): its spec (``fitwire.contract.specs.ModelSpec``)
and what it is shaped to. The states are WebML's: *dynamic* (no dataset, output size open)
→ *shaped* to a dataset → *editable* (edited after shaping, or a clone) → *static* once it
has a trained model (its layers and shaping frozen; clone it to change them, or delete its
trained models). Every change is checked by :func:`fitwire.contract.spec_shapes.infer`
(every layer's shape and parameter count, without TensorFlow) before it is stored, so a
model that cannot be built is never queued; the error names the layer index and field.

Training is one request: the webhook builds the job's ``train_spec`` from the shaped model
(its input shape, output units, columns, the dataset by hash), and queues it through the
same queue and placement as a bundle job (``jobs.queue``).
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, current_app, g

from fitwire.contract import Job as WireJob
from fitwire.contract import JobSpec, new_id
from fitwire.contract.datasets import CsvInfo, ImagesInfo
from fitwire.contract.entities import Dataset, Design, ListedTrained, Model
from fitwire.contract.errors import BadRequest, InvalidState, NotFound
from fitwire.contract.http import CloneBody, ShapeBody, TrainBody, ValidateBody
from fitwire.contract.spec_shapes import default_loss, default_metrics, infer
from fitwire.contract.specs import ModelSpec, SpecInvalid, SpecTraining
from fitwire.webhook.api.common import authenticated, now, parse_body, store, to_json
from fitwire.webhook.api.datasets import dataset_ref
from fitwire.webhook.api.job_verdicts import check_pool
from fitwire.webhook.api.jobs import queue
from fitwire.webhook.api.trained import trained_key
from fitwire.webhook.store.base import DoesNotExist

bp = Blueprint("designs", __name__, url_prefix="/api/v1")


def _checked(spec: ModelSpec, input_shape: list[int] | None, output_units: int | None) -> list[Any]:
    """Every layer's shape and parameter count. Raises: BadRequest naming the layer and field."""
    config = current_app.config
    try:
        return infer(spec, input_shape=input_shape, output_units=output_units,
                     max_layers=config["SPEC_MAX_LAYERS"], max_params=config["SPEC_MAX_PARAMS"])
    except SpecInvalid as exc:
        raise BadRequest(f"The spec cannot be built: {exc}") from None


def _validate(design: Design) -> Design:
    """``design`` when its spec builds; a dynamic spec without a size can only have its parameters checked."""
    if design.spec.size is not None or design.state != "dynamic":
        _checked(design.spec, design.spec.size, design.output_units)
    return design


def _not_static(design: Design | None, what: str) -> None:
    if design is not None and design.state == "static":
        raise InvalidState(f"The model has trained models, so its {what} cannot change: clone it "
                           "(`fitwire models clone`), or delete its trained models first.")


@bp.post("/specs/validate")
@authenticated
def validate() -> dict[str, Any]:
    """A spec's table of layers with output shapes and parameter counts, or a 400 naming the layer."""
    body = parse_body(ValidateBody)
    shapes = _checked(body.spec, body.input_shape or body.spec.size, body.output_units)
    known = [s.params for s in shapes if s.params is not None]  # None: a Dense whose units are still open
    return {"layers": [s.model_dump() for s in shapes], "params": sum(known) if len(known) == len(shapes) else None}


@bp.put("/models/<key>/spec")
@authenticated
def set_spec(key: str) -> dict[str, Any]:
    """Give a model a spec, or edit it. A shaped model keeps its shaping (input size, output units)."""
    spec = parse_body(ModelSpec)

    def change(current: Design | None) -> Design:
        _not_static(current, "layers")
        if current is None or current.dataset_id is None:
            return _validate(Design(spec=spec, state="dynamic"))
        if spec.format != current.spec.format:
            raise BadRequest(f"The model is shaped to a {current.spec.format} dataset; its spec's format "
                             f"stays {current.spec.format!r}.")
        shaped = spec.model_copy(update={"size": current.spec.size})
        return _validate(current.model_copy(update={"spec": shaped, "state": "editable"}))

    return to_json(store().update_design(g.user.id, key, change))


@bp.delete("/models/<key>/spec")
@authenticated
def remove_spec(key: str) -> tuple[str, int]:
    """The model goes back to being tracked from its owner's own script."""
    def change(current: Design | None) -> None:
        _not_static(current, "spec")

    store().update_design(g.user.id, key, change)
    return "", 204


def _width(info: CsvInfo, columns: list[str], role: str) -> int:
    """How many numbers ``columns`` become: one each, a Label column its one-hot width."""
    if not columns:
        raise BadRequest(f"Shaping to a CSV dataset needs its {role} columns ('{role}').")
    by_name = {c.name: c for c in info.columns}
    width = 0
    for name in columns:
        column = by_name.get(name)
        if column is None:
            raise BadRequest(f"The dataset has no column {name!r} (its columns: {', '.join(by_name)}).")
        if column.blocked:
            raise BadRequest(f"Column {name!r} is blocked: {column.unique} distinct labels are too many "
                             "to one-hot encode.")
        width += column.one_hot_width if column.type == "Label" else 1
    if len(set(columns)) != len(columns):
        raise BadRequest(f"A column is named twice among the {role}.")
    return width


def _shaped(spec: ModelSpec, dataset: Dataset, body: ShapeBody) -> Design:
    """The design of ``spec`` shaped to ``dataset``: its input size and output units set by the data."""
    if spec.format != dataset.format:
        raise BadRequest(f"The spec is for {spec.format} and dataset {dataset.name!r} is {dataset.format}.")
    info = dataset.info
    if isinstance(info, ImagesInfo):
        if body.inputs or body.outputs:
            raise BadRequest("Inputs and outputs are CSV columns; an images dataset's output is its classes.")
        channels = 1 if max(info.channels) <= 2 else 3  # grey (and grey+alpha) or colour; alpha is dropped
        height, width = (spec.size[0], spec.size[1]) if spec.size and len(spec.size) == 3 \
            else (info.sizes[0][1], info.sizes[0][0])
        size, units, inputs, outputs = [height, width, channels], len(info.classes), [], []
    else:
        assert isinstance(info, CsvInfo)
        size = [_width(info, body.inputs, "inputs")]
        units = _width(info, body.outputs, "outputs")
        inputs, outputs = list(body.inputs), list(body.outputs)
    design = Design(spec=spec.model_copy(update={"size": size}), state="shaped", dataset_id=dataset.dataset_id,
                    dataset_name=dataset.name, inputs=inputs, outputs=outputs, output_units=units)
    return _validate(design)


def _dataset_named(name: str) -> Dataset:
    for found in store().list_datasets(g.user.id):
        if found.name == name:
            return found
    raise NotFound(f"No dataset named {name!r} (yours or public).")


@bp.post("/models/<key>/shape")
@authenticated
def shape(key: str) -> tuple[dict[str, Any], int]:
    """Shape the model's spec to a dataset: over this model (200), or as a new model ``name`` (201)."""
    body = parse_body(ShapeBody)
    model = store().get_model(g.user.id, key)
    if model.design is None:
        raise InvalidState("The model has no spec to shape; give it one first (PUT …/spec).")
    dataset = _dataset_named(body.dataset)
    design = _shaped(model.design.spec, dataset, body)
    if body.name is not None:
        return to_json(store().create_model(g.user.id, secrets.token_hex(16), body.name, now(), design=design)), 201

    def change(current: Design | None) -> Design:
        _not_static(current, "shaping")
        return design

    return to_json(store().update_design(g.user.id, key, change)), 200


@bp.post("/models/<key>/clone")
@authenticated
def clone(key: str) -> tuple[dict[str, Any], int]:
    """A new model with the same layers and dataset, editable, without trained models."""
    body = parse_body(CloneBody)
    model = store().get_model(g.user.id, key)
    if model.design is None:
        raise InvalidState("Only a model with a spec can be cloned.")
    state = "dynamic" if model.design.dataset_id is None else "editable"
    design = model.design.model_copy(update={"state": state, "trained": []})
    return to_json(store().create_model(g.user.id, secrets.token_hex(16), body.name, now(), design=design)), 201


def _training(model: Model, body: TrainBody, run_id: str) -> tuple[SpecTraining, Dataset]:
    design = model.design
    if design is None:
        raise InvalidState(f"Model {model.name!r} has no spec; train it from your own script with the Tracker, "
                           "or give it a spec.")
    if design.dataset_id is None or design.output_units is None:
        raise InvalidState(f"Model {model.name!r} is dynamic: shape it to a dataset first (`fitwire models shape`).")
    try:
        dataset = store().get_dataset(design.dataset_id, g.user.id)
    except DoesNotExist:
        raise InvalidState(f"Model {model.name!r} is shaped to dataset {design.dataset_name!r}, which no longer "
                           "exists; shape it to another.") from None
    limit = current_app.config["TRAINED_MODELS_MAX"]
    if len(design.trained) >= limit:
        raise InvalidState(f"Model {model.name!r} has {len(design.trained)} trained models, the most a model keeps "
                           f"(FITWIRE_TRAINED_MODELS_MAX={limit}); delete some first.")
    initial = None
    if body.from_run is not None:
        if body.from_run not in {t.run_id for t in design.trained}:
            raise NotFound(f"Model {model.name!r} has no trained model from run {body.from_run!r}.")
        initial = trained_key(body.from_run)
    if body.augmentation is not None and design.spec.format != "images":
        raise BadRequest("Augmentation is for images; this model is shaped to a CSV table.")
    spec = design.spec
    if spec.loss is None or not spec.metrics:
        classes = isinstance(dataset.info, ImagesInfo) or _labels_only(dataset.info, design.outputs)
        spec = spec.model_copy(update={
            "loss": spec.loss or default_loss(spec, classes=classes, output_units=design.output_units),
            "metrics": spec.metrics or default_metrics(classes)})
    training = SpecTraining(network=spec, output_units=design.output_units, inputs=design.inputs,
                            outputs=design.outputs, augmentation=body.augmentation, initial_weights=initial,
                            output_key=trained_key(run_id))
    return training, dataset


def _labels_only(info: CsvInfo | ImagesInfo, outputs: list[str]) -> bool:
    """Whether a CSV model's outputs are classes (Label or Binary columns), not numbers."""
    assert isinstance(info, CsvInfo)
    types = {c.name: c.type for c in info.columns}
    return all(types.get(name) in ("Label", "Binary") for name in outputs)


@bp.post("/models/<key>/train")
@authenticated
def train(key: str) -> tuple[dict[str, Any], int]:
    """201 ``Job``: the shaped model's training, queued (watch its run like any other)."""
    body = parse_body(TrainBody)
    model = store().get_model(g.user.id, key)
    check_pool(body.pool)
    run_id = new_id()
    training, dataset = _training(model, body, run_id)
    spec = JobSpec(model_key=key, epochs=body.epochs, batch_size=body.batch_size, gpus=body.gpus,
                   gpu_memory_mb=body.gpu_memory_mb, train_spec=training,
                   dataset=dataset_ref(g.user.id, dataset.name))  # type: ignore[arg-type]
    return to_json(queue(WireJob(owner=g.user.username, pool=body.pool, run_id=run_id, spec=spec))), 201


def designs_paths() -> dict[str, dict[str, Any]]:
    """The OpenAPI paths of these routes and of the trained models'."""
    from fitwire.contract.entities import Job
    from fitwire.contract.specs import LayerShape
    from fitwire.webhook.openapi import _I, _obj, _ok, _op, model_ref

    model, job = model_ref(Model, "serialization"), model_ref(Job, "serialization")
    keyed = ("key",)
    trained = model_ref(ListedTrained, "serialization")
    return {
        "/api/v1/specs/validate": {"post": _op(
            "A spec's layers with output shapes and parameter counts (400 naming the layer and field).",
            _ok(_obj(layers={"type": "array", "items": model_ref(LayerShape, "serialization")}, params=_I)),
            ValidateBody)},
        "/api/v1/models/{key}/spec": {
            "put": _op("Give the model a spec, or edit it (refused once trained: static).", _ok(model), ModelSpec,
                       params=keyed),
            "delete": _op("Remove the spec (refused once trained).", _ok(None, "204"), params=keyed),
        },
        "/api/v1/models/{key}/shape": {"post": _op(
            "Shape the spec to a dataset: this model (200) or a new one named in the body (201).",
            {**_ok(model), **_ok(model, "201")}, ShapeBody, params=keyed)},
        "/api/v1/models/{key}/clone": {"post": _op("A new model with the same layers and dataset, editable.",
                                                   _ok(model, "201"), CloneBody, params=keyed)},
        "/api/v1/models/{key}/train": {"post": _op("Queue the shaped model's training as a job.", _ok(job, "201"),
                                                   TrainBody, params=keyed)},
        "/api/v1/models/{key}/trained": {"get": _op(
            "The model's trained models with their runs' final metrics.",
            _ok(_obj(trained={"type": "array", "items": trained})), params=keyed)},
        "/api/v1/models/{key}/trained/{run_id}/file": {"get": _op(
            "A trained model (.keras).", {"200": {"description": "The file.", "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
            params=("key", "run_id"))},
        "/api/v1/models/{key}/trained/{run_id}": {"delete": _op(
            "Delete a trained model (the model is editable again after its last).", _ok(None, "204"),
            params=("key", "run_id"))},
    }
