"""The connection helper's failures are fitwire errors with a sentence, never pika's."""

from __future__ import annotations

import pytest

from fitwire.broker import BrokerAccessRefused, BrokerUnavailable, connect
from fitwire.broker.connection import Backoff, redact
from fitwire.broker.local import free_port


def test_nothing_listening_is_unavailable_after_bounded_retries() -> None:
    slept: list[float] = []
    with pytest.raises(BrokerUnavailable, match="3 attempts"):
        connect(f"amqp://guest:guest@127.0.0.1:{free_port()}/", sleep=slept.append)
    assert slept == [1.0, 2.0]  # backoff grows by a step per failure


def test_wrong_password_is_access_refused_not_retried(amqp_url: str) -> None:
    bad = amqp_url.replace("guest:guest", "guest:wrong")
    slept: list[float] = []
    with pytest.raises(BrokerAccessRefused):
        connect(bad, sleep=slept.append)
    assert slept == []


def test_backoff_is_capped_and_resets() -> None:
    b = Backoff(step=1, cap=3)
    assert [b.next_delay() for _ in range(5)] == [1, 2, 3, 3, 3]
    b.reset()
    assert b.next_delay() == 1


def test_redact_hides_the_password() -> None:
    assert "secret" not in redact("amqp://ann:secret@host:5673/")
