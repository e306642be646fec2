"""Predictions: a trained model answers one input, through an agent of a pool (RPC on ``fitwire.rpc``).

``POST /api/v1/models/<key>/predict`` with a JSON body: ``{"row": {column: value, …}}`` for a
CSV model or ``{"image": "<base64 of the file>"}`` for an images model, and optionally
``run_id`` (default: the newest trained model) and ``pool`` (default ``default``). The webhook
checks the caller owns the model and that the input fits the trained model's metadata
(``trained/<run id>-meta``): a missing, unknown or mistyped column, or a file Pillow cannot
read, is a 400 naming it, before any agent is bothered.

The request goes to ``predict.<pool>`` on the webhook's own broker channel, with a correlation
id and, as ``reply_to``, that channel's reply queue: exclusive, server-named, bound to
``fitwire.rpc.replies`` under its own name (declared once per channel). Agents may publish to
that exchange and nowhere else (RabbitMQ's direct reply-to would need the default exchange,
through which a login reaches any queue by name). The request expires in the broker after ``PREDICT_TIMEOUT`` seconds
(``FITWIRE_PREDICT_TIMEOUT``), which is also how long the webhook waits. A pool whose request
queue has no consumer is a 503 at once; an agent that does not answer in time, a 503 when the
time is up. The agent answers with the model's raw output vector; what it means (the class,
the label of a one-hot column) is decoded here from the metadata, where the class's example
images (from the dataset's training folder) are at hand too.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import time
from typing import Any

import pika.exceptions
from flask import Blueprint, current_app, g
from pika.adapters.blocking_connection import BlockingChannel
from pydantic import BaseModel, ConfigDict, Field

from fitwire.artifacts import LocalArtifacts
from fitwire.broker.adapter import Broker, publish_properties
from fitwire.broker.topology import RPC, RPC_REPLIES, rpc_queue
from fitwire.contract import BrokerError, DecodeError, decode, encode, new_id
from fitwire.contract.artifacts import dataset_key, trained_metadata_key
from fitwire.contract.datasets import TRAINING_DIR
from fitwire.contract.entities import Model
from fitwire.contract.errors import (
    BadRequest,
    InternalError,
    InvalidState,
    NotFound,
    TemporarilyUnavailable,
)
from fitwire.contract.messages import PredictReply, PredictRequest, PredictValue
from fitwire.webhook.api.artifacts import artifacts
from fitwire.webhook.api.common import authenticated, check_id, parse_body, store
from fitwire.webhook.api.job_verdicts import check_pool
from fitwire.webhook.api.trained import trained_key
from fitwire.webhook.store.base import DoesNotExist

bp = Blueprint("predictions", __name__, url_prefix="/api/v1/models")

REPLY_QUEUE_ATTRIBUTE = "_fitwire_reply_queue"
"""Where a channel keeps the name of its reply queue (a new channel, after a reconnect, declares its own)."""


def _reply_queue(channel: BlockingChannel) -> str:
    """This channel's reply queue on ``fitwire.rpc.replies``, declared on first use."""
    name: str | None = getattr(channel, REPLY_QUEUE_ATTRIBUTE, None)
    if name is None:
        # exclusive: gone with the connection; not auto-delete, which would drop it when a call cancels its consumer
        name = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(name, RPC_REPLIES.name, routing_key=name)
        setattr(channel, REPLY_QUEUE_ATTRIBUTE, name)
    return name
TOP_K = 5
EXAMPLES = 16
"""Training images of the predicted class shown next to a prediction."""
MAX_PIXELS = 40_000_000
"""A larger image is refused before it is decoded: a small compressed file can expand to gigabytes."""


class PredictBody(BaseModel):
    """``POST /api/v1/models/<key>/predict``: one input, as ``row`` (CSV models) or ``image`` (images models)."""

    model_config = ConfigDict(extra="forbid")

    run_id: str | None = Field(None, description="The trained model's run; default: the newest.")
    pool: str = Field("default", description="The pool whose agents predict.")
    row: dict[str, PredictValue] | None = Field(None, description="CSV models: input column → value.")
    image: str | None = Field(None, description="Images models: the image file, base64 (PNG, JPEG, … any "
                                                "format Pillow reads).")


def _run_of(model: Model, run_id: str | None) -> str:
    trained = model.design.trained if model.design else []
    if not trained:
        raise InvalidState(f"Model {model.name!r} has no trained model yet: train it first (`fitwire train`).")
    if run_id is None:
        return max(trained, key=lambda t: t.created_at).run_id
    check_id(run_id, "run_id")
    if run_id not in {t.run_id for t in trained}:
        raise NotFound(f"Model {model.name!r} has no trained model from run {run_id!r}.")
    return run_id


def _metadata(run_id: str) -> dict[str, Any]:
    raw = artifacts().get(trained_metadata_key(trained_key(run_id)))
    if raw is None:
        raise InvalidState(f"Run {run_id}'s trained model has no metadata (what its outputs mean); retrain it.")
    return dict(json.loads(raw))


# --- checking the input ---------------------------------------------------------------------


def checked_row(metadata: dict[str, Any], row: dict[str, PredictValue]) -> dict[str, PredictValue]:
    """The row as the agent takes it (labels as text, numbers as floats). Raises BadRequest naming the column."""
    inputs = metadata["inputs"]
    names = [c["name"] for c in inputs]
    unknown = [name for name in row if name not in names]
    if unknown:
        raise BadRequest(f"The row has a column {unknown[0]!r}, which is not an input of this model "
                         f"(its inputs: {', '.join(names)}).")
    checked: dict[str, PredictValue] = {}
    for column in inputs:
        name = column["name"]
        if name not in row:
            raise BadRequest(f"The row has no column {name!r} (the model's inputs: {', '.join(names)}).")
        value = row[name]
        if column["type"] == "Label":
            text = value if isinstance(value, str) else json.dumps(value)
            if text not in column["vocabulary"]:
                known = ", ".join(repr(v) for v in column["vocabulary"][:10])
                raise BadRequest(f"Column {name!r}: {text!r} is not one of the values it was trained on "
                                 f"({known}{', …' if len(column['vocabulary']) > 10 else ''}).")
            checked[name] = text
        else:
            checked[name] = _number(name, column["type"], value)
    return checked


def _number(name: str, col_type: str, value: PredictValue) -> float:
    number: float | None = None
    if isinstance(value, bool):
        number = float(value) if col_type == "Binary" else None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise BadRequest(f"Column {name!r} is a number column ({col_type}); {value!r} is not a finite number.")
    return number


def checked_image(image: str) -> str:
    """The image, when it is base64 of a file Pillow reads. Raises BadRequest saying what is wrong."""
    from PIL import Image, UnidentifiedImageError

    try:
        raw = base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Field 'image' is not valid base64 (of an image file).") from None
    try:
        with Image.open(io.BytesIO(raw)) as img:
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise BadRequest(f"Field 'image' is {width}×{height} pixels; at most {MAX_PIXELS:,} are accepted.")
            img.load()  # the whole file: a truncated one fails here, not on the agent
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise BadRequest(f"Field 'image' is not an image Pillow can read ({exc}).") from None
    return image


# --- the RPC --------------------------------------------------------------------------------


def call_agent(pool: str, message: PredictRequest, timeout: float) -> PredictReply:
    """Send ``message`` to ``predict.<pool>`` and wait up to ``timeout`` s for the reply.

    Raises:
        TemporarilyUnavailable: no agent consumes the pool's requests, none answered in time, or no broker.
    """
    broker: Broker = current_app.extensions["fitwire_broker"]
    correlation = new_id()
    queue = rpc_queue(pool).name

    def exchange(channel: BlockingChannel) -> bytes | str:
        try:
            consumers = channel.queue_declare(queue, passive=True).method.consumer_count
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                raise
            return "no queue"  # the adapter replaces the closed channel on its next use
        if consumers == 0:
            return "no consumer"
        replies: list[bytes] = []

        def on_reply(_ch: Any, _method: Any, props: Any, body: bytes) -> None:
            if props.correlation_id == correlation:  # a late answer to an earlier request is dropped
                replies.append(body)

        reply_to = _reply_queue(channel)
        tag = channel.basic_consume(reply_to, on_reply, auto_ack=True)
        try:
            channel.basic_publish(RPC.name, f"predict.{pool}", encode(message), publish_properties(
                reply_to=reply_to, correlation_id=correlation, type=message.type,
                expiration=str(max(1, int(timeout * 1000)))), mandatory=True)
            deadline = time.monotonic() + timeout
            while not replies and (left := deadline - time.monotonic()) > 0:
                channel.connection.process_data_events(time_limit=min(left, 0.1))
        except pika.exceptions.UnroutableError:
            return "no queue"
        finally:
            if channel.is_open:
                channel.basic_cancel(tag)
        return replies[0] if replies else "timeout"

    try:
        got = broker.run(exchange)
    except BrokerError as exc:
        raise TemporarilyUnavailable(f"The broker is unreachable, so no agent can predict ({exc}).") from None
    if isinstance(got, str):
        if got == "timeout":
            raise TemporarilyUnavailable(f"No agent of pool {pool!r} answered within {timeout:g} s.")
        raise TemporarilyUnavailable(f"No agent of pool {pool!r} is serving predictions (start one with "
                                     f"`fitwire agent start --pool {pool}`).")
    try:
        return decode(got, PredictReply)
    except DecodeError as exc:
        raise InternalError(f"The agent's answer could not be read: {exc}") from None


# --- what the output means ------------------------------------------------------------------


def image_answer(metadata: dict[str, Any], outputs: list[float]) -> dict[str, Any]:
    names = metadata["class_names"]
    # one sigmoid unit for exactly two classes: the probability of the second
    probs = [1.0 - outputs[0], outputs[0]] if metadata.get("label_mode") == "binary" else outputs
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    return {"class_index": order[0], "class_name": names[order[0]],
            "top": [{"class": names[i], "probability": probs[i]} for i in order[:TOP_K]]}


def csv_answer(metadata: dict[str, Any], outputs: list[float]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    probabilities: dict[str, float] = {}
    start = 0
    for column in metadata["outputs"]:
        part = outputs[start:start + column["units"]]
        start += column["units"]
        if column["type"] == "Label":
            best = max(range(len(part)), key=part.__getitem__)
            values[column["name"]] = column["vocabulary"][best]
            probabilities[column["name"]] = part[best]
        else:
            values[column["name"]] = part[0]
    return {"outputs": values, "probabilities": probabilities}


def _examples(model: Model, class_name: str) -> tuple[str | None, list[str]]:
    """The model's dataset and up to EXAMPLES training images of the class (none once the dataset is gone)."""
    from fitwire.datasets.images_inspect import class_members

    design = model.design
    found = artifacts()
    if design is None or design.dataset_id is None or not isinstance(found, LocalArtifacts):
        return None, []
    try:
        dataset = store().get_dataset(design.dataset_id, g.user.id)
    except DoesNotExist:
        return None, []
    path = found.local_path(dataset_key(dataset.sha256))
    if path is None:
        return dataset.dataset_id, []
    return dataset.dataset_id, class_members(path, TRAINING_DIR, class_name, 0, EXAMPLES)[1]


@bp.post("/<key>/predict")
@authenticated
def predict(key: str) -> dict[str, Any]:
    """One prediction of the model's trained model (the newest, or ``run_id``'s) by an agent of ``pool``."""
    body = parse_body(PredictBody)
    model = store().get_model(g.user.id, key)  # another user's model: 404
    run_id = _run_of(model, body.run_id)
    check_id(body.pool, "pool")
    check_pool(body.pool)
    metadata = _metadata(run_id)
    fmt = metadata.get("format")
    if fmt == "csv":
        if body.row is None or body.image is not None:
            raise BadRequest(f"Model {model.name!r} predicts from a CSV row: send {{\"row\": {{column: value}}}}.")
        message = PredictRequest(owner=g.user.username, model_key=key, run_id=run_id,
                                 row=checked_row(metadata, body.row))
    elif fmt == "images":
        if body.image is None or body.row is not None:
            raise BadRequest(f"Model {model.name!r} predicts from an image: send {{\"image\": \"<base64>\"}}.")
        message = PredictRequest(owner=g.user.username, model_key=key, run_id=run_id,
                                 image=checked_image(body.image))
    else:
        raise InvalidState(f"Run {run_id}'s trained model has metadata of an unknown format {fmt!r}.")
    timeout = float(current_app.config["PREDICT_TIMEOUT"])
    reply = call_agent(body.pool, message, timeout)
    if not reply.ok:
        error = reply.error or "the agent could not predict."
        if reply.code == "INVALID_REQUEST":
            raise BadRequest(error)
        if reply.code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFound(error)
        raise InternalError(f"The agent could not predict: {error}")
    outputs = [float(v) if v is not None else math.nan for v in reply.outputs]
    answer: dict[str, Any] = {"run_id": run_id, "node_id": reply.node_id, "load_s": reply.load_s}
    if fmt == "images":
        answer.update(image_answer(metadata, outputs))
        answer["dataset_id"], answer["examples"] = _examples(model, answer["class_name"])
    else:
        answer.update(csv_answer(metadata, outputs))
    return answer


def predictions_paths() -> dict[str, dict[str, Any]]:
    """The OpenAPI path of the prediction route."""
    from fitwire.webhook.openapi import _S, _obj, _ok, _op

    number = {"type": "number"}
    top = {"type": "array", "items": _obj(**{"class": _S, "probability": number})}
    answer = {"oneOf": [
        _obj(run_id=_S, node_id=_S, load_s=number, class_index={"type": "integer"}, class_name=_S, top=top,
             dataset_id=_S, examples={"type": "array", "items": _S}),
        _obj(run_id=_S, node_id=_S, load_s=number, outputs={"type": "object"},
             probabilities={"type": "object", "additionalProperties": number}),
    ]}
    return {"/api/v1/models/{key}/predict": {"post": _op(
        "One prediction by an agent of the pool: an image's class and top-k, or a CSV row's outputs "
        "(400 naming a bad input, 503 when no agent answers in FITWIRE_PREDICT_TIMEOUT).",
        _ok(answer), PredictBody, params=("key",))}}
