"""Model specs over HTTP: validation naming the layer and field, shaping, WebML's states, clone, training
queued as a job (on the real broker), trained models recorded, listed and deleted."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fitwire.contract.entities import Design, TrainedModel
from fitwire.webhook import create_app
from fitwire.webhook.store import Store
from tests.datasets.generate import image_zip, sample_csv
from tests.webhook.conftest import error_of

Login = Callable[..., dict[str, str]]

IMAGES_SPEC: dict[str, Any] = {"format": "images", "layers": [
    {"type": "Conv2D", "layer": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
    {"type": "MaxPooling2D", "layer": {"pool_size": 2}},
    {"type": "Flatten"},
    {"type": "Dropout", "layer": {"rate": 0.2}},
    {"type": "Dense", "layer": {"units": None, "activation": "softmax"}},
]}
CSV_SPEC: dict[str, Any] = {"format": "csv", "layers": [
    {"type": "Dense", "layer": {"units": 8, "activation": "relu"}},
    {"type": "Dense", "layer": {"units": None, "activation": "sigmoid"}},
]}


@pytest.fixture
def app(sqlite_store: Store, tmp_path: Path, amqp_url: str) -> Flask:
    return create_app({"STORE": sqlite_store, "AMQP_URL": amqp_url, "BROKER_LOGINS": "shared",
                       "ARTIFACTS_DIR": str(tmp_path / "artifacts"), "DATASET_LABEL_LIMIT": 10,
                       "SPEC_MAX_LAYERS": 20, "SPEC_MAX_PARAMS": 100_000, "TRAINED_MODELS_MAX": 2})


def model(client: FlaskClient, auth: dict[str, str], name: str = "net", spec: dict[str, Any] | None = None) -> str:
    key = str(client.post("/api/v1/models", json={"name": name}, headers=auth).json["key"])
    if spec is not None:
        response = client.put(f"/api/v1/models/{key}/spec", json=spec, headers=auth)
        assert response.status_code == 200, response.json
    return key


def dataset(client: FlaskClient, auth: dict[str, str], path: Path, name: str) -> dict[str, Any]:
    response = client.post(f"/api/v1/datasets?name={name}", data=path.read_bytes(), headers=auth)
    assert response.status_code == 201, response.json
    return dict(response.json)


def test_validate_gives_every_layers_shape_and_parameters(client: FlaskClient, login: Login) -> None:
    alice = login()
    response = client.post("/api/v1/specs/validate", headers=alice,
                           json={"spec": {**IMAGES_SPEC, "size": [28, 28, 1]}, "output_units": 10})
    assert response.status_code == 200, response.json
    layers = response.json["layers"]
    assert [row["output_shape"] for row in layers] == [[26, 26, 4], [13, 13, 4], [676], [676], [10]]
    assert [row["params"] for row in layers] == [40, 0, 0, 0, 6770]
    assert response.json["params"] == 6810


@pytest.mark.parametrize(("change", "named"), [
    (lambda s: s["layers"][0]["layer"].update(kernel_size=40), "layer 0 (kernel_size)"),
    (lambda s: s["layers"][0]["layer"].update(filters=2000), "filters"),
    (lambda s: s["layers"][0]["layer"].update(padding="full"), "padding"),
    (lambda s: s["layers"][3]["layer"].update(rate=1.5), "rate"),
    (lambda s: s["layers"].insert(0, {"type": "Conv3D", "layer": {}}), "Conv3D"),
    (lambda s: s["layers"].pop(2), "layer 3"),  # no Flatten: the last Dense outputs 13×13×10
    (lambda s: s["layers"].extend([{"type": "Dropout", "layer": {"rate": 0.1}}] * 20), "layers"),
    (lambda s: s["layers"][4]["layer"].update(units=5000), "100,000 weights"),  # over SPEC_MAX_PARAMS
])
def test_a_bad_spec_is_refused_naming_the_layer_and_field(client: FlaskClient, login: Login,
                                                           change: Callable[[dict[str, Any]], None], named: str) -> None:
    alice = login()
    spec = copy.deepcopy({**IMAGES_SPEC, "size": [28, 28, 1]})
    change(spec)
    response = client.post("/api/v1/specs/validate", json={"spec": spec, "output_units": 10}, headers=alice)
    assert error_of(response) == (400, "INVALID_REQUEST")
    assert named in response.json["error"]["message"], response.json


def test_states_dynamic_shaped_editable_static_and_back(client: FlaskClient, login: Login, tmp_path: Path,
                                                        sqlite_store: Store) -> None:
    alice = login()
    key = model(client, alice, spec=IMAGES_SPEC)
    shown = client.get(f"/api/v1/models/{key}", headers=alice).json
    assert shown["design"]["state"] == "dynamic" and shown["design"]["output_units"] is None
    assert error_of(client.post(f"/api/v1/models/{key}/train", json={}, headers=alice)) == (409, "INVALID_STATE")

    dataset(client, alice, image_zip(tmp_path / "pets.zip", classes=("cat", "dog", "eel"), size=(24, 20)), "pets")
    shaped = client.post(f"/api/v1/models/{key}/shape", json={"dataset": "pets"}, headers=alice)
    assert shaped.status_code == 200, shaped.json
    design = shaped.json["design"]
    assert design["state"] == "shaped" and design["output_units"] == 3
    assert design["spec"]["size"] == [20, 24, 3] and design["dataset_name"] == "pets"

    edited = {**IMAGES_SPEC, "layers": [{"type": "Rescaling"}, *IMAGES_SPEC["layers"]]}
    response = client.put(f"/api/v1/models/{key}/spec", json=edited, headers=alice)
    assert response.status_code == 200 and response.json["design"]["state"] == "editable"
    assert response.json["design"]["spec"]["size"] == [20, 24, 3]  # the shaping stays

    # once trained (as a succeeded job records it), the model is static: its layers and shaping are frozen
    owner = sqlite_store.get_credentials("alice").user.id
    trained = TrainedModel(run_id="r1", job_id="j1", created_at=shown["created_at"], size=10)
    sqlite_store.update_design(owner, key, lambda d: Design.model_validate(
        {**d.model_dump(), "trained": [trained.model_dump()], "state": "static"}))  # type: ignore[union-attr]
    for refused in (client.put(f"/api/v1/models/{key}/spec", json=IMAGES_SPEC, headers=alice),
                    client.post(f"/api/v1/models/{key}/shape", json={"dataset": "pets"}, headers=alice),
                    client.delete(f"/api/v1/models/{key}/spec", headers=alice)):
        assert error_of(refused) == (409, "INVALID_STATE") and "clone" in refused.json["error"]["message"]
    listed = client.get(f"/api/v1/models/{key}/trained", headers=alice).json["trained"]
    assert [t["run_id"] for t in listed] == ["r1"]
    assert client.delete(f"/api/v1/models/{key}/trained/r1", headers=alice).status_code == 204
    assert client.get(f"/api/v1/models/{key}", headers=alice).json["design"]["state"] == "editable"


def test_shaping_a_csv_model_picks_columns_and_refuses_blocked_ones(client: FlaskClient, login: Login,
                                                                    tmp_path: Path) -> None:
    alice = login()
    key = model(client, alice, spec=CSV_SPEC)
    dataset(client, alice, sample_csv(tmp_path / "people.csv", rows=40), "people")
    shape = client.post(f"/api/v1/models/{key}/shape", headers=alice,
                        json={"dataset": "people", "inputs": ["age", "height", "city"], "outputs": ["city"]})
    assert shape.status_code == 200, shape.json
    design = shape.json["design"]
    assert design["spec"]["size"] == [6] and design["output_units"] == 4  # city one-hot: 4 wide, an input too
    blocked = client.post(f"/api/v1/models/{key}/shape", headers=alice,
                          json={"dataset": "people", "inputs": ["name"], "outputs": ["smoker"]})
    assert error_of(blocked) == (400, "INVALID_REQUEST") and "blocked" in blocked.json["error"]["message"]
    unknown = client.post(f"/api/v1/models/{key}/shape", headers=alice,
                          json={"dataset": "people", "inputs": ["shoe"], "outputs": ["smoker"]})
    assert "no column 'shoe'" in unknown.json["error"]["message"]
    wrong = client.post(f"/api/v1/models/{key}/shape", headers=alice, json={"dataset": "nope"})
    assert error_of(wrong)[0] == 404


def test_shape_as_a_new_model_and_clone(client: FlaskClient, login: Login, tmp_path: Path) -> None:
    alice = login()
    key = model(client, alice, spec=CSV_SPEC)
    dataset(client, alice, sample_csv(tmp_path / "people.csv", rows=20), "people")
    new = client.post(f"/api/v1/models/{key}/shape", headers=alice,
                      json={"dataset": "people", "inputs": ["age"], "outputs": ["smoker"], "name": "smoker-net"})
    assert new.status_code == 201 and new.json["key"] != key and new.json["design"]["state"] == "shaped"
    assert client.get(f"/api/v1/models/{key}", headers=alice).json["design"]["state"] == "dynamic"
    cloned = client.post(f"/api/v1/models/{new.json['key']}/clone", json={"name": "copy"}, headers=alice)
    assert cloned.status_code == 201
    assert cloned.json["design"]["state"] == "editable" and cloned.json["design"]["trained"] == []
    assert cloned.json["design"]["spec"] == new.json["design"]["spec"]


def test_training_is_queued_as_a_job_with_everything_the_agent_needs(client: FlaskClient, login: Login,
                                                                     tmp_path: Path) -> None:
    alice = login()
    key = model(client, alice, spec=CSV_SPEC)
    data = dataset(client, alice, sample_csv(tmp_path / "people.csv", rows=20), "people")
    client.post(f"/api/v1/models/{key}/shape", headers=alice,
                json={"dataset": "people", "inputs": ["age", "height"], "outputs": ["smoker"]})
    refused = client.post(f"/api/v1/models/{key}/train", json={"augmentation": {"zoom": 0.2}}, headers=alice)
    assert error_of(refused) == (400, "INVALID_REQUEST")  # augmentation is for images
    response = client.post(f"/api/v1/models/{key}/train", json={"epochs": 3, "batch_size": 4}, headers=alice)
    assert response.status_code == 201, response.json
    job = response.json
    assert job["state"] == "queued" and job["spec"]["epochs"] == 3 and job["spec"]["bundle"] == ""
    train_spec = job["spec"]["train_spec"]
    assert train_spec["output_units"] == 1 and train_spec["inputs"] == ["age", "height"]
    assert train_spec["network"]["loss"] == "binary_crossentropy"  # the default for one class column
    assert train_spec["output_key"] == f"trained/{job['run_id']}"
    assert job["spec"]["dataset"]["sha256"] == data["sha256"]
    bad = client.post(f"/api/v1/models/{key}/train", json={"epochs": 0}, headers=alice)
    assert error_of(bad) == (400, "INVALID_REQUEST") and "epochs" in bad.json["error"]["message"]


def test_another_user_cannot_see_or_change_a_design(client: FlaskClient, login: Login) -> None:
    alice, bob = login("alice"), login("bob")
    key = model(client, alice, spec=CSV_SPEC)
    for response in (client.put(f"/api/v1/models/{key}/spec", json=CSV_SPEC, headers=bob),
                     client.post(f"/api/v1/models/{key}/train", json={}, headers=bob),
                     client.post(f"/api/v1/models/{key}/clone", json={"name": "mine"}, headers=bob),
                     client.get(f"/api/v1/models/{key}/trained", headers=bob)):
        assert error_of(response) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_a_dataset_a_model_is_shaped_to_is_kept_unless_forced(client: FlaskClient, login: Login,
                                                              tmp_path: Path) -> None:
    alice = login()
    key = model(client, alice, "table-net", spec=CSV_SPEC)
    data = dataset(client, alice, sample_csv(tmp_path / "people.csv", rows=20), "people")
    client.post(f"/api/v1/models/{key}/shape", headers=alice,
                json={"dataset": "people", "inputs": ["age"], "outputs": ["smoker"]})
    refused = client.delete(f"/api/v1/datasets/{data['dataset_id']}", headers=alice)
    assert error_of(refused) == (409, "INVALID_STATE") and "'table-net'" in refused.json["error"]["message"]
    assert client.delete(f"/api/v1/datasets/{data['dataset_id']}?force=true", headers=alice).status_code == 204
    gone = client.post(f"/api/v1/models/{key}/train", json={}, headers=alice)
    assert error_of(gone) == (409, "INVALID_STATE") and "no longer exists" in gone.json["error"]["message"]
