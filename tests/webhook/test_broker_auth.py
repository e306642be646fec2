"""The broker-auth routes and the session's broker login, through Flask's test client.

The broker's own enforcement (a real RabbitMQ asking a real webhook) is tests/broker_auth/;
this covers what RabbitMQ cannot show: the exact answers, the vhost, the session's modes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fitwire.webhook import create_app
from fitwire.webhook.store import Store

AUTH = "/api/v1/broker-auth"


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].split()[1]


def _ask(client: FlaskClient, route: str, **form: str) -> str:
    response = client.post(f"{AUTH}/{route}", data=form)
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def test_a_user_logs_in_with_their_name_and_token_and_gets_no_broker_tags(
    client: FlaskClient, login: Callable[..., dict[str, str]]
) -> None:
    token = _token(login("alice", admin=True))
    assert _ask(client, "user", username="alice", password=token) == "allow"  # no "administrator" tag
    assert _ask(client, "user", username="Alice", password=token) == "deny"  # the exact stored name
    assert _ask(client, "user", username="alice", password=token[:-1]) == "deny"
    assert _ask(client, "user", username="alice") == "deny"
    assert _ask(client, "user", username="node.x", password=token) == "deny"


def test_only_the_configured_vhost_and_known_callers_get_in(
    client: FlaskClient, login: Callable[..., dict[str, str]]
) -> None:
    login("alice")
    assert _ask(client, "vhost", username="alice", vhost="/", ip="127.0.0.1") == "allow"
    assert _ask(client, "vhost", username="alice", vhost="other", ip="127.0.0.1") == "deny"
    assert _ask(client, "vhost", username="mallory", vhost="/", ip="127.0.0.1") == "deny"
    assert _ask(client, "resource", username="alice", vhost="other", resource="exchange",
                name="fitwire.progress", permission="write") == "deny"


def test_topic_checks_read_the_owner_and_the_model_from_the_key(
    client: FlaskClient, login: Callable[..., dict[str, str]]
) -> None:
    headers = login("alice")
    key = client.post("/api/v1/models", json={"name": "m"}, headers=headers).json["key"]

    def publish(routing_key: str) -> str:
        return _ask(client, "topic", username="alice", vhost="/", resource="topic", name="fitwire.progress",
                    permission="write", routing_key=routing_key)

    assert publish(f"alice.{key}.r1") == "allow"
    assert publish(f"alice.{key}x.r1") == "deny"
    assert publish(f"bob.{key}.r1") == "deny"
    assert _ask(client, "topic", username="alice", vhost="/", resource="topic", name="fitwire.progress",
                permission="read", routing_key="*.#") == "deny"


def test_the_session_announces_the_users_own_login_and_is_not_cached(
    client: FlaskClient, login: Callable[..., dict[str, str]]
) -> None:
    headers = login("alice")
    response = client.get("/api/v1/session", headers=headers)
    assert response.json["amqp_url"] == f"amqp://alice:{_token(headers)}@broker.example:5672/"
    assert response.headers["Cache-Control"] == "no-store"


def test_a_shared_developer_broker_is_announced_as_configured(sqlite_store: Store) -> None:
    app: Flask = create_app({"STORE": sqlite_store, "SIGNUP": "open", "BROKER_LOGINS": "shared",
                             "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/"})
    client = app.test_client()
    client.post("/api/v1/auth/signup", json={"username": "alice", "password": "correct horse"})
    token = client.post("/api/v1/auth/login", json={"username": "alice", "password": "correct horse"}).json["token"]
    body = client.get("/api/v1/session", headers={"Authorization": f"Bearer {token}"}).json
    assert body["amqp_url"] == "amqp://guest:guest@127.0.0.1:5672/"


@pytest.mark.parametrize("host", ["broker.example:5671", "[::1]:5672", "10.0.0.2"])
def test_the_users_login_replaces_the_webhooks_credentials_on_any_host(host: str) -> None:
    from fitwire.webhook.api.broker_auth import login_url

    url = login_url(f"amqps://fitwire.webhook:s3cret@{host}/%2F", "bob", "t-ok_en")
    assert url == f"amqps://bob:t-ok_en@{host}/%2F" and "s3cret" not in url
