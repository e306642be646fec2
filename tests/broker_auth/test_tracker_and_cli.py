"""The real Tracker and the real CLI on a broker whose logins the webhook checks.

Each side uses only the login the webhook announces to it (``GET /api/v1/session``), even
with a ``FITWIRE_AMQP_URL`` of the permissive test broker left in the environment. Alice's
run is watched by Alice; Bob can neither see it, stop it nor forge its events, and it
completes; Bob's own run is watched and stopped by Bob, and stored as stopped by him; an
admin's ``#`` watcher sees both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import pika
import pika.exceptions
import pytest
from typer.testing import CliRunner

from fitwire.broker import connect
from fitwire.broker.connection import use_topology
from fitwire.broker.topology import LIVE, PROGRESS, Exchange, Topology, progress_key
from fitwire.callback import Tracker
from fitwire.cli.common import amqp_url_for
from fitwire.cli.wire import WatchQueue, run_pattern
from fitwire.contract import BrokerAccessRefused, Signal, encode, new_id
from fitwire.contract.messages import EpochEnd, TrainEnd
from fitwire.settings import Settings
from tests.broker_auth.conftest import Login, Secured
from tests.callback.helpers import Watcher, tiny_data, tiny_model
from tests.cli.conftest import Cli

ACCESS_REFUSED = 403
PERMISSIVE = "amqp://guest:guest@127.0.0.1:5672/"
"""A broker URL left in the environment; the announced per-user login must win over it."""


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FITWIRE_AMQP_URL", PERMISSIVE)
    monkeypatch.setenv("FITWIRE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("FITWIRE_DATA_DIR", str(tmp_path / "data"))
    for name in ("FITWIRE_TOKEN", "FITWIRE_WEBHOOK_URL", "FITWIRE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def admin_watcher(secured: Secured) -> Iterator[Watcher]:
    """An admin's watcher bound with ``#``: WebML streams every training to every admin."""
    watcher = Watcher(secured.url(secured.root), "#")
    yield watcher
    watcher.close()


@dataclass
class Fit:
    """A real Keras fit with the Tracker, on a thread of this process."""

    tracker: Tracker
    run_id: str
    thread: threading.Thread
    epochs_done: list[int] = field(default_factory=list)
    error: list[BaseException] = field(default_factory=list)

    def join(self, timeout: float = 180) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the fit did not end"
        assert not self.error, self.error


class _Paced(keras.callbacks.Callback):
    """A step every ``delay`` seconds; with a ``gate``, epoch 2 waits for it (the others act meanwhile)."""

    def __init__(self, delay: float, gate: threading.Event | None) -> None:
        super().__init__()
        self.delay, self.gate = delay, gate

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        if epoch == 2 and self.gate is not None:
            self.gate.wait(180)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        time.sleep(self.delay)


def _fit(secured: Secured, login: Login, tmp_path: Path, *, epochs: int, delay: float,
         gate: threading.Event | None = None, run_id: str | None = None) -> Fit:
    settings = Settings.from_env(environ={}, amqp_url=PERMISSIVE, data_dir=tmp_path / f"fit-{login.username}",
                                 config_dir=tmp_path / "config", outbox_wait=10.0)
    run_id = run_id or new_id()
    tracker = Tracker(login.model, token=login.token, webhook_url=secured.web.url, settings=settings,
                      run_id=run_id)
    fit = Fit(tracker, run_id, threading.Thread())

    def train() -> None:
        try:
            x, y = tiny_data(64)
            history = tiny_model().fit(x, y, batch_size=8, epochs=epochs, verbose=0,
                                       callbacks=[tracker, _Paced(delay, gate)])
            fit.epochs_done.append(len(history.history["loss"]))
        except BaseException as exc:  # reported by join, on the test's thread
            fit.error.append(exc)

    fit.thread = threading.Thread(target=train, name=f"fit-{login.username}", daemon=True)
    fit.thread.start()
    return fit


def _run(secured: Secured, login: Login, run_id: str) -> dict[str, Any] | None:
    response = secured.web.api("GET", f"/api/v1/runs/{run_id}", login.token)
    return dict(response.json()) if response.status_code == 200 else None


def _wait(what: str, predicate: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _session(secured: Secured, login: Login) -> dict[str, Any]:
    response = secured.web.api("GET", "/api/v1/session", login.token)
    response.raise_for_status()
    return dict(response.json())


def _refused_publish(url: str, key: str, body: bytes) -> int:
    """Publish on ``fitwire.progress`` in confirm mode; the reply code the broker closed the channel with."""
    conn = connect(url, attempts=1)
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
            channel.basic_publish(PROGRESS.name, key, body, pika.BasicProperties(content_type="application/json"))
        return int(closed.value.reply_code)
    finally:
        if conn.is_open:
            conn.close()


def _cli(login: Login, secured: Secured, *args: str) -> tuple[int, str, str]:
    cli = Cli(CliRunner())
    result = cli(*args, "--server", secured.web.url, "--token", login.token)
    return result.exit_code, cli.drawn, result.stderr


def test_alices_run_is_hers_alone_to_watch_and_stop(
    secured: Secured, admin_watcher: Watcher, tmp_path: Path
) -> None:
    alice, bob = secured.alice, secured.bob
    run_id = new_id()
    # Alice watches with the login the webhook announced to her, not FITWIRE_AMQP_URL's guest.
    alice_url = amqp_url_for(_session(secured, alice))
    assert alice_url == secured.session_url(alice) and alice_url.startswith(f"amqp://alice:{alice.token}@")
    events: list[Any] = []
    mine = WatchQueue(alice_url, [run_pattern("alice", alice.model, run_id)], name="alice-watch")
    mine.open()

    def seen(kind: str, epoch: int | None = None) -> bool:
        events.extend(mine.poll(0.1))
        return any(e.type == kind and (epoch is None or e.epoch == epoch) for e in events)

    gate = threading.Event()
    fit = _fit(secured, alice, tmp_path, epochs=5, delay=0.01, gate=gate, run_id=run_id)
    try:
        _wait("alice's first two epochs, live", lambda: seen("epoch_end", 1))
        # Her run now waits at the start of epoch 2 until Bob has tried everything.
        bob_url = amqp_url_for(_session(secured, bob))
        assert bob_url.startswith(f"amqp://bob:{bob.token}@")
        # Bob cannot watch Alice's batches: binding her keys is refused by the broker.
        with pytest.raises(BrokerAccessRefused, match="alice"):
            WatchQueue(bob_url, [run_pattern("alice", alice.model)], name="bob-peeks").open()
        # Bob cannot STOP her run: the broker refuses the publish to her key.
        with WatchQueue(bob_url, [run_pattern("bob", bob.model)], name="bob-stops") as queue:
            queue.open()
            with pytest.raises(BrokerAccessRefused, match="alice"):
                queue.publish(Signal(action="stop", model_key=alice.model, run_id=run_id), "alice")
        # Nor through the CLI: the webhook does not show him her run.
        code, _drawn, err = _cli(bob, secured, "stop", run_id, "--no-wait")
        assert code == 1 and "No run or model" in err
        # Bob cannot forge the end of her run under her key.
        key = progress_key("alice", alice.model, run_id)
        forged_epoch = encode(EpochEnd(run_id=run_id, model_key=alice.model, owner="alice", epoch=99))
        forged_end = encode(TrainEnd(run_id=run_id, model_key=alice.model, owner="alice", status="completed"))
        assert _refused_publish(bob_url, key, forged_epoch) == ACCESS_REFUSED
        assert _refused_publish(bob_url, key, forged_end) == ACCESS_REFUSED
        assert (_run(secured, alice, run_id) or {}).get("status") == "running"
        gate.set()
        _wait("alice's train_end, live", lambda: seen("train_end"))
        fit.join()
    finally:
        gate.set()
        mine.close()

    assert fit.epochs_done == [5]  # no STOP reached it
    assert any(e.type == "batch" for e in events) and {e.run_id for e in events} == {run_id}
    assert [e.epoch for e in events if e.type == "epoch_end"] == [0, 1, 2, 3, 4]
    assert [e.status for e in events if e.type == "train_end"] == ["completed"]
    assert (_run(secured, alice, run_id) or {})["status"] == "completed"
    # The admin's '#' watcher saw her run, and only what her Tracker sent (nothing forged got through).
    assert admin_watcher.wait_for(lambda w: bool(w.events(run_id, "train_end")))
    assert [e.status for e in admin_watcher.events(run_id, "train_end")] == ["completed"]
    assert [e.epoch for e in admin_watcher.events(run_id, "epoch_end")] == [0, 1, 2, 3, 4]


def test_bob_watches_and_stops_his_own_run_and_it_is_stored_stopped_by_him(
    secured: Secured, admin_watcher: Watcher, tmp_path: Path
) -> None:
    bob = secured.bob
    fit = _fit(secured, bob, tmp_path, epochs=200, delay=0.05)
    run_id = fit.run_id
    _wait("bob's run to be stored as running",
          lambda: bool(fit.error) or (_run(secured, bob, run_id) or {}).get("status") == "running")
    assert not fit.error, fit.error
    assert admin_watcher.wait_for(lambda w: bool(w.events(run_id, "batch") or w.events(run_id, "batches")), 60)

    # `fitwire stop` binds Bob's own watcher queue, sends the STOP with his user_id and waits for the end.
    code, drawn, err = _cli(bob, secured, "stop", run_id, "--timeout", "120")
    assert code == 0, drawn + err
    assert "acknowledged" in drawn and "stopped" in drawn

    fit.join()
    assert fit.epochs_done and fit.epochs_done[0] < 200
    stored = _run(secured, bob, run_id) or {}
    assert stored["status"] == "stopped" and stored["reason"] == "STOP signal from bob"
    assert admin_watcher.wait_for(lambda w: bool(w.events(run_id, "train_end")))
    assert [e.status for e in admin_watcher.events(run_id, "train_end")] == ["stopped"]


def test_a_user_checks_the_shared_exchanges_and_is_told_plainly_when_they_are_missing(secured: Secured) -> None:
    conn = secured.connect(secured.bob)
    try:
        use_topology(conn, LIVE)  # declared by the webhook's account: a passive check passes
        with pytest.raises(BrokerAccessRefused, match="declares it when it starts"):
            use_topology(conn, Topology(exchanges=(Exchange("fitwire.not-declared", "topic"),)))
    finally:
        conn.close()
