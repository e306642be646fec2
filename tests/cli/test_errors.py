"""Exit codes and messages: 3 and one sentence when the server or the broker cannot be reached, 2 on usage."""

from __future__ import annotations

import socket

import pytest

from fitwire.cli.common import EXIT_UNREACHABLE, EXIT_USAGE
from tests.cli.conftest import Cli, User
from tests.cli.events import recorded_run


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_one_sentence(stderr: str, *words: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0], stderr


@pytest.mark.parametrize(
    "args",
    [
        ["whoami"],
        ["models", "list"],
        ["models", "create", "x"],
        ["runs", "list"],
        ["runs", "show", "abc"],
        ["watch", "abc", "--once"],
        ["stop", "abc"],
        ["lr", "abc", "0.1"],
    ],
)
def test_an_unreachable_server_is_exit_3(cli: Cli, args: list[str]) -> None:
    server = f"http://127.0.0.1:{closed_port()}"

    result = cli(*args, "--server", server, "--token", "t0k3n")

    assert result.exit_code == EXIT_UNREACHABLE, result.output
    assert_one_sentence(result.stderr, "Cannot reach the fitwire server", server)


def test_an_unreachable_broker_is_exit_3_for_watch_and_stop(
    cli: Cli, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = user.model()
    running = recorded_run(user, key, epochs=1, end=None)
    monkeypatch.setenv("FITWIRE_AMQP_URL", f"amqp://guest:guest@127.0.0.1:{closed_port()}/")

    for args in (["watch", key, "--once"], ["stop", running], ["lr", running, "0.01"]):
        result = cli(*args)
        assert result.exit_code == EXIT_UNREACHABLE, (args, result.output)
        assert_one_sentence(result.stderr, "Cannot reach the broker")
        assert "guest:***@" in result.stderr  # the password stays out of messages


@pytest.mark.parametrize(
    "args",
    [
        ["whoami", "--server", "not-a-url"],
        ["models", "rename"],
        ["lr", "abc", "fast"],
        ["no-such-command"],
    ],
)
def test_usage_errors_are_exit_2(cli: Cli, args: list[str]) -> None:
    result = cli(*args)
    assert result.exit_code == EXIT_USAGE, result.output


def test_signalling_an_ended_run_is_exit_1(cli: Cli, user: User) -> None:
    ended = recorded_run(user, user.model())
    result = cli("stop", ended)
    assert result.exit_code == 1
    assert_one_sentence(result.stderr, "already ended (completed)")
