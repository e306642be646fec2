"""Who may do what on the broker: the rules behind RabbitMQ's HTTP auth backend (issue 11).

Pure functions of the caller and the resource, so they are unit-testable without a broker;
``fitwire.webhook.api.broker_auth`` feeds them from the store. Everything not allowed here
is refused (a whitelist): a new exchange or queue is nobody's until a rule names it.

RabbitMQ asks, for each operation (``resource_path``), one of configure (declare, delete),
write (publish to an exchange; bind *to* a queue) or read (consume, get, purge a queue; bind
*from* an exchange), and for topic exchanges also the routing key (``topic_path``): on
publish, the message's key; on ``queue.bind``, the binding pattern. ``configure`` covers
both declaring and deleting, so whoever may declare a shared exchange may also delete
it: users may do neither (the webhook declares the shared topology with its internal
account; clients declare passively).

Users
  * publish on ``fitwire.progress`` and ``fitwire.signals`` only under
    ``<self>.<model they own>.<run id or any>``;
  * bind on those exchanges only patterns whose first word is literally their name (a
    wildcard in the owner position is refused); admins may bind anything on progress,
    and read ``fitwire.telemetry`` (WebML streams every training and node to every admin);
  * declare, bind and consume their own queues only: server-named ones (``amq.gen-*``,
    Web STOMP's ``stomp-subscription-*``; exclusive, so nobody else can consume them) and
    their runs' signal queues ``signals.<self>.<run id>``;
  * never touch ``fitwire.jobs``, the job queues, the default exchange (it reaches every
    queue by name) or anything else.

Agents (``node.<node id>``)
  * declare, bind and consume only their own pools' job queues (``jobs.<pool>`` for the pools
    they said hello with), declare and bind the dead-letter queues and consume
    ``jobs.dead.watch``; declare the exchanges an agent uses (jobs, dead letters,
    telemetry); hand jobs back to ``fitwire.jobs``;
  * publish telemetry only as ``node.<their id>``;
  * serve predictions: declare ``fitwire.rpc`` and their own pools' request queues
    ``rpc.predict.<pool>``, bind and consume those, and publish the replies to
    ``fitwire.rpc.replies``, which reaches only the webhook's reply queues (never the default
    exchange, which would let a node publish to any queue by name).

Running jobs (``job.<job id>``, the job's child with its job token)
  * publish progress only under ``<owner>.<model>.<run>`` of that job, and declare, bind
    (that run's and its model's signal keys) and consume that run's signal queue
    ``signals.<owner>.<run>``, plus server-named queues; nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fitwire.broker.topology import (
    ANY_RUN,
    DLX,
    JOB_PREFIX,
    JOBS,
    JOBS_DEAD,
    JOBS_DEAD_WATCH,
    NODE_PREFIX,
    PROGRESS,
    RPC,
    RPC_REPLIES,
    SIGNALS,
    TELEMETRY,
    job_queue,
    node_username,
    owner_signal_keys,
    owner_signal_queue_name,
    progress_key,
    rpc_queue,
    telemetry_key,
)

__all__ = ["JOB_PREFIX", "NODE_PREFIX", "Caller", "JobScope", "node_username", "resource_allowed", "topic_allowed"]

_WORD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""One word of a fitwire routing key (usernames, model keys, run ids): no dots, no wildcards."""

Permission = Literal["configure", "write", "read"]


@dataclass(frozen=True)
class JobScope:
    """The one run a running job's child may report and be signalled on."""

    owner: str
    model_key: str
    run_id: str


@dataclass(frozen=True)
class Caller:
    """A broker login the webhook knows: a user, an agent (``node_id``) or a running job (``job``)."""

    username: str
    is_admin: bool = False
    node_id: str | None = None
    user_id: str | None = None
    """The store's id of a user (for model ownership)."""
    pools: tuple[str, ...] = ()
    """An agent's pools (from its hello): the job queues it may consume."""
    job: JobScope | None = None

    @property
    def is_node(self) -> bool:
        return self.node_id is not None


def resource_allowed(caller: Caller, resource: str, name: str, permission: str) -> bool:
    """May ``caller`` have ``permission`` on the exchange or queue ``name``?"""
    if resource == "exchange":
        return name in _exchanges(caller).get(permission, ())
    if resource == "queue":
        return _queue_allowed(caller, name, permission)
    return False


def topic_allowed(
    caller: Caller, exchange: str, permission: str, routing_key: str, owns_model: Callable[[str], bool]
) -> bool:
    """May ``caller`` publish with (write) or bind with (read) ``routing_key`` on ``exchange``?

    ``owns_model(key)`` says whether the caller (a user) owns the model ``key``; asked only
    when everything else about a publish is right.
    """
    words = routing_key.split(".")
    if caller.job is not None:
        scope = caller.job
        if exchange == PROGRESS.name and permission == "write":
            return routing_key == progress_key(scope.owner, scope.model_key, scope.run_id)
        if exchange == SIGNALS.name and permission == "read":
            return routing_key in owner_signal_keys(scope.owner, scope.model_key, scope.run_id)
        return False
    if caller.is_node:
        if exchange == TELEMETRY.name and permission == "write":
            return routing_key == telemetry_key(caller.node_id or "")
        return exchange == DLX.name and permission == "read"  # the dead-letter queues' bindings
    if exchange == TELEMETRY.name:
        return permission == "read" and caller.is_admin
    if exchange not in (PROGRESS.name, SIGNALS.name):
        return False
    if permission == "read":
        if caller.is_admin and exchange == PROGRESS.name:
            return True
        return words[0] == caller.username  # literally: "*" and "#" are not a name
    if permission != "write" or len(words) != 3 or words[0] != caller.username:
        return False
    if not all(_WORD.match(w) for w in words[1:]):
        return False
    if exchange == PROGRESS.name and words[2] == ANY_RUN:
        return False  # progress always names one run
    return owns_model(words[1])


def _exchanges(caller: Caller) -> dict[str, tuple[str, ...]]:
    if caller.job is not None:
        return {"write": (PROGRESS.name,), "read": (SIGNALS.name,)}
    if caller.is_node:
        return {
            "configure": (JOBS.name, DLX.name, TELEMETRY.name, RPC.name, RPC_REPLIES.name),
            "write": (JOBS.name, TELEMETRY.name, RPC_REPLIES.name),
            "read": (JOBS.name, DLX.name, RPC.name),
        }
    live = (PROGRESS.name, SIGNALS.name)
    return {"write": live, "read": (*live, TELEMETRY.name) if caller.is_admin else live}


def _queue_allowed(caller: Caller, name: str, permission: str) -> bool:
    if permission not in ("configure", "write", "read"):
        return False
    if caller.is_node:
        own = {job_queue(pool).name for pool in caller.pools} | {rpc_queue(pool).name for pool in caller.pools}
        if name in own:
            return True
        if name == JOBS_DEAD_WATCH.name:  # agents mark dead jobs from it
            return True
        # jobs.dead: declared and bound (what an agent declares at start), never read
        return name == JOBS_DEAD.name and permission in ("configure", "write")
    if name.startswith(("amq.gen-", "stomp-subscription-")):
        return True
    if caller.job is not None:
        return name == owner_signal_queue_name(caller.job.owner, caller.job.run_id)
    run_id = name.rpartition(".")[2]
    return bool(_WORD.match(run_id)) and name == owner_signal_queue_name(caller.username, run_id)
