"""Trainer agents: take jobs from RabbitMQ, run each in a child process wrapped in the Tracker.

``fitwire agent start --pool NAME`` runs :class:`Agent`; ``submit`` / ``publish_job``
put jobs on a pool's queue. Keras is imported only in the job's child process.
"""

from __future__ import annotations

from fitwire.agent.agent import Agent, AgentConfig
from fitwire.agent.backends import (
    TERMINAL_STATES,
    JobEvents,
    JobState,
    LocalJournal,
    open_backends,
)
from fitwire.agent.jobs import submit
from fitwire.agent.telemetry import GpuProbe, NoGpus, NvmlProbe, StaticGpus, default_probe, fake_gpu
from fitwire.artifacts import LocalArtifacts
from fitwire.broker.jobs import declare_pool, publish_job
from fitwire.contract.artifacts import ArtifactStore, bundle_id

__all__ = [
    "TERMINAL_STATES", "Agent", "AgentConfig", "ArtifactStore", "GpuProbe", "JobEvents", "JobState",
    "LocalArtifacts", "LocalJournal", "NoGpus", "NvmlProbe", "StaticGpus", "bundle_id", "declare_pool",
    "default_probe", "fake_gpu", "open_backends", "publish_job", "submit",
]
