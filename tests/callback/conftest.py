"""Fixtures of the Tracker's tests: isolated settings, the stand-in webhook, watchers."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from fitwire.contract import new_id
from fitwire.settings import Settings
from tests.callback.helpers import Watcher
from tests.callback.receiver import Receiver

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

USER = "alice"
TOKEN = "token-alice"


@pytest.fixture
def settings(tmp_path: Path, amqp_url: str) -> Settings:
    """Settings that read nothing from this machine's login or data dir."""
    return Settings.from_env(
        environ={},
        amqp_url=amqp_url,
        data_dir=tmp_path / "data",
        config_dir=tmp_path / "config",
        outbox_wait=3.0,
    )


@pytest.fixture
def model_key() -> str:
    return "mk" + new_id()[:10]


@pytest.fixture
def receiver(amqp_url: str, model_key: str) -> Iterator[Receiver]:
    """The stand-in webhook, knowing user alice (TOKEN) who owns ``model_key``."""
    rec = Receiver(amqp_url).start()
    rec.add_user(USER, TOKEN, model_key)
    yield rec
    rec.stop()


@pytest.fixture
def watchers(amqp_url: str) -> Iterator[list[Watcher]]:
    """Watchers made with ``watchers.append(Watcher(url, pattern))`` are closed afterwards."""
    made: list[Watcher] = []
    yield made
    for w in made:
        w.close()


@pytest.fixture
def fitwire_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="fitwire.callback")
    return caplog


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The fitwire warning lines a user would have seen."""
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("fitwire.callback") and r.levelno >= logging.WARNING]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
