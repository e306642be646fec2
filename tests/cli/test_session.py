"""`fitwire login`, `logout`, `whoami` against a live webhook."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from fitwire.cli.common import EXIT_ERROR
from tests.cli.conftest import PASSWORD, Cli
from tests.fixtures.webhook import LiveWebhook


def test_login_saves_a_private_login_file_and_whoami_reads_it(
    cli: Cli, live_webhook: LiveWebhook, isolated_login: Path
) -> None:
    live_webhook.create_user("grace", PASSWORD)

    result = cli("login", "grace", "--password-stdin", "--server", live_webhook.url, input=PASSWORD + "\n")

    assert result.exit_code == 0, result.output
    assert "Logged in" in cli.drawn and "grace" in cli.drawn
    saved = isolated_login / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text())["server"] == live_webhook.url

    result = cli("whoami")
    assert result.exit_code == 0, result.output
    assert f"grace (user) on {live_webhook.url}" in cli.drawn

    result = cli("whoami", "--json")
    assert json.loads(result.stdout)["user"]["username"] == "grace"


def test_login_asks_for_what_is_missing(cli: Cli, live_webhook: LiveWebhook) -> None:
    live_webhook.create_user("grace", PASSWORD)

    result = cli("login", "--server", live_webhook.url, input=f"grace\n{PASSWORD}\n")

    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # the prompt hides it


def test_a_wrong_password_is_one_sentence_and_exit_1(cli: Cli, live_webhook: LiveWebhook) -> None:
    live_webhook.create_user("grace", PASSWORD)

    result = cli("login", "grace", "--password", "not-the-password", "--server", live_webhook.url)

    assert result.exit_code == EXIT_ERROR
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not logged in" not in result.stderr  # the server's reason, not a misleading hint


def test_logout_revokes_the_token(cli: Cli, live_webhook: LiveWebhook, isolated_login: Path) -> None:
    live_webhook.create_user("grace", PASSWORD)
    cli("login", "grace", "--password-stdin", "--server", live_webhook.url, input=PASSWORD + "\n")
    token = json.loads((isolated_login / "credentials.json").read_text())["token"]

    result = cli("logout")

    assert result.exit_code == 0, result.output
    assert not (isolated_login / "credentials.json").exists()
    assert live_webhook.api("GET", "/api/v1/me", token).status_code == 401
    result = cli("whoami", "--server", live_webhook.url)
    assert result.exit_code == EXIT_ERROR
    assert "not logged in" in result.stderr


def test_the_server_flag_beats_the_environment(
    cli: Cli, live_webhook: LiveWebhook, monkeypatch: object
) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    token = live_webhook.create_user("grace", PASSWORD)
    monkeypatch.setenv("FITWIRE_WEBHOOK_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("FITWIRE_TOKEN", token)

    assert cli("whoami", "--server", live_webhook.url).exit_code == 0
    assert cli("whoami").exit_code == 3
