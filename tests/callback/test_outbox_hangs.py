"""A hung webhook and a hung broker: the end of ``fit`` stays bounded and every record is kept for a flush.

A hung server accepts the connection and never answers, which is worse than a
refused one: every request waits for its timeout. The services here are real
(the live webhook, RabbitMQ) behind :class:`StallingProxy`.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlparse

import keras
import pytest
from typer.testing import CliRunner

from fitwire.callback import Tracker
from fitwire.callback.session import END_GRACE_S
from fitwire.cli.main import app
from fitwire.settings import Settings
from tests.callback.conftest import warnings_of
from tests.callback.helpers import fitwire_threads, tiny_data, tiny_model
from tests.callback.stall_proxy import StallingProxy
from tests.fixtures.webhook import LiveWebhook

OUTBOX_WAIT_S = 1.0
EPOCHS = 3
SLACK_S = 2.0
"""Loose on purpose (a busy 2-core machine): what is checked is "bounded by outbox_wait", not a speed."""


class _EndClock(keras.callbacks.Callback):
    """Placed before the Tracker: notes when Keras starts ending the fit, so the Tracker's share can be measured."""

    at: float | None = None

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.at = time.monotonic()


def _wait_for_threads(timeout: float = 30.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while fitwire_threads() and time.monotonic() < deadline:
        time.sleep(0.1)
    return fitwire_threads()


@pytest.mark.parametrize("hung", ["webhook", "webhook+broker"])
def test_a_hung_service_costs_at_most_outbox_wait_and_flush_delivers_everything_after(
    settings: Settings, live_webhook: LiveWebhook, monkeypatch: pytest.MonkeyPatch,
    fitwire_log: pytest.LogCaptureFixture, hung: str,
) -> None:
    token = live_webhook.create_user("dora", "a long enough password")
    key = live_webhook.create_model(token, "hung")
    webhook = urlparse(live_webhook.url)
    web = StallingProxy((webhook.hostname or "127.0.0.1", webhook.port or 80))
    broker_url = urlparse(settings.amqp_url)
    broker = StallingProxy((broker_url.hostname or "127.0.0.1", broker_url.port or 5672),
                           stalled=hung == "webhook+broker")
    try:
        tracker = Tracker(key, token=token, webhook_url=f"http://127.0.0.1:{web.port}",
                          amqp_url=f"amqp://guest:guest@127.0.0.1:{broker.port}/",
                          settings=settings, outbox_wait=OUTBOX_WAIT_S)
        clock = _EndClock()
        x, y = tiny_data(32)
        history = tiny_model().fit(x, y, batch_size=8, epochs=EPOCHS, verbose=0, callbacks=[clock, tracker])
        assert clock.at is not None
        ending = time.monotonic() - clock.at
        assert len(history.history["loss"]) == EPOCHS

        # The README's promise: at most outbox_wait + END_GRACE_S (asserted loosely).
        assert ending < OUTBOX_WAIT_S + END_GRACE_S + SLACK_S, ending
        assert any("webhook" in line for line in warnings_of(fitwire_log))

        # The outbox thread may still sit in a request to the hung webhook; once it gives up,
        # it leaves the run's file to whoever flushes next.
        assert [t.name for t in _wait_for_threads() if "outbox" in t.name] == []
        monkeypatch.setenv("FITWIRE_DATA_DIR", str(settings.data_dir))
        monkeypatch.setenv("FITWIRE_CONFIG_DIR", str(settings.config_dir))
        status = CliRunner().invoke(app, ["outbox", "status", "--json"])
        records = json.loads(status.output)["records"]
        assert [(r["kind"], r["epoch"], r["state"]) for r in records] == [
            ("train_begin", -1, "pending"), *[("epoch_end", e, "pending") for e in range(EPOCHS)],
            ("train_end", -1, "pending")]

        web.resume()
        result = CliRunner().invoke(app, ["outbox", "flush", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["sent"] == EPOCHS + 2
        run = live_webhook.api("GET", f"/api/v1/runs/{tracker.run_id}", token).json()
        assert run["status"] == "completed"
        epochs = live_webhook.api("GET", f"/api/v1/runs/{tracker.run_id}/epochs", token).json()["epochs"]
        assert [e["epoch"] for e in epochs] == list(range(EPOCHS))
        assert json.loads(CliRunner().invoke(app, ["outbox", "status", "--json"]).output)["pending"] == 0
    finally:
        web.close()
        broker.close()
        _wait_for_threads()  # a transport stuck in a hung broker's handshake ends once its socket is cut
