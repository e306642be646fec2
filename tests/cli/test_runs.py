"""`fitwire runs list|show` over runs recorded in a live webhook."""

from __future__ import annotations

import json

from fitwire.cli.common import EXIT_ERROR
from tests.cli.conftest import Cli, User
from tests.cli.events import recorded_run


def test_list_shows_the_runs_of_one_model_or_all(cli: Cli, user: User) -> None:
    first, second = user.model("first"), user.model("second")
    run_a = recorded_run(user, first)
    run_b = recorded_run(user, second, end="stopped")

    result = cli("runs", "list", first)
    assert result.exit_code == 0, result.output
    assert run_a[:12] in cli.drawn and run_b[:12] not in cli.drawn
    assert "completed" in cli.drawn

    result = cli("runs", "list", "--json")
    assert result.exit_code == 0, result.output
    assert {r["run_id"] for r in json.loads(result.stdout)["runs"]} == {run_a, run_b}


def test_show_draws_params_epochs_and_curves(cli: Cli, user: User) -> None:
    run_id = recorded_run(user, user.model(), epochs=4)

    result = cli("runs", "show", run_id)

    assert result.exit_code == 0, result.output
    drawn = cli.drawn
    assert "training_001" in drawn and "completed" in drawn
    assert "optimizer" in drawn and "adam" in drawn  # params
    for epoch, loss in ((1, "1.0000"), (2, "0.5000"), (4, "0.2500")):  # the epochs table
        assert any(line.split()[:2] == [str(epoch), loss] for line in drawn.splitlines()), drawn
    assert "loss" in drawn and "val_accuracy" in drawn  # curve legends
    assert any("\u2800" < ch <= "\u28ff" for ch in drawn)  # braille dots of the curves


def test_show_json_is_the_state(cli: Cli, user: User) -> None:
    run_id = recorded_run(user, user.model(), epochs=2)

    result = cli("runs", "show", run_id, "--json")

    state = json.loads(result.stdout)
    assert state["run"]["run_id"] == run_id
    assert [e["epoch"] for e in state["epochs"]] == [0, 1]


def test_show_a_model_shows_its_latest_run(cli: Cli, user: User) -> None:
    key = user.model("latest")
    recorded_run(user, key)
    newest = recorded_run(user, key, epochs=1)

    result = cli("runs", "show", key, "--json")

    assert json.loads(result.stdout)["run"]["run_id"] == newest


def test_show_an_unknown_run_is_exit_1(cli: Cli, user: User) -> None:
    result = cli("runs", "show", "0" * 32)
    assert result.exit_code == EXIT_ERROR
    assert "No run or model" in result.stderr
