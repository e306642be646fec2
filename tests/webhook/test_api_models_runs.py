"""HTTP: models (keys), runs and epochs; other users' ids are 404; bad input changes nothing."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from fitwire.contract import EpochEnd, TrainBegin, TrainEnd, encode
from tests.webhook.conftest import error_of

MODELS = "/api/v1/models"


def post_event(client: FlaskClient, headers: dict[str, str], event: object) -> object:
    return client.post("/api/v1/events", data=encode(event), headers=headers,  # type: ignore[arg-type]
                       content_type="application/json")


def test_model_lifecycle(client: FlaskClient, login: Callable[..., dict[str, str]]) -> None:
    alice = login()
    created = client.post(MODELS, json={"name": "mnist"}, headers=alice)
    assert created.status_code == 201
    model = created.json
    assert re.fullmatch(r"[0-9a-f]{32}", model["key"]) and model["runs"] == 0 and model["owner"] == "alice"
    key = model["key"]
    client.post(MODELS, json={"name": "cifar"}, headers=alice)
    assert [m["name"] for m in client.get(MODELS, headers=alice).json["models"]] == ["mnist", "cifar"]
    assert client.get(f"{MODELS}/{key}", headers=alice).json == model
    assert client.patch(f"{MODELS}/{key}", json={"name": "mnist-2"}, headers=alice).json["name"] == "mnist-2"
    assert error_of(client.patch(f"{MODELS}/{key}", json={"name": "cifar"}, headers=alice)) == (
        409, "RESOURCE_ALREADY_EXISTS")
    assert error_of(client.post(MODELS, json={"name": "cifar"}, headers=alice)) == (409, "RESOURCE_ALREADY_EXISTS")
    assert client.delete(f"{MODELS}/{key}", headers=alice).status_code == 204
    assert error_of(client.get(f"{MODELS}/{key}", headers=alice)) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert [m["name"] for m in client.get(MODELS, headers=alice).json["models"]] == ["cifar"]


@pytest.mark.parametrize("body", [{"name": ""}, {"name": "   "}, {"name": "x" * 201}, {"name": "a\nb"},
                                  {"name": 3}, {"name": "ok", "owner": "bob"}, {}])
def test_bad_model_bodies_are_400_and_store_nothing(client: FlaskClient, login: Callable[..., dict[str, str]],
                                                    body: dict[str, object]) -> None:
    alice = login()
    assert error_of(client.post(MODELS, json=body, headers=alice)) == (400, "INVALID_REQUEST")
    assert client.get(MODELS, headers=alice).json["models"] == []


def test_another_users_model_and_runs_are_404(client: FlaskClient, login: Callable[..., dict[str, str]]) -> None:
    alice, bob = login("alice"), login("bob")
    key = client.post(MODELS, json={"name": "mnist"}, headers=alice).json["key"]
    assert post_event(client, alice, TrainBegin(run_id="r1", model_key=key)).status_code == 201  # type: ignore[attr-defined]
    for method, path, body in [
        ("get", f"{MODELS}/{key}", None), ("patch", f"{MODELS}/{key}", {"name": "mine"}),
        ("delete", f"{MODELS}/{key}", None), ("get", f"{MODELS}/{key}/runs", None),
        ("get", "/api/v1/runs/r1", None), ("delete", "/api/v1/runs/r1", None),
        ("get", "/api/v1/runs/r1/epochs", None), ("get", "/api/v1/runs/r1/state", None),
    ]:
        response = getattr(client, method)(path, json=body, headers=bob)
        assert error_of(response) == (404, "RESOURCE_DOES_NOT_EXIST"), path
    for event in (TrainBegin(run_id="r2", model_key=key), EpochEnd(run_id="r1", model_key=key, epoch=0),
                  TrainEnd(run_id="r1", model_key=key, status="failed")):
        assert error_of(post_event(client, bob, event)) == (404, "RESOURCE_DOES_NOT_EXIST")
    state = client.get("/api/v1/runs/r1/state", headers=alice).json
    assert state["run"]["status"] == "running" and state["epochs"] == []
    assert client.get(f"{MODELS}/{key}", headers=alice).json == {**client.get(f"{MODELS}/{key}", headers=alice).json,
                                                                  "name": "mnist", "runs": 1}


def test_events_make_a_run_its_epochs_and_its_end(client: FlaskClient, login: Callable[..., dict[str, str]]) -> None:
    alice = login()
    key = client.post(MODELS, json={"name": "mnist"}, headers=alice).json["key"]
    begin = TrainBegin(run_id="r1", model_key=key, owner="mallory", params={"lr": 0.1}, epochs=2, steps=10,
                       host="gpu1", framework="keras", framework_version="3.3", ts=1_700_000_000.5)
    first = post_event(client, alice, begin)
    assert first.status_code == 201  # type: ignore[attr-defined]
    run = first.json["run"]  # type: ignore[attr-defined]
    assert (run["name"], run["number"], run["owner"], run["status"], run["params"]) == (
        "training_001", 1, "alice", "running", {"lr": 0.1})
    assert run["started_at"] == "2023-11-14T22:13:20.500000Z" and run["ended_at"] is None
    resent = post_event(client, alice, begin.model_copy(update={"params": {"lr": 9.0}}))
    assert resent.status_code == 200 and resent.json["run"] == run  # type: ignore[attr-defined]
    assert client.get("/api/v1/runs/r1/state", headers=alice).json["last_epoch"] is None
    post_event(client, alice, EpochEnd(run_id="r1", model_key=key, epoch=0, logs={"loss": float("nan")}))
    post_event(client, alice, EpochEnd(run_id="r1", model_key=key, epoch=1, logs={"loss": 0.5}))
    post_event(client, alice, EpochEnd(run_id="r1", model_key=key, epoch=1, logs={"loss": 0.4}))  # resent
    epochs = client.get("/api/v1/runs/r1/epochs", headers=alice).json["epochs"]
    assert [(e["epoch"], e["logs"]) for e in epochs] == [(0, {"loss": "NaN"}), (1, {"loss": 0.4})]
    state = client.get("/api/v1/runs/r1/state", headers=alice).json
    assert state["last_epoch"] == epochs[1] and state["run"]["run_id"] == "r1"
    end = post_event(client, alice, TrainEnd(run_id="r1", model_key=key, status="stopped", reason="STOP",
                                             logs={"loss": float("inf")}))
    ended = end.json["run"]  # type: ignore[attr-defined]
    assert (ended["status"], ended["reason"], ended["final_logs"]) == ("stopped", "STOP", {"loss": "Infinity"})
    late = post_event(client, alice, EpochEnd(run_id="r1", model_key=key, epoch=2))
    assert error_of(late) == (409, "INVALID_STATE")
    assert len(client.get("/api/v1/runs/r1/epochs", headers=alice).json["epochs"]) == 2
    assert error_of(post_event(client, alice, EpochEnd(run_id="ghost", model_key=key, epoch=0))) == (
        404, "RESOURCE_DOES_NOT_EXIST")
    post_event(client, alice, TrainBegin(run_id="r2", model_key=key))
    runs = client.get(f"{MODELS}/{key}/runs", headers=alice).json["runs"]
    assert [r["name"] for r in runs] == ["training_002", "training_001"]
    assert client.get("/api/v1/runs/r1", headers=alice).json == ended
    assert client.delete("/api/v1/runs/r1", headers=alice).status_code == 204
    assert error_of(client.get("/api/v1/runs/r1", headers=alice)) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert client.get(f"{MODELS}/{key}", headers=alice).json["runs"] == 1


def test_a_client_that_prefers_a_minimal_answer_gets_204_and_the_same_run_stored(
    client: FlaskClient, login: Callable[..., dict[str, str]],
) -> None:
    alice, bob = login(), login("bob")
    key = client.post(MODELS, json={"name": "mnist"}, headers=alice).json["key"]
    minimal = {**alice, "Prefer": "return=minimal"}
    assert post_event(client, minimal, TrainBegin(run_id="r1", model_key=key)).status_code == 201  # type: ignore[attr-defined]
    for event in (EpochEnd(run_id="r1", model_key=key, epoch=0, logs={"loss": 0.5}),
                  EpochEnd(run_id="r1", model_key=key, epoch=0, logs={"loss": 0.4}),  # resent
                  TrainEnd(run_id="r1", model_key=key, status="completed", logs={"loss": 0.4}),
                  TrainEnd(run_id="r1", model_key=key, status="failed")):  # resent or late: the first end wins
        answer = post_event(client, minimal, event)
        assert (answer.status_code, answer.data, answer.headers["Preference-Applied"]) == (  # type: ignore[attr-defined]
            204, b"", "return=minimal")
    state = client.get("/api/v1/runs/r1/state", headers=alice).json
    assert state["run"]["status"] == "completed" and state["run"]["final_logs"] == {"loss": 0.4}
    assert [(e["epoch"], e["logs"]) for e in state["epochs"]] == [(0, {"loss": 0.4})]
    assert error_of(post_event(client, minimal, EpochEnd(run_id="r1", model_key=key, epoch=1))) == (
        409, "INVALID_STATE")
    for event in (EpochEnd(run_id="r1", model_key=key, epoch=1), TrainEnd(run_id="r1", model_key=key, status="failed")):
        assert error_of(post_event(client, {**bob, "Prefer": "return=minimal"}, event)) == (  # not bob's run
            404, "RESOURCE_DOES_NOT_EXIST")
    assert client.get("/api/v1/runs/r1/state", headers=alice).json == state


def test_deleting_a_model_deletes_its_runs(client: FlaskClient, login: Callable[..., dict[str, str]]) -> None:
    alice = login()
    key = client.post(MODELS, json={"name": "mnist"}, headers=alice).json["key"]
    post_event(client, alice, TrainBegin(run_id="r1", model_key=key))
    post_event(client, alice, EpochEnd(run_id="r1", model_key=key, epoch=0))
    assert client.delete(f"{MODELS}/{key}", headers=alice).status_code == 204
    assert error_of(client.get("/api/v1/runs/r1", headers=alice)) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert error_of(client.get(f"{MODELS}/{key}/runs", headers=alice)) == (404, "RESOURCE_DOES_NOT_EXIST")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "not a stored event"),
        (b'{"type": "batch", "run_id": "r1", "model_key": "K", "epoch": 0, "batch": 1}', "not a stored event"),
        (b'{"type": "train_begin", "run_id": "r1", "model_key": "K", "colour": "red"}', "colour"),
        (b'{"type": "train_begin", "run_id": "r1", "model_key": "K", "epochs": "five"}', "epochs"),
        (b'{"type": "train_begin", "run_id": "r1", "model_key": "K", "v": 99}', "wire contract v99"),
        (b'{"type": "train_begin", "run_id": "a.b", "model_key": "K"}', "run_id"),
        (b'{"type": "train_begin", "run_id": "any", "model_key": "K"}', "run_id"),
        (b'{"type": "train_begin", "run_id": "r1", "model_key": "K", "epochs": 3000000000}', "epochs"),
        (b'{"type": "train_begin", "run_id": "r1", "model_key": "K", "ts": -5}', "ts"),
        (b'{"type": "epoch_end", "run_id": "r1", "model_key": "K", "epoch": -1}', "epoch"),
        (b'{"type": "train_end", "run_id": "r1", "model_key": "K", "status": "exploded"}', "status"),
    ],
)
def test_bad_events_are_400_and_store_nothing(client: FlaskClient, login: Callable[..., dict[str, str]],
                                              body: bytes, fragment: str) -> None:
    alice = login()
    key = client.post(MODELS, json={"name": "mnist"}, headers=alice).json["key"]
    response = client.post("/api/v1/events", data=body.replace(b'"K"', f'"{key}"'.encode()), headers=alice,
                           content_type="application/json")
    assert error_of(response) == (400, "INVALID_REQUEST")
    assert fragment in response.json["error"]["message"]
    assert client.get(f"{MODELS}/{key}/runs", headers=alice).json["runs"] == []


def test_oversize_body_is_413(client: FlaskClient, login: Callable[..., dict[str, str]]) -> None:
    alice = login()
    key = client.post(MODELS, json={"name": "mnist"}, headers=alice).json["key"]
    huge = TrainBegin(run_id="r1", model_key=key, params={"blob": "x" * (1024 * 1024)})
    assert error_of(post_event(client, alice, huge)) == (413, "PAYLOAD_TOO_LARGE")
    assert error_of(client.post(MODELS, data=b"{" + b" " * (1024 * 1024 + 1) + b"}", headers=alice,
                                content_type="application/json")) == (413, "PAYLOAD_TOO_LARGE")
    assert client.get(f"{MODELS}/{key}/runs", headers=alice).json["runs"] == []
