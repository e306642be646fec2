"""`fitwire webhook create-admin` and its refusals (serve and upgrade: test_live_concurrency, test_schema)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fitwire.cli.main import app as cli
from fitwire.webhook import create_app
from fitwire.webhook.store import open_store


@pytest.fixture
def store_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FITWIRE_STORE", url)
    return url


def test_create_admin_makes_an_admin_who_can_log_in_and_invite(store_env: str) -> None:
    result = CliRunner().invoke(cli, ["webhook", "create-admin", "root", "-p", "correct horse"])
    assert result.exit_code == 0, result.output
    client = create_app({"STORE_URL": store_env}).test_client()
    login = client.post("/api/v1/auth/login", json={"username": "root", "password": "correct horse"})
    assert login.json["user"]["is_admin"] is True
    invite = client.post("/api/v1/invitations", headers={"Authorization": f"Bearer {login.json['token']}"})
    assert invite.status_code == 201


def test_create_admin_prompts_for_the_password_twice(store_env: str) -> None:
    result = CliRunner().invoke(cli, ["webhook", "create-admin", "root"], input="correct horse\ncorrect horse\n")
    assert result.exit_code == 0, result.output
    assert "correct horse" not in result.output  # hidden input
    assert open_store(store_env).get_credentials("root").user.is_admin


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a.b", "-p", "correct horse"], "username must be"),
        (["root", "-p", "short"], "8 to 1024"),
    ],
)
def test_create_admin_refuses_bad_input(store_env: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["webhook", "create-admin", *args])
    assert result.exit_code == 1 and message in result.output
    assert open_store(store_env).count_users() == 0


def test_create_admin_refuses_a_taken_username(store_env: str) -> None:
    CliRunner().invoke(cli, ["webhook", "create-admin", "root", "-p", "correct horse"])
    result = CliRunner().invoke(cli, ["webhook", "create-admin", "root", "-p", "other password"])
    assert result.exit_code == 1 and "taken" in result.output


def test_invite_prints_a_one_time_invitation(store_env: str) -> None:
    CliRunner().invoke(cli, ["webhook", "create-admin", "root", "-p", "correct horse"])
    result = CliRunner().invoke(cli, ["webhook", "invite", "--admin", "root"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    client = create_app({"STORE_URL": store_env, "SIGNUP": "invite"}).test_client()
    body = {"username": "bob", "password": "password1", "invitation": token}
    assert client.post("/api/v1/auth/signup", json=body).status_code == 201
    assert client.post("/api/v1/auth/signup", json={**body, "username": "carol"}).status_code == 403


def test_invite_needs_an_admin(store_env: str) -> None:
    from datetime import UTC, datetime

    open_store(store_env).create_user("bob", "h", now=datetime.now(UTC))
    for who, message in (("bob", "not an admin"), ("nobody", "No user named")):
        result = CliRunner().invoke(cli, ["webhook", "invite", "--admin", who])
        assert result.exit_code == 1 and message in result.output
