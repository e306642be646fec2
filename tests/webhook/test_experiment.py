"""The experiment download: a shaped model as a zip whose train.py trains it offline with Keras alone.

The proof that the script builds what the agents build: a model really trained by the agent's
code (``fitwire.agent.spec_training``) is stored and recorded as a job would; the zip carries it;
its ``train.py``, run in a subprocess, loads those weights (``-w … -e 0``) and saves its own
model, which predicts what the agent's file predicts on the same raw input. The script also
trains from the CSV file, the images zip and the unpacked folder.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import typer
from flask import Flask
from flask.testing import FlaskClient
from typer.testing import CliRunner

from fitwire.artifacts import LocalArtifacts
from fitwire.cli.experiment import export
from fitwire.contract.artifacts import trained_metadata_key
from fitwire.contract.datasets import CsvInfo
from fitwire.contract.entities import Design, TrainedModel
from fitwire.contract.specs import Augmentation, SpecTraining
from fitwire.webhook import create_app
from fitwire.webhook.api.trained import trained_key
from fitwire.webhook.experiment import DOCKER_IMAGE
from fitwire.webhook.store import Store
from tests.datasets.generate import SAMPLE_HEADER, image_zip, sample_csv, sample_row
from tests.fixtures.webhook import serve_in_thread
from tests.webhook.conftest import error_of
from tests.webhook.test_api_designs import CSV_SPEC, IMAGES_SPEC, dataset, model

Login = Callable[..., dict[str, str]]

SCRIPT_TIMEOUT = 180


@pytest.fixture
def app(sqlite_store: Store, tmp_path: Path) -> Flask:
    return create_app({"STORE": sqlite_store, "AMQP_URL": "amqp://u:p@127.0.0.1:9/",  # no broker: nothing here queues
                       "ARTIFACTS_DIR": str(tmp_path / "artifacts"), "DATASET_LABEL_LIMIT": 10})


def train_as_an_agent(store: Store, tmp_path: Path, owner: str, key: str, data: Path, csv_info: CsvInfo | None,
                      augmentation: Augmentation | None = None) -> Path:
    """Train the shaped model with the agent's code for one epoch, store the trained model (and its
    metadata) under the artifact keys a job writes, and record it on the model as a succeeded job does."""
    from fitwire.agent.spec_training import metadata_path, prepare, save

    design = store.get_model(owner, key).design
    assert design is not None and design.output_units is not None
    run_id = "run-1"
    training = SpecTraining(network=design.spec, output_units=design.output_units, inputs=design.inputs,
                            outputs=design.outputs, augmentation=augmentation, output_key=trained_key(run_id))
    prepared = prepare(training, data, design.spec.format, csv_info, batch_size=8)
    prepared.model.fit(prepared.train_data, validation_data=prepared.val_data, epochs=1, verbose=0, shuffle=False)
    (tmp_path / "agent").mkdir()
    saved = save(prepared.predictor, tmp_path / "agent" / "trained.keras", prepared.metadata)
    artifacts = LocalArtifacts(tmp_path / "artifacts")
    artifacts.put(trained_key(run_id), saved.read_bytes())
    artifacts.put(trained_metadata_key(trained_key(run_id)), metadata_path(saved).read_bytes())
    entry = TrainedModel(run_id=run_id, job_id="job-1", created_at=datetime.now(UTC), size=saved.stat().st_size)

    def record(current: Design | None) -> Design:
        assert current is not None
        return current.model_copy(update={"trained": [*current.trained, entry], "state": "static"})

    store.update_design(owner, key, record)
    return saved


def experiment(client: FlaskClient, auth: dict[str, str], key: str, into: Path) -> Path:
    """Download the model's experiment and unpack it; the folder holding train.py."""
    response = client.get(f"/api/v1/models/{key}/experiment", headers=auth)
    assert response.status_code == 200, response.data[:500]
    assert response.mimetype == "application/zip"
    assert response.headers["Content-Length"] == str(len(response.data))
    with zipfile.ZipFile(io.BytesIO(response.data)) as zf:
        zf.extractall(into)
        tops = {name.split("/")[0] for name in zf.namelist()}
    assert len(tops) == 1  # one folder: unzipping never litters
    return into / tops.pop()


def run_scripts(folder: Path, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run ``train.py`` with each argument list, all at once (each is mostly TensorFlow starting up)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    started = [(args, subprocess.Popen([sys.executable, "train.py", *args], cwd=folder, env=env, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)) for args in commands]
    done = []
    for args, process in started:
        out, err = process.communicate(timeout=SCRIPT_TIMEOUT)
        done.append(subprocess.CompletedProcess(args, process.returncode, out, err))
        assert process.returncode == 0, f"train.py {' '.join(args)} failed:\n{err[-3000:]}"
    return done


def staged(tmp_path: Path) -> list[Path]:
    incoming = tmp_path / "artifacts" / ".incoming"
    return list(incoming.iterdir()) if incoming.exists() else []


def test_a_csv_experiment_trains_offline_and_predicts_as_the_agent(client: FlaskClient, login: Login,
                                                                   sqlite_store: Store, tmp_path: Path) -> None:
    alice = login()
    key = model(client, alice, "Smoker net", spec=CSV_SPEC)
    table = sample_csv(tmp_path / "people.csv", rows=60)
    info = CsvInfo.model_validate(dataset(client, alice, table, "people")["info"])
    shaped = client.post(f"/api/v1/models/{key}/shape", headers=alice,
                         json={"dataset": "people", "inputs": ["age", "height", "city"], "outputs": ["smoker"]})
    assert shaped.status_code == 200, shaped.json
    owner = sqlite_store.get_credentials("alice").user.id
    agents = train_as_an_agent(sqlite_store, tmp_path, owner, key, table, info)

    folder = experiment(client, alice, key, tmp_path / "unzipped")
    assert staged(tmp_path) == []  # the zip's temporary file is gone once sent
    assert sorted(p.name for p in (folder / "models").iterdir()) == ["run-1.keras", "run-1.keras.json"]
    spec = json.loads((folder / "spec.json").read_text())
    assert spec["columns"] == {"age": "Int", "height": "Float", "city": "Label", "smoker": "Binary"}
    assert spec["network"]["loss"] == "binary_crossentropy"  # filled as a training on fitwire fills it

    run_scripts(folder, ["-d", str(table), "-e", "1"],
                ["-d", str(table), "-w", "models/run-1.keras", "-e", "0", "--modelname", "from-agent"])

    trained = keras.models.load_model(folder / "models" / "Smoker-net.keras")
    metadata = json.loads((folder / "models" / "Smoker-net.keras.json").read_text())
    assert metadata == json.loads((folder / "models" / "run-1.keras.json").read_text())  # the same meaning
    rows = [dict(zip(SAMPLE_HEADER, sample_row(i), strict=True)) for i in range(8)]
    from fitwire.agent.spec_training import raw_inputs

    batch = raw_inputs(metadata, rows)
    assert trained.predict(batch, verbose=0).shape == (8, 1)
    expected = keras.models.load_model(agents).predict(batch, verbose=0)
    mine = keras.models.load_model(folder / "models" / "from-agent.keras").predict(batch, verbose=0)
    np.testing.assert_allclose(mine, expected, rtol=1e-5, atol=1e-6)


def test_an_images_experiment_trains_from_the_zip_and_the_folder(client: FlaskClient, login: Login,
                                                                 sqlite_store: Store, tmp_path: Path) -> None:
    alice = login()
    key = model(client, alice, "pets", spec=IMAGES_SPEC)
    pets = image_zip(tmp_path / "pets.zip", classes=("cat", "dog", "eel"), size=(16, 12), top="pets")
    dataset(client, alice, pets, "pets")
    assert client.post(f"/api/v1/models/{key}/shape", json={"dataset": "pets"}, headers=alice).status_code == 200
    unpacked = tmp_path / "pets"
    with zipfile.ZipFile(pets) as zf:
        zf.extractall(tmp_path)
    owner = sqlite_store.get_credentials("alice").user.id
    agents = train_as_an_agent(sqlite_store, tmp_path, owner, key, unpacked, None,
                               Augmentation(zoom=0.1, rotation=20.0, horizontal_flip=True))

    folder = experiment(client, alice, key, tmp_path / "unzipped")
    assert staged(tmp_path) == []
    run_scripts(folder, ["-d", str(pets), "-e", "1", "-b", "4", "--shear", "0.2", "--zoom", "0.1", "--flip"],
                ["-d", str(unpacked), "-w", "models/run-1.keras", "-e", "0", "--modelname", "from-agent"])

    assert json.loads((folder / "models" / "pets.keras.json").read_text())["class_names"] == ["cat", "dog", "eel"]
    images = np.stack([keras.utils.img_to_array(keras.utils.load_img(path, target_size=(12, 16)))
                       for path in sorted((unpacked / "validation_data").rglob("*.png"))])
    assert keras.models.load_model(folder / "models" / "pets.keras").predict(images, verbose=0).shape == (6, 3)
    expected = keras.models.load_model(agents).predict(images, verbose=0)
    mine = keras.models.load_model(folder / "models" / "from-agent.keras").predict(images, verbose=0)
    np.testing.assert_allclose(mine, expected, rtol=1e-5, atol=1e-6)


def shaped_images_model(client: FlaskClient, auth: dict[str, str], tmp_path: Path) -> str:
    key = model(client, auth, "pets", spec=IMAGES_SPEC)
    dataset(client, auth, image_zip(tmp_path / "pets.zip"), "pets")
    assert client.post(f"/api/v1/models/{key}/shape", json={"dataset": "pets"}, headers=auth).status_code == 200
    return key


def test_the_zip_pins_the_installed_versions_and_holds_every_file(client: FlaskClient, login: Login,
                                                                   tmp_path: Path) -> None:
    alice = login()
    key = shaped_images_model(client, alice, tmp_path)
    folder = experiment(client, alice, key, tmp_path / "unzipped")

    assert sorted(p.name for p in folder.iterdir()) == ["Dockerfile", "README.md", "requirements.txt", "spec.json",
                                                        "train.py"]  # no trained model yet: no models/
    with zipfile.ZipFile(io.BytesIO(client.get(f"/api/v1/models/{key}/experiment", headers=alice).data)) as zf:
        assert zf.getinfo("pets-experiment/train.py").external_attr >> 16 == 0o755  # unzip makes it executable
    pins = dict(line.split("==") for line in (folder / "requirements.txt").read_text().splitlines()
                if line and not line.startswith("#"))

    def installed(*names: str) -> str:
        for name in names:
            try:
                return importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                pass
        raise AssertionError(f"none of {names} is installed")

    assert pins == {"keras": installed("keras"), "tensorflow": installed("tensorflow", "tensorflow-cpu"),
                    "numpy": installed("numpy"), "pillow": installed("pillow"), "fitwire": installed("fitwire")}
    dockerfile = (folder / "Dockerfile").read_text()
    assert f"FROM {DOCKER_IMAGE}\n" in dockerfile and DOCKER_IMAGE.endswith(f":{pins['tensorflow']}-gpu")
    assert 'ENTRYPOINT ["python", "train.py"]' in dockerfile
    readme = (folder / "README.md").read_text()
    assert f"--track {key}" in readme and "docker run" in readme and "{" not in readme  # every field filled
    assert staged(tmp_path) == []


def test_a_dynamic_model_is_refused_and_others_models_are_not_found(client: FlaskClient, login: Login) -> None:
    alice, bob = login(), login("bob")
    dynamic = model(client, alice, "net", spec=IMAGES_SPEC)
    refused = client.get(f"/api/v1/models/{dynamic}/experiment", headers=alice)
    assert error_of(refused) == (409, "INVALID_STATE") and "shape it" in refused.get_json()["error"]["message"]
    plain = model(client, alice, "tracked")  # a model trained from the user's own script: no spec
    assert error_of(client.get(f"/api/v1/models/{plain}/experiment", headers=alice)) == (409, "INVALID_STATE")
    assert error_of(client.get(f"/api/v1/models/{dynamic}/experiment", headers=bob))[0] == 404
    assert error_of(client.get("/api/v1/models/nope/experiment", headers=alice))[0] == 404


def test_a_failed_zip_leaves_no_file(client: FlaskClient, login: Login, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    alice = login()
    key = shaped_images_model(client, alice, tmp_path)

    def half_written(model: Any, trained: Any, csv_info: Any, path: Path) -> Path:
        path.write_bytes(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr("fitwire.webhook.api.experiment.write_experiment", half_written)
    client.application.config["PROPAGATE_EXCEPTIONS"] = False
    assert client.get(f"/api/v1/models/{key}/experiment", headers=alice).status_code == 500
    assert staged(tmp_path) == []


def test_fitwire_models_export_writes_the_zip_whole(app: Flask, client: FlaskClient, login: Login, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    alice = login()
    key = shaped_images_model(client, alice, tmp_path)
    dynamic = model(client, alice, "net", spec=IMAGES_SPEC)
    token = alice["Authorization"].removeprefix("Bearer ")
    command = typer.Typer()
    command.command()(export)
    monkeypatch.chdir(tmp_path)
    url, server, thread = serve_in_thread(app)
    try:
        done = CliRunner().invoke(command, ["pets", "--server", url, "--token", token])  # by name
        assert done.exit_code == 0, done.output
        with zipfile.ZipFile(tmp_path / "pets-experiment.zip") as zf:
            assert json.loads(zf.read("pets-experiment/spec.json"))["model"]["key"] == key
        refused = CliRunner().invoke(command, [dynamic, "-o", "net.zip", "--server", url, "--token", token])
        assert refused.exit_code != 0 and "shape it" in refused.output
        assert not any(tmp_path.glob("*net.zip*"))  # nothing half-written is left
    finally:
        server.close()
        thread.join(timeout=10)
