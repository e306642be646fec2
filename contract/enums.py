"""Every set of values two components agree on, each defined once.

The wire messages, the HTTP models, the stores, the agent and the CLI import these;
``/openapi.json`` and the AsyncAPI document list them from here.
"""

from __future__ import annotations

from typing import Literal, get_args

RunEnd = Literal["completed", "stopped", "failed"]
"""How a run ended (a ``train_end`` message's ``status``)."""
RunStatus = Literal["running", "completed", "stopped", "failed"]
"""Where a run stands, as the webhook stores it: running until its end arrives."""
RUN_ENDS: frozenset[str] = frozenset(get_args(RunEnd))

SignalAction = Literal["stop", "set_lr", "checkpoint"]
"""What a remote signal asks a running fit to do."""

JobState = Literal["queued", "running", "succeeded", "failed", "stopped", "cancelled", "dead", "unschedulable"]
"""Where a job stands; the one list every component (store, API, agent, CLI) uses."""
JOB_STATES: tuple[str, ...] = get_args(JobState)
JOB_ENDED: frozenset[str] = frozenset(JOB_STATES) - {"queued", "running"}
"""A job in one of these states has its verdict and never changes again."""

__all__ = ["JOB_ENDED", "JOB_STATES", "RUN_ENDS", "JobState", "RunEnd", "RunStatus", "SignalAction"]
