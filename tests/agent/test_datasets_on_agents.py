"""Jobs on datasets through a real agent: fetched on demand with the job's token, cached by hash,
reused without a download, and a job token reads its own job's dataset only."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.datasets.generate import image_zip, sample_csv

from .conftest import EXAMPLES
from .hub import Hub


@pytest.fixture(autouse=True)
def cache_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh dataset cache per test, where the agent's job user (nobody, when tests run as root) can
    read: a test's own tmp_path is root's 0700."""
    folder = Path(tempfile.mkdtemp(prefix="fitwire-test-datasets-"))
    folder.chmod(0o755)
    monkeypatch.setenv("FITWIRE_DATASET_CACHE_DIR", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _upload(hub: Hub, path: Path, name: str) -> dict[str, object]:
    with path.open("rb") as body:
        r = hub.api("POST", f"/api/v1/datasets?name={name}", data=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _submit(hub: Hub, bundle: str, dataset: str, *args: str) -> dict[str, object]:
    done = hub.cli("jobs", "submit", str(EXAMPLES / bundle), "--model", hub.model_key, "--pool", hub.pool,
                   "--dataset", dataset, "--json", *args)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_a_csv_job_fetches_once_then_trains_from_the_cache(hub: Hub, tmp_path: Path, cache_dir: Path) -> None:
    dataset = _upload(hub, sample_csv(tmp_path / "people.csv", rows=60), "people")
    first = _submit(hub, "csv_table.py", "people", "--epochs", "2", "--param", 'target="age"')
    assert first["spec"]["dataset"] == {  # type: ignore[index]
        "dataset_id": dataset["dataset_id"], "name": "people", "format": "csv",
        "sha256": dataset["sha256"], "size": dataset["size"]}
    agent = hub.start_agent()
    done = hub.wait_job(str(first["job_id"]), "succeeded", "failed")
    assert done["state"] == "succeeded", (done, agent.log()[-3000:])
    assert hub.epochs(str(first["run_id"])) == [0, 1]
    cached = cache_dir / str(dataset["sha256"])
    assert cached.read_bytes() == (tmp_path / "people.csv").read_bytes()
    inode = cached.stat().st_ino
    assert agent.log().count("downloaded") == 1

    second = _submit(hub, "csv_table.py", "people", "--param", 'target="height"')
    assert hub.wait_job(str(second["job_id"]), "succeeded", "failed")["state"] == "succeeded"
    assert cached.stat().st_ino == inode  # the same file: no second download
    assert "from the cache" in agent.log() and agent.log().count("downloaded") == 1


def test_an_images_job_trains_on_the_unpacked_folder(hub: Hub, tmp_path: Path, cache_dir: Path) -> None:
    dataset = _upload(hub, image_zip(tmp_path / "pets.zip", classes=("cat", "dog"), per_class=(6, 2),
                                     top="pets"), "pets")
    job = _submit(hub, "image_folder.py", "pets", "--epochs", "1")
    agent = hub.start_agent()
    done = hub.wait_job(str(job["job_id"]), "succeeded", "failed")
    assert done["state"] == "succeeded", (done, agent.log()[-3000:])
    folder = cache_dir / f"{dataset['sha256']}.d"
    assert sorted(p.name for p in (folder / "training_data").iterdir()) == ["cat", "dog"]


def test_a_dataset_in_use_is_kept_unless_forced_and_a_deleted_one_fails_the_job(hub: Hub, tmp_path: Path) -> None:
    dataset = _upload(hub, sample_csv(tmp_path / "t.csv", rows=20), "t")
    job = _submit(hub, "csv_table.py", "t", "--param", 'target="age"')
    refused = hub.api("DELETE", f"/api/v1/datasets/{dataset['dataset_id']}")
    assert refused.status_code == 409 and str(job["job_id"]) in refused.json()["error"]["message"]
    assert hub.api("DELETE", f"/api/v1/datasets/{dataset['dataset_id']}?force=true").status_code == 204
    agent = hub.start_agent()
    done = hub.wait_job(str(job["job_id"]), "succeeded", "failed")
    assert done["state"] == "failed" and "dataset" in done["reason"], (done, agent.log()[-2000:])


def test_submitting_a_dataset_that_is_not_yours_is_refused(hub: Hub, tmp_path: Path) -> None:
    _, other = hub.login("grace")
    with (sample_csv(tmp_path / "g.csv", rows=5)).open("rb") as body:
        assert hub.api("POST", "/api/v1/datasets?name=graces", token=other, data=body).status_code == 201
    r = hub.api("POST", "/api/v1/jobs", json={"pool": hub.pool, "bundle_source": "x = 1\n",
                                               "spec": {"model_key": hub.model_key, "dataset": "graces"}})
    assert r.status_code == 404 and "graces" in r.json()["error"]["message"]
    forged = hub.api("POST", "/api/v1/jobs", json={"pool": hub.pool, "bundle_source": "x = 1\n",
                                                    "spec": {"model_key": hub.model_key,
                                                             "dataset": {"dataset_id": "x", "sha256": "0" * 64}}})
    assert forged.status_code == 400 and "name" in forged.json()["error"]["message"]


def test_a_job_token_reads_its_own_dataset_only(hub: Hub, tmp_path: Path) -> None:
    own = _upload(hub, sample_csv(tmp_path / "own.csv", rows=8), "own")
    other = _upload(hub, sample_csv(tmp_path / "other.csv", rows=9), "other")
    job = _submit(hub, "csv_table.py", "own", "--param", 'target="age"')
    node = hub.node_token("claimer")
    hello = hub.api("POST", "/api/v1/nodes/hello", node, json={
        "type": "node_telemetry", "node_id": "x", "hostname": "h", "agent_version": "test",
        "pools": [hub.pool]})
    assert hello.status_code == 200, hello.text
    claim = hub.api("POST", f"/api/v1/jobs/{job['job_id']}/claim", node, json={"delivery": 0})
    assert claim.status_code == 200, claim.text
    job_token = claim.json()["token"]
    assert hub.api("GET", f"/api/v1/datasets/{own['dataset_id']}/file", job_token).status_code == 200
    assert hub.api("GET", f"/api/v1/datasets/{other['dataset_id']}/file", job_token).status_code == 403
    assert hub.api("GET", "/api/v1/datasets", job_token).status_code == 401  # listing is for users
    assert hub.api("GET", f"/api/v1/datasets/{own['dataset_id']}/file", node).status_code == 401
