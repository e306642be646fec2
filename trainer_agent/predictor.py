"""Predictions on an agent: the RPC server of ``fitwire.rpc`` (``predict.<pool>``), in the agent process.

A :class:`Predictor` runs on its own thread with its own broker connection, so a prediction
never waits for the agent's loop or a training to end, and a training child is never
starved of it: predictions run here, not in the child. It consumes ``rpc.predict.<pool>``
for each of the agent's pools with prefetch 1, and one worker thread predicts at a time
(the connection stays serviced meanwhile: the reply and the ack go back to its thread through
:meth:`~fitwire.broker.adapter.Consumer.call_soon`, as pika's threaded consumer example does).

Trained models are fetched on demand from the webhook's artifact route with the node token
(``trained/<run id>`` and its ``-meta``), and the last few used stay loaded (bounded LRU,
``FITWIRE_PREDICT_MODELS``). A request that cannot be answered gets a reply saying why; it
never stops the consumer.

Input is prepared as training read it (``fitwire.agent.spec_training``): a CSV row becomes
the model's dict of 1-D arrays (:func:`~fitwire.agent.spec_training.raw_inputs`); an image
is decoded with Pillow, converted to the metadata's color mode and resized bilinearly to the
model's size, as ``image_dataset_from_directory`` resized the training images.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import queue
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fitwire.broker.adapter import Broker, Consumer, Delivery, Subscription, publish_properties
from fitwire.broker.topology import RPC, RPC_REPLIES, Binding, Topology, rpc_queue
from fitwire.contract import BrokerError, DecodeError, decode, encode
from fitwire.contract.artifacts import trained_metadata_key
from fitwire.contract.messages import PredictReply, PredictRequest

log = logging.getLogger(__name__)

TICK_S = 0.5
"""How long one loop turn services the connection: a stop is noticed this fast."""
PIL_MODES = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}
"""The metadata's color mode → the Pillow mode an image is converted to."""


class PredictionError(ValueError):
    """A request that cannot be answered; ``code`` is the HTTP API's error code for it."""

    def __init__(self, message: str, code: str = "INVALID_REQUEST") -> None:
        super().__init__(message)
        self.code = code


class Artifacts(Protocol):
    """Where trained models are read (``HttpArtifacts`` with the node token)."""

    def get(self, key: str) -> bytes | None: ...


def rpc_topology(pools: tuple[str, ...]) -> Topology:
    """The RPC exchanges and each pool's request queue with its binding: what a predictor declares."""
    queues = tuple(rpc_queue(pool) for pool in pools)
    return Topology(exchanges=(RPC, RPC_REPLIES), queues=queues,
                    bindings=tuple(Binding(RPC.name, q.name, f"predict.{pool}") for q, pool in zip(queues, pools, strict=True)))


@dataclass
class Loaded:
    """A trained model in memory, with what its inputs and outputs mean."""

    model: Any
    metadata: dict[str, Any]


class ModelCache:
    """The last ``size`` trained models used, loaded on demand; the least recently used goes first."""

    def __init__(self, artifacts: Artifacts, size: int, work_dir: Path) -> None:
        self.artifacts = artifacts
        self.size = size
        self.work_dir = work_dir
        self._models: OrderedDict[str, Loaded] = OrderedDict()

    def get(self, run_id: str) -> tuple[Loaded, float]:
        """The run's trained model and the seconds it took to load (0 when it was in memory).

        Raises:
            PredictionError: no trained model (or no metadata) for ``run_id``.
        """
        found = self._models.get(run_id)
        if found is not None:
            self._models.move_to_end(run_id)
            return found, 0.0
        started = time.perf_counter()
        loaded = self._load(run_id)
        self._models[run_id] = loaded
        while len(self._models) > self.size:
            self._models.popitem(last=False)
        return loaded, time.perf_counter() - started

    def _load(self, run_id: str) -> Loaded:
        import keras  # lazily: an agent that never predicts never pays for TensorFlow

        key = f"trained/{run_id}"
        data, meta = self.artifacts.get(key), self.artifacts.get(trained_metadata_key(key))
        if data is None or meta is None:
            raise PredictionError(f"run {run_id!r} has no trained model (or its metadata) in the artifact store.",
                                  "RESOURCE_DOES_NOT_EXIST")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # Keras loads .keras files from a path only; the file goes once the model is in memory.
        with tempfile.NamedTemporaryFile(suffix=".keras", dir=self.work_dir) as file:
            file.write(data)
            file.flush()
            model = keras.models.load_model(file.name, compile=False)
        return Loaded(model, json.loads(meta))


def image_input(metadata: dict[str, Any], image_b64: str) -> np.ndarray:
    """A batch of one image as the model takes it: decoded, converted and resized as in training."""
    import tensorflow as tf
    from PIL import Image, UnidentifiedImageError

    try:
        raw = base64.b64decode(image_b64, validate=True)
    except (binascii.Error, ValueError):
        raise PredictionError("image is not valid base64.") from None
    try:
        with Image.open(io.BytesIO(raw)) as img:
            pixels = np.asarray(img.convert(PIL_MODES[metadata["input"]["color_mode"]]), dtype="float32")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PredictionError(f"image is not an image Pillow can read ({exc}).") from None
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width = metadata["input"]["size"][:2]
    # tf.image.resize, bilinear without antialiasing: exactly what image_dataset_from_directory did
    resized = tf.image.resize(pixels, (height, width), method="bilinear")
    return np.asarray(resized)[None, ...]


def csv_input(metadata: dict[str, Any], row: dict[str, Any]) -> dict[str, np.ndarray]:
    """A batch of one row as the model takes it (the webhook checked the row; this checks again)."""
    from fitwire.agent.spec_training import raw_inputs

    for column in metadata["inputs"]:
        if column["name"] not in row:
            raise PredictionError(f"the row has no column {column['name']!r}.")
    try:
        return raw_inputs(metadata, [row])
    except ValueError as exc:
        raise PredictionError(f"the row has a value that is not a number ({exc}).") from None


def predict(loaded: Loaded, request: PredictRequest) -> list[float]:
    """The model's output vector for the request's one input."""
    fmt = loaded.metadata.get("format")
    if fmt == "images":
        if request.image is None:
            raise PredictionError("this model predicts from an image; the request has none.")
        batch: Any = image_input(loaded.metadata, request.image)
    elif fmt == "csv":
        if request.row is None:
            raise PredictionError("this model predicts from a CSV row; the request has none.")
        batch = csv_input(loaded.metadata, request.row)
    else:
        raise PredictionError(f"unknown model format {fmt!r} in its metadata.", "INTERNAL_ERROR")
    # __call__, not predict(): one sample needs no tf.data pipeline, which costs milliseconds per call
    output = loaded.model(batch, training=False)
    return [float(v) for v in np.asarray(output).reshape(-1)]


def answer(cache: ModelCache, body: bytes, node_id: str) -> PredictReply:
    """The reply to one request body; never raises."""
    try:
        request = decode(body, PredictRequest)
        loaded, load_s = cache.get(request.run_id)
        return PredictReply(ok=True, outputs=predict(loaded, request), node_id=node_id, load_s=load_s)
    except DecodeError as exc:
        return PredictReply(ok=False, code="INVALID_REQUEST", error=f"not a prediction request: {exc}",
                            node_id=node_id)
    except PredictionError as exc:
        return PredictReply(ok=False, code=exc.code, error=str(exc), node_id=node_id)
    except Exception as exc:  # a model that fails on this input must not take the consumer down
        log.exception("prediction failed")
        return PredictReply(ok=False, code="INTERNAL_ERROR", error=f"the agent could not predict: {exc}",
                            node_id=node_id)


class Predictor:
    """The agent's prediction server. ``start()`` runs it on a daemon thread until ``stop()``.

    Args:
        amqp_url: the agent's own broker login (``node.<id>``), which may consume its pools' RPC queues.
        pools: the agent's pools; one RPC queue each.
        artifacts: where trained models are read (the webhook, with the node token).
        node_id: named in every reply.
        models: how many trained models stay loaded.
        work_dir: where a downloaded model file briefly lands while Keras loads it.
    """

    def __init__(self, amqp_url: str, pools: tuple[str, ...], artifacts: Artifacts, *, node_id: str,
                 models: int = 4, work_dir: Path | None = None) -> None:
        self.amqp_url = amqp_url
        self.pools = pools
        self.node_id = node_id
        self.cache = ModelCache(artifacts, models, work_dir or Path(tempfile.gettempdir()) / "fitwire-predict")
        self.answered = 0
        self._stopping = threading.Event()
        self._work: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._consumer = Consumer(Broker(amqp_url, name=f"fitwire-predictor-{node_id}"),
                                  Subscription([rpc_queue(pool).name for pool in pools], self._on_request,
                                               prefetch=1),  # per consumer: a busy predictor is offered nothing more
                                  declares=rpc_topology(pools))

    def start(self) -> None:
        for target, name in ((self._run, "fitwire-predictor"), (self._worker, "fitwire-predictor-work")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._work.put(None)
        for thread in self._threads:
            thread.join(timeout)

    # --- the connection's thread ----------------------------------------------------------

    def _run(self) -> None:
        """Serve until stopped, reconnecting with backoff when the broker goes away."""
        consumer = self._consumer
        lost: Exception | None = None
        try:
            while not self._stopping.is_set():
                try:
                    if not consumer.reopen(at_once=lost is None, lost=lost, stop=self._stopping,
                                           on_failure=_failed):
                        return
                    log.info("predictor serving %s", ", ".join(consumer.subscriptions[0].names))
                    while not self._stopping.is_set():
                        consumer.poll(TICK_S)
                except Exception as exc:  # a bug here must not end predictions for the agent's lifetime
                    lost = exc
        finally:
            consumer.close()

    def _on_request(self, delivery: Delivery) -> None:
        # predicting takes long for a connection's thread (a cold model loads for seconds): the
        # worker does it, and hands the reply and the ack back to this thread
        def work() -> None:
            reply = answer(self.cache, delivery.body, self.node_id)
            self._consumer.call_soon(lambda: self._reply(delivery, reply))

        self._work.put(work)

    def _reply(self, delivery: Delivery, reply: PredictReply) -> None:
        if not delivery.alive:
            return  # the connection was replaced meanwhile: the request went back to the queue
        props = delivery.properties
        if props.reply_to:
            self._consumer.publish(RPC_REPLIES.name, props.reply_to, encode(reply), publish_properties(
                type=reply.type, correlation_id=props.correlation_id))
        else:
            log.warning("a prediction request without reply_to; its answer is dropped")
        delivery.ack()
        self.answered += 1

    # --- the worker thread ------------------------------------------------------------------

    def _worker(self) -> None:
        try:  # Keras and TensorFlow take seconds to import: before the first request, not during it
            import keras  # noqa: F401
        except Exception:  # no TensorFlow here: each request will say so in its reply
            log.exception("predictor: Keras could not be imported")
        while True:
            work = self._work.get()
            if work is None:
                return
            try:
                work()
            except Exception:  # answer() never raises; a closed connection here is the loop's to handle
                log.exception("predictor worker: could not hand back a reply")


def _failed(exc: Exception, delay: float) -> None:
    if isinstance(exc, BrokerError):
        log.warning("predictor: broker connection lost or refused (%s); retrying in %.0fs", exc, delay)
    else:
        log.error("predictor failed; restarting in %.0fs", delay, exc_info=exc)


__all__ = ["ModelCache", "PredictionError", "Predictor", "answer", "csv_input", "image_input", "predict",
           "rpc_topology"]
