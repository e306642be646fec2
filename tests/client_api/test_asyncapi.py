"""The AsyncAPI document of the broker API is generated, checked in, valid, and true to the code.

True to the code means: its exchanges and routing keys are the topology's
(``fitwire.broker.topology``), its message schemas accept what ``encode`` really sends, and
the views and signals it promises a user are the ones the broker's rules
(``fitwire.webhook.broker_rules``) allow.

Structure: no AsyncAPI validator ships on PyPI, so the AsyncAPI 3.0 rules a client tool
leans on are checked here by hand; set ``FITWIRE_ASYNCAPI_SCHEMA`` to the official JSON
Schema (``schemas/3.0.0.json`` of the npm package ``@asyncapi/specs``) to check the whole
document against it too.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlparse

import pytest
from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT7

from fitwire.broker import topology as t
from fitwire.client_api.asyncapi import (
    DOCUMENT,
    PROGRESS_MODELS,
    asyncapi_document,
    message_id,
    render,
)
from fitwire.contract import (
    AnyMessage,
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
    Signal,
    SignalAck,
    TrainBegin,
    TrainEnd,
    encode,
)
from fitwire.webhook.broker_rules import Caller, topic_allowed
from tests.fixtures.services import service_missing

DOC = asyncapi_document()
COMPONENTS = DOC["components"]


def walk(node: Any, path: str = "#") -> Iterator[tuple[str, Any]]:
    """Every (JSON pointer, value) of ``node``, depth first."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}/{index}")


def resolve(pointer: str) -> Any:
    """The value a local ``$ref`` (``#/a/b``) points at; KeyError when there is none."""
    node: Any = DOC
    for part in pointer.removeprefix("#/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def payload_validator(message: str) -> Draft7Validator:
    """A validator of one message's payload, its ``$ref``s resolved in the document.

    AsyncAPI's default schema format is a superset of JSON Schema draft 7.
    """
    registry = Registry().with_resource("urn:fitwire:asyncapi", DRAFT7.create_resource(DOC))
    schema = {"$ref": "urn:fitwire:asyncapi" + COMPONENTS["messages"][message]["payload"]["$ref"]}
    return Draft7Validator(schema, registry=registry, format_checker=FormatChecker())


# --- generated and checked in -----------------------------------------------------------------


def test_the_checked_in_document_is_the_generated_one() -> None:
    assert DOCUMENT.read_text(encoding="utf-8") == render(), (
        "regenerate with: python -m fitwire.client_api.asyncapi --write"
    )


def test_generating_twice_gives_the_same_text() -> None:
    assert render() == render(asyncapi_document())


# --- structure --------------------------------------------------------------------------------


def test_every_ref_resolves() -> None:
    refs = [value["$ref"] for _, value in walk(DOC) if isinstance(value, dict) and "$ref" in value]
    assert len(refs) > 50  # the walk saw the document
    unresolved = []
    for ref in refs:
        try:
            resolve(ref)
        except (KeyError, IndexError, ValueError):
            unresolved.append(ref)
    assert unresolved == []


def test_the_asyncapi_3_structure() -> None:
    assert DOC["asyncapi"] == "3.0.0"
    assert set(DOC) <= {"asyncapi", "id", "info", "servers", "defaultContentType", "channels", "operations",
                        "components"}  # 3.0 has no top-level externalDocs or tags
    assert DOC["info"]["title"] and DOC["info"]["version"]
    assert urlparse(DOC["info"]["externalDocs"]["url"]).scheme == "http"  # 3.0: an absolute URL
    assert DOC["info"]["externalDocs"]["url"].endswith("/openapi.json")
    key = re.compile(r"^[\w\d.\-_]+$")  # the spec's pattern for component and map keys
    for section in ("channels", "operations", *(f"components/{k}" for k in COMPONENTS)):
        assert all(key.match(name) for name in resolve(f"#/{section}")), section
    for server in DOC["servers"].values():
        assert {"host", "protocol"} <= set(server)
        assert set(re.findall(r"{(\w+)}", server["host"] + server.get("pathname", ""))) == set(server["variables"])
        assert [resolve(s["$ref"])["type"] for s in server["security"]] == ["userPassword"]
    for channel in DOC["channels"].values():
        assert set(re.findall(r"{(\w+)}", channel["address"])) == set(channel["parameters"])
        assert all(ref["$ref"].startswith("#/components/messages/") for ref in channel["messages"].values())
    for name, operation in DOC["operations"].items():
        assert operation["action"] in ("send", "receive"), name
        channel = operation["channel"]["$ref"]
        # 3.0: an operation's messages are its channel's, referenced through the channel
        assert all(m["$ref"].startswith(channel + "/messages/") for m in operation["messages"]), name
        if "reply" in operation:
            reply = operation["reply"]["channel"]["$ref"]
            assert all(m["$ref"].startswith(reply + "/messages/") for m in operation["reply"]["messages"])
    for message in COMPONENTS["messages"].values():
        assert message["payload"]["$ref"].startswith("#/components/schemas/")


def test_the_schemas_are_draft_7() -> None:
    """AsyncAPI's schema format is draft 7's superset: nothing only 2020-12 has, which tools would ignore."""
    later = {"$defs", "prefixItems", "unevaluatedProperties", "unevaluatedItems", "dependentRequired",
             "dependentSchemas", "$anchor", "$dynamicRef"}
    keys = {path.rsplit("/", 1)[-1] for path, _ in walk(COMPONENTS["schemas"])}
    assert keys & later == set()


def test_every_view_in_the_guide_is_an_operation() -> None:
    actions = {name: op["action"] for name, op in DOC["operations"].items()}
    assert actions == {"receiveProgress": "receive", "sendSignal": "send", "receiveNodeTelemetry": "receive"}
    ack = DOC["operations"]["sendSignal"]["reply"]["messages"]
    assert [resolve(m["$ref"]) for m in ack] == [{"$ref": "#/components/messages/signal_ack"}]


OFFICIAL_SCHEMA = (Path(__file__).resolve().parents[2] / "android_client_api" / "web" / "node_modules" / "@asyncapi"
                   / "specs" / "schemas" / "3.0.0.json")
"""The official AsyncAPI 3.0 JSON Schema, from npm (``@asyncapi/specs``, a dev dependency of the web client:
``make install`` brings it); ``FITWIRE_ASYNCAPI_SCHEMA`` may name another copy."""


def test_the_official_asyncapi_schema_accepts_it() -> None:
    path = Path(os.environ.get("FITWIRE_ASYNCAPI_SCHEMA") or OFFICIAL_SCHEMA)
    if not path.exists():
        service_missing(f"the official AsyncAPI 3.0 schema ({path}; `make install` fetches it with npm)")
    schema = json.loads(path.read_text(encoding="utf-8"))
    # The bundled schema keeps each definition under its own $id.
    registry = Registry().with_resources(
        (d["$id"], DRAFT7.create_resource(d)) for d in schema["definitions"].values() if "$id" in d
    )
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}"
              for e in Draft7Validator(schema, registry=registry, format_checker=FormatChecker()).iter_errors(DOC)]
    assert errors == []


# --- true to the topology ---------------------------------------------------------------------


def channel_of(exchange: str) -> dict[str, Any]:
    [channel] = [c for c in DOC["channels"].values() if c["bindings"]["amqp"]["exchange"]["name"] == exchange]
    return channel


def test_every_exchange_of_the_topology_is_a_channel() -> None:
    described = {c["bindings"]["amqp"]["exchange"]["name"]: c["bindings"]["amqp"]["exchange"]
                 for c in DOC["channels"].values()}
    assert set(described) == {ex.name for ex in t.full_topology().exchanges} == {ex.name for ex in t.EXCHANGES}
    for ex in t.EXCHANGES:
        assert (described[ex.name]["type"], described[ex.name]["durable"]) == (ex.type, ex.durable)


def test_every_address_is_the_topologys_routing_key() -> None:
    def key(exchange: str, **words: str) -> str:
        return str(channel_of(exchange)["address"]).format(**words)

    assert key(t.PROGRESS.name, owner="alice", model_key="m1", run_id="r1") == t.progress_key("alice", "m1", "r1")
    assert key(t.SIGNALS.name, owner="alice", model_key="m1", target="r1") == t.owner_signal_key("alice", "m1", "r1")
    assert key(t.SIGNALS.name, owner="alice", model_key="m1", target=t.ANY_RUN) == \
        t.owner_signal_key("alice", "m1", None)
    assert key(t.TELEMETRY.name, node_id="n1") == t.telemetry_key("n1")
    bindings = {(b.exchange, b.routing_key) for b in t.full_topology(("gpu",)).bindings}
    assert (t.JOBS.name, key(t.JOBS.name, pool="gpu")) in bindings
    assert (t.RPC.name, key(t.RPC.name, pool="gpu")) in bindings
    assert key(t.DLX.name, pool="gpu") == t.job_queue("gpu").arguments["x-dead-letter-routing-key"]


def test_every_message_of_the_contract_is_described() -> None:
    every = get_args(get_args(AnyMessage)[0])
    assert set(COMPONENTS["messages"]) == {message_id(m) for m in every}
    assert set(channel_of(t.PROGRESS.name)["messages"]) == {message_id(m) for m in PROGRESS_MODELS}
    assert set(channel_of(t.SIGNALS.name)["messages"]) == {"signal"}
    assert set(channel_of(t.TELEMETRY.name)["messages"]) == {"node_telemetry"}
    assert set(channel_of(t.JOBS.name)["messages"]) == {"job"}


# --- the schemas accept what is really sent ---------------------------------------------------

RUN = {"run_id": "r1", "model_key": "m1", "owner": "alice"}
REAL: list[Message] = [
    TrainBegin(**RUN, seq=1, params={"lr": 0.01, "layers": [64, 32], "name": "x"}, epochs=None, steps=None),
    TrainBegin(run_id="r2", model_key="m1"),  # every default
    EpochBegin(**RUN, seq=2, epoch=3),
    Batch(**RUN, epoch=0, batch=5, progress=None, logs={"loss": float("nan"), "acc": None, "x": float("inf")}),
    Batches(**RUN, seq=9, epoch=1, first=10, count=2, progress=0.5, logs={"loss": [0.5, None]}),
    *Batches(**RUN, epoch=1, first=0, count=2, progress=1.0, logs={"loss": [0.5, 0.4]}).unpack(),
    EpochEnd(**RUN, epoch=0, logs={"val_loss": float("-inf")}, duration=None),
    EpochEnd(**RUN, epoch=1, logs={}, duration=0.0),
    TrainEnd(**RUN, status="failed", reason="x" * 5000, logs={"loss": float("nan")}),
    TrainEnd(**RUN, status="completed"),
    SignalAck(**RUN, signal_id="s1", action="set_lr", ok=False, detail="set_lr needs a finite learning rate"),
    Heartbeat(**RUN),
    Signal(action="set_lr", model_key="m1", run_id="r1", value=0.001),
    Signal(action="stop", model_key="m1", run_id=None, sender="a" * 300),
    Signal(action="checkpoint", model_key="m1"),
    NodeTelemetry(node_id="n1", hostname="h", agent_version="0.1.0"),
    NodeTelemetry(node_id="n1", hostname="h", agent_version="0.1.0", pools=["default", "gpu"], cpu_percent=None,
                  gpus=[GpuInfo(index=0, name="T4", memory_total_mb=15_000, memory_used_mb=0, memory_free_mb=15_000)],
                  job_id="j1"),
    Job(owner="alice", spec=JobSpec(model_key="m1", bundle="b1")),
]


@pytest.mark.parametrize("message", REAL, ids=lambda m: message_id(type(m)))
def test_a_message_schema_accepts_the_encoded_message(message: Message) -> None:
    body = json.loads(encode(message))
    errors = [e.message for e in payload_validator(message_id(type(message))).iter_errors(body)]
    assert errors == []


def test_every_example_in_the_document_is_valid() -> None:
    for name, message in COMPONENTS["messages"].items():
        for example in message["examples"]:
            assert [e.message for e in payload_validator(name).iter_errors(example["payload"])] == [], name


def test_a_message_schema_refuses_what_the_contract_refuses() -> None:
    assert not payload_validator("signal").is_valid({"type": "signal", "action": "explode", "model_key": "m"})
    assert not payload_validator("signal").is_valid({"type": "signal", "model_key": "m"})  # no action
    ack = json.loads(encode(SignalAck(**RUN, signal_id="s1", action="stop", ok=True)))
    assert not payload_validator("signal_ack").is_valid({**ack, "surprise": 1})  # extra="forbid"
    assert not payload_validator("signal_ack").is_valid({**ack, "type": "heartbeat"})


def test_the_batches_schema_accepts_a_nan_column() -> None:
    body = json.loads(encode(Batches(**RUN, epoch=0, first=0, count=2, logs={"loss": [float("nan"), 0.5]})))
    assert body["logs"]["loss"][0] == "NaN"
    assert [e.message for e in payload_validator("batches").iter_errors(body)] == []


# --- what the document promises a user is what the broker allows ------------------------------


def test_the_views_and_signals_described_are_what_the_broker_allows() -> None:
    alice, admin = Caller("alice"), Caller("root", is_admin=True)

    def may(caller: Caller, exchange: str, permission: str, key: str) -> bool:
        return topic_allowed(caller, exchange, permission, key, owns_model=lambda model: model == "m1")

    progress, signals, telemetry = t.PROGRESS.name, t.SIGNALS.name, t.TELEMETRY.name
    for pattern in ("alice.#", "alice.m1.*", "alice.m1.r1"):  # your runs, one model, one run
        assert may(alice, progress, "read", pattern)
    assert not may(alice, progress, "read", "#") and not may(alice, progress, "read", "*.m1.r1")
    assert may(admin, progress, "read", "#")
    assert may(admin, telemetry, "read", "node.*") and not may(alice, telemetry, "read", "node.*")
    assert may(alice, signals, "write", "alice.m1.r1") and may(alice, signals, "write", "alice.m1.any")
    assert not may(alice, signals, "write", "alice.m2.r1")  # not her model
    assert not may(alice, signals, "write", "bob.m1.r1")
