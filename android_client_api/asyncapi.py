"""The AsyncAPI 3.0 document of fitwire's broker API, for people writing clients (Android, web, …).

``/openapi.json`` describes the webhook's HTTP API; this describes what travels on the
broker: which exchange, which routing key, which message. It is written from a client's
point of view (``receive`` progress, ``send`` signals), and its message schemas are the
contract's pydantic models themselves (:mod:`fitwire.contract.messages`), hoisted into
``components.schemas`` the way the OpenAPI document does it
(:func:`fitwire.contract.schema.model_ref`), so they cannot drift from the code.

The exchanges and routing keys are written down here rather than imported from
``fitwire.broker.topology``: the client layer may import only the contract and the core
(``tests/test_layers.py``). ``tests/client_api/test_asyncapi.py`` holds the two together:
every exchange of the topology is a channel here, with its type, and every channel address
formats to the key the topology's own key functions build.

Regenerate the checked-in copy after a change::

    python -m fitwire.client_api.asyncapi --write      # android_client_api/asyncapi.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from fitwire.contract.messages import (
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    Batch,
    Batches,
    EpochBegin,
    EpochEnd,
    GpuInfo,
    Heartbeat,
    Job,
    JobSpec,
    Message,
    NodeTelemetry,
    ProgressMessage,
    Signal,
    SignalAck,
    TrainBegin,
    TrainEnd,
    encode,
)
from fitwire.contract.schema import model_ref
from fitwire.contract.version import PROTOCOL_VERSION
from fitwire.settings import Settings

ASYNCAPI_VERSION = "3.0.0"
TITLE = "The AsyncAPI 3.0 document of fitwire's broker API."
AMQP_BINDING_VERSION = "0.3.0"
DOCUMENT = Path(__file__).with_name("asyncapi.json")
"""The checked-in, packaged copy (``fitwire.client_api`` package data)."""

PROGRESS_MODELS: tuple[type[Message], ...] = get_args(get_args(ProgressMessage)[0])
"""Every message of ``fitwire.progress``, read off the contract's union so a new one shows up here."""


def message_id(model: type[Message]) -> str:
    """A message's id in the document: its ``type`` on the wire (``train_begin``, ``signal``, …)."""
    return str(model.model_fields["type"].default)


# --- channels: the broker's exchanges as a client sees them ------------------------------------

PARAMETERS: dict[str, dict[str, Any]] = {
    "owner": {"description": "The run's owner: a fitwire username. The broker checks it against the "
                             "login (a user binds and publishes only under their own name).",
              "examples": ["alice"]},
    "model_key": {"description": "A model key (`POST /api/v1/models`); 1-64 of `A-Z a-z 0-9 _ -`.",
                  "examples": ["mnist_cnn"]},
    "run_id": {"description": "A run id; 1-64 of `A-Z a-z 0-9 _ -`, never `any`.",
               "examples": ["4b1d0c2e9f8a4c7e8d6b5a4f3e2d1c0b"]},
    "target": {"description": "A run id (that run only) or `any` (every running run of the model).",
               "examples": ["4b1d0c2e9f8a4c7e8d6b5a4f3e2d1c0b", "any"]},
    "node_id": {"description": "A trainer agent's node id.", "examples": ["gpu-box-1"]},
    "pool": {"description": "A job pool (`default` unless the deployment names others).",
             "examples": ["default"]},
    "reply_queue": {"description": "The asking webhook thread's reply queue: a prediction request's "
                                   "`reply_to`.", "examples": ["amq.gen-JzTY20BRgKO-HjmUJj0wLg"]},
}
"""``components.parameters``: every ``{name}`` of a channel address."""


@dataclass(frozen=True)
class Channel:
    """One exchange of the topology, as a channel: where it is, what it carries."""

    id: str
    exchange: str
    exchange_type: Literal["topic", "direct", "fanout"]
    address: str
    """The routing key, ``{parameter}`` for each word a client fills in."""
    models: tuple[type[Message], ...]
    title: str
    description: str


CHANNELS: tuple[Channel, ...] = (
    Channel(
        "progress", "fitwire.progress", "topic", "{owner}.{model_key}.{run_id}", PROGRESS_MODELS,
        "Run progress",
        "Every event of every run, routed by owner, model and run. Bind a server-named queue (AMQP) or "
        "SUBSCRIBE (Web STOMP) with a pattern whose first word is your username: `<you>.#` (all your "
        "runs), `<you>.<model_key>.*` (one model), `<you>.<model_key>.<run_id>` (one run). Admins may "
        "bind any pattern, `#` included. Messages are transient and watcher queues drop what waited "
        "over 5 s: catch up from `GET /api/v1/runs/{run_id}/state`.",
    ),
    Channel(
        "signals", "fitwire.signals", "topic", "{owner}.{model_key}.{target}", (Signal,),
        "Signals to runs",
        "Remote commands to a running fit. Publish to your own models only; the run answers each "
        "signal with a `signal_ack` on `fitwire.progress`. A run's own queue is "
        "`signals.<owner>.<run_id>` (its Tracker's, exclusive): clients publish, never consume.",
    ),
    Channel(
        "telemetry", "fitwire.telemetry", "topic", "node.{node_id}", (NodeTelemetry,),
        "Node telemetry",
        "What each trainer agent reports about its machine, every few seconds. Admins only: bind "
        "`node.*` (every node) or `node.<node_id>`.",
    ),
    Channel(
        "jobs", "fitwire.jobs", "direct", "{pool}", (Job,),
        "Jobs (agents only)",
        "Training jobs for the agents of a pool, published by the webhook (`POST /api/v1/jobs`). "
        "Not for clients: the broker refuses users every access; submit jobs over HTTP.",
    ),
    Channel(
        "rpc", "fitwire.rpc", "direct", "predict.{pool}", (),
        "Predictions (webhook and agents only)",
        "Prediction requests (`predict_request`) from the webhook to an agent of the pool, answered "
        "(`predict_reply`) on `fitwire.rpc.replies`. Not for clients: the broker refuses users "
        "every access; predict over HTTP (`POST /api/v1/models/{key}/predict`).",
    ),
    Channel(
        "rpcReplies", "fitwire.rpc.replies", "direct", "{reply_queue}", (),
        "Prediction answers (agents and the webhook only)",
        "Agents answer a prediction request here, with the request's `reply_to` (the asking webhook "
        "thread's exclusive queue) as the routing key. Not for clients.",
    ),
    Channel(
        "deadLetters", "fitwire.dlx", "topic", "jobs.{pool}", (Job,),
        "Dead jobs (agents and admins only)",
        "Jobs that failed too often, kept in `jobs.dead`. Not for clients: admins read them over "
        "HTTP (`GET /api/v1/dead-letters`).",
    ),
)


def _channel(channel: Channel) -> dict[str, Any]:
    names = [word.strip("{}") for word in channel.address.split(".") if word.startswith("{")]
    return {
        "address": channel.address,
        "title": channel.title,
        "description": channel.description,
        "messages": {message_id(m): {"$ref": f"#/components/messages/{message_id(m)}"} for m in channel.models},
        "parameters": {name: {"$ref": f"#/components/parameters/{name}"} for name in names},
        "bindings": {"amqp": {
            "is": "routingKey",
            "exchange": {"name": channel.exchange, "type": channel.exchange_type, "durable": True,
                         "autoDelete": False, "vhost": "/"},
            "bindingVersion": AMQP_BINDING_VERSION,
        }},
    }


# --- operations: what a user's client does ----------------------------------------------------


def _ref(channel: str, message: str | None = None) -> dict[str, str]:
    return {"$ref": f"#/channels/{channel}" + (f"/messages/{message}" if message else "")}


def _operations() -> dict[str, Any]:
    progress = [_ref("progress", message_id(m)) for m in PROGRESS_MODELS]
    return {
        "receiveProgress": {
            "action": "receive",
            "channel": _ref("progress"),
            "title": "Watch runs",
            "summary": "Receive the progress of your runs (admins: of every run).",
            "description": "Bind `<you>.#`, `<you>.<model_key>.*` or `<you>.<model_key>.<run_id>`; the "
                           "broker refuses a pattern that starts with anything but your username (a "
                           "wildcard included), except an admin's. Unpack `batches` into one batch each "
                           "(`first` … `first + count - 1`, `logs` are columns). Skip a message whose "
                           "`type` you do not know, and one whose `v` you do not speak.",
            "messages": progress,
            "tags": [{"name": "users"}],
        },
        "sendSignal": {
            "action": "send",
            "channel": _ref("signals"),
            "title": "Signal a run",
            "summary": "Stop a run, set its learning rate or ask for a checkpoint.",
            "description": "Publish to `fitwire.signals` with routing key `<you>.<model_key>.<run_id>` "
                           "(or `….any`: every running run of the model) and the AMQP property "
                           "`user_id` (Web STOMP: header `user-id`) set to your broker username. The "
                           "broker refuses a `user_id` that is not the login's, so the run trusts it as "
                           "the sender; a signal without one is answered `ok: false` and changes nothing. "
                           "The body's `sender` is ignored. Each run the signal reaches answers once, "
                           "with a `signal_ack` whose `signal_id` is the signal's `id`.",
            "messages": [_ref("signals", message_id(Signal))],
            "bindings": {"amqp": {"deliveryMode": 1, "bindingVersion": AMQP_BINDING_VERSION}},
            "reply": {"channel": _ref("progress"), "messages": [_ref("progress", message_id(SignalAck))]},
            "tags": [{"name": "users"}],
        },
        "receiveNodeTelemetry": {
            "action": "receive",
            "channel": _ref("telemetry"),
            "title": "Watch nodes",
            "summary": "Receive every trainer agent's machine report (admins only).",
            "messages": [_ref("telemetry", message_id(NodeTelemetry))],
            "tags": [{"name": "admins"}],
        },
    }


# --- messages ---------------------------------------------------------------------------------

_TS = 1767225600.0  # 2026-01-01T00:00:00Z: examples carry fixed values, so the document is stable
_RUN = {"run_id": "4b1d0c2e9f8a4c7e8d6b5a4f3e2d1c0b", "model_key": "mnist_cnn", "owner": "alice", "ts": _TS}
_SIGNAL_ID = "9e8d7c6b5a4f4e3d8c2b1a0f9e8d7c6b"

EXAMPLES: dict[type[Message], Message] = {
    TrainBegin: TrainBegin(**_RUN, seq=1, params={"lr": 0.001}, epochs=10, steps=469, host="gpu-box-1",
                           framework="keras", framework_version="3.6.0"),
    EpochBegin: EpochBegin(**_RUN, seq=2, epoch=0),
    Batch: Batch(**_RUN, seq=3, epoch=0, batch=0, progress=0.0021, logs={"loss": 2.3, "accuracy": 0.11}),
    Batches: Batches(**_RUN, seq=4, epoch=0, first=1, count=3, progress=0.0085,
                     logs={"loss": [2.1, 1.9, 1.8], "accuracy": [0.2, 0.31, 0.35]}),
    EpochEnd: EpochEnd(**_RUN, seq=470, epoch=0, logs={"loss": 0.31, "val_loss": float("nan")}, duration=12.5),
    TrainEnd: TrainEnd(**_RUN, seq=4700, status="stopped", reason="STOP signal from alice", logs={"loss": 0.05}),
    SignalAck: SignalAck(**_RUN, seq=1201, signal_id=_SIGNAL_ID, action="stop", ok=True,
                         detail="stop_training set: fit ends after the current batch"),
    Heartbeat: Heartbeat(**_RUN, seq=1202),
    Signal: Signal(ts=_TS, id=_SIGNAL_ID, action="stop", model_key="mnist_cnn",
                   run_id="4b1d0c2e9f8a4c7e8d6b5a4f3e2d1c0b"),
    NodeTelemetry: NodeTelemetry(ts=_TS, node_id="gpu-box-1", hostname="gpu-box-1", agent_version="0.1.0",
                                 pools=["default"], cpu_model="AMD EPYC 7443", cpu_threads=48, cpu_percent=37.5,
                                 memory_total_mb=257_000, memory_available_mb=190_000, disk_free_mb=800_000,
                                 gpus=[GpuInfo(index=0, name="NVIDIA A100", memory_total_mb=81_920,
                                               memory_used_mb=20_480, memory_free_mb=61_440,
                                               utilization_pct=88.0, temperature_c=61.0)],
                                 job_id="0f1e2d3c4b5a49687f6e5d4c3b2a1908"),
    Job: Job(ts=_TS, job_id="0f1e2d3c4b5a49687f6e5d4c3b2a1908", owner="alice", run_id=_RUN["run_id"],
             spec=JobSpec(model_key="mnist_cnn", bundle="a1b2c3d4e5f60718293a4b5c6d7e8f90", epochs=10)),
}
"""One example of each message, encoded as the wire carries it (a NaN as ``"NaN"``)."""

SUMMARIES: dict[type[Message], str] = {
    TrainBegin: "A run started: its parameters, epochs, steps per epoch and host.",
    EpochBegin: "An epoch started.",
    Batch: "One batch ended (older Trackers; newer ones send `batches`).",
    Batches: "Consecutive batches of one epoch: `logs` are columns, one value per batch "
             "`first` … `first + count - 1`; `ts` and `progress` are the last batch's.",
    EpochEnd: "An epoch ended, with its logs (validation included) and duration; the webhook stores it.",
    TrainEnd: "A run ended: `completed`, `stopped` or `failed`, with a reason.",
    SignalAck: "A run's answer to a signal: `signal_id` is the signal's `id`, `ok` whether it acted.",
    Heartbeat: "The run is alive: sent after 5 s without any other message.",
    Signal: "A command to one run (`run_id`) or every running run of a model (`run_id` null).",
    NodeTelemetry: "A trainer agent's machine: CPUs, memory, disk, GPUs, the job it runs.",
    Job: "A training job for an agent of `pool`.",
}

RECEIVED_MODE: JsonSchemaMode = "serialization"
"""Messages a client receives are described as fitwire sends them: every field present."""
SENT_MODE: JsonSchemaMode = "validation"
"""A message a client sends is described as the run accepts it: what has a default may be left out."""

_CORRELATIONS: dict[type[Message], tuple[str, str]] = {
    Signal: ("signal", "$message.payload#/id"),
    SignalAck: ("signal_ack", "$message.payload#/signal_id"),
}
"""A signal and its acks share one id: the signal's ``id`` is the ack's ``signal_id``."""


def _hoist(model: type[BaseModel], schemas: dict[str, Any], mode: JsonSchemaMode) -> dict[str, Any]:
    """:func:`model_ref` into ``schemas``, refusing to let one name stand for two schemas.

    The two modes differ (serialization marks defaulted fields required), so a model met in
    both would be overwritten silently and describe one direction wrongly.
    """
    mine: dict[str, Any] = {}
    ref = model_ref(model, mine, mode)
    for name, schema in mine.items():
        schema = _asyncapi_schema(schema)
        if schemas.setdefault(name, schema) != schema:
            raise ValueError(f"schema {name!r} differs between the directions it travels in")
    return ref


def _asyncapi_schema(node: Any) -> Any:
    """``node`` as AsyncAPI's Schema Object writes it: its ``discriminator`` is the property's name
    (a string), where pydantic writes OpenAPI's object (``propertyName`` and ``mapping``)."""
    if isinstance(node, dict):
        fixed = {k: _asyncapi_schema(v) for k, v in node.items()}
        if isinstance(fixed.get("discriminator"), dict):
            fixed["discriminator"] = fixed["discriminator"]["propertyName"]
        return fixed
    if isinstance(node, list):
        return [_asyncapi_schema(v) for v in node]
    return node


def _messages(schemas: dict[str, Any]) -> dict[str, Any]:
    messages: dict[str, Any] = {}
    for model in (*PROGRESS_MODELS, Signal, NodeTelemetry, Job):
        name = message_id(model)
        message: dict[str, Any] = {
            "name": name,
            "title": model.__name__,
            "summary": SUMMARIES[model],
            "contentType": "application/json",
            "payload": _hoist(model, schemas, SENT_MODE if model is Signal else RECEIVED_MODE),
            "examples": [{"name": name, "payload": json.loads(encode(EXAMPLES[model]))}],
        }
        if model in _CORRELATIONS:
            correlation = _CORRELATIONS[model][0]
            message["correlationId"] = {"$ref": f"#/components/correlationIds/{correlation}"}
        messages[name] = message
    return messages


# --- the document -----------------------------------------------------------------------------

SECURITY = [{"$ref": "#/components/securitySchemes/brokerLogin"}]


def _server(host: str, protocol: str, description: str, pathname: str | None = None) -> dict[str, Any]:
    server: dict[str, Any] = {"host": host, "protocol": protocol, "description": description}
    if pathname:
        server["pathname"] = pathname
    server["variables"] = {"host": {"default": "localhost",
                                    "description": "The broker host `GET /api/v1/session` announces."}}
    server["security"] = SECURITY
    return server


def _info(webhook: str) -> dict[str, Any]:
    return {
        "title": "fitwire broker API",
        "version": str(PROTOCOL_VERSION),
        "description": (
            "Live training progress and remote control over RabbitMQ, seen from a client (an app, a "
            "dashboard, `fitwire watch`): it *receives* progress and *sends* signals. The version is "
            f"the wire contract's: every message carries it as `v` ({PROTOCOL_VERSION}).\n\n"
            "Every body is one UTF-8 JSON object with `v` and `type`. JSON has no NaN or infinity, so "
            "a non-finite metric travels as the string `\"NaN\"`, `\"Infinity\"` or `\"-Infinity\"`. "
            f"Free text is cut, not refused: a signal's `sender` at {MAX_NAME_CHARS} characters, a "
            f"run's `reason` and an ack's `detail` at {MAX_TEXT_CHARS}.\n\n"
            "Log in over HTTP first (`POST /api/v1/auth/login`, then `GET /api/v1/session` for the "
            "broker URL with your login), and read the run so far from "
            "`GET /api/v1/runs/{run_id}/state`: the HTTP API is the `externalDocs` document. A client "
            "writer's guide is `docs/client-guide.md`, the broker's permissions `docs/broker-auth.md`, "
            "in the fitwire source."
        ),
        "license": {"name": "MIT"},
        # AsyncAPI 3 keeps externalDocs in info; its url must be absolute, hence a default address.
        "externalDocs": {
            "description": "The webhook's HTTP API (OpenAPI 3.1), served at `/openapi.json` of your webhook; "
                           "the URL is a local webhook's default address.",
            "url": f"{webhook}/openapi.json",
        },
    }


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of fitwire's broker API, from a client's point of view."""
    schemas: dict[str, Any] = {}
    messages = _messages(schemas)  # fills ``schemas`` as it meets the models
    webhook = str(Settings.model_fields["webhook_url"].default).rstrip("/")
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": _info(webhook),
        "servers": {
            "amqp": _server("{host}:5672", "amqp", "AMQP 0-9-1, vhost `/`."),
            "amqps": _server("{host}:5671", "amqps", "AMQP 0-9-1 over TLS, vhost `/`."),
            "webStomp": _server(
                "{host}:15674", "ws", "RabbitMQ Web STOMP: STOMP 1.2 over WebSocket (subprotocol "
                "`v12.stomp`), `CONNECT` with `host:/`. An exchange's key is the destination "
                "`/exchange/<exchange>/<routing key or pattern>`.", "/ws"),
            "webStompTls": _server("{host}:15673", "wss", "Web STOMP over TLS.", "/ws"),
        },
        "defaultContentType": "application/json",
        "channels": {channel.id: _channel(channel) for channel in CHANNELS},
        "operations": _operations(),
        "components": {
            "schemas": schemas,
            "messages": messages,
            "parameters": copy.deepcopy(PARAMETERS),  # callers may edit their document
            "correlationIds": {
                name: {"description": "The signal's `id`: a `signal_ack` carries it as `signal_id`.",
                       "location": location}
                for name, location in _CORRELATIONS.values()
            },
            "securitySchemes": {"brokerLogin": {
                "type": "userPassword",
                "description": "Username: your fitwire username. Password: an API token of yours "
                               "(`POST /api/v1/auth/login`; `GET /api/v1/session` announces the whole "
                               "`amqp://<you>:<token>@host/` URL). Web STOMP: the `login` and `passcode` "
                               "headers of `CONNECT`. The webhook checks every login and operation "
                               "(rules: `docs/broker-auth.md`); a login lives as long as its token.",
            }},
        },
    }


def render(document: dict[str, Any] | None = None) -> str:
    """The document as checked in: two-space indents, keys in the order built, UTF-8, final newline."""
    return json.dumps(asyncapi_document() if document is None else document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fitwire.client_api.asyncapi", description=TITLE)
    parser.add_argument("--write", action="store_true", help=f"write {DOCUMENT.name} next to this module "
                                                             "instead of printing it")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        DOCUMENT.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # python -m fitwire.client_api.asyncapi --write
    raise SystemExit(main())
