"""``POST /api/v1/events``: the Tracker's outbox delivers ``train_begin``, ``epoch_end`` and ``train_end`` here.

The body is one wire message, decoded with the shared schema
(:func:`fitwire.broker.decode`), never a second copy of it. Every event is
idempotent, so the outbox may resend after a lost response. The owner is the
token's user; the message's ``owner`` field is ignored.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, g, request

from fitwire.broker.topology import ANY_RUN
from fitwire.contract import DecodeError, EpochEnd, ProgressMessage, TrainBegin, TrainEnd, decode
from fitwire.contract.entities import Epoch
from fitwire.contract.errors import BadRequest, PermissionDenied
from fitwire.contract.http import ID_PATTERN
from fitwire.contract.messages import UnsupportedVersion, older_version, spoken_versions
from fitwire.webhook.api.common import store, to_json
from fitwire.webhook.api.nodes import user_or_job
from fitwire.webhook.store.base import RunStart

bp = Blueprint("events", __name__, url_prefix="/api/v1")

STORED = (TrainBegin, EpochEnd, TrainEnd)
"""The events the webhook persists; batches and the rest are live-only."""

INT_MAX = 2**31 - 1  # PostgreSQL INTEGER; a larger epoch is garbage, not a training
MAX_TEXT = {"host": 255, "framework": 64, "framework_version": 64}


def _check(event: TrainBegin | EpochEnd | TrainEnd) -> datetime:
    """Refuse values the store cannot hold; the event's time as a datetime. Raises: BadRequest."""
    for field in ("run_id", "model_key"):
        value = getattr(event, field)
        if not ID_PATTERN.match(value) or value == ANY_RUN:
            raise BadRequest(f"Field {field!r} must be 1 to 64 letters, digits, '_' or '-' (not 'any').")
    numbers = {"epoch": getattr(event, "epoch", 0)}
    if isinstance(event, TrainBegin):
        numbers.update(epochs=event.epochs or 0, steps=event.steps or 0)
        for field, limit in MAX_TEXT.items():
            if len(getattr(event, field)) > limit:
                raise BadRequest(f"Field {field!r} is longer than {limit} characters.")
    for field, value in numbers.items():
        if not 0 <= value <= INT_MAX:
            raise BadRequest(f"Field {field!r} must be between 0 and {INT_MAX}.")
    if not math.isfinite(event.ts) or not 0 <= event.ts < 253402300800:  # before year 10000
        raise BadRequest("Field 'ts' must be a Unix time.")
    return datetime.fromtimestamp(event.ts, UTC)


MINIMAL = "return=minimal"
"""``Prefer`` (RFC 7240) of a client that needs no run back, such as the outbox: epochs and ends answer 204."""


@bp.post("/events")
@user_or_job
def post_event() -> tuple[dict[str, Any] | str, int] | tuple[str, int, dict[str, str]]:
    """200 ``{"run": Run}``; 201 when ``train_begin`` created the run; 204 for ``epoch_end`` and
    ``train_end`` asked with ``Prefer: return=minimal`` (the store then need not read the run back)."""
    try:
        # The progress union has a cached validator in fitwire.broker; a union of our own would not.
        event = decode(request.get_data(), ProgressMessage)
    except UnsupportedVersion as exc:
        # An old Tracker's runs would never receive a STOP (routing keys changed): say so, once, plainly.
        remedy = "pip install -U fitwire" if older_version(exc.version) else "the server needs an upgrade"
        raise BadRequest(f"This fitwire client speaks wire contract v{exc.version}; the server speaks "
                         f"{spoken_versions()}: {remedy}.") from None
    except DecodeError as exc:
        raise BadRequest(f"The body is not a stored event: {exc}.") from None
    if not isinstance(event, STORED):
        raise BadRequest(
            f"The body is not a stored event: type {event.type!r} is live-only; "
            "send train_begin, epoch_end or train_end."
        )
    at = _check(event)
    job = g.job
    if job is not None and (event.run_id != job.run_id or event.model_key != job.model_key):
        # a job token reports its own run only, whatever the job's code tries
        raise PermissionDenied(f"This job token reports run {job.run_id} of model {job.model_key} only.")
    if isinstance(event, TrainBegin):
        start = RunStart(
            run_id=event.run_id,
            model_key=event.model_key,
            started_at=at,
            params=event.params,
            epochs=event.epochs,
            steps=event.steps,
            host=event.host,
            framework=event.framework,
            framework_version=event.framework_version,
        )
        run, created = store().begin_run(g.user.id, start)
        return {"run": to_json(run)}, 201 if created else 200
    if MINIMAL in request.headers.get("Prefer", "").replace(" ", "").split(","):
        if isinstance(event, EpochEnd):
            store().record_epoch(g.user.id, Epoch.of(event, at))
        else:
            store().record_end(g.user.id, event.run_id, event.status, event.reason, dict(event.logs), at)
        return "", 204, {"Preference-Applied": MINIMAL}
    if isinstance(event, EpochEnd):
        run = store().upsert_epoch(g.user.id, Epoch.of(event, at))
    else:
        run = store().end_run(g.user.id, event.run_id, event.status, event.reason, dict(event.logs), at)
    return {"run": to_json(run)}, 200
