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
    assert "took" in drawn and "12.5 s" in drawn and "15.5 s" in drawn  # each epoch's duration
    assert "loss" in drawn and "val_accuracy" in drawn  # curve legends
    assert any("\u2800" < ch <= "\u28ff" for ch in drawn)  # braille dots of the curves


def test_show_json_is_the_state(cli: Cli, user: User) -> None:
    run_id = recorded_run(user, user.model(), epochs=2)

    result = cli("runs", "show", run_id, "--json")

    state = json.loads(result.stdout)
    assert state["run"]["run_id"] == run_id
    assert [(e["epoch"], e["duration"]) for e in state["epochs"]] == [(0, 12.5), (1, 13.5)]


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


def test_list_shows_epochs_done_of_planned_and_a_partial_last_epoch(cli: Cli, user: User) -> None:
    key = user.model()
    stopped = recorded_run(user, key, epochs=6, planned=15, end="stopped", reason="STOP signal from ada")
    early = recorded_run(user, key, epochs=4, planned=10, reason="stop_training set by a callback")
    running = recorded_run(user, key, epochs=2, planned=10, end=None)

    assert cli("runs", "list", key).exit_code == 0

    rows = {run_id: line for line in cli.drawn.splitlines() for run_id in (stopped, early, running)
            if run_id[:12] in line}
    assert "6/15 (last partial)" in rows[stopped], rows
    assert "4/10" in rows[early] and "partial" not in rows[early], rows
    assert "2/10" in rows[running] and "partial" not in rows[running], rows


def test_show_marks_the_epoch_a_stop_cut_short(cli: Cli, user: User) -> None:
    run_id = recorded_run(user, user.model(), epochs=6, planned=15, end="stopped")

    assert cli("runs", "show", run_id).exit_code == 0

    assert "epochs 6/15 × 10 steps, the last one partial" in cli.drawn
    rows = [line.split() for line in cli.drawn.splitlines()]
    marked = [row[0] for row in rows if row[-3:] == ["partial:", "stopped", "mid-epoch"]]
    assert marked == ["6"], cli.drawn


def test_show_draws_the_curves_as_wide_as_asked(cli: Cli, user: User) -> None:
    run_id = recorded_run(user, user.model(), epochs=4)
    widths = {}

    for width in ("30", "90"):
        assert cli("runs", "show", run_id, "--width", width).exit_code == 0
        widths[width] = {line.count("─") for line in cli.drawn.splitlines() if "└" in line}

    assert widths == {"30": {30}, "90": {90}}


def test_remote_text_is_printed_inert(cli: Cli, user: User) -> None:
    hostile = "\x1b[2J[red]x[/red]\u202e"
    key = user.model("[bold]net[/bold]")
    run_id = recorded_run(user, key, epochs=1, end="failed", reason=f"ValueError: {hostile}")

    assert cli("runs", "list").exit_code == 0
    listed = cli.drawn
    assert cli("runs", "show", run_id).exit_code == 0
    shown = cli.drawn
    missing = cli("runs", "show", "\x1b[2J")

    assert "[bold]net[/bold]" in listed
    assert r"ValueError: \x1b[2J[red]x[/red]\u202e" in shown
    assert missing.exit_code == EXIT_ERROR and r"No run or model '\x1b[2J'" in missing.stderr
    for text in (listed, shown, missing.stderr):
        assert "\x1b" not in text and "\u202e" not in text
