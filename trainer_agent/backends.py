"""Where an agent sends job states and keeps artifacts: small interfaces and their local implementations.

The agent and its runner only talk to :class:`JobEvents` and :class:`ArtifactStore`.
The local implementations keep everything as files under a directory, which is
what agents on one machine (and the tests) share; the webhook implementations
(``fitwire.agent.http_backends``) speak the HTTP API to the same effect, so a
real object store can later stand behind the same interface.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fitwire.artifacts import LocalArtifacts
from fitwire.contract import Job
from fitwire.contract.artifacts import ArtifactStore
from fitwire.contract.enums import JOB_ENDED as TERMINAL_STATES  # noqa: F401 - re-exported
from fitwire.contract.enums import JobState


@dataclass(frozen=True)
class Claim:
    """A job this agent may start, as the store has it: never the broker message alone."""

    job: Job
    token: str | None = None
    """The job token for the job's child (its run, its bundle, its checkpoint); None without a webhook."""
    amqp_url: str | None = None
    """The broker login of the job's child; None: the agent's own broker (local mode)."""


class JobEvents(Protocol):
    """What an agent and its runner report about jobs."""

    def job_state(
        self, job: Job, state: JobState, *, reason: str | None = None, node_id: str | None = None
    ) -> None:
        """Record the job's new state (idempotent; the job is created when unknown)."""

    def status(self, job_id: str) -> tuple[JobState, str | None] | None:
        """The job's state and its reason, or None when the store does not know the job."""

    def claim(self, job: Job, node_id: str, delivery: int = 0) -> Claim | None:
        """Mark the job running on ``node_id`` for broker delivery ``delivery`` (``x-delivery-count``).

        The :class:`Claim` carries the job as the store knows it; None when it must be dropped:
        the store never saw that job id, it has ended (cancelled while queued), or it was
        claimed for this delivery already (a duplicate message).
        """

    def epoch_end(self, job: Job, epoch: int, logs: dict[str, Any]) -> None:
        """Persist an epoch of the job's run; idempotent on ``(run_id, epoch)``."""


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # readers see the old or the new file, never half of one


class LocalJournal:
    """Job states and epochs as files under ``root``: what agents use without a webhook.

    ``jobs/<job_id>.json`` holds the job, its state and its history;
    ``epochs/<run_id>.jsonl`` gets one line per epoch written (an upsert by
    ``(run_id, epoch)`` when read back with :meth:`epochs`).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _job_path(self, job_id: str) -> Path:
        return self.root / "jobs" / f"{job_id}.json"

    def record(self, job_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._job_path(job_id).read_text())  # type: ignore[no-any-return]
        except (FileNotFoundError, ValueError):
            return None

    def records(self) -> list[dict[str, Any]]:
        """Every job record, newest first."""
        found = [json.loads(p.read_text()) for p in (self.root / "jobs").glob("*.json")]
        return sorted(found, key=lambda r: r["history"][0]["at"], reverse=True)

    def job_state(
        self, job: Job, state: JobState, *, reason: str | None = None, node_id: str | None = None
    ) -> None:
        record = self.record(job.job_id) or {"job": job.model_dump(mode="json"), "history": []}
        record.update(state=state, reason=reason, node_id=node_id, updated_at=time.time())
        record["history"].append({"state": state, "reason": reason, "node_id": node_id, "at": time.time()})
        _atomic_write(self._job_path(job.job_id), json.dumps(record).encode())

    def status(self, job_id: str) -> tuple[JobState, str | None] | None:
        record = self.record(job_id)
        return (record["state"], record.get("reason")) if record else None

    def claim(self, job: Job, node_id: str, delivery: int = 0) -> Claim | None:
        record = self.record(job.job_id)
        if record is None:  # a job id nobody submitted here (`submit` records it queued first)
            return None
        state, claimed = record["state"], record.get("claimed_delivery")
        if not (state == "queued" or (state == "running" and claimed is not None and delivery > claimed)):
            return None
        stored = Job.model_validate(record["job"])  # the journal's copy, not the message's
        self.job_state(stored, "running", node_id=node_id)
        self._update(job.job_id, claimed_delivery=delivery)
        return Claim(stored)

    def _update(self, job_id: str, **fields: Any) -> None:
        record = self.record(job_id)
        if record is not None:
            record.update(fields)
            _atomic_write(self._job_path(job_id), json.dumps(record).encode())

    def epoch_end(self, job: Job, epoch: int, logs: dict[str, Any]) -> None:
        path = self.root / "epochs" / f"{job.run_id}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"run_id": job.run_id, "epoch": epoch, "logs": logs, "pid": os.getpid()})
        with open(path, "a") as fh:  # one short O_APPEND write: lines of two writers never interleave
            fh.write(line + "\n")

    def epochs(self, run_id: str) -> dict[int, dict[str, Any]]:
        """Epoch → logs, the last write of each epoch winning (what an upserting store keeps)."""
        path = self.root / "epochs" / f"{run_id}.jsonl"
        found: dict[int, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                found[row["epoch"]] = row["logs"]
        return found

    def epoch_writes(self, run_id: str) -> list[int]:
        """Every epoch write in order, duplicates included (tests check resume with it)."""
        path = self.root / "epochs" / f"{run_id}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line)["epoch"] for line in path.read_text().splitlines()]


def open_backends(config: dict[str, Any]) -> tuple[JobEvents, ArtifactStore]:
    """Build the backends a config names: ``{"kind": "local", "root": …}`` or ``{"kind": "http", …}``.

    The agent hands this config to its runner child, so both talk to the same place.
    """
    kind = config.get("kind")
    if kind == "local":
        root = Path(config["root"])
        return LocalJournal(root / "journal"), LocalArtifacts(root / "artifacts")
    if kind == "http":
        from fitwire.agent.http_backends import HttpArtifacts, HttpJobEvents

        # in a job's child, ``token`` is the job token: the node token never reaches job code
        return HttpJobEvents(config["url"], config["token"]), HttpArtifacts(config["url"], config["token"])
    raise ValueError(f"unknown backend kind {kind!r}; expected 'local' or 'http'")
