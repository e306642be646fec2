"""The one token rule, seen from a server: the login file's token reaches only the server that issued it.

Two real HTTP servers record the Authorization headers they receive: the one the user
logged in to (S) and another one the user names (X). A Tracker pointed at X, the CLI
with ``--server X`` and the outbox's retry of refused records must not hand S's token to X.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fitwire import credentials
from fitwire.callback import RunSession
from fitwire.client_api.http import RETRY, http_session, token_for
from fitwire.settings import Settings

SAVED_TOKEN = "saved-login-token-of-server-S"


class Recorder:
    """An HTTP server answering 401 to everything, remembering each request's Authorization."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                recorder.seen.append(self.headers.get("Authorization"))
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                body = json.dumps({"error": {"code": "UNAUTHENTICATED", "message": "Who are you?"}}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    issuer, other = Recorder(), Recorder()
    yield issuer, other
    issuer.close()
    other.close()


@pytest.fixture
def logged_in(tmp_path: Path, servers: tuple[Recorder, Recorder], amqp_url: str) -> Settings:
    settings = Settings.from_env(environ={}, amqp_url=amqp_url, data_dir=tmp_path / "data",
                                 config_dir=tmp_path / "config", outbox_wait=0.5)
    credentials.save(settings, credentials.Credentials(server=servers[0].url, username="alice", token=SAVED_TOKEN))
    return settings


def test_the_rule(logged_in: Settings, servers: tuple[Recorder, Recorder]) -> None:
    issuer, other = servers
    assert token_for(logged_in, issuer.url) == SAVED_TOKEN
    assert token_for(logged_in, issuer.url + "/") == SAVED_TOKEN
    assert token_for(logged_in, other.url) is None
    assert token_for(logged_in, other.url, explicit="given") == "given"
    env = Settings.from_env(environ={"FITWIRE_TOKEN": "from-env"}, config_dir=logged_in.config_dir)
    assert token_for(env, other.url) == "from-env"  # named by the user for wherever they send it


def test_a_tracker_pointed_at_another_server_never_sends_the_saved_token(
    logged_in: Settings, servers: tuple[Recorder, Recorder],
) -> None:
    issuer, other = servers
    with RunSession("some-model", webhook_url=other.url, settings=logged_in) as run:
        run.start(epochs=1)
        run.log_epoch(0, {"loss": 1.0})
    assert SAVED_TOKEN not in json.dumps(other.seen)
    assert issuer.seen == []

    with RunSession("some-model", settings=logged_in) as run:  # no webhook_url: the login's own server
        run.start(epochs=1)
    assert f"Bearer {SAVED_TOKEN}" in issuer.seen


def test_the_cli_sends_the_saved_token_only_to_its_server(
    logged_in: Settings, servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from fitwire.cli.main import app

    issuer, other = servers
    monkeypatch.setenv("FITWIRE_CONFIG_DIR", str(logged_in.config_dir))
    monkeypatch.delenv("FITWIRE_TOKEN", raising=False)
    monkeypatch.delenv("FITWIRE_WEBHOOK_URL", raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["models", "list", "--server", other.url])
    assert result.exit_code != 0
    assert other.seen and all(seen is None for seen in other.seen)
    runner.invoke(app, ["models", "list"])
    assert issuer.seen == [f"Bearer {SAVED_TOKEN}"]


def test_the_retry_policy_rides_out_an_unavailable_answer_for_idempotent_methods_only() -> None:
    answers = iter([503, 503, 200, 503, 200])
    hits: list[str] = []

    class Flaky(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            hits.append(self.command)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(next(answers))
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _answer

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        assert http_session().get(url, timeout=5).status_code == 200
        assert hits == ["GET", "GET", "GET"]
        assert http_session().post(url, timeout=5).status_code == 503  # a POST is not repeated by default
        assert http_session(retry_posts=True).post(url, timeout=5).status_code == 200
        assert hits == ["GET", "GET", "GET", "POST", "POST"]
    finally:
        server.shutdown()
        server.server_close()
    assert RETRY.total == 3

