"""Runs recorded through the webhook's event endpoint, for tests that need history, not a live fit."""

from __future__ import annotations

from typing import Any

from fitwire.contract import EpochEnd, TrainBegin, TrainEnd, encode, new_id
from fitwire.contract.messages import Message
from tests.cli.conftest import User


def post(user: User, message: Message) -> dict[str, Any]:
    response = user.webhook.api(
        "POST", "/api/v1/events", user.token, data=encode(message), headers={"Content-Type": "application/json"}
    )
    assert response.status_code in (200, 201), response.text
    return dict(response.json()["run"])


def recorded_run(user: User, model_key: str, *, epochs: int = 3, end: str | None = "completed",
                 planned: int | None = None, reason: str | None = None) -> str:
    """A run with ``epochs`` stored epochs (falling loss, rising accuracy) of ``planned``
    (default: ``epochs``), ended with ``end`` for ``reason``."""
    run_id = new_id()
    ids = {"run_id": run_id, "model_key": model_key, "owner": user.name}
    post(user, TrainBegin(**ids, params={"batch_size": 32, "optimizer": "adam"}, epochs=planned or epochs, steps=10,
                          host="testbox", framework="keras", framework_version="3"))
    for epoch in range(epochs):
        logs = {"loss": 1.0 / (epoch + 1), "accuracy": 0.5 + 0.1 * epoch,
                "val_loss": 1.2 / (epoch + 1), "val_accuracy": 0.45 + 0.1 * epoch}
        post(user, EpochEnd(**ids, epoch=epoch, logs=logs, duration=12.5 + epoch))
    if end:
        post(user, TrainEnd(**ids, status=end, reason=reason, logs={"loss": 1.0 / epochs}))  # type: ignore[arg-type]
    return run_id
