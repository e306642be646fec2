"""Epoch checkpoints: weights, optimizer state and the epoch, in one ``.npz`` blob.

Plain arrays instead of ``model.save``: a job bundle's model need not be
serialisable (custom layers, lambdas), but its variables always are, and the
runner rebuilds the model from the bundle before restoring them.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fitwire.agent.backends import JobEvents
from fitwire.contract import Job
from fitwire.contract.artifacts import ArtifactStore, checkpoint_key

log = logging.getLogger(__name__)

_META = "__meta__"


@dataclass(frozen=True)
class Checkpoint:
    epoch: int
    """The last epoch that ended (0-based); training resumes at ``epoch + 1``."""
    weights: list[np.ndarray]
    optimizer: list[np.ndarray]
    logs: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {f"w{i}": w for i, w in enumerate(self.weights)}
        arrays.update({f"o{i}": o for i, o in enumerate(self.optimizer)})
        meta = {"epoch": self.epoch, "weights": len(self.weights), "optimizer": len(self.optimizer),
                "logs": self.logs}
        arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Checkpoint:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            meta = json.loads(npz[_META].tobytes().decode())
            return cls(
                epoch=int(meta["epoch"]),
                weights=[npz[f"w{i}"] for i in range(meta["weights"])],
                optimizer=[npz[f"o{i}"] for i in range(meta["optimizer"])],
                logs=meta.get("logs", {}),
            )


def capture(model: Any, epoch: int, logs: dict[str, Any]) -> Checkpoint:
    optimizer = getattr(model, "optimizer", None)
    opt_vars = [np.asarray(v) for v in optimizer.variables] if optimizer is not None else []
    return Checkpoint(epoch=epoch, weights=[np.asarray(w) for w in model.get_weights()],
                      optimizer=opt_vars, logs=_plain(logs))


def restore(model: Any, ckpt: Checkpoint) -> None:
    """Load weights and optimizer state into a freshly built, compiled model."""
    model.set_weights(ckpt.weights)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not ckpt.optimizer:
        return
    if not optimizer.built:  # Keras creates slot variables lazily; make them exist to fill them
        optimizer.build(model.trainable_variables)
    variables = list(optimizer.variables)
    if len(variables) != len(ckpt.optimizer):
        log.warning("optimizer state does not match the checkpoint (%d vs %d variables); "
                    "resuming with fresh optimizer state", len(variables), len(ckpt.optimizer))
        return
    for var, value in zip(variables, ckpt.optimizer, strict=True):
        var.assign(value)


def _plain(logs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (logs or {}).items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def make_callback(job: Job, artifacts: ArtifactStore, events: JobEvents, preempt: threading.Event,
                  on_preempted: Callable[[int], None]) -> Any:
    """The Keras callback that persists each epoch, then checkpoints it, then honours preemption.

    Order matters for "every epoch exactly once": the epoch is persisted before
    its checkpoint, so a death between the two re-runs the epoch (an idempotent
    upsert) instead of skipping it.
    """
    import keras

    class EpochCheckpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            plain = _plain(logs or {})
            events.epoch_end(job, epoch, plain)
            artifacts.put(checkpoint_key(job.job_id), capture(self.model, epoch, plain).to_bytes())
            if preempt.is_set():
                # the agent is shutting down: leave here, at a checkpoint, so nothing is lost —
                # and before on_train_end, so the run is not ended "stopped" while it lives on
                on_preempted(epoch)

    return EpochCheckpoint()
