"""Route-level fixtures: a Flask app and test client over a fresh SQLite store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fitwire.webhook import create_app
from fitwire.webhook.security import hash_password
from fitwire.webhook.store import Store, open_store


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'api.db'}")
    yield opened
    opened.close()


@pytest.fixture
def app(sqlite_store: Store) -> Flask:
    return create_app({"STORE": sqlite_store, "SIGNUP": "invite", "AMQP_URL": "amqp://u:p@broker.example:5672/"})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def login(client: FlaskClient, sqlite_store: Store) -> Callable[..., dict[str, str]]:
    """``login("alice", admin=False)``: create the user and return an Authorization header for it."""

    def make(username: str = "alice", password: str = "correct horse", admin: bool = False) -> dict[str, str]:
        sqlite_store.create_user(username, hash_password(password), is_admin=admin, now=datetime.now(UTC))
        response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.json
        return {"Authorization": f"Bearer {response.json['token']}"}

    return make


def error_of(response: Any) -> tuple[int, str]:
    """(status, error code) of an error response, checking its shape."""
    body = response.json
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"].strip()
    return response.status_code, body["error"]["code"]
