"""`fitwire runs list|show`, and the top-level `watch` (registered in ``cli/main.py``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from fitwire.cli import display, plot
from fitwire.cli.common import (
    CliError,
    JsonOption,
    ServerOption,
    TokenOption,
    amqp_url_for,
    api,
    io,
    print_json,
    reports_errors,
)
from fitwire.cli.watch import Watcher
from fitwire.contract.entities import Epoch, Model, Run

app = typer.Typer(no_args_is_help=True, help="List and inspect runs (trainings).")


@app.command("list")
@reports_errors
def list_(
    model: Annotated[str | None, typer.Argument(help="Model key or name; all your models when left out.")] = None,
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Runs, newest first."""
    client = api(server, token)
    models = [client.find_model(model)] if model else client.models()
    runs = [run for m in models for run in client.runs(m.key)]
    if as_json:
        print_json({"runs": runs})
        return
    if not runs:
        io().out.print("No runs yet.")
        return
    runs.sort(key=lambda r: r.started_at, reverse=True)
    names = None if model else {m.key: m.name for m in models}
    table = display.runs_table(runs, client.epochs_of([r.run_id for r in runs]), model_names=names)
    io().out.print(table)


@app.command()
@reports_errors
def show(
    run: Annotated[str, typer.Argument(help="Run id; or a model key/name for its latest run.")],
    width: Annotated[int, typer.Option(min=20, max=400, help="Width of the curves, in characters.")] = 60,
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """A run's parameters, its epochs table, and loss/accuracy curves (--width characters wide)."""
    client = api(server, token)
    found, model = client.find_run_or_model(run)
    if found is None:
        runs = client.runs(model.key)
        if not runs:
            raise CliError(f"Model {model.name} ({model.key}) has no runs yet")
        found = runs[0]
    state = client.run_state(found.run_id)
    if as_json:
        print_json(state)
        return
    run_, epochs = state.run, state.epochs
    partial = display.partial_epoch(run_, epochs)
    io().out.print(_summary(run_, model, epochs, partial), _params(run_), *_epochs(epochs, partial, width))


def _summary(run: Run, model: Model, epochs: list[Epoch], partial: int | None) -> Group:
    head = Text(display.run_label(run, run.run_id), style="bold")
    head.append(display.clean(f"  {run.run_id}  model {model.name} ({model.key})  "), style="dim")
    head.append_text(display.status_text(run.status))
    if run.reason:
        head.append(f" ({display.clean(run.reason)})", style="dim")
    where = " ".join(x for x in (run.framework, run.framework_version) if x)
    done = display.epochs_text(display.epochs_done(epochs), run.epochs)
    cut = ", the last one partial" if partial is not None else ""
    lines = [head]
    facts = [
        f"started {display.fmt_time(run.started_at)}",
        f"took {display.fmt_duration(display.run_duration(run))}",
        f"on {run.host or '—'}",
        where,
        f"epochs {done} × {run.steps or '?'} steps{cut}",
    ]
    lines.append(display.remote("  ".join(f for f in facts if f), style="dim"))
    return Group(*lines)


def _params(run: Run) -> Table | Text:
    params = run.params
    if not params:
        return Text("no parameters recorded", style="dim")
    table = Table("parameter", "value", box=None, header_style="bold", title="Parameters", title_justify="left")
    for key in sorted(params):
        table.add_row(display.remote(key), display.remote(params[key]))
    return table


def _epochs(epochs: list[Epoch], partial: int | None, width: int) -> list[Any]:
    if not epochs:
        return [Text("no epochs recorded yet", style="dim")]
    epochs = sorted(epochs, key=lambda e: e.epoch)
    logs = [e.logs for e in epochs]
    names = display.metric_names({k: None for entry in logs for k in entry})
    table = Table(box=None, header_style="bold", title="Epochs", title_justify="left")
    for header in ("epoch", *(display.remote(n) for n in names), "took", "ended", ""):  # metric names are remote
        table.add_column(header)
    for epoch, entry in zip(epochs, logs, strict=True):
        number = epoch.epoch
        table.add_row(str(number + 1), *(display.fmt_value(entry.get(n)) for n in names),
                      display.fmt_duration(epoch.duration),
                      display.remote(display.fmt_time(epoch.ended_at)[11:19]),
                      Text("partial: stopped mid-epoch", style="yellow") if number == partial else "")
    numeric = [{k: display.number(v) for k, v in entry.items()} for entry in logs]
    charts = [plot.chart(series, title=name, width=width, first_x=epochs[0].epoch + 1)
              for name, series in plot.metric_groups(numeric).items()]
    return [table, *charts]


@reports_errors
def watch(
    model_or_run: Annotated[str, typer.Argument(help="A model key/name, or a run id.")],
    once: Annotated[bool, typer.Option("--once", help="Leave when the watched run(s) end.")] = False,
    stop_on_exit: Annotated[
        bool, typer.Option("--stop-on-exit", help="Ctrl+C also stops the training, without asking.")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(min=1, help="Leave after this many seconds (exit 1).", show_default=False)
    ] = None,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Watch a model's runs (or one run) live: progress bar per epoch, a line per epoch, final status.

    Shows the model's previous runs first; joining mid-run draws the stored epochs at once.
    When the run ends it waits for the next run of the model, unless --once.
    Ctrl+C asks whether to stop the training too (--stop-on-exit: stop without asking).
    """
    client = api(server, token)
    run, model = client.find_run_or_model(model_or_run)
    session = client.session()
    watcher = Watcher(
        client, io().out, owner=session.user.username, model=model,
        amqp_url=amqp_url_for(session), run=run, once=once, stop_on_exit=stop_on_exit, timeout=timeout,
    )
    code = watcher.run()
    if code:
        raise typer.Exit(code)
