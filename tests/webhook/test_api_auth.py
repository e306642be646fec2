"""HTTP: sign-up (invite and open), log-in and its guessing limit, tokens, profile, password, invitations."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from fitwire.webhook import create_app
from fitwire.webhook.store import Store
from tests.webhook.conftest import error_of

SIGNUP = "/api/v1/auth/signup"
LOGIN = "/api/v1/auth/login"


def test_invite_mode_needs_a_valid_one_time_invitation(client: FlaskClient, login: Callable[..., dict[str, str]],
                                                       sqlite_store: Store) -> None:
    admin = login("root", admin=True)
    assert error_of(client.post(SIGNUP, json={"username": "bob", "password": "password1"})) == (
        403, "PERMISSION_DENIED")
    invitation = client.post("/api/v1/invitations", headers=admin)
    assert invitation.status_code == 201 and invitation.json["expires_at"].endswith("Z")
    token = invitation.json["token"]
    created = client.post(SIGNUP, json={"username": "bob", "password": "password1", "display_name": "Bob",
                                        "invitation": token})
    assert created.status_code == 201
    assert created.json["username"] == "bob" and created.json["display_name"] == "Bob"
    assert not created.json["is_admin"]
    again = client.post(SIGNUP, json={"username": "carol", "password": "password1", "invitation": token})
    assert error_of(again) == (403, "PERMISSION_DENIED")
    assert sqlite_store.count_users() == 2


def test_only_admins_invite(client: FlaskClient, login: Callable[..., dict[str, str]]) -> None:
    assert error_of(client.post("/api/v1/invitations", headers=login())) == (403, "PERMISSION_DENIED")
    assert error_of(client.post("/api/v1/invitations")) == (401, "UNAUTHENTICATED")


@pytest.fixture
def open_client(sqlite_store: Store) -> FlaskClient:
    return create_app({"STORE": sqlite_store, "SIGNUP": "open"}).test_client()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "a.b", "password": "password1"}, "username"),  # dots would break routing keys
        ({"username": "x" * 33, "password": "password1"}, "username"),
        ({"username": "bob", "password": "short"}, "password"),
        ({"username": "bob", "password": 12345678}, "password"),
        ({"username": "bob", "password": "password1", "is_admin": True}, "is_admin"),
        ({"username": "bob"}, "password"),
        ({"username": "bob", "password": "password1", "display_name": "a\x00b"}, "display_name"),
    ],
)
def test_bad_signups_name_the_field_and_store_nothing(open_client: FlaskClient, sqlite_store: Store,
                                                      body: dict[str, object], field: str) -> None:
    response = open_client.post(SIGNUP, json=body)
    assert error_of(response) == (400, "INVALID_REQUEST")
    assert repr(field) in response.json["error"]["message"]
    assert sqlite_store.count_users() == 0


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b"null", b'"text"'])
def test_malformed_bodies_are_400(open_client: FlaskClient, sqlite_store: Store, raw: bytes) -> None:
    response = open_client.post(SIGNUP, data=raw, content_type="application/json")
    assert error_of(response) == (400, "INVALID_REQUEST")
    assert sqlite_store.count_users() == 0


def test_open_signup_and_duplicate_username(open_client: FlaskClient) -> None:
    assert open_client.post(SIGNUP, json={"username": "bob", "password": "password1"}).status_code == 201
    assert error_of(open_client.post(SIGNUP, json={"username": "bob", "password": "password2"})) == (
        409, "RESOURCE_ALREADY_EXISTS")
    login = open_client.post(LOGIN, json={"username": "bob", "password": "password1"})
    assert login.status_code == 200 and login.json["user"]["username"] == "bob"


def test_wrong_password_and_unknown_user_look_the_same(client: FlaskClient,
                                                       login: Callable[..., dict[str, str]]) -> None:
    login("alice")
    wrong = client.post(LOGIN, json={"username": "alice", "password": "wrong password"})
    unknown = client.post(LOGIN, json={"username": "nobody", "password": "wrong password"})
    assert error_of(wrong) == error_of(unknown) == (401, "UNAUTHENTICATED")
    assert wrong.json == unknown.json


def test_guessing_is_limited_per_username_and_address(client: FlaskClient,
                                                      login: Callable[..., dict[str, str]]) -> None:
    login("alice", "correct horse")
    attacker = {"REMOTE_ADDR": "203.0.113.9"}
    for _ in range(5):
        response = client.post(LOGIN, json={"username": "alice", "password": "guess"}, environ_base=attacker)
        assert error_of(response) == (401, "UNAUTHENTICATED")
    limited = client.post(LOGIN, json={"username": "alice", "password": "correct horse"}, environ_base=attacker)
    assert error_of(limited) == (429, "RATE_LIMITED")
    assert int(limited.headers["Retry-After"]) > 0
    elsewhere = client.post(LOGIN, json={"username": "alice", "password": "correct horse"},
                            environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert elsewhere.status_code == 200


def test_tokens_missing_garbage_revoked_expired(client: FlaskClient, login: Callable[..., dict[str, str]],
                                                sqlite_store: Store) -> None:
    headers = login()
    assert client.get("/api/v1/me", headers=headers).json["username"] == "alice"
    assert error_of(client.get("/api/v1/me")) == (401, "UNAUTHENTICATED")
    assert error_of(client.get("/api/v1/me", headers={"Authorization": "Bearer nonsense"})) == (
        401, "UNAUTHENTICATED")
    assert error_of(client.get("/api/v1/me", headers={"Authorization": "Basic YWxpY2U6eA=="})) == (
        401, "UNAUTHENTICATED")
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert error_of(client.get("/api/v1/me", headers=headers)) == (401, "UNAUTHENTICATED")
    expiring = create_app({"STORE": sqlite_store, "TOKEN_TTL_SECONDS": 0}).test_client()
    token = expiring.post(LOGIN, json={"username": "alice", "password": "correct horse"}).json["token"]
    response = expiring.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert error_of(response) == (401, "UNAUTHENTICATED") and "expired" in response.json["error"]["message"]


def test_profile_update(client: FlaskClient, login: Callable[..., dict[str, str]]) -> None:
    headers = login()
    assert client.patch("/api/v1/me", json={"display_name": "  Alice A.  "}, headers=headers).json[
        "display_name"] == "Alice A."
    bad = client.patch("/api/v1/me", json={"display_name": "x", "username": "root"}, headers=headers)
    assert error_of(bad) == (400, "INVALID_REQUEST") and "'username'" in bad.json["error"]["message"]
    me = client.get("/api/v1/me", headers=headers).json
    assert (me["username"], me["display_name"]) == ("alice", "Alice A.")


def test_password_change(client: FlaskClient, login: Callable[..., dict[str, str]]) -> None:
    headers = login("alice", "correct horse")
    other_session = client.post(LOGIN, json={"username": "alice", "password": "correct horse"}).json["token"]
    wrong = client.post("/api/v1/me/password", json={"old_password": "nope", "new_password": "battery staple"},
                        headers=headers)
    assert error_of(wrong) == (401, "UNAUTHENTICATED")
    too_short = client.post("/api/v1/me/password", json={"old_password": "correct horse", "new_password": "x"},
                            headers=headers)
    assert error_of(too_short) == (400, "INVALID_REQUEST")
    assert client.post(LOGIN, json={"username": "alice", "password": "correct horse"}).status_code == 200
    ok = client.post("/api/v1/me/password", json={"old_password": "correct horse",
                                                  "new_password": "battery staple"}, headers=headers)
    assert ok.status_code == 204
    assert client.get("/api/v1/me", headers=headers).status_code == 200  # this session stays
    assert error_of(client.get("/api/v1/me", headers={"Authorization": f"Bearer {other_session}"})) == (
        401, "UNAUTHENTICATED")
    assert client.post(LOGIN, json={"username": "alice", "password": "battery staple"}).status_code == 200
    assert error_of(client.post(LOGIN, json={"username": "alice", "password": "correct horse"}))[0] == 401


def test_passwords_never_reach_the_log(open_client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    open_client.post(SIGNUP, json={"username": "bob", "password": "s3cret-signup"})
    open_client.post(LOGIN, json={"username": "bob", "password": "s3cret-wrong"})
    token = open_client.post(LOGIN, json={"username": "bob", "password": "s3cret-signup"}).json["token"]
    open_client.post("/api/v1/me/password", json={"old_password": "s3cret-signup", "new_password": "s3cret-new!"},
                     headers={"Authorization": f"Bearer {token}"})
    assert "s3cret" not in caplog.text and token not in caplog.text


def test_session_tells_the_broker_url(client: FlaskClient, login: Callable[..., dict[str, str]]) -> None:
    headers = login()
    body = client.get("/api/v1/session", headers=headers).json
    # the user's own broker login (name + this token), never the webhook's u:p
    assert body["amqp_url"] == f"amqp://alice:{headers['Authorization'].split()[1]}@broker.example:5672/"
    assert body["protocol_versions"] == [2] and body["user"]["username"] == "alice"
    assert error_of(client.get("/api/v1/session")) == (401, "UNAUTHENTICATED")


def test_unknown_route_and_method_are_json_errors(client: FlaskClient) -> None:
    assert error_of(client.get("/api/v1/nothing")) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert error_of(client.delete("/health")) == (405, "METHOD_NOT_ALLOWED")
    health = client.get("/health").json
    assert health == {"status": "ok", "version": health["version"], "store": "sqlite"}


def test_admins_list_every_user_and_others_are_refused(client: FlaskClient, login: Callable[..., dict[str, str]]) -> None:
    root, ada = login("root", admin=True), login("ada")
    listed = client.get("/api/v1/users", headers=root)
    assert listed.status_code == 200
    assert [(u["username"], u["is_admin"]) for u in listed.json["users"]] == [("ada", False), ("root", True)]
    assert "password_hash" not in listed.json["users"][0]
    assert error_of(client.get("/api/v1/users", headers=ada)) == (403, "PERMISSION_DENIED")
    assert error_of(client.get("/api/v1/users")) == (401, "UNAUTHENTICATED")
