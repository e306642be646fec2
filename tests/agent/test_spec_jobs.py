"""Model specs trained on a real agent, end to end: a spec set, shaped to an uploaded dataset,
trained with one request (the CLI's `fitwire train`), the trained model stored and recorded,
downloaded and predicting from raw input, and retrained from it."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.datasets.generate import image_zip, sample_csv

from .hub import Hub

CSV_SPEC = {"format": "csv", "layers": [
    {"type": "Dense", "layer": {"units": 8, "activation": "relu"}},
    {"type": "Dense", "layer": {"units": None, "activation": "softmax"}},
]}
IMAGES_SPEC = {"format": "images", "layers": [
    {"type": "Rescaling", "layer": {"scale": 1 / 255}},
    {"type": "Conv2D", "layer": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
    {"type": "MaxPooling2D"},
    {"type": "Flatten"},
    {"type": "Dense", "layer": {"units": None, "activation": "softmax"}},
]}


@pytest.fixture(autouse=True)
def cache_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A dataset cache the agent's job user can read (a test's own tmp_path is root's 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="fitwire-test-datasets-"))
    folder.chmod(0o755)
    monkeypatch.setenv("FITWIRE_DATASET_CACHE_DIR", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json())


def _designed(hub: Hub, name: str, spec: dict[str, Any], data: Path, dataset: str, **shaping: Any) -> str:
    with data.open("rb") as body:
        _ok(hub.api("POST", f"/api/v1/datasets?name={dataset}", data=body), 201)
    key = str(_ok(hub.api("POST", "/api/v1/models", json={"name": name}), 201)["key"])
    _ok(hub.api("PUT", f"/api/v1/models/{key}/spec", json=spec))
    _ok(hub.api("POST", f"/api/v1/models/{key}/shape", json={"dataset": dataset, **shaping}))
    return key


def _download(hub: Hub, key: str, run_id: str, tmp_path: Path) -> Path:
    target = tmp_path / f"{run_id}.keras"
    done = hub.cli("models", "weights", "download", key, run_id, "--output", str(target))
    assert done.returncode == 0, done.stderr
    return target


def test_a_csv_spec_trains_on_an_agent_and_its_model_predicts_from_raw_rows(hub: Hub, tmp_path: Path) -> None:
    key = _designed(hub, "city-net", CSV_SPEC, sample_csv(tmp_path / "people.csv", rows=80), "people",
                    inputs=["age", "height", "smoker"], outputs=["city"])
    agent = hub.start_agent()
    trained = hub.cli("train", key, "--epochs", "2", "--batch-size", "8", "--pool", hub.pool)
    assert trained.returncode == 0, (trained.stdout, trained.stderr, agent.log()[-3000:])
    model = _ok(hub.api("GET", f"/api/v1/models/{key}"))
    assert model["design"]["state"] == "static"
    [entry] = model["design"]["trained"]
    assert hub.epochs(entry["run_id"]) == [0, 1]  # tracked like any run
    listed = json.loads(hub.cli("models", "weights", "list", key, "--json").stdout)["trained"]
    assert listed[0]["run_id"] == entry["run_id"] and "loss" in listed[0]["metrics"]

    import keras
    import numpy as np

    saved = keras.models.load_model(_download(hub, key, entry["run_id"], tmp_path))
    rows = {"age": np.array([30.0, 61.0], dtype="float32"), "height": np.array([1.6, 1.9], dtype="float32"),
            "smoker": np.array([0.0, 1.0], dtype="float32")}
    predicted = np.asarray(saved.predict(rows, verbose=0))
    assert predicted.shape == (2, 4) and np.allclose(predicted.sum(axis=1), 1.0, atol=1e-4)

    # retrained from that model: a second trained model, and the spec stays frozen meanwhile
    again = hub.cli("train", key, "--from-run", entry["run_id"], "--pool", hub.pool, "--batch-size", "8")
    assert again.returncode == 0, (again.stdout, again.stderr, agent.log()[-3000:])
    assert len(_ok(hub.api("GET", f"/api/v1/models/{key}"))["design"]["trained"]) == 2
    frozen = hub.api("PUT", f"/api/v1/models/{key}/spec", json=CSV_SPEC)
    assert frozen.status_code == 409


def test_an_images_spec_trains_with_augmentation_and_stores_its_model(hub: Hub, tmp_path: Path) -> None:
    key = _designed(hub, "pets-net", IMAGES_SPEC,
                    image_zip(tmp_path / "pets.zip", classes=("cat", "dog", "eel"), per_class=(4, 2), size=(16, 16)),
                    "pets")
    shaped = _ok(hub.api("GET", f"/api/v1/models/{key}"))["design"]
    assert shaped["spec"]["size"] == [16, 16, 3] and shaped["output_units"] == 3
    agent = hub.start_agent()
    job = _ok(hub.api("POST", f"/api/v1/models/{key}/train", json={
        "epochs": 1, "batch_size": 4, "pool": hub.pool,
        "augmentation": {"zoom": 0.1, "rotation": 10, "horizontal_flip": True}}), 201)
    done = hub.wait_job(str(job["job_id"]), "succeeded", "failed")
    assert done["state"] == "succeeded", (done, agent.log()[-3000:])
    [entry] = _ok(hub.api("GET", f"/api/v1/models/{key}"))["design"]["trained"]
    assert entry["run_id"] == job["run_id"] and entry["size"] > 0

    import keras
    import numpy as np

    saved = keras.models.load_model(_download(hub, key, entry["run_id"], tmp_path))
    assert np.asarray(saved.predict(np.zeros((1, 16, 16, 3), dtype="float32"), verbose=0)).shape == (1, 3)
    # another user cannot download it
    _, other = hub.login("mallory")
    assert hub.api("GET", f"/api/v1/models/{key}/trained/{entry['run_id']}/file", other).status_code == 404


def test_a_dynamic_model_cannot_be_trained(hub: Hub) -> None:
    key = str(_ok(hub.api("POST", "/api/v1/models", json={"name": "open"}), 201)["key"])
    _ok(hub.api("PUT", f"/api/v1/models/{key}/spec", json=CSV_SPEC))
    refused = hub.cli("train", key, "--pool", hub.pool)
    assert refused.returncode == 1 and "shape it to a dataset first" in refused.stderr
