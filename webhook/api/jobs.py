"""Training jobs: users submit, list, show and cancel; agents (node tokens) claim and report.

``POST /api/v1/jobs`` validates the spec with the wire contract's own
``JobSpec``, checks the pool exists, stores the bundle, records the job
``queued`` and publishes it — persistent, publisher-confirmed — to its pool's
quorum queue; when the broker does not take it, the job is recorded ``failed``
("broker unavailable") and the caller gets a 503, so no job is ever ``queued``
in the store without a message behind it. Which jobs end ``unschedulable``, and
when, is :mod:`fitwire.webhook.api.job_verdicts`. Admins list and purge what
``jobs.dead`` holds with ``/api/v1/dead-letters``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, current_app, g, request
from pydantic import ValidationError

from fitwire.broker.adapter import Broker
from fitwire.broker.dead_letters import peek_dead_letters, purge_dead_letters
from fitwire.broker.jobs import declare_pool, publish_job
from fitwire.contract import BrokerError, JobSpec
from fitwire.contract import Job as WireJob
from fitwire.contract.artifacts import bundle_id, bundle_key
from fitwire.contract.errors import BadRequest, NotFound, PermissionDenied, TemporarilyUnavailable
from fitwire.contract.http import ClaimBody, StateBody, SubmitBody
from fitwire.webhook.api.artifacts import artifacts
from fitwire.webhook.api.common import (
    admin_only,
    authenticated,
    check_id,
    now,
    parse_body,
    store,
    to_json,
    validation_message,
)
from fitwire.webhook.api.datasets import dataset_ref
from fitwire.webhook.api.job_verdicts import (
    capacity_verdict,
    check_pool,
    check_unschedulable,
    judge_waiting,
)
from fitwire.webhook.api.nodes import job_login_url, node_only, user_or_node
from fitwire.webhook.api.trained import record_trained
from fitwire.webhook.security import hash_secret, new_secret
from fitwire.webhook.store.base import Job, Node

T = TypeVar("T")

bp = Blueprint("jobs", __name__, url_prefix="/api/v1")

MAX_BUNDLE_CHARS = 512 * 1024
NODE_STATES = frozenset({"queued", "succeeded", "failed", "stopped", "dead", "unschedulable"})
"""What a node may report; ``running`` is a claim, ``cancelled`` the owner's."""


def _spec(body: SubmitBody) -> JobSpec:
    fields = dict(body.spec)
    if body.bundle_source is not None:
        if len(body.bundle_source) > MAX_BUNDLE_CHARS:
            raise BadRequest(f"The job bundle is larger than {MAX_BUNDLE_CHARS} characters.")
        try:
            compile(body.bundle_source, body.bundle_name, "exec")
        except SyntaxError as exc:
            raise BadRequest(f"The job bundle does not compile: line {exc.lineno}: {exc.msg}.") from None
        source = body.bundle_source.encode()
        fields["bundle"] = bundle_id(source)
        artifacts().put(bundle_key(fields["bundle"]), source)
    elif "bundle" not in fields:
        raise BadRequest("Give the job bundle: 'bundle_source' (the Python file) or 'spec.bundle'.")
    if fields.get("dataset") is not None:
        fields["dataset"] = dataset_ref(g.user.id, fields["dataset"])
    try:
        spec = JobSpec.model_validate(fields)
    except ValidationError as exc:
        raise BadRequest("In 'spec': " + validation_message(exc)) from None
    if body.bundle_source is None and artifacts().get(bundle_key(spec.bundle)) is None:
        raise BadRequest(f"No uploaded job bundle {spec.bundle!r}.")
    check_id(spec.model_key, "spec.model_key")
    return spec


def _broker() -> Broker:
    """The webhook's broker: a kept connection per serving thread, publishing with confirms."""
    return current_app.extensions["fitwire_broker"]  # type: ignore[no-any-return]


def _publish(job: WireJob) -> None:
    """Raises BrokerError (a refused declaration too: never a 500)."""
    def publish(channel: Any) -> None:
        declare_pool(channel, job.pool)  # a fresh broker has nothing yet; the pool was checked above
        publish_job(channel, job)
    _broker().run(publish)


def _on_own_channel(operation: Callable[[Any], T]) -> T:
    """Run ``operation`` on a channel of its own (closed after), so what it leaves unacked never lingers."""
    def run(channel: Any) -> T:
        own = channel.connection.channel()
        try:
            return operation(own)
        finally:
            if own.is_open:
                own.close()
    try:
        return _broker().run(run)
    except BrokerError as exc:
        raise TemporarilyUnavailable(f"The broker is unavailable ({exc}).") from None


@bp.post("/jobs")
@authenticated
def submit() -> tuple[dict[str, Any], int]:
    """201 ``Job``: recorded ``queued`` and safely in the broker, or ``unschedulable`` when no registered
    node of the pool could ever run it. 404 for an unknown pool; 503 when the broker does not take it."""
    body = parse_body(SubmitBody)
    spec = _spec(body)
    check_pool(body.pool)
    return to_json(queue(WireJob(owner=g.user.username, pool=body.pool, spec=spec))), 201


def queue(wire: WireJob) -> Job:
    """Record the caller's job ``queued`` and publish it (a bundle job, or a spec's training);
    ``unschedulable`` when no registered node of the pool could ever run it.

    Raises: TemporarilyUnavailable (503) when the broker does not take it: the job is recorded ``failed``.
    """
    spec = wire.spec
    job = store().create_job(g.user.id, job_id=wire.job_id, run_id=wire.run_id, pool=wire.pool,
                             model_key=spec.model_key, spec=spec.model_dump(mode="json"), now=now())
    verdict = capacity_verdict(spec, wire.pool)
    if verdict is not None:  # never published: no agent would ever take it
        return store().set_job_state(job.job_id, "unschedulable", reason=verdict, node_id=None, now=now())
    try:
        _publish(wire)
    except BrokerError as exc:
        store().set_job_state(job.job_id, "failed", reason=f"broker unavailable: the job could not be queued ({exc})",
                              node_id=None, now=now())
        raise TemporarilyUnavailable(f"The broker did not take the job ({exc}); job {job.job_id} is recorded as failed "
                                     "(broker unavailable). Submit it again when the broker is back.") from None
    return job


@bp.get("/jobs")
@authenticated
def list_jobs() -> dict[str, Any]:
    """Your jobs, newest first (an admin's: everyone's)."""
    jobs = judge_waiting(store().list_jobs(None if g.user.is_admin else g.user.id))
    return {"jobs": [to_json(j) for j in jobs]}


def _node_job(node: Node, job_id: str) -> Job:
    """A job a node may see: one of its pools' (any other is "no such job", ids do not leak)."""
    job = store().get_job(job_id)
    if job.pool not in node.pools and job.node_id != node.node_id:
        raise NotFound(f"No job with id {job_id!r}.")
    return job


@bp.get("/jobs/<job_id>")
@user_or_node
def get_job(job_id: str) -> dict[str, Any]:
    """The job: its owner's, an admin's, a node's of its pool, or its own job token's."""
    if g.job is not None:
        if g.job.job_id != job_id:
            raise NotFound(f"No job with id {job_id!r}.")
        return to_json(store().get_job(job_id))
    if g.node is not None:
        return to_json(judge_waiting([_node_job(g.node, job_id)])[0])
    owner = None if g.user.is_admin else g.user.id
    return to_json(judge_waiting([store().get_job(job_id, owner)])[0])


@bp.post("/jobs/<job_id>/cancel")
@authenticated
def cancel(job_id: str) -> dict[str, Any]:
    """409 INVALID_STATE unless queued: a running job is stopped with a STOP signal (`fitwire stop`)."""
    return to_json(store().cancel_job(None if g.user.is_admin else g.user.id, job_id, now()))


@bp.post("/jobs/<job_id>/claim")
@node_only
def claim(job_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """A node starts the job. The broker message is only a pointer: the job (spec, run, owner) is
    the stored one in the answer, with a job token for the job's child and its broker login.

    Only a queued job of one of the node's pools, once per broker delivery (``delivery``: a job
    whose agent died is redelivered with a higher count). The job token reports that job's run,
    reads its bundle and reads and writes its checkpoint, nothing else, and dies when the job
    leaves ``running``. A job id the store never saw is a 404.
    """
    body = parse_body(ClaimBody)
    job = _node_job(g.node, job_id)
    if job.pool not in g.node.pools:
        raise PermissionDenied(f"Job {job_id} is for pool {job.pool!r}; this node takes "
                               f"{', '.join(g.node.pools) or 'no pool'}.")
    secret = new_secret()
    job = store().claim_job(job_id, node_id=g.node.node_id, token_hash=hash_secret(secret),
                            delivery=body.delivery, now=now())
    answer = {"job": to_json(job), "token": secret, "amqp_url": job_login_url(job, secret)}
    return answer, 200, {"Cache-Control": "no-store"}  # it carries a credential


@bp.put("/jobs/<job_id>/state")
@node_only
def set_state(job_id: str) -> dict[str, Any]:
    """A node reports a job: the one it runs (back to the queue, or how it ended), or, for a job of its
    pools it does not hold, ``unschedulable`` (checked here) or ``dead`` (dead-lettered by the broker)."""
    body = parse_body(StateBody)
    job = _node_job(g.node, job_id)
    if body.state not in NODE_STATES:
        raise PermissionDenied(f"A node cannot set a job {body.state}.")
    held = job.state == "running" and job.node_id == g.node.node_id
    if not held and body.state not in ("unschedulable", "dead"):
        raise PermissionDenied(f"Job {job_id} is {job.state}{' on another node' if job.state == 'running' else ''}; "
                               "a node reports only the job it runs.")
    if body.state == "unschedulable":  # an agent sees only itself; the webhook knows every registered node
        check_unschedulable(job)
    job = store().set_job_state(job_id, body.state, reason=body.reason, node_id=g.node.node_id, now=now())
    if job.state == "succeeded" and job.spec.get("train_spec"):
        record_trained(job)
    return to_json(job)


MAX_DEAD_LETTERS_SHOWN = 1_000


@bp.get("/dead-letters")
@admin_only
def dead_letters() -> dict[str, Any]:
    """Admin: what ``jobs.dead`` holds (``?limit=N``, default 100), left in place; undecodable letters too."""
    try:
        limit = max(1, min(int(request.args.get("limit", 100)), MAX_DEAD_LETTERS_SHOWN))
    except ValueError:
        raise BadRequest("'limit' must be a whole number.") from None
    letters, total = _on_own_channel(lambda channel: peek_dead_letters(channel, limit))
    return {"total": total, "dead_letters": letters}


@bp.delete("/dead-letters")
@admin_only
def purge_dead() -> dict[str, Any]:
    """Admin: empty ``jobs.dead``; the jobs stay ``dead`` in the store."""
    return {"purged": _on_own_channel(purge_dead_letters)}
