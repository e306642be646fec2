"""`fitwire watch` on real Keras fits with the Tracker (subprocesses), drawn on an injected console."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator

import pytest

from fitwire.broker.connection import login_name
from fitwire.cli.wire import WatchQueue, run_pattern
from fitwire.contract import Signal
from tests.cli.conftest import Cli, Fit, User, run_state, wait_for
from tests.cli.events import recorded_run
from tests.cli.proxy import DroppingProxy


def epochs_drawn(drawn: str) -> list[int]:
    """The epoch numbers of the summary lines, in the order they were drawn."""
    return [int(n) for n in re.findall(r"✓ \S+ epoch (\d+)/", drawn)]


def test_watch_a_model_draws_every_epoch_and_the_final_status(
    cli: Cli, user: User, start_fit: Callable[..., Fit]
) -> None:
    key = user.model("watched")
    earlier = recorded_run(user, key, epochs=2)
    fit = start_fit(key, epochs=3, steps=6)

    result = cli("watch", key, "--once", "--timeout", "150")

    assert result.exit_code == 0, result.output + fit.output()
    drawn = cli.drawn
    assert earlier[:12] in drawn  # the model's previous runs come first
    assert epochs_drawn(drawn) == [1, 2, 3]
    assert re.search(r"training_002 completed after 3/3 epochs in [\d.]+ s", drawn), drawn
    assert fit.wait() == 0


def test_joining_mid_run_shows_the_stored_epochs_at_once(
    cli: Cli, user: User, start_fit: Callable[..., Fit]
) -> None:
    key = user.model("joined")
    fit = start_fit(key, epochs=5, steps=6, delay=0.12)
    wait_for(lambda: len((run_state(user, fit.run_id) or {}).get("epochs", [])) >= 2, what="two stored epochs")

    result = cli("watch", fit.run_id, "--once", "--timeout", "150")

    assert result.exit_code == 0, result.output + fit.output()
    assert epochs_drawn(cli.drawn) == [1, 2, 3, 4, 5]
    assert "completed after 5/5 epochs" in cli.drawn
    assert fit.wait() == 0


def test_watching_an_ended_run_shows_it_and_leaves(cli: Cli, user: User, broker: str) -> None:
    run_id = recorded_run(user, user.model(), epochs=2, end="stopped")

    result = cli("watch", run_id, "--once", "--timeout", "30")

    assert result.exit_code == 0, result.output
    assert epochs_drawn(cli.drawn) == [1]  # the STOP cut the last epoch short: not a ✓
    assert "◐ training_001 epoch 2/2 partial (stopped mid-epoch)" in cli.drawn
    assert "stopped after 2/2 epochs, the last one partial" in cli.drawn


@pytest.fixture
def proxy(broker: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[DroppingProxy]:
    """The CLI's broker connection goes through a proxy the test can cut; the fit's does not."""
    proxied = DroppingProxy(broker)
    monkeypatch.setenv("FITWIRE_AMQP_URL", proxied.url)
    yield proxied
    proxied.close()


def test_watch_reconnects_when_the_broker_drops_and_catches_up(
    cli: Cli, user: User, start_fit: Callable[..., Fit], proxy: DroppingProxy
) -> None:
    key = user.model("dropped")
    fit = start_fit(key, epochs=6, steps=6, delay=0.15)  # room for the drop before the run ends
    cut = threading.Event()

    def drop_after_first_epoch() -> None:
        wait_for(lambda: (run_state(user, fit.run_id) or {}).get("epochs"), what="a stored epoch")
        if proxy.drop():
            cut.set()

    threading.Thread(target=drop_after_first_epoch, daemon=True).start()
    result = cli("watch", key, "--once", "--timeout", "150")

    assert cut.is_set()
    assert result.exit_code == 0, result.output + cli.drawn + fit.output()
    drawn = cli.drawn
    assert "Lost the broker connection; reconnecting" in drawn
    assert "Reconnected after" in drawn
    assert sorted(epochs_drawn(drawn)) == [1, 2, 3, 4, 5, 6]  # caught up, no epoch twice
    assert "completed after 6/6 epochs" in drawn


def interrupt_after_first_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl+C right after the first epoch line is drawn (CliRunner has no terminal to press it in)."""
    from fitwire.cli import watch

    original = watch.Watcher._epoch_done

    def epoch_done(self: watch.Watcher, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        if any(not v.ended for v in self.views.values()):
            raise KeyboardInterrupt

    monkeypatch.setattr(watch.Watcher, "_epoch_done", epoch_done)


def test_ctrl_c_with_stop_on_exit_stops_the_training(
    cli: Cli, user: User, start_fit: Callable[..., Fit], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = user.model("ctrl-c")
    fit = start_fit(key, epochs=200, steps=6, delay=0.05)
    wait_for(lambda: run_state(user, fit.run_id), what="the run to be stored")
    interrupt_after_first_epoch(monkeypatch)

    result = cli("watch", fit.run_id, "--stop-on-exit")

    assert result.exit_code == 130, result.output
    assert "Sent STOP to training_001" in cli.drawn
    assert fit.wait(60) == 0
    wait_for(lambda: (run_state(user, fit.run_id) or {}).get("run", {}).get("status") == "stopped",
             what="the run to be stopped")


def test_ctrl_c_without_a_terminal_leaves_the_training_running(
    cli: Cli, user: User, start_fit: Callable[..., Fit], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = user.model("ctrl-c-keep")
    fit = start_fit(key, epochs=200, steps=6, delay=0.05)
    wait_for(lambda: run_state(user, fit.run_id), what="the run to be stored")
    interrupt_after_first_epoch(monkeypatch)

    result = cli("watch", fit.run_id)  # nobody to answer "stop the training too?": no

    assert result.exit_code == 130, result.output
    assert "Sent STOP" not in cli.drawn
    assert fit.process.poll() is None
    assert cli("stop", fit.run_id).exit_code == 0


def test_ctrl_c_asks_whether_to_stop_the_training_too(
    cli: Cli, user: User, start_fit: Callable[..., Fit], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fitwire.cli import watch

    key = user.model("ctrl-c-ask")
    fit = start_fit(key, epochs=200, steps=6, delay=0.05)
    wait_for(lambda: run_state(user, fit.run_id), what="the run to be stored")
    interrupt_after_first_epoch(monkeypatch)
    monkeypatch.setattr(watch, "_interactive", lambda: True)

    result = cli("watch", key, input="y\n")

    assert result.exit_code == 130, result.output
    assert "Stop the training too? [y/N]" in result.output
    assert "Sent STOP to training_001" in cli.drawn
    assert fit.wait(60) == 0


def test_a_run_that_went_silent_is_reported_and_once_leaves(
    cli: Cli, user: User, broker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fitwire.cli import watch

    monkeypatch.setattr(watch, "STALE_S", 1.0)  # a minute in real life
    orphan = recorded_run(user, user.model("orphan"), epochs=1, end=None)  # "running", but nobody trains it

    result = cli("watch", orphan, "--once", "--timeout", "30")

    assert result.exit_code == 1, result.output
    assert "has sent nothing for 1 s; its process may be gone" in cli.drawn
    assert "went silent" in result.stderr
    assert epochs_drawn(cli.drawn) == [1]


def test_watch_timeout_is_exit_1_with_a_sentence(cli: Cli, user: User, broker: str) -> None:
    result = cli("watch", user.model("quiet"), "--timeout", "1")

    assert result.exit_code == 1, result.output
    assert "Waiting for the next run of model quiet" in cli.drawn
    assert result.stderr.strip() == "Stopped watching: --timeout reached before the run(s) ended."


HOSTILE = "\x1b[2J[red]x[/red]"
"""Clears the screen if printed raw; turns red if read as rich markup."""


def test_a_stop_mid_run_is_a_partial_epoch_and_remote_text_prints_inert(
    cli: Cli, user: User, start_fit: Callable[..., Fit], broker: str
) -> None:
    key = user.model("[bold]net[/bold]")
    fit = start_fit(key, epochs=15, steps=6, delay=0.1)

    def stop_after_two_epochs() -> None:
        wait_for(lambda: len((run_state(user, fit.run_id) or {}).get("epochs", [])) >= 2, what="two epochs")
        with WatchQueue(broker, [run_pattern(user.name, key, fit.run_id)], name="test-stop") as queue:
            queue.open()
            # The body's sender is a claim: what the run records is the login RabbitMQ validated.
            queue.publish(Signal(action="stop", model_key=key, run_id=fit.run_id, sender=HOSTILE), user.name)

    threading.Thread(target=stop_after_two_epochs, daemon=True).start()
    result = cli("watch", key, "--once", "--timeout", "150")

    assert result.exit_code == 0, result.output + fit.output()
    assert fit.wait(60) == 0
    drawn = cli.drawn
    partial = re.search(r"◐ training_001 epoch (\d+)/15 partial \(stopped mid-epoch\)", drawn)
    assert partial, drawn
    done = int(partial.group(1))
    assert epochs_drawn(drawn) == list(range(1, done))
    assert f"training_001 stopped after {done}/15 epochs, the last one partial" in drawn
    assert f"(STOP signal from {login_name(broker)})" in drawn and "[red]x" not in drawn
    assert "Model [bold]net[/bold]" in drawn
    assert "\x1b" not in drawn + result.output

    # `runs list` and `runs show` tell the same story from what the webhook stored.
    assert cli("runs", "list").exit_code == 0
    row = next(line for line in cli.drawn.splitlines() if fit.run_id[:12] in line)
    assert "[bold]net[/bold]" in row and "stopped" in row and f"{done}/15 (last partial)" in row, row
    assert cli("runs", "show", fit.run_id).exit_code == 0
    shown = cli.drawn
    assert f"epochs {done}/15 × 6 steps, the last one partial" in shown
    assert f"STOP signal from {login_name(broker)}" in shown and "\x1b" not in shown
    rows = [line.split() for line in shown.splitlines()]
    assert [r[-3:] for r in rows if r[:1] == [str(done)]] == [["partial:", "stopped", "mid-epoch"]]
