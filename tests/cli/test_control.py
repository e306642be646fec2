"""`fitwire stop` and `fitwire lr` on real Keras fits with the Tracker (subprocesses)."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.cli.conftest import Cli, Fit, User, run_state, wait_for


def running(user: User, fit: Fit) -> bool:
    """The fit is past its first epoch: its signal queue is bound, its run stored."""
    state = run_state(user, fit.run_id) or {}
    return state.get("run", {}).get("status") == "running" and bool(state.get("epochs"))


def test_stop_halts_a_running_fit_and_reports_the_halt_time(
    cli: Cli, user: User, start_fit: Callable[..., Fit]
) -> None:
    key = user.model("to-stop")
    fit = start_fit(key, epochs=200, steps=6, delay=0.05)
    wait_for(lambda: running(user, fit), what="the fit to run")

    result = cli("stop", fit.run_id, "--timeout", "60")

    assert result.exit_code == 0, result.output + fit.output()
    drawn = cli.drawn
    assert "Sent STOP to training_001" in drawn
    assert re.search(r"training_001 acknowledged after [\d.]+ s", drawn), drawn
    halted = re.search(r"training_001 stopped ([\d.]+) s after the STOP", drawn)
    assert halted, drawn
    assert float(halted.group(1)) < 30  # generous: one batch of a tiny model on a busy machine
    assert fit.wait(60) == 0
    stored = wait_for(lambda: (run_state(user, fit.run_id) or {}).get("run", {}).get("status") == "stopped",
                      what="the stored run to be stopped")
    assert stored
    assert len(run_state(user, fit.run_id)["epochs"]) < 200  # type: ignore[index]


def test_stop_a_model_without_waiting(cli: Cli, user: User, start_fit: Callable[..., Fit]) -> None:
    key = user.model("stop-all")
    fit = start_fit(key, epochs=200, steps=6, delay=0.05)
    wait_for(lambda: running(user, fit), what="the fit to run")

    result = cli("stop", key, "--no-wait")

    assert result.exit_code == 0, result.output
    assert "Sent STOP to training_001" in cli.drawn
    assert "acknowledged" not in cli.drawn
    assert fit.wait(60) == 0


def test_lr_changes_the_learning_rate_of_a_running_fit(
    cli: Cli, user: User, start_fit: Callable[..., Fit]
) -> None:
    key = user.model("lr")
    fit = start_fit(key, epochs=200, steps=6, delay=0.05)
    wait_for(lambda: running(user, fit), what="the fit to run")

    result = cli("lr", fit.run_id, "0.0005")

    assert result.exit_code == 0, result.output + fit.output()
    assert re.search(r"training_001 acknowledged after [\d.]+ s.*0\.0005", cli.drawn), cli.drawn
    assert cli("stop", fit.run_id).exit_code == 0
    assert fit.wait(60) == 0


def test_stop_a_model_with_no_running_run_is_exit_1(cli: Cli, user: User, broker: str) -> None:
    result = cli("stop", user.model("idle"))
    assert result.exit_code == 1
    assert "has no running run" in result.stderr


def test_lr_out_of_bounds_is_refused_before_anything_is_sent(cli: Cli, user: User) -> None:
    key = user.model("bounded")
    for value in ("1e6", "0", "nan"):
        result = cli("lr", key, value)
        assert result.exit_code == 2, result.output
        said = " ".join(result.output.replace("│", " ").split())  # the error panel wraps lines
        assert "a finite learning rate above 0 and at most 10" in said, result.output
