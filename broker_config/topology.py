"""The RabbitMQ topology of the wire contract, as declarative values.

Everything fitwire declares on a broker is described here once. Every component
declares the slice it uses, idempotently, before it uses it (``declare(channel,
agent_topology(pools))`` and the other per-role values below), so fitwire works on
a broker nobody prepared; ``declare_all`` applies the whole of it, and
``definitions()`` renders it in the format of ``rabbitmqctl import_definitions``
(``broker_config/definitions.json`` is that output, and a test keeps the two in
agreement).

Routing keys:

* ``fitwire.progress``  ``<owner>.<model_key>.<run_id>`` — one queue per watcher.
* ``fitwire.signals``   ``<owner>.<model_key>.<run_id>`` or ``<owner>.<model_key>.any`` — one queue
  per run, ``signals.<owner>.<run_id>``.
* ``fitwire.jobs``      ``<pool>`` — one durable quorum queue per pool.
* ``fitwire.telemetry`` ``node.<node_id>`` — one queue per watcher.
* ``fitwire.rpc``       ``predict.<pool>`` — one durable queue per pool.
* ``fitwire.rpc.replies`` ``<reply queue>`` — answers to predictions, routed to the asking
  webhook thread's own exclusive queue (the only queues bound to it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

DEFAULT_POOLS: tuple[str, ...] = ("default",)

WATCHER_TTL_MS = 5_000
"""A watcher that falls this far behind sees fresh progress, not stale."""
WATCHER_MAX_LENGTH = 10_000
SIGNAL_TTL_MS = 60_000
"""A STOP that waited a minute for a run is stale; it must not reach a later run."""
JOB_DELIVERY_LIMIT = 3
"""A job that killed this many agents goes to ``jobs.dead``."""

ANY_RUN = "any"
"""Signal routing-key suffix that reaches every running run of a model."""


@dataclass(frozen=True)
class Exchange:
    name: str
    type: Literal["topic", "direct", "fanout"]
    durable: bool = True


@dataclass(frozen=True)
class Queue:
    name: str
    durable: bool = True
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Binding:
    exchange: str
    queue: str
    routing_key: str


PROGRESS = Exchange("fitwire.progress", "topic")
SIGNALS = Exchange("fitwire.signals", "topic")
JOBS = Exchange("fitwire.jobs", "direct")
TELEMETRY = Exchange("fitwire.telemetry", "topic")
RPC = Exchange("fitwire.rpc", "direct")
RPC_REPLIES = Exchange("fitwire.rpc.replies", "direct")
"""Where agents answer predictions. Not the default exchange with direct reply-to: a login allowed
to publish there may publish to any queue by name; this exchange reaches only reply queues."""
DLX = Exchange("fitwire.dlx", "topic")

EXCHANGES: tuple[Exchange, ...] = (PROGRESS, SIGNALS, JOBS, TELEMETRY, RPC, RPC_REPLIES, DLX)

JOBS_DEAD = Queue("jobs.dead", arguments={"x-queue-type": "quorum"})
"""Every dead-lettered job message, kept for admins to inspect (`fitwire jobs dead`); fitwire never consumes it."""
JOBS_DEAD_WATCH = Queue(
    "jobs.dead.watch",
    arguments={"x-queue-type": "quorum", "x-max-length": 10_000, "x-overflow": "drop-head"},
)
"""A second copy of every dead letter, which agents consume to mark the job ``dead`` in the store.

Reading ``jobs.dead`` itself to mark jobs would either destroy what admins must be
able to inspect (consume + ack) or churn it (peek + requeue: every agent would see
every letter again and again, and a requeue reorders a quorum queue). Binding a
second queue to ``fitwire.dlx`` gives each dead letter exactly one notification and
leaves ``jobs.dead`` untouched. Bounded: with no agent running, it must not grow forever.
"""


def job_queue(pool: str) -> Queue:
    """The durable quorum queue an agent of ``pool`` consumes."""
    return Queue(
        f"jobs.{pool}",
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": JOB_DELIVERY_LIMIT,
            "x-dead-letter-exchange": DLX.name,
            "x-dead-letter-routing-key": f"jobs.{pool}",
        },
    )


def rpc_queue(pool: str) -> Queue:
    return Queue(f"rpc.predict.{pool}", arguments={"x-queue-type": "quorum"})


def watcher_queue_arguments() -> dict[str, Any]:
    """Arguments of a server-named, exclusive, auto-delete watcher queue.

    No dead-lettering: expired and dropped progress is meant to vanish.
    """
    return {
        "x-message-ttl": WATCHER_TTL_MS,
        "x-max-length": WATCHER_MAX_LENGTH,
        "x-overflow": "drop-head",
    }


def signal_queue_arguments() -> dict[str, Any]:
    return {"x-message-ttl": SIGNAL_TTL_MS, "x-max-length": 1_000, "x-overflow": "drop-head"}


def progress_key(owner: str, model_key: str, run_id: str) -> str:
    return f"{owner}.{model_key}.{run_id}"


def telemetry_key(node_id: str) -> str:
    return f"node.{node_id}"


NODE_PREFIX = "node."
"""Agents log in to the broker as ``node.<node id>`` with their node token."""
JOB_PREFIX = "job."
"""A running job's child (its Tracker) logs in as ``job.<job id>`` with its job token."""
# Fitwire usernames cannot contain a dot, so no user can take these names.


def node_username(node_id: str) -> str:
    """The broker login of an agent."""
    return f"{NODE_PREFIX}{node_id}"


def job_username(job_id: str) -> str:
    """The broker login of a running job's child."""
    return f"{JOB_PREFIX}{job_id}"


# Owner-first names: the broker's topic and resource checks read the owner off the first word,
# so a user can be confined to their own keys and queues.


def owner_signal_queue_name(owner: str, run_id: str) -> str:
    """A run's signal queue; only ``owner`` may declare, bind and consume it."""
    return f"signals.{owner}.{run_id}"


def owner_signal_key(owner: str, model_key: str, run_id: str | None) -> str:
    """Where a signal goes: one run, or (``run_id`` None) every running run of the model."""
    return f"{owner}.{model_key}.{run_id or ANY_RUN}"


def owner_signal_keys(owner: str, model_key: str, run_id: str) -> tuple[str, str]:
    """Binding keys of a run's signal queue: the run itself and its whole model."""
    return (owner_signal_key(owner, model_key, run_id), owner_signal_key(owner, model_key, None))


# --- what each role declares ---------------------------------------------------------


@dataclass(frozen=True)
class Topology:
    """A slice of the topology: what one component declares before it uses it."""

    exchanges: tuple[Exchange, ...] = ()
    queues: tuple[Queue, ...] = ()
    bindings: tuple[Binding, ...] = ()

    def __add__(self, other: Topology) -> Topology:
        def merged(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
            # union in first-seen order; queues hold a dict, so they are told apart by their repr
            return tuple({repr(item): item for item in (*a, *b)}.values())

        return Topology(merged(self.exchanges, other.exchanges), merged(self.queues, other.queues),
                        merged(self.bindings, other.bindings))


DEAD_LETTERS = Topology(
    exchanges=(DLX,),
    queues=(JOBS_DEAD, JOBS_DEAD_WATCH),
    bindings=(Binding(DLX.name, JOBS_DEAD.name, "jobs.#"), Binding(DLX.name, JOBS_DEAD_WATCH.name, "jobs.#")),
)
"""Where dead jobs go: declared by whoever publishes or consumes jobs, so no dead letter is ever unroutable."""

LIVE = Topology(exchanges=(PROGRESS, SIGNALS))
"""What a run's Tracker, a watcher and a signal sender use (their own queues are server-named or per run)."""

TELEMETRY_WATCH = Topology(exchanges=(TELEMETRY,))
"""What a telemetry watcher (``fitwire nodes --broker``) binds its own queue to."""


def job_pool_topology(pool: str) -> Topology:
    """A pool's queue and its binding, plus the dead-letter path: what a job publisher declares."""
    queue = job_queue(pool)
    return Topology(exchanges=(JOBS,), queues=(queue,), bindings=(Binding(JOBS.name, queue.name, pool),)) \
        + DEAD_LETTERS


def agent_topology(pools: tuple[str, ...]) -> Topology:
    """What a trainer agent declares at start: its pools, the dead-letter path, and telemetry."""
    topology = TELEMETRY_WATCH
    for pool in pools:
        topology = topology + job_pool_topology(pool)
    return topology


def full_topology(pools: tuple[str, ...] = DEFAULT_POOLS) -> Topology:
    """Everything: every exchange, the pools' job and RPC queues, the dead-letter path."""
    topology = Topology(exchanges=EXCHANGES) + DEAD_LETTERS
    for pool in pools:
        topology = topology + job_pool_topology(pool)
    rpc = Topology(queues=tuple(rpc_queue(p) for p in pools),
                   bindings=tuple(Binding(RPC.name, rpc_queue(p).name, f"predict.{p}") for p in pools))
    return topology + rpc


def durable_queues(pools: tuple[str, ...] = DEFAULT_POOLS) -> tuple[Queue, ...]:
    return full_topology(pools).queues


def durable_bindings(pools: tuple[str, ...] = DEFAULT_POOLS) -> tuple[Binding, ...]:
    return full_topology(pools).bindings


class _Channel(Protocol):
    """The slice of ``pika.channel.Channel`` that ``declare`` uses."""

    def exchange_declare(self, exchange: str, exchange_type: str, durable: bool) -> Any: ...

    def queue_declare(self, queue: str, durable: bool, arguments: dict[str, Any]) -> Any: ...

    def queue_bind(self, queue: str, exchange: str, routing_key: str) -> Any: ...


def declare(channel: _Channel, topology: Topology) -> None:
    """Declare a slice of the topology (exchanges, then queues, then bindings); idempotent.

    Raises ``pika.exceptions.ChannelClosedByBroker`` (PRECONDITION_FAILED) when
    a queue already exists with other arguments — that is a deployment error to
    fix, not something to paper over.
    """
    for ex in topology.exchanges:
        channel.exchange_declare(exchange=ex.name, exchange_type=ex.type, durable=ex.durable)
    for q in topology.queues:
        channel.queue_declare(queue=q.name, durable=q.durable, arguments=q.arguments)
    for b in topology.bindings:
        channel.queue_bind(queue=b.queue, exchange=b.exchange, routing_key=b.routing_key)


def declare_all(channel: _Channel, pools: tuple[str, ...] = DEFAULT_POOLS) -> None:
    """Declare every exchange, durable queue and binding (what ``definitions.json`` holds); idempotent."""
    declare(channel, full_topology(pools))


def definitions(pools: tuple[str, ...] = DEFAULT_POOLS, vhost: str = "/") -> dict[str, Any]:
    """The topology in ``rabbitmqctl import_definitions`` format."""
    return {
        "exchanges": [
            {
                "name": ex.name,
                "vhost": vhost,
                "type": ex.type,
                "durable": ex.durable,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for ex in full_topology(pools).exchanges
        ],
        "queues": [
            {
                "name": q.name,
                "vhost": vhost,
                "durable": q.durable,
                "auto_delete": False,
                "arguments": q.arguments,
            }
            for q in durable_queues(pools)
        ],
        "bindings": [
            {
                "source": b.exchange,
                "vhost": vhost,
                "destination": b.queue,
                "destination_type": "queue",
                "routing_key": b.routing_key,
                "arguments": {},
            }
            for b in durable_bindings(pools)
        ],
    }


if __name__ == "__main__":  # python -m fitwire.broker.topology > broker_config/definitions.json
    print(json.dumps(definitions(), indent=2))
