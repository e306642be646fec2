"""Fixtures of the CLI tests: an isolated login, a logged-in user on a live webhook, real fits.

Every command runs through ``CliRunner`` in this process, against the real
webhook (``live_webhook``) and the real RabbitMQ (``amqp_url``); trainings run
``examples/demo_train.py`` (a real Keras fit with the Tracker) in a subprocess.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from fitwire import credentials
from fitwire.cli.common import Io, use_io
from fitwire.cli.main import app
from fitwire.settings import Settings
from tests.fixtures.webhook import LiveWebhook

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo_train.py"
PASSWORD = "correct-horse-1"


@dataclass
class Cli:
    """Runs `fitwire …` in-process; ``drawn`` is what the last command drew on its console."""

    runner: CliRunner
    console_file: io.StringIO | None = None

    def __call__(self, *args: str, input: str | None = None, width: int = 160) -> Result:
        self.console_file = io.StringIO()
        console = Console(file=self.console_file, width=width, color_system=None)
        with use_io(Io(out=console)):
            return self.runner.invoke(app, list(args), input=input)

    @property
    def drawn(self) -> str:
        return self.console_file.getvalue() if self.console_file else ""


@pytest.fixture(autouse=True)
def isolated_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A login file of this test's own, and no token, server or broker URL from the environment."""
    config = tmp_path / "config"
    monkeypatch.setenv("FITWIRE_CONFIG_DIR", str(config))
    monkeypatch.setenv("FITWIRE_DATA_DIR", str(tmp_path / "data"))
    for name in ("FITWIRE_TOKEN", "FITWIRE_WEBHOOK_URL", "FITWIRE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return config


@pytest.fixture
def cli() -> Cli:
    return Cli(CliRunner())


@dataclass
class User:
    name: str
    token: str
    webhook: LiveWebhook

    def model(self, name: str = "mlp") -> str:
        return self.webhook.create_model(self.token, name)


@pytest.fixture
def user(live_webhook: LiveWebhook) -> User:
    """A user logged in (login file) on the live webhook."""
    token = live_webhook.create_user("ada", PASSWORD)
    credentials.save(Settings.from_env(), credentials.Credentials(live_webhook.url, "ada", token))
    return User("ada", token, live_webhook)


@dataclass
class Fit:
    """A real Keras fit with the Tracker, in a subprocess."""

    process: subprocess.Popen[str]
    run_id: str
    log: Path

    def wait(self, timeout: float = 180) -> int:
        return self.process.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def broker(amqp_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The real broker, for the CLI too (FITWIRE_AMQP_URL overrides the webhook's answer)."""
    monkeypatch.setenv("FITWIRE_AMQP_URL", amqp_url)
    return amqp_url


@pytest.fixture
def start_fit(user: User, broker: str, tmp_path: Path) -> Iterator[Callable[..., Fit]]:
    """Start ``examples/demo_train.py`` for a model; kills whatever is left at the end."""
    fits: list[Fit] = []

    def start(model_key: str, *, epochs: int = 3, steps: int = 8, delay: float = 0.02,
              env: dict[str, str] | None = None) -> Fit:
        run_id = os.urandom(16).hex()
        log = tmp_path / f"fit-{run_id[:8]}.log"
        environ = {
            **os.environ,
            "FITWIRE_TOKEN": user.token,
            "FITWIRE_WEBHOOK_URL": user.webhook.url,
            "FITWIRE_AMQP_URL": broker,
            "FITWIRE_DATA_DIR": str(tmp_path / f"fit-data-{run_id[:8]}"),
            **(env or {}),
        }
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, str(DEMO), "--model-key", model_key, "--run-id", run_id,
                 "--epochs", str(epochs), "--steps", str(steps), "--delay", str(delay), "--batch-size", "16"],
                env=environ, stdout=out, stderr=subprocess.STDOUT, text=True,
            )
        fit = Fit(process, run_id, log)
        fits.append(fit)
        return fit

    yield start
    for fit in fits:
        if fit.process.poll() is None:
            fit.process.kill()
            fit.process.wait()


def wait_for(condition: Callable[[], Any], timeout: float = 120, what: str = "condition") -> Any:
    """Poll ``condition`` until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def run_state(user: User, run_id: str) -> dict[str, Any] | None:
    """The webhook's state of a run, None while it does not know the run."""
    response = user.webhook.api("GET", f"/api/v1/runs/{run_id}/state", user.token)
    return response.json() if response.status_code == 200 else None
