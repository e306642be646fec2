"""The typed client against a real webhook: every resource method returns the entity the store holds
(as the API shows it: the store's own fields at their defaults), non-finite metrics included, and
its JSON dump is exactly what the server sent (what ``--json`` prints)."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel

from fitwire.client_api.resources import FitwireApi, ListedNode, ListedTrained
from fitwire.contract import JobSpec, encode
from fitwire.contract.entities import Job, Node, Run, RunState, TrainedModel, dump, parse
from fitwire.contract.messages import EpochEnd, Message, TrainBegin, TrainEnd
from tests.datasets.generate import sample_csv
from tests.fixtures.webhook import LiveWebhook

E = TypeVar("E", bound=BaseModel)
CSV_SPEC: dict[str, Any] = {"format": "csv", "layers": [
    {"type": "Dense", "layer": {"units": 8, "activation": "relu"}},
    {"type": "Dense", "layer": {"units": None, "activation": "sigmoid"}},
]}


def shown(entity: E) -> E:
    """The store's entity as the API shows it: its store-only (``exclude``) fields at their defaults."""
    hidden = {name: field.get_default(call_default_factory=True)
              for name, field in type(entity).model_fields.items() if field.exclude}
    return entity.model_copy(update=hidden)


def marked(value: Any) -> Any:
    """``value`` with every NaN replaced by a marker, so that equal data compares equal."""
    if isinstance(value, float) and math.isnan(value):
        return "<NaN>"
    if isinstance(value, dict):
        return {k: marked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [marked(v) for v in value]
    return value


def assert_same(got: BaseModel, stored: BaseModel) -> None:
    """``got`` (read over HTTP) is ``stored`` as the API shows it: every field, computed ones too."""
    expected = shown(stored)
    assert isinstance(got, type(stored))
    fields = type(stored).model_fields
    assert {n: getattr(got, n) for n in fields if fields[n].exclude} == \
           {n: getattr(expected, n) for n in fields if fields[n].exclude}
    got_fields = {n: getattr(got, n) for n in [*fields, *type(stored).model_computed_fields]}
    expected_fields = {n: getattr(expected, n) for n in [*fields, *type(stored).model_computed_fields]}
    assert marked(_plain(got_fields)) == marked(_plain(expected_fields))


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {"__type__": type(value).__name__, **_plain(dict(value))}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@pytest.fixture
def admin(live_webhook: LiveWebhook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FitwireApi]:
    monkeypatch.setenv("FITWIRE_DATA_DIR", str(tmp_path / "data"))  # the webhook's dataset files
    token = live_webhook.create_user("ada", "correct-horse-1", admin=True)
    client = FitwireApi(live_webhook.url, token)
    yield client
    client.close()


def send(live: LiveWebhook, token: str | None, message: Message) -> None:
    response = live.api("POST", "/api/v1/events", token, data=encode(message),
                        headers={"Content-Type": "application/json"})
    assert response.status_code in (200, 201), response.text


def raw(live: LiveWebhook, api: FitwireApi, path: str) -> Any:
    response = live.api("GET", "/api/v1" + path, api.token)
    assert response.status_code == 200, response.text
    return response.json()


def test_every_typed_method_returns_the_entity_the_store_holds(live_webhook: LiveWebhook, admin: FitwireApi,
                                                               tmp_path: Path) -> None:
    store, now = live_webhook.store, datetime.now(UTC)
    me = admin.me()
    uid = me.id
    assert_same(me, store.get_user(uid))
    assert [u.id for u in admin.users()] == [u.id for u in store.list_users()]
    assert admin.session().user == me

    model = admin.create_model("mlp")
    key = model.key
    assert_same(model, store.get_model(uid, key))

    # A run whose loss went NaN (the wire carries "NaN" strings) and whose second epoch diverged.
    run_id = os.urandom(8).hex()
    send(live_webhook, admin.token, TrainBegin(run_id=run_id, model_key=key, epochs=2, steps=3,
                                               params={"lr": 0.1}, framework="keras"))
    send(live_webhook, admin.token, EpochEnd(run_id=run_id, model_key=key, epoch=0, duration=1.5,
                                             logs={"loss": math.nan, "accuracy": 0.5}))
    send(live_webhook, admin.token, EpochEnd(run_id=run_id, model_key=key, epoch=1,
                                             logs={"loss": math.inf, "accuracy": None}))
    send(live_webhook, admin.token, TrainEnd(run_id=run_id, model_key=key, status="completed",
                                             logs={"loss": math.nan}))
    run = admin.run(run_id)
    assert_same(run, store.get_run(uid, run_id))
    assert math.isnan(run.final_logs["loss"] or 0.0) and run.name == "training_001"  # computed, parsed back
    assert [r.run_id for r in admin.runs(key)] == [run_id]
    assert_same(admin.runs(key)[0], store.list_runs(uid, key)[0])
    epochs = admin.epochs(run_id)
    for got, stored in zip(epochs, store.list_epochs(uid, run_id), strict=True):
        assert_same(got, stored)
    assert math.isnan(epochs[0].logs["loss"] or 0.0) and epochs[1].logs["loss"] == math.inf
    state = admin.run_state(run_id)
    assert_same(state, store.run_state(uid, run_id))
    assert state.last_epoch is not None and state.last_epoch.epoch == 1
    assert dump(state) == raw(live_webhook, admin, f"/runs/{run_id}/state")  # what --json prints

    # A dataset: its owner_id is the store's own.
    data = sample_csv(tmp_path / "people.csv", rows=20).read_bytes()
    uploaded = admin.upload_dataset("people", "csv", io.BytesIO(data), len(data))
    assert uploaded.owner_id == ""
    assert_same(uploaded, store.get_dataset(uploaded.dataset_id))
    assert_same(admin.dataset(uploaded.dataset_id), store.get_dataset(uploaded.dataset_id))
    assert_same(admin.datasets()[0], store.get_dataset(uploaded.dataset_id))
    assert_same(admin.publish_dataset(uploaded.dataset_id, True), store.get_dataset(uploaded.dataset_id))

    # Jobs: one claimed (claimed_delivery and owner_id are the store's own), one cancelled.
    spec = JobSpec(model_key=key, bundle="b1", epochs=2).model_dump(mode="json")
    store.create_job(uid, job_id="job-claimed", run_id=os.urandom(8).hex(), pool="default", model_key=key,
                     spec=spec, now=now)
    store.create_node("node-1", "gpu-box", "hash-of-its-token", uid, now)
    claimed = store.claim_job("job-claimed", node_id="node-1", token_hash="job-token-hash", delivery=0, now=now)
    assert claimed.claimed_delivery == 0 and claimed.owner_id == uid
    assert_same(admin.job("job-claimed"), store.get_job("job-claimed"))
    store.create_job(uid, job_id="job-queued", run_id=os.urandom(8).hex(), pool="default", model_key=key,
                     spec=spec, now=now)
    cancelled = admin.cancel_job("job-queued")
    assert cancelled.state == "cancelled"
    assert_same(cancelled, store.get_job("job-queued"))
    jobs = {j.job_id: j for j in admin.jobs()}
    for job_id in ("job-claimed", "job-queued"):
        assert_same(jobs[job_id], store.get_job(job_id))
    assert [dump(j) for j in admin.jobs()] == raw(live_webhook, admin, "/jobs")["jobs"]

    # Nodes: created_by is the store's own; the API adds when the token lapses.
    store.report_node("node-1", {"hostname": "gpu-box", "gpus": []}, agent_version="1.0", protocol_version=2,
                      now=now, pools=("default",))
    node = admin.node("node-1")
    assert isinstance(node, ListedNode) and node.created_by == "" and node.token_expires_at > now
    assert_same(node, store.get_node("node-1"))
    assert_same(admin.nodes()[0], store.get_node("node-1"))
    assert [dump(n) for n in admin.nodes()] == raw(live_webhook, admin, "/nodes")["nodes"]
    assert_same(admin.revoke_node("node-1"), store.get_node("node-1"))

    # A design and its trained model, listed with its run's (NaN) final metrics.
    designed = admin.set_spec(key, CSV_SPEC)
    assert designed.design is not None and designed.design.state == "dynamic"
    trained = TrainedModel(run_id=run_id, job_id="job-claimed", created_at=now, size=123)
    store.update_design(uid, key, lambda d: d.model_copy(update={"trained": [trained]}) if d else None)
    assert_same(admin.model(key), store.get_model(uid, key))
    assert_same(admin.models()[0], store.get_model(uid, key))
    listed = admin.trained(key)
    assert len(listed) == 1 and isinstance(listed[0], ListedTrained)
    assert_same(listed[0], trained)
    assert math.isnan(listed[0].metrics["loss"] or 0.0)
    assert [dump(t) for t in listed] == raw(live_webhook, admin, f"/models/{key}/trained")["trained"]


def test_a_field_from_a_newer_server_does_not_break_parsing(live_webhook: LiveWebhook, admin: FitwireApi) -> None:
    key = admin.create_model("mlp").key
    run_id = os.urandom(8).hex()
    send(live_webhook, admin.token, TrainBegin(run_id=run_id, model_key=key, epochs=1))
    send(live_webhook, admin.token, EpochEnd(run_id=run_id, model_key=key, epoch=0, logs={"loss": math.nan}))
    answer = raw(live_webhook, admin, f"/runs/{run_id}/state")
    newer = {**answer, "added_later": {"x": 1},
             "run": {**answer["run"], "gpu_hours": 1.5},
             "epochs": [{**e, "peak_memory_mb": 900} for e in answer["epochs"]]}
    parsed = parse(RunState, newer)
    assert marked(dump(parsed)) == marked(answer)  # the newer fields dropped, everything else kept
    assert_same(parsed, live_webhook.store.run_state(admin.me().id, run_id))
    # The store's own fields are absent from the JSON, and a reader of the JSON needs none of them.
    job = {"job_id": "j", "run_id": "r", "pool": "default", "owner": "ada", "model_key": key, "state": "queued",
           "reason": None, "node_id": None, "spec": {}, "created_at": "2026-01-01T00:00:00Z",
           "updated_at": "2026-01-01T00:00:00Z", "in_v9": True}
    assert parse(Job, job).owner_id == ""
    node = parse(Node, {"node_id": "n", "name": "box", "created_at": "2026-01-01T00:00:00Z", "last_seen": None,
                        "agent_version": "1", "protocol_version": 2, "telemetry": None})
    assert node.created_by == ""
    assert isinstance(parse(Run, answer["run"]), Run)
