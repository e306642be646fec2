"""Dead letters: turning them into ``dead`` job states (what admins see of them: ``fitwire.broker.dead_letters``).

Agents learn of dead jobs from ``jobs.dead.watch`` (see ``topology.JOBS_DEAD_WATCH``
for why not from ``jobs.dead``); ``jobs.dead`` keeps every letter, decodable or
not, until an admin purges it (``fitwire jobs dead --purge``).
"""

from __future__ import annotations

import logging
from typing import Any

from fitwire.agent.backends import JobEvents
from fitwire.broker.dead_letters import death_reason
from fitwire.broker.topology import JOBS_DEAD
from fitwire.contract import DecodeError, Job, decode

log = logging.getLogger(__name__)


def handle_dead_letter(events: JobEvents, body: bytes, headers: dict[str, Any] | None,
                       previous_reason: str | None = None) -> Job | None:
    """Record the job as dead; returns it, or None when the body is not a job (logged; its copy stays in jobs.dead)."""
    try:
        job = decode(body, Job)
    except DecodeError as exc:
        log.warning("an undecodable message was dead-lettered (kept in %s for admins): %s", JOBS_DEAD.name, exc)
        return None
    events.job_state(job, "dead", reason=death_reason(headers, previous_reason))
    return job
