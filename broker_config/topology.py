"""The RabbitMQ topology of the wire contract, as declarative values.

Everything fitwire declares on a broker is described here once; ``declare_all``
applies it to a channel, ``definitions()`` renders it in the format of
``rabbitmqctl import_definitions`` (``broker_config/definitions.json`` is that
output, and a test keeps the two in agreement).

Routing keys:

* ``fitwire.progress``  ``<owner>.<model_key>.<run_id>`` — one queue per watcher.
* ``fitwire.signals``   ``<model_key>.<run_id>`` or ``<model_key>.any`` — one queue per run.
* ``fitwire.jobs``      ``<pool>`` — one durable quorum queue per pool.
* ``fitwire.telemetry`` ``node.<node_id>`` — one queue per watcher.
* ``fitwire.rpc``       ``predict.<pool>`` — one durable queue per pool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

PROTOCOL_VERSION = 1
"""Version of the wire contract; every message carries it as ``v``."""

SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

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
DLX = Exchange("fitwire.dlx", "topic")

EXCHANGES: tuple[Exchange, ...] = (PROGRESS, SIGNALS, JOBS, TELEMETRY, RPC, DLX)

JOBS_DEAD = Queue("jobs.dead", arguments={"x-queue-type": "quorum"})


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


def signal_queue_name(run_id: str) -> str:
    return f"signals.{run_id}"


def signal_queue_arguments() -> dict[str, Any]:
    return {"x-message-ttl": SIGNAL_TTL_MS, "x-max-length": 1_000, "x-overflow": "drop-head"}


def progress_key(owner: str, model_key: str, run_id: str) -> str:
    return f"{owner}.{model_key}.{run_id}"


def signal_keys(model_key: str, run_id: str) -> tuple[str, str]:
    """Binding keys of a run's signal queue: the run itself and its whole model."""
    return (f"{model_key}.{run_id}", f"{model_key}.{ANY_RUN}")


def telemetry_key(node_id: str) -> str:
    return f"node.{node_id}"


def durable_queues(pools: tuple[str, ...] = DEFAULT_POOLS) -> tuple[Queue, ...]:
    return (JOBS_DEAD, *(job_queue(p) for p in pools), *(rpc_queue(p) for p in pools))


def durable_bindings(pools: tuple[str, ...] = DEFAULT_POOLS) -> tuple[Binding, ...]:
    return (
        Binding(DLX.name, JOBS_DEAD.name, "jobs.#"),
        *(Binding(JOBS.name, job_queue(p).name, p) for p in pools),
        *(Binding(RPC.name, rpc_queue(p).name, f"predict.{p}") for p in pools),
    )


class _Channel(Protocol):
    """The slice of ``pika.channel.Channel`` that ``declare_all`` uses."""

    def exchange_declare(self, exchange: str, exchange_type: str, durable: bool) -> Any: ...

    def queue_declare(self, queue: str, durable: bool, arguments: dict[str, Any]) -> Any: ...

    def queue_bind(self, queue: str, exchange: str, routing_key: str) -> Any: ...


def declare_all(channel: _Channel, pools: tuple[str, ...] = DEFAULT_POOLS) -> None:
    """Declare every exchange, durable queue and binding; idempotent.

    Raises ``pika.exceptions.ChannelClosedByBroker`` (PRECONDITION_FAILED) when
    a queue already exists with other arguments — that is a deployment error to
    fix, not something to paper over.
    """
    for ex in EXCHANGES:
        channel.exchange_declare(exchange=ex.name, exchange_type=ex.type, durable=ex.durable)
    for q in durable_queues(pools):
        channel.queue_declare(queue=q.name, durable=q.durable, arguments=q.arguments)
    for b in durable_bindings(pools):
        channel.queue_bind(queue=b.queue, exchange=b.exchange, routing_key=b.routing_key)


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
            for ex in EXCHANGES
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
