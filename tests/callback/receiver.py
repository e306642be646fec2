"""A small stand-in for the webhook: ``/api/v1/session`` and ``/api/v1/events`` per docs/http-api.md.

It decodes every event with the shared wire codec, so a Tracker that sends
something off-contract fails here exactly as it would against the real webhook.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fitwire.contract import DecodeError, decode
from fitwire.contract.messages import EpochEnd, TrainBegin, TrainEnd


@dataclass
class Store:
    users: dict[str, str] = field(default_factory=dict)
    """token → username"""
    models: dict[str, str] = field(default_factory=dict)
    """model key → owner"""
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    epochs: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    """(method, path, status) of every request, in order"""
    down: bool = False
    """When True every API call answers 503, as a webhook whose store is down."""


class Receiver:
    """Runs the stand-in on 127.0.0.1 on a free port (or ``port``) in a thread."""

    def __init__(self, amqp_url: str, port: int = 0) -> None:
        self.store = Store()
        self.amqp_url = amqp_url
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"receiver": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def add_user(self, username: str, token: str, *model_keys: str) -> None:
        with self.lock:
            self.store.users[token] = username
            for key in model_keys:
                self.store.models[key] = username

    def run_epochs(self, run_id: str) -> list[int]:
        with self.lock:
            return sorted(e for (r, e) in self.store.epochs if r == run_id)


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        with self.receiver.lock:
            self.receiver.store.requests.append((self.command, self.path, status))

    def _error(self, status: int, code: str, message: str) -> None:
        self._reply(status, {"error": {"code": code, "message": message}})

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        with self.receiver.lock:
            return self.receiver.store.users.get(token)

    def do_GET(self) -> None:
        store = self.receiver.store
        if store.down:
            return self._error(503, "TEMPORARILY_UNAVAILABLE", "The store is down.")
        user = self._user()
        if user is None:
            return self._error(401, "UNAUTHENTICATED", "The token is not valid.")
        if self.path == "/api/v1/session":
            return self._reply(200, {
                "user": {"id": user, "username": user, "display_name": user, "is_admin": False,
                         "created_at": "2026-01-01T00:00:00Z"},
                "amqp_url": self.receiver.amqp_url,
                "protocol_versions": [2],
            })
        self._error(404, "RESOURCE_DOES_NOT_EXIST", "No such resource.")

    def do_POST(self) -> None:
        store = self.receiver.store
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if store.down:
            return self._error(503, "TEMPORARILY_UNAVAILABLE", "The store is down.")
        user = self._user()
        if user is None:
            return self._error(401, "UNAUTHENTICATED", "The token is not valid.")
        if self.path != "/api/v1/events":
            return self._error(404, "RESOURCE_DOES_NOT_EXIST", "No such resource.")
        try:
            event = decode(body)
        except DecodeError as exc:
            return self._error(400, "INVALID_REQUEST", str(exc))
        with self.receiver.lock:
            if store.models.get(getattr(event, "model_key", "")) != user:
                status, reply = 404, {"error": {"code": "RESOURCE_DOES_NOT_EXIST", "message": "Unknown model."}}
            else:
                status, reply = self._apply(store, event)
        self._reply(status, reply)

    @staticmethod
    def _apply(store: Store, event: Any) -> tuple[int, dict[str, Any]]:
        if isinstance(event, TrainBegin):
            if event.run_id in store.runs:
                return 200, {"run": store.runs[event.run_id]}
            store.runs[event.run_id] = {"run_id": event.run_id, "model_key": event.model_key,
                                        "status": "running", "reason": None, "params": event.params,
                                        "epochs": event.epochs, "steps": event.steps,
                                        "framework": event.framework}
            return 201, {"run": store.runs[event.run_id]}
        run = store.runs.get(event.run_id)
        if run is None:
            return 404, {"error": {"code": "RESOURCE_DOES_NOT_EXIST", "message": "Unknown run."}}
        if isinstance(event, EpochEnd):
            store.epochs[(event.run_id, event.epoch)] = dict(event.logs)
            return 200, {"run": run}
        if isinstance(event, TrainEnd):
            run.update(status=event.status, reason=event.reason)
            return 200, {"run": run}
        return 400, {"error": {"code": "INVALID_REQUEST", "message": "Not a stored event type."}}
