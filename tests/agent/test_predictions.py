"""Predictions over the broker, end to end: a tiny CSV model and a tiny images model trained on a real
agent, then asked over HTTP and through the CLI; the answers are what Keras itself predicts from the
downloaded file; bad input, unknown runs, other users and absent agents are told apart."""

from __future__ import annotations

import base64
import io as _io
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fitwire.broker import connect
from fitwire.broker.topology import RPC, job_queue, rpc_queue
from fitwire.webhook import create_app
from fitwire.webhook.security import hash_password
from fitwire.webhook.store import open_store
from tests.datasets.generate import image_zip, png_bytes, sample_csv
from tests.fixtures.webhook import serve_in_thread

from .hub import Hub
from .test_spec_jobs import CSV_SPEC, IMAGES_SPEC

TIMEOUT_S = 8.0
"""The test webhook's FITWIRE_PREDICT_TIMEOUT: a silent pool is a 503 this fast."""
CLI_PREDICT = [sys.executable, "-c", "import typer; from fitwire.cli.predict import predict; typer.run(predict)"]


@pytest.fixture(scope="module")
def fabric(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One webhook and one agent for the module (training twice per test would cost minutes)."""
    tmp = tmp_path_factory.mktemp("predictions")
    cache = Path(tempfile.mkdtemp(prefix="fitwire-test-datasets-"))
    cache.chmod(0o755)  # the agent's job user reads it
    backing = open_store(f"sqlite:///{tmp / 'webhook.db'}")
    pool = f"test-{uuid.uuid4().hex[:10]}"
    app = create_app({"STORE": backing, "SIGNUP": "open", "AMQP_URL": amqp_url, "BROKER_LOGINS": "shared",
                      "JOB_POOLS": ("default", pool), "ARTIFACTS_DIR": str(tmp / "server-artifacts"),
                      "PREDICT_TIMEOUT": TIMEOUT_S})
    url, server, thread = serve_in_thread(app, threads=8)
    hub = Hub(url=url, store=backing, amqp_url=amqp_url, data_dir=tmp / "agents", pool=pool, app=app)
    hub.data_dir.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FITWIRE_DATASET_CACHE_DIR", str(cache))
        _, hub.admin_token = _login(hub, "admin", admin=True)
        hub.user_id, hub.user_token = _login(hub, "ada")
        try:
            yield hub
        finally:
            for agent in hub.agents:
                if agent.process.poll() is None:
                    agent.process.kill()
                agent.process.wait(timeout=30)
            conn = connect(amqp_url)
            for queue in (job_queue(pool).name, rpc_queue(pool).name):
                conn.channel().queue_delete(queue)
            conn.close()
            hub.http.close()
            server.close()
            thread.join(timeout=10)
            backing.close()
            shutil.rmtree(cache, ignore_errors=True)


def _login(hub: Hub, username: str, admin: bool = False) -> tuple[str, str]:
    user = hub.store.create_user(username, hash_password("password-123"), is_admin=admin, now=datetime.now(UTC))
    r = hub.http.post(hub.url + "/api/v1/auth/login", json={"username": username, "password": "password-123"})
    r.raise_for_status()
    return user.id, str(r.json()["token"])


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json())


def _train(hub: Hub, name: str, spec: dict[str, Any], data: Path, dataset: str, **shaping: Any) -> tuple[str, str]:
    with data.open("rb") as body:
        _ok(hub.api("POST", f"/api/v1/datasets?name={dataset}", data=body), 201)
    key = str(_ok(hub.api("POST", "/api/v1/models", json={"name": name}), 201)["key"])
    _ok(hub.api("PUT", f"/api/v1/models/{key}/spec", json=spec))
    _ok(hub.api("POST", f"/api/v1/models/{key}/shape", json={"dataset": dataset, **shaping}))
    job = _ok(hub.api("POST", f"/api/v1/models/{key}/train", json={"epochs": 1, "batch_size": 8, "pool": hub.pool}),
              201)
    done = hub.wait_job(str(job["job_id"]), "succeeded", "failed")
    assert done["state"] == "succeeded", (done, hub.agents[0].log()[-3000:])
    return key, str(job["run_id"])


@pytest.fixture(scope="module")
def trained(fabric: Hub, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """``{"csv": (key, run), "images": (key, run)}``, trained by the module's agent."""
    tmp = tmp_path_factory.mktemp("data")
    fabric.start_agent()
    return {
        "csv": _train(fabric, "city-net", CSV_SPEC, sample_csv(tmp / "people.csv", rows=40), "people",
                      inputs=["age", "height", "smoker"], outputs=["city"]),
        "images": _train(fabric, "pets-net", IMAGES_SPEC, image_zip(tmp / "pets.zip", classes=("cat", "dog", "eel"),
                                                                    per_class=(3, 1), size=(16, 16)), "pets"),
    }


def _keras_model(hub: Hub, key: str, run_id: str) -> Any:
    import keras

    r = hub.api("GET", f"/api/v1/models/{key}/trained/{run_id}/file")
    assert r.status_code == 200
    with tempfile.NamedTemporaryFile(suffix=".keras") as f:
        f.write(r.content)
        f.flush()
        return keras.models.load_model(f.name, compile=False)


def _predict(hub: Hub, key: str, token: str | None = None, **body: Any) -> Any:
    return hub.api("POST", f"/api/v1/models/{key}/predict", token, json={"pool": hub.pool, **body})


ROW = {"age": 44, "height": "1.71", "smoker": 1}


def test_a_csv_row_is_predicted_by_the_agent_as_keras_predicts_it(fabric: Hub, trained: dict[str, Any]) -> None:
    key, run_id = trained["csv"]
    answer = _ok(_predict(fabric, key, row=ROW))
    assert answer["run_id"] == run_id and answer["node_id"]
    city = answer["outputs"]["city"]
    model = _keras_model(fabric, key, run_id)
    inputs = {"age": np.array([44.0], "float32"), "height": np.array([1.71], "float32"),
              "smoker": np.array([1.0], "float32")}
    expected = np.asarray(model.predict(inputs, verbose=0))[0]
    vocabulary = sorted({"Paris", "New York, NY", "Oslo", "Lima"})
    assert city == vocabulary[int(np.argmax(expected))]
    assert answer["probabilities"]["city"] == pytest.approx(float(expected.max()), abs=1e-5)
    # warm: the model stays loaded on the agent
    assert _ok(_predict(fabric, key, row=ROW, run_id=run_id))["load_s"] == 0.0


def test_an_image_is_classified_as_keras_classifies_it(fabric: Hub, trained: dict[str, Any]) -> None:
    import tensorflow as tf
    from PIL import Image

    key, run_id = trained["images"]
    # a JPEG of another size: the agent converts and resizes it as training read images
    source = Image.open(_io.BytesIO(png_bytes((23, 19), seed=99)))
    buf = _io.BytesIO()
    source.save(buf, format="JPEG")
    answer = _ok(_predict(fabric, key, image=base64.b64encode(buf.getvalue()).decode()))
    decoded = np.asarray(Image.open(_io.BytesIO(buf.getvalue())).convert("RGB"), dtype="float32")
    batch = np.asarray(tf.image.resize(decoded, (16, 16), method="bilinear"))[None]
    expected = np.asarray(_keras_model(fabric, key, run_id).predict(batch, verbose=0))[0]
    classes = ["cat", "dog", "eel"]
    assert answer["class_index"] == int(np.argmax(expected)) and answer["class_name"] == classes[answer["class_index"]]
    assert [t["class"] for t in answer["top"]] == [classes[i] for i in np.argsort(-expected)]
    assert [t["probability"] for t in answer["top"]] == pytest.approx(sorted(expected.tolist(), reverse=True),
                                                                       abs=1e-5)
    members = answer["examples"]
    assert members and all(f"training_data/{answer['class_name']}/" in m for m in members)
    thumb = fabric.api("GET", f"/api/v1/datasets/{answer['dataset_id']}/thumbnail", params={"member": members[0]})
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/jpeg"


def test_the_cli_predicts_both_kinds(fabric: Hub, trained: dict[str, Any], tmp_path: Path) -> None:
    picture = tmp_path / "pet.png"
    picture.write_bytes(png_bytes((16, 16), seed=5))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI_PREDICT, *args], env=fabric.env(fabric.user_token), capture_output=True,
                              text=True, timeout=120)

    shown = cli(trained["images"][0], "--image", str(picture), "--pool", fabric.pool)
    assert shown.returncode == 0, shown.stderr
    assert "probability" in shown.stdout and any(c in shown.stdout for c in ("cat", "dog", "eel"))
    as_json = cli(trained["images"][0], "--image", str(picture), "--pool", fabric.pool, "--json")
    http = _ok(_predict(fabric, trained["images"][0], image=base64.b64encode(picture.read_bytes()).decode()))
    assert as_json.returncode == 0, as_json.stderr
    assert [t["class"] for t in json.loads(as_json.stdout)["top"]] == [t["class"] for t in http["top"]]
    row = cli(trained["csv"][0], "--row", "age=44", "--row", "height=1.71", "--row", "smoker=1", "--pool", fabric.pool,
              "--json")
    assert row.returncode == 0, row.stderr
    assert json.loads(row.stdout)["outputs"] == _ok(_predict(fabric, trained["csv"][0], row=ROW))["outputs"]
    missing = cli(trained["csv"][0], "--row", "age=44", "--pool", fabric.pool)
    assert missing.returncode != 0 and "'height'" in missing.stderr


@pytest.mark.parametrize(("kind", "body", "status", "named"), [
    ("images", {"image": base64.b64encode(b"not an image at all").decode()}, 400, "not an image"),
    ("images", {"image": "%%% not base64"}, 400, "base64"),
    ("images", {"row": ROW}, 400, "image"),
    ("csv", {"row": {"age": 44, "height": 1.7}}, 400, "'smoker'"),
    ("csv", {"row": {**ROW, "height": "tall"}}, 400, "'height'"),
    ("csv", {"row": {**ROW, "weight": 80}}, 400, "'weight'"),
    ("csv", {"row": ROW, "run_id": "no-such-run"}, 404, "no-such-run"),
    ("csv", {"row": ROW, "pool": "no-such-pool"}, 404, "no-such-pool"),
])
def test_bad_input_is_refused_naming_what_is_wrong(fabric: Hub, trained: dict[str, Any], kind: str,
                                                   body: dict[str, Any], status: int, named: str) -> None:
    refused = _predict(fabric, trained[kind][0], **body)
    assert refused.status_code == status, refused.text
    assert named in refused.json()["error"]["message"]


def test_another_users_model_is_not_found(fabric: Hub, trained: dict[str, Any]) -> None:
    _, other = _login(fabric, f"mallory{uuid.uuid4().hex[:6]}")
    assert _predict(fabric, trained["csv"][0], other, row=ROW).status_code == 404


def test_a_pool_without_agents_is_a_503_at_once(fabric: Hub, trained: dict[str, Any]) -> None:
    started = time.monotonic()
    refused = _predict(fabric, trained["csv"][0], row=ROW, pool="default")  # declared, no agent serves it
    assert refused.status_code == 503, refused.text
    assert "pool 'default'" in refused.json()["error"]["message"]
    assert time.monotonic() - started < TIMEOUT_S


def test_an_agent_that_never_answers_is_a_503_after_the_timeout(fabric: Hub, trained: dict[str, Any]) -> None:
    pool = f"mute-{uuid.uuid4().hex[:6]}"
    fabric.app.config["JOB_POOLS"] = (*fabric.app.config["JOB_POOLS"], pool)
    conn = connect(fabric.amqp_url)
    channel = conn.channel()
    queue = rpc_queue(pool)
    channel.queue_declare(queue.name, durable=True, arguments=queue.arguments)
    channel.queue_bind(queue.name, RPC.name, f"predict.{pool}")
    channel.basic_consume(queue.name, lambda *_: None)  # takes requests, answers none
    try:
        started = time.monotonic()
        refused = _predict(fabric, trained["csv"][0], row=ROW, pool=pool)
        took = time.monotonic() - started
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["message"] == f"No agent of pool {pool!r} answered within {TIMEOUT_S:g} s."
        assert TIMEOUT_S <= took < TIMEOUT_S + 5
    finally:
        channel.queue_delete(queue.name)
        conn.close()
