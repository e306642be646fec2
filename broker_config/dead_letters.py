"""What ``jobs.dead`` holds, as admins see it: why each job died, peeked without consuming, or purged.

Agents turn dead letters into ``dead`` job states (``fitwire.agent.deadletters``); the
webhook shows and purges them. Both read the reasons from here.
"""

from __future__ import annotations

from typing import Any

from fitwire.broker.topology import DEAD_LETTERS, JOB_DELIVERY_LIMIT, JOBS_DEAD, declare
from fitwire.contract import DecodeError, Job, decode

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


BODY_CHARS = 2_000
"""How much of a dead letter's body a listing shows: enough to recognise it, not a dump."""


def dead_letter_json(headers: dict[str, Any] | None, body: bytes, routing_key: str) -> dict[str, Any]:
    """One dead letter as admins see it: the job it was (when it decodes), why it died, and its body."""
    headers = headers or {}
    deaths = headers.get("x-death")
    first = deaths[-1] if isinstance(deaths, list) and deaths and isinstance(deaths[-1], dict) else {}
    died: Any = first.get("time")  # pika gives a datetime
    try:
        job: Job | None = decode(body, Job)
        error = None
    except DecodeError as exc:
        job, error = None, str(exc)
    return {
        "job_id": job.job_id if job else None,
        "owner": job.owner if job else None,
        "pool": routing_key.removeprefix("jobs."),
        "reason": str(headers.get("x-first-death-reason", "unknown")),
        "queue": str(headers.get("x-first-death-queue", "")),
        "died_at": died.timestamp() if hasattr(died, "timestamp") else None,
        "decodable": job is not None,
        "error": error,
        "size": len(body),
        "body": body[:BODY_CHARS].decode(errors="replace"),
    }


def peek_dead_letters(channel: Any, limit: int = 100) -> tuple[list[dict[str, Any]], int]:
    """Up to ``limit`` letters of ``jobs.dead`` and how many it holds, leaving every one of them there.

    The letters are fetched unacked on this channel and all returned at once
    (``basic_nack(multiple, requeue)``): nothing is consumed, and ``jobs.dead``
    has no delivery limit, so a look never dead-letters a dead letter.
    """
    declare(channel, DEAD_LETTERS)
    total = int(channel.queue_declare(JOBS_DEAD.name, passive=True).method.message_count)
    letters: list[dict[str, Any]] = []
    last_tag = 0
    while len(letters) < min(limit, total):
        method, props, body = channel.basic_get(JOBS_DEAD.name, auto_ack=False)
        if method is None:
            break
        last_tag = method.delivery_tag
        letters.append(dead_letter_json(dict(props.headers or {}), body, method.routing_key))
    if last_tag:
        channel.basic_nack(delivery_tag=last_tag, multiple=True, requeue=True)
    return letters, total


def purge_dead_letters(channel: Any) -> int:
    """Empty ``jobs.dead``; returns how many letters it held. The store's ``dead`` job states stay."""
    declare(channel, DEAD_LETTERS)
    return int(channel.queue_purge(JOBS_DEAD.name).method.message_count)
