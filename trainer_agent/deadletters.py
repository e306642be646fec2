"""Turning dead-lettered jobs into ``dead`` job states, with the reason the broker gives."""

from __future__ import annotations

import logging
from typing import Any

from fitwire.agent.backends import JobEvents
from fitwire.broker import DecodeError, Job, decode
from fitwire.broker.topology import JOB_DELIVERY_LIMIT

log = logging.getLogger(__name__)

_REASONS = {
    "delivery_limit": (
        f"delivered {JOB_DELIVERY_LIMIT + 1} times without ending: it keeps killing its agent "
        "or its runner process"
    ),
    "rejected": "rejected by an agent",
    "expired": "expired in the queue",
    "maxlen": "dropped by a full queue",
}


def death_reason(headers: dict[str, Any] | None, previous: str | None = None) -> str:
    """A sentence for a dead job, from the ``x-first-death-reason`` header and the last recorded reason."""
    code = str((headers or {}).get("x-first-death-reason", "unknown"))
    reason = _REASONS.get(code, f"dead-lettered ({code})")
    return f"{reason}; last attempt: {previous}" if previous else reason


def handle_dead_letter(events: JobEvents, body: bytes, headers: dict[str, Any] | None,
                       previous_reason: str | None = None) -> Job | None:
    """Record the job as dead; returns it, or None when the body is not a job (logged and dropped)."""
    try:
        job = decode(body, Job)
    except DecodeError as exc:
        log.warning("dropping an undecodable dead letter: %s", exc)
        return None
    events.job_state(job, "dead", reason=death_reason(headers, previous_reason))
    return job
