"""`fitwire models create|list|rename|delete` against a live webhook."""

from __future__ import annotations

import json

from fitwire.cli.common import EXIT_ERROR
from tests.cli.conftest import Cli, User


def test_create_list_rename_delete(cli: Cli, user: User) -> None:
    result = cli("models", "create", "mnist", "--json")
    assert result.exit_code == 0, result.output
    key = json.loads(result.stdout)["key"]

    result = cli("models", "list")
    assert result.exit_code == 0, result.output
    assert key in cli.drawn and "mnist" in cli.drawn

    result = cli("models", "rename", key, "mnist-v2")
    assert result.exit_code == 0, result.output
    listed = json.loads(cli("models", "list", "--json").stdout)["models"]
    assert [(m["key"], m["name"]) for m in listed] == [(key, "mnist-v2")]

    # by name, and with confirmation
    result = cli("models", "delete", "mnist-v2", input="y\n")
    assert result.exit_code == 0, result.output
    assert json.loads(cli("models", "list", "--json").stdout)["models"] == []


def test_create_prints_the_key_for_the_tracker(cli: Cli, user: User) -> None:
    result = cli("models", "create", "resnet")
    assert result.exit_code == 0, result.output
    assert "Tracker(" in cli.drawn


def test_declining_the_delete_keeps_the_model(cli: Cli, user: User) -> None:
    key = user.model("keep-me")
    result = cli("models", "delete", key, input="n\n")
    assert result.exit_code != 0
    assert [m["key"] for m in json.loads(cli("models", "list", "--json").stdout)["models"]] == [key]


def test_an_unknown_model_is_one_sentence_and_exit_1(cli: Cli, user: User) -> None:
    result = cli("models", "rename", "no-such-model", "x")
    assert result.exit_code == EXIT_ERROR
    assert "No model 'no-such-model'" in result.stderr
    assert "Traceback" not in result.output


def test_list_when_logged_out_says_so(cli: Cli, live_webhook: object) -> None:
    from tests.fixtures.webhook import LiveWebhook

    assert isinstance(live_webhook, LiveWebhook)
    result = cli("models", "list", "--server", live_webhook.url)
    assert result.exit_code == EXIT_ERROR
    assert "not logged in" in result.stderr
