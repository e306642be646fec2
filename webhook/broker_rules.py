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
  * declare, bind and consume the job queues (``jobs.*``) and declare the exchanges an
    agent uses (jobs, dead letters, telemetry); hand jobs back to ``fitwire.jobs``;
  * publish telemetry only as ``node.<their id>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fitwire.broker.topology import (
    ANY_RUN,
    DLX,
    JOBS,
    PROGRESS,
    SIGNALS,
    TELEMETRY,
    owner_signal_queue_name,
    telemetry_key,
)

NODE_PREFIX = "node."
"""Agents log in to the broker as ``node.<node id>`` with their node token."""

_WORD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""One word of a fitwire routing key (usernames, model keys, run ids): no dots, no wildcards."""

Permission = Literal["configure", "write", "read"]


def node_username(node_id: str) -> str:
    """The broker login of an agent."""
    return f"{NODE_PREFIX}{node_id}"


@dataclass(frozen=True)
class Caller:
    """A broker login the webhook knows: a user (``node_id`` None) or an agent."""

    username: str
    is_admin: bool = False
    node_id: str | None = None
    user_id: str | None = None
    """The store's id of a user (for model ownership)."""

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
    if caller.is_node:
        return {
            "configure": (JOBS.name, DLX.name, TELEMETRY.name),
            "write": (JOBS.name, TELEMETRY.name),
            "read": (JOBS.name, DLX.name),
        }
    live = (PROGRESS.name, SIGNALS.name)
    return {"write": live, "read": (*live, TELEMETRY.name) if caller.is_admin else live}


def _queue_allowed(caller: Caller, name: str, permission: str) -> bool:
    if permission not in ("configure", "write", "read"):
        return False
    if caller.is_node:
        return name.startswith("jobs.")
    if name.startswith(("amq.gen-", "stomp-subscription-")):
        return True
    run_id = name.rpartition(".")[2]
    return bool(_WORD.match(run_id)) and name == owner_signal_queue_name(caller.username, run_id)
