"""The job runner: one training job in its own process (``python -m fitwire.agent.runner TICKET RESULT``).

The agent writes a ticket (the job, where to report, where artifacts live),
starts this module as a child and reads the result file when it exits. A child
that dies without writing a result (a crash, an OOM kill, a signal) leaves no
file: the agent treats that as an infrastructure failure and lets the broker
redeliver the job, counting the attempt towards the delivery limit.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Literal

from fitwire.agent import bundle as bundles
from fitwire.agent.backends import JobEvents, open_backends
from fitwire.agent.checkpoint import Checkpoint, make_callback, restore
from fitwire.agent.dataset_cache import DatasetCache, DatasetFetchError
from fitwire.agent.isolation import drop_privileges
from fitwire.client_api.http import Client
from fitwire.contract import Job, decode
from fitwire.contract.artifacts import (
    ArtifactStore,
    bundle_key,
    checkpoint_key,
    trained_metadata_key,
)
from fitwire.contract.datasets import DatasetInvalid
from fitwire.contract.errors import ApiError

log = logging.getLogger("fitwire.agent.runner")

Outcome = Literal["succeeded", "failed", "stopped", "preempted"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this child when the agent dies, so a job never runs twice at once."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the agent's process group still takes us down
        return
    if os.getppid() != parent_pid:  # the agent died before prctl took effect
        os._exit(1)


def _fit_kwargs(train: Any, val: Any, batch_size: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if isinstance(train, tuple | list) and len(train) == 2:
        kwargs.update(x=train[0], y=train[1], batch_size=batch_size)
    else:  # a tf.data.Dataset, a PyDataset or a generator batches itself
        kwargs["x"] = train
    if val is not None:
        kwargs["validation_data"] = tuple(val) if isinstance(val, list) else val
    return kwargs


def _tracker(job: Job, ticket: dict[str, Any]) -> Any:
    """The job's Tracker, bound to its model key and run id so a resumed job continues the same run."""
    if not ticket.get("tracker", False):
        return None
    try:
        from fitwire.callback import Tracker
    except ImportError as exc:
        log.warning("fitwire.callback.Tracker is unavailable (%s); the job runs untracked", exc)
        return None
    try:
        return Tracker(
            job.spec.model_key,
            token=ticket.get("token"),
            run_id=job.run_id,
            webhook_url=ticket.get("webhook_url"),
            amqp_url=ticket.get("amqp_url"),
            owner=job.owner,  # local mode has no webhook to say whose run this is
        )
    except Exception as exc:  # a tracking problem must not cost the user the training
        log.warning("could not create the Tracker (%s); the job runs untracked", exc)
        return None


def run_job(job: Job, ticket: dict[str, Any], events: JobEvents, artifacts: ArtifactStore,
            preempt: threading.Event, on_preempted: Callable[[int], None]) -> tuple[Outcome, str | None]:
    """Build the bundle's model, resume from the last checkpoint, fit, and say how it ended."""
    spec = job.spec
    finish: Callable[[], None] | None = None
    try:
        if spec.train_spec is not None:
            model, train, val, finish = _spec_job(job, ticket, artifacts)
        else:
            source = artifacts.get(bundle_key(spec.bundle))
            if source is None:
                return "failed", f"job bundle {spec.bundle} is not in the artifact store"
            model, train, val = bundles.build(source, spec.entry_point, dict(spec.params))
    except Exception as exc:
        return "failed", _last_line(exc)

    initial_epoch = 0
    blob = artifacts.get(checkpoint_key(job.job_id))
    if blob is not None:
        ckpt = Checkpoint.from_bytes(blob)
        restore(model, ckpt)
        initial_epoch = ckpt.epoch + 1
        # re-assert the checkpointed epoch: the dead agent may have died before its outbox sent it
        events.epoch_end(job, ckpt.epoch, ckpt.logs)
        log.info("job %s resumes at epoch %d", job.job_id, initial_epoch)
    if initial_epoch >= spec.epochs:
        if finish is not None:
            finish()  # the previous runner trained it all and died before storing the model
        return "succeeded", None

    tracker = _tracker(job, ticket)
    checkpointing = make_callback(job, artifacts, events, preempt, on_preempted)
    # the Tracker first: its epoch_end is queued before the checkpoint makes the epoch final
    callbacks = [c for c in (tracker, checkpointing) if c is not None]
    try:
        model.fit(epochs=spec.epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=0,
                  **_fit_kwargs(train, val, spec.batch_size))
    except Exception as exc:
        return "failed", _last_line(exc)

    last = artifacts.get(checkpoint_key(job.job_id))
    done = Checkpoint.from_bytes(last).epoch if last is not None else -1
    if done >= spec.epochs - 1:
        if finish is not None:
            try:
                finish()
            except Exception as exc:
                return "failed", f"the trained model could not be stored: {_last_line(exc)}"
        return "succeeded", None
    session = getattr(tracker, "session", None)
    if session is not None and session.stop_requested:
        sender = session.stop_signal.sender if session.stop_signal else ""
        return "stopped", f"STOP signal from {sender}" if sender else "STOP signal"
    return "stopped", f"fit ended after epoch {done} of {spec.epochs} (stop_training set by the job's code)"


def _spec_job(job: Job, ticket: dict[str, Any], artifacts: ArtifactStore) -> tuple[Any, Any, Any, Callable[[], None]]:
    """A model spec's training (``spec.train_spec``): the model and data from the spec and the fetched
    dataset, and what stores the trained model (``.keras`` and its metadata) once the fit is done."""
    from fitwire.agent import spec_training
    from fitwire.contract.datasets import CsvInfo

    train_spec, ref = job.spec.train_spec, job.spec.dataset
    assert train_spec is not None
    if ref is None or "FITWIRE_DATASET" not in os.environ:
        raise DatasetFetchError("a spec training needs its dataset, and none was fetched")
    backends = ticket["backends"]
    csv_info = None
    if ref.format == "csv":  # the column types the webhook found: what the preprocessing is built from
        found = Client(backends["url"], backends["token"]).call("GET", f"/api/v1/datasets/{ref.dataset_id}")
        csv_info = CsvInfo.model_validate(found["info"])
    workdir = Path.cwd()
    initial = None
    if train_spec.initial_weights is not None:
        blob = artifacts.get(train_spec.initial_weights)
        if blob is None:
            raise DatasetFetchError(f"the trained model to start from ({train_spec.initial_weights}) is gone")
        initial = workdir / "initial.keras"
        initial.write_bytes(blob)
    prepared = spec_training.prepare(train_spec, Path(os.environ["FITWIRE_DATASET"]), ref.format, csv_info,
                                     job.spec.batch_size, initial_weights=initial)

    def finish() -> None:
        assert prepared.predictor is not None and train_spec is not None
        path = spec_training.save(prepared.predictor, workdir / "trained.keras", prepared.metadata)
        artifacts.put(train_spec.output_key, path.read_bytes())
        artifacts.put(trained_metadata_key(train_spec.output_key),
                      spec_training.metadata_path(path).read_bytes())

    return prepared.model, prepared.train_data, prepared.val_data, finish


def _last_line(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


PRELOADED = ("tensorflow", "keras", "numpy", "fitwire.callback", "zipfile", "zoneinfo", "encodings.cp437",
             "encodings.idna", "encodings.utf_8_sig", "csv", "multiprocessing.pool", "multiprocessing.queues",
             "multiprocessing.synchronize")  # what Keras's image_dataset_from_directory imports as it runs
"""Imported as root before the drop, while their files are surely readable: where the interpreter lives
where the job user cannot go (e.g. under /root), only what is already imported still works; the agent
warns about such an interpreter at start (``isolation.unreadable_interpreter``)."""


def _become_job_user(run_as: list[int]) -> None:
    """Drop root before any of the job's code runs."""
    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    drop_privileges(run_as[0], run_as[1])


def fetch_dataset(job: Job, ticket: dict[str, Any]) -> None:
    """Make the job's dataset ready in the agent's cache, and tell the job where: ``FITWIRE_DATASET``
    (the CSV file, or the folder holding ``training_data/`` and ``validation_data/``) and
    ``FITWIRE_DATASET_FORMAT``. Runs before the privilege drop: the cache is the agent's.

    Raises: DatasetFetchError (the job fails, saying why); ServerUnreachable (no result is
    written, so the broker hands the job out again).
    """
    ref = job.spec.dataset
    if ref is None:
        return
    backends = ticket["backends"]
    if backends.get("kind") != "http":
        raise DatasetFetchError(f"job {job.job_id} trains on dataset {ref.name!r}, which only a webhook serves; "
                                "this agent runs in local mode")
    client = Client(backends["url"], backends["token"], timeout=(10.0, 300.0))  # the job's token

    def download(out: BinaryIO) -> None:
        try:
            client.download(f"/api/v1/datasets/{ref.dataset_id}/file", out)
        except ApiError as exc:
            raise DatasetFetchError(f"the webhook refused dataset {ref.name!r}: {exc.message}") from None

    cache = DatasetCache(Path(ticket["dataset_cache"]), int(ticket["dataset_cache_bytes"]))
    found = cache.get(ref, download)
    log.info("dataset %s (%s) %s", ref.name, ref.sha256[:12], "downloaded" if found.downloaded else "from the cache")
    os.environ.update(FITWIRE_DATASET=str(found.path), FITWIRE_DATASET_FORMAT=ref.format)


def main(argv: list[str]) -> int:
    ticket_path, result_path = Path(argv[0]), Path(argv[1])
    ticket = json.loads(ticket_path.read_text())
    logging.basicConfig(level=ticket.get("log_level", "WARNING"),
                        format="%(asctime)s runner %(levelname)s %(name)s: %(message)s")
    _die_with_parent(int(ticket["agent_pid"]))  # a download must not outlive the agent either
    job = decode(json.dumps(ticket["job"]), Job)
    try:
        fetch_dataset(job, ticket)
    except (DatasetFetchError, DatasetInvalid) as exc:
        _write_result(result_path, "failed", f"dataset: {exc}")
        return 0
    if ticket.get("run_as"):
        _become_job_user(ticket["run_as"])
        # again after the drop: a change of credentials clears the parent-death signal
        _die_with_parent(int(ticket["agent_pid"]))
    preempt = threading.Event()
    # SIGTERM from the agent means "finish this epoch, checkpoint, and hand the job back"
    signal.signal(signal.SIGTERM, lambda *_: preempt.set())
    events, artifacts = open_backends(ticket["backends"])

    def preempted(epoch: int) -> None:
        _write_result(result_path, "preempted", f"agent shut down; checkpointed after epoch {epoch}")
        os._exit(0)  # skip the Tracker's train_end: the run goes on elsewhere

    try:
        outcome, reason = run_job(job, ticket, events, artifacts, preempt, preempted)
    except Exception as exc:  # our own bug or a backend outage: report it, the agent decides
        log.exception("runner error")
        outcome, reason = "failed", f"runner error: {_last_line(exc)}"
    _write_result(result_path, outcome, reason)
    return 0


def _write_result(path: Path, outcome: Outcome, reason: str | None) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"outcome": outcome, "reason": reason}))
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
