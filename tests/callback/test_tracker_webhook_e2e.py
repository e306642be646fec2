"""End to end: a real Tracker fit against the real webhook leaves its run and every epoch in the store."""

from __future__ import annotations

import time

from fitwire.callback import Tracker
from fitwire.settings import Settings
from tests.callback.helpers import Watcher, fitwire_threads, tiny_data, tiny_model
from tests.fixtures.webhook import LiveWebhook

EPOCHS = 3


def test_tracker_fit_is_stored_by_the_real_webhook(settings: Settings, live_webhook: LiveWebhook,
                                                   watchers: list[Watcher]) -> None:
    token = live_webhook.create_user("carol", "a long enough password")
    key = live_webhook.create_model(token, "e2e model")
    watchers.append(Watcher(settings.amqp_url, f"carol.{key}.*"))
    tracker = Tracker(key, token=token, webhook_url=live_webhook.url, settings=settings)
    x, y = tiny_data(32)
    began = time.monotonic()
    tiny_model().fit(x, y, batch_size=8, epochs=EPOCHS, validation_split=0.25, verbose=0, callbacks=[tracker])
    fit_took = time.monotonic() - began
    assert tracker.session is not None and tracker.session.stored is True
    assert fitwire_threads() == []

    run = live_webhook.api("GET", f"/api/v1/runs/{tracker.run_id}", token)
    assert run.status_code == 200, run.text
    body = run.json()
    assert (body["status"], body["model_key"], body["owner"]) == ("completed", key, "carol")
    assert body["framework"] == "keras" and body["epochs"] == EPOCHS
    epochs = live_webhook.api("GET", f"/api/v1/runs/{tracker.run_id}/epochs", token).json()["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(EPOCHS))
    assert {"loss", "val_loss"} <= set(epochs[-1]["logs"])
    # Each epoch's wall-clock duration, measured by the Tracker, stored and returned.
    durations = [e["duration"] for e in epochs]
    assert all(d > 0 for d in durations) and sum(durations) <= fit_took, (durations, fit_took)
    # The owner in the live routing key came from the webhook's /api/v1/session.
    assert watchers[0].wait_for(lambda w: bool(w.events(tracker.run_id, "train_end")))
