"""Artifact uploads on a real `fitwire webhook serve` process: streamed to disk, with a stated limit.

The server runs as a subprocess so that its own peak memory (``VmHWM``) can be read:
an upload or a download held whole in memory shows up there, whatever the client does.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from fitwire import __version__ as AGENT_VERSION
from fitwire.contract import NodeTelemetry, encode
from fitwire.webhook.security import hash_password
from fitwire.webhook.store import open_store
from tests.fixtures.webhook import free_port

MiB = 1024 * 1024

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")


@dataclass
class Served:
    """A `fitwire webhook serve` child process, and a running job's token: only a running job
    writes an artifact (its own checkpoint)."""

    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    job_token: str = ""
    job_id: str = ""
    user_token: str = ""

    @property
    def key(self) -> str:
        return f"checkpoints/{self.job_id}"

    def api(self, method: str, path: str, token: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.url + path, headers={"Authorization": f"Bearer {token}"},
                                timeout=300, **kwargs)

    def put(self, data: Any) -> requests.Response:
        return self.api("PUT", f"/api/v1/artifacts/{self.key}", self.job_token, data=data)

    def get(self) -> bytes:
        response = self.api("GET", f"/api/v1/artifacts/{self.key}", self.job_token)
        assert response.status_code == 200, response.text
        return response.content

    def peak_memory(self) -> int:
        """The server's peak resident memory so far, in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc/<pid>/status")

    def stored_files(self) -> list[str]:
        """What the artifact store holds for checkpoints, temporary files included."""
        return sorted(os.listdir(self.data_dir / "artifacts" / "checkpoints"))


@contextlib.contextmanager
def serve(tmp_path: Path, **env: str) -> Iterator[Served]:
    port = free_port()
    data_dir = tmp_path / "data"
    environ = {**os.environ, "FITWIRE_DATA_DIR": str(data_dir), "FITWIRE_STORE": "",
               "FITWIRE_WEBHOOK_URL": f"http://127.0.0.1:{port}", **env}
    log = (tmp_path / "webhook.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "fitwire.cli", "webhook", "serve"], env=environ,
                               stdout=log, stderr=subprocess.STDOUT)
    served = Served(f"http://127.0.0.1:{port}", process, data_dir)
    try:
        deadline = time.monotonic() + 120  # readiness, not a speed claim: imports are slow on a busy box
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(served.url + "/health", timeout=2).ok:
                    break
            assert process.poll() is None, (tmp_path / "webhook.log").read_text()
            assert time.monotonic() < deadline, "the webhook did not start"
            time.sleep(0.3)
        store = open_store(f"sqlite:///{data_dir / 'fitwire.db'}")
        for name, admin in (("root", True), ("ada", False)):
            store.create_user(name, hash_password("correct horse"), is_admin=admin, now=datetime.now(UTC))
        store.close()
        tokens = {}
        for name in ("root", "ada"):
            login = requests.post(served.url + "/api/v1/auth/login", timeout=30,
                                  json={"username": name, "password": "correct horse"})
            tokens[name] = login.json()["token"]
        node = served.api("POST", "/api/v1/nodes", tokens["root"], json={"name": "box"})
        assert node.status_code == 201, node.text
        node_token = node.json()["token"]
        hello = NodeTelemetry(node_id="box", hostname="box", agent_version=AGENT_VERSION, pools=["default"])
        assert served.api("POST", "/api/v1/nodes/hello", node_token, data=encode(hello)).ok
        model = served.api("POST", "/api/v1/models", tokens["ada"], json={"name": "net"})
        job = served.api("POST", "/api/v1/jobs", tokens["ada"], json={
            "pool": "default", "spec": {"model_key": model.json()["key"]},
            "bundle_source": "def build():\n    raise RuntimeError('never run')\n"})
        assert job.status_code == 201, job.text
        served.job_id = job.json()["job_id"]
        claim = served.api("POST", f"/api/v1/jobs/{served.job_id}/claim", node_token, json={"delivery": 0})
        assert claim.status_code == 200, claim.text
        served.job_token, served.user_token = claim.json()["token"], tokens["ada"]
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_an_upload_over_the_limit_is_a_413_naming_it_and_keeps_the_stored_artifact(tmp_path: Path) -> None:
    with serve(tmp_path, FITWIRE_ARTIFACT_MAX_BYTES=str(3 * MiB)) as server:
        first = os.urandom(2 * MiB)
        assert server.put(first).status_code == 204  # over the JSON limit, under the artifact one

        too_big = server.put(os.urandom(4 * MiB))
        chunked = server.put(iter([os.urandom(MiB) for _ in range(4)]))  # no Content-Length: cut while read

        for response in (too_big, chunked):
            assert response.status_code == 413, response.text
            assert response.json() == {"error": {
                "code": "PAYLOAD_TOO_LARGE", "message": "The body is larger than the limit of 3 MiB."}}
        assert server.get() == first
        assert server.stored_files() == [server.job_id]  # no temporary file left behind
        # JSON bodies keep their own, smaller limit.
        json_body = server.api("POST", "/api/v1/models", server.user_token, data=b" " * (2 * MiB))
        assert json_body.status_code == 413
        assert json_body.json()["error"]["message"] == "The body is larger than the limit of 1 MiB."


def test_an_empty_upload_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        first = os.urandom(MiB)
        assert server.put(first).status_code == 204

        empty = server.put(b"")

        assert empty.status_code == 400
        assert empty.json()["error"]["message"] == "An artifact upload needs a body, with a Content-Length or chunked."
        assert server.get() == first


def test_a_200_mib_upload_and_download_stay_out_of_the_servers_memory(tmp_path: Path) -> None:
    source = tmp_path / "checkpoint.bin"
    digest = hashlib.sha256()
    with source.open("wb") as out:
        for _ in range(200):
            chunk = os.urandom(MiB)
            digest.update(chunk)
            out.write(chunk)

    with serve(tmp_path) as server:
        before = server.peak_memory()
        with source.open("rb") as body:
            assert server.put(body).status_code == 204  # streamed from the file, with a Content-Length
        after_upload = server.peak_memory()
        fetched = hashlib.sha256()
        with server.api("GET", f"/api/v1/artifacts/{server.key}", server.job_token, stream=True) as response:
            assert response.status_code == 200
            for chunk in response.iter_content(MiB):
                fetched.update(chunk)
        after_download = server.peak_memory()

    stored = server.data_dir / "artifacts" / server.key
    assert stored.stat().st_size == 200 * MiB
    assert fetched.hexdigest() == digest.hexdigest()
    assert after_upload - before < 50 * MiB, f"upload: peak grew by {(after_upload - before) / MiB:.0f} MiB"
    assert after_download - before < 50 * MiB, f"download: peak grew by {(after_download - before) / MiB:.0f} MiB"


def test_a_200_mb_csv_dataset_is_inspected_as_it_streams_without_growing_the_servers_memory(
        tmp_path: Path) -> None:
    source = tmp_path / "big.csv"
    with source.open("w") as out:  # an id column (distinct values past the counting cap), a number, a label
        out.write("id,value,label\n")
        i = 0
        while out.tell() < 200 * MiB:
            out.write("".join(f"{j},{j % 997 / 7:.4f},{('red', 'green', 'blue')[j % 3]}\n"
                              for j in range(i, i + 100_000)))
            i += 100_000
    with serve(tmp_path) as server:
        before = server.peak_memory()
        with source.open("rb") as body:
            response = server.api("POST", "/api/v1/datasets?name=big", server.user_token, data=body)
        after = server.peak_memory()
    assert response.status_code == 201, response.text
    info = response.json()["info"]
    assert info["rows"] == i and [c["type"] for c in info["columns"]] == ["Int", "Float", "Label"]
    assert info["columns"][0]["unique_capped"] and info["columns"][2]["unique"] == 3
    print(f"200 MB CSV upload: server peak grew by {(after - before) / MiB:.1f} MiB")
    assert after - before < 60 * MiB, f"peak grew by {(after - before) / MiB:.0f} MiB"
