"""The ``live_webhook`` fixture: a real waitress server others' tests use, and the OpenAPI document."""

from __future__ import annotations

from flask import Flask

from fitwire.contract import EpochEnd, TrainBegin, TrainEnd, encode
from tests.fixtures.webhook import LiveWebhook


def test_a_tracker_like_client_leaves_its_run_and_epochs_in_the_store(live_webhook: LiveWebhook) -> None:
    token = live_webhook.create_user("alice", "correct horse")
    key = live_webhook.create_model(token, "mnist")
    headers = {"Content-Type": "application/json"}
    events = [TrainBegin(run_id="run1", model_key=key, epochs=3, host="box", framework="keras")]
    events += [EpochEnd(run_id="run1", model_key=key, epoch=e, logs={"loss": 1.0 / (e + 1)}) for e in range(3)]
    events += [TrainEnd(run_id="run1", model_key=key, status="completed", logs={"loss": 0.33})]
    statuses = [live_webhook.api("POST", "/api/v1/events", token, data=encode(ev), headers=headers).status_code
                for ev in events]
    assert statuses == [201, 200, 200, 200, 200]
    alice = live_webhook.store.get_credentials("alice").user
    run = live_webhook.store.get_run(alice.id, "run1")
    assert (run.name, run.status, run.final_logs) == ("training_001", "completed", {"loss": 0.33})
    assert [e.logs["loss"] for e in live_webhook.store.list_epochs(alice.id, "run1")] == [1.0, 0.5, 1.0 / 3]
    session = live_webhook.api("GET", "/api/v1/session", token).json()
    assert session["user"]["username"] == "alice" and session["protocol_versions"] == [2]
    assert live_webhook.api("GET", "/health").json()["store"] == "sqlite"


def test_openapi_documents_exactly_the_routes(app: Flask) -> None:
    documented = {
        (path, method.upper())
        for path, ops in app.test_client().get("/openapi.json").json["paths"].items()
        for method in ops
    }
    served = {
        (rule.rule.replace("<", "{").replace(">", "}"), method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    assert documented == served
