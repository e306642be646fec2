"""`fitwire models`: create, list, rename and delete models (DL-Tracker's model keys)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from fitwire.cli import display
from fitwire.cli.common import (
    JsonOption,
    ServerOption,
    TokenOption,
    api,
    io,
    print_json,
    reports_errors,
)

app = typer.Typer(no_args_is_help=True, help="Create and manage models (model keys).")

ModelArg = Annotated[str, typer.Argument(help="Model key, or the model's name.", show_default=False)]


@app.command()
@reports_errors
def create(
    name: Annotated[str, typer.Argument(help="A name for people; the key is generated.")],
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a model; prints the key to give the Tracker."""
    model = api(server, token).create_model(name)
    if as_json:
        print_json(model)
        return
    out = io().out
    line = Text("Created model ")
    line.append(display.clean(repr(model.name)))
    line.append(" with key ")
    line.append(display.clean(model.key), style="bold")
    out.print(line, ".", sep="", highlight=False)
    out.print(f"Use it in fit: callbacks=[Tracker({model.key!r})]", markup=False, highlight=False)


@app.command("list")
@reports_errors
def list_(server: ServerOption = None, token: TokenOption = None, as_json: JsonOption = False) -> None:
    """Your models, with their number of runs."""
    models = api(server, token).models()
    if as_json:
        print_json({"models": models})
        return
    if not models:
        io().out.print("No models yet; create one with `fitwire models create NAME`.", markup=False)
        return
    table = Table("key", "name", "runs", "created", box=None, header_style="bold")
    for m in models:
        table.add_row(display.remote(m.key), display.remote(m.name), str(m.runs), display.fmt_time(m.created_at, 16))
    io().out.print(table)


@app.command()
@reports_errors
def rename(
    model: ModelArg,
    new_name: Annotated[str, typer.Argument(help="The new name.", show_default=False)],
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give a model a new name (its key stays)."""
    client = api(server, token)
    key = client.find_model(model).key
    renamed = client.rename_model(key, new_name)
    if as_json:
        print_json(renamed)
        return
    io().out.print(f"Model {key} is now named {display.clean(repr(renamed.name))}.", markup=False, highlight=False)


@app.command()
@reports_errors
def delete(
    model: ModelArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Delete a model with all its runs and epochs."""
    client = api(server, token)
    found = client.find_model(model)
    if not yes:
        typer.confirm(f"Delete model {found.name!r} ({found.key}) and its {found.runs} run(s)?", abort=True)
    client.delete_model(found.key)
    io().out.print(f"Deleted model {found.name!r} ({found.key}).", highlight=False)
