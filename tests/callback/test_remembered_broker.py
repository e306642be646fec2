"""With the webhook down at start, the Tracker uses the broker its server announced at login, or says it has none."""

from __future__ import annotations

import pytest

from fitwire import credentials
from fitwire.callback import Tracker
from fitwire.settings import Settings
from tests.callback.conftest import TOKEN, USER, free_port, warnings_of
from tests.callback.helpers import Watcher, fitwire_threads, tiny_data, tiny_model


def _offline_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, str]:
    """Settings whose own broker URL leads nowhere, and a webhook URL where nothing answers."""
    monkeypatch.delenv("FITWIRE_AMQP_URL", raising=False)  # the user named no broker
    dead_broker = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    return settings.model_copy(update={"amqp_url": dead_broker}), f"http://127.0.0.1:{free_port()}"


def test_the_broker_announced_at_login_carries_live_progress_when_the_webhook_is_down(
    settings: Settings, model_key: str, watchers: list[Watcher], fitwire_log: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_broker = settings.amqp_url
    offline, webhook = _offline_settings(settings, monkeypatch)
    credentials.save(offline, credentials.Credentials(webhook, USER, TOKEN, amqp_url=real_broker))
    watchers.append(Watcher(real_broker, f"{USER}.{model_key}.*"))

    tracker = Tracker(model_key, settings=offline)  # token and server from the login file
    x, y = tiny_data(32)
    tiny_model().fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[tracker])

    assert watchers[0].wait_for(lambda w: bool(w.events(tracker.run_id, "train_end")))
    lines = warnings_of(fitwire_log)
    assert len(lines) == 1, lines  # the webhook; the broker was fine
    assert "webhook" in lines[0] and "the broker it announced at login" in lines[0]
    assert fitwire_threads() == []


def test_without_a_remembered_broker_the_warning_line_says_so(
    settings: Settings, model_key: str, fitwire_log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    offline, webhook = _offline_settings(settings, monkeypatch)
    credentials.save(offline, credentials.Credentials(webhook, USER, TOKEN))  # an older login: no broker in it

    tracker = Tracker(model_key, settings=offline)
    x, y = tiny_data(32)
    tiny_model().fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[tracker])

    webhook_lines = [line for line in warnings_of(fitwire_log) if "webhook" in line]
    assert len(webhook_lines) == 1
    assert "no broker URL remembered" in webhook_lines[0] and "127.0.0.1" in webhook_lines[0]
