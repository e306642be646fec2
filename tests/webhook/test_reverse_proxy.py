"""deploy/nginx-fitwire.conf in front of a real webhook: what a public server needs.

waitress spends CPU quadratic in the length of a chunk-size line without CRLF; the shipped
nginx configuration must stop such a request (and oversized bodies) before waitress sees it,
and pass everything else through with the client's address.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from flask import request

from fitwire.webhook import create_app
from fitwire.webhook.store import open_store
from tests.fixtures.services import service_missing
from tests.fixtures.webhook import free_port, serve_in_thread

CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx-fitwire.conf"
MiB = 1024 * 1024


def _nginx() -> str:
    """nginx's path; installs Debian's nginx-light when missing and allowed (as `make test` does the broker)."""
    found = shutil.which("nginx") or (Path("/usr/sbin/nginx").exists() and "/usr/sbin/nginx")
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "nginx-light"], capture_output=True, timeout=600,
                       check=False, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = shutil.which("nginx") or (Path("/usr/sbin/nginx").exists() and "/usr/sbin/nginx")
    if not found:
        service_missing("nginx (apt-get install nginx-light)")
    return str(found)


@dataclass
class Proxied:
    url: str
    seen: list[str]  # the client addresses the webhook saw, one per request that reached it


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[Proxied]:
    nginx = _nginx()
    store = open_store(f"sqlite:///{tmp_path / 'webhook.db'}")
    app = create_app({"STORE": store, "SIGNUP": "open", "BROKER_LOGINS": "shared", "DECLARE_TOPOLOGY": False,
                      "AMQP_URL": os.environ.get("FITWIRE_AMQP_URL", "amqp://guest:guest@localhost:5672/"),
                      "TRUSTED_PROXIES": 1})
    seen: list[str] = []
    app.before_request(lambda: seen.append(request.remote_addr or "?"))  # type: ignore[func-returns-value]
    webhook_url, waitress, _ = serve_in_thread(app)
    port = free_port()
    server_block = (CONF.read_text()
                    .replace("listen 8080;", f"listen 127.0.0.1:{port};")
                    .replace("http://127.0.0.1:8765", webhook_url)
                    .replace("client_max_body_size 2g;", "client_max_body_size 1m;"))
    (tmp_path / "fitwire.conf").write_text(server_block)
    temp = "".join(f"{kind}_temp_path {tmp_path}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi",
                                                                           "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(
        f"daemon off;\nuser root;\nworker_processes 1;\npid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\naccess_log off;\n{temp}include {tmp_path}/fitwire.conf;\n}}\n")
    process = subprocess.Popen([nginx, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30  # readiness only
        while True:
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "nginx did not come up"
            time.sleep(0.2)
        seen.clear()
        yield Proxied(url, seen)
    finally:
        process.terminate()
        process.wait(timeout=30)
        waitress.close()
        store.close()


def _raw(url: str, payload: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(payload)
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_requests_pass_with_the_clients_address_and_headers(proxied: Proxied) -> None:
    response = requests.post(f"{proxied.url}/api/v1/auth/login", json={"username": "x", "password": "y"},
                             headers={"X-Forwarded-For": "203.0.113.66"}, timeout=30)
    assert response.status_code == 401
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # nginx replaces what the client claims with the address it saw; the webhook trusts nginx alone
    assert proxied.seen == ["127.0.0.1"]


def test_a_chunk_size_line_without_crlf_never_reaches_waitress(proxied: Proxied) -> None:
    head = (b"POST /api/v1/auth/login HTTP/1.1\r\nHost: fitwire\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    answer = _raw(proxied.url, head + b"f" * (2 * MiB))
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
    assert proxied.seen == []


def test_a_body_over_the_limit_is_refused_by_nginx(proxied: Proxied) -> None:
    response = requests.post(f"{proxied.url}/api/v1/auth/login", data=b" " * (2 * MiB), timeout=60,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert proxied.seen == []
