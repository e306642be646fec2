"""`fitwire datasets`: upload CSV tables and image zips, list, inspect, download, publish, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fitwire.cli import display
from fitwire.cli.common import (
    CliError,
    JsonOption,
    ServerOption,
    TokenOption,
    api,
    io,
    print_json,
    reports_errors,
    transfer_progress,
)
from fitwire.contract.datasets import CsvInfo
from fitwire.contract.entities import Dataset, dump

app = typer.Typer(no_args_is_help=True, help="Upload and manage datasets (CSV tables, image zips).")

DatasetArg = Annotated[str, typer.Argument(help="The dataset's name (yours or a public one), or its id.",
                                           show_default=False)]
FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".zip": "images"}


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


@app.command()
@reports_errors
def upload(
    file: Annotated[Path, typer.Argument(help="A .csv table (first row the header) or a .zip of images "
                                              "(training_data/<class>/…, validation_data/<class>/…).",
                                         exists=True, dir_okay=False, readable=True, show_default=False)],
    name: Annotated[str, typer.Option("--name", "-n", help="The dataset's name (default: the file's name).",
                                      show_default=False)] = "",
    fmt: Annotated[str, typer.Option("--format", help="csv or images (default: from the file's extension).",
                                     show_default=False)] = "",
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Upload a dataset; the server inspects it on arrival and refuses a bad one, saying where it is wrong."""
    chosen = fmt or FORMATS.get(file.suffix.lower(), "")
    if chosen not in ("csv", "images"):
        raise CliError(f"Cannot tell the format of {file.name}; give --format csv or --format images")
    client, size = api(server, token), file.stat().st_size
    with transfer_progress() as bars, file.open("rb") as stream:
        task = bars.add_task(f"uploading {file.name}", total=size)
        dataset = client.upload_dataset(name or file.stem, chosen, stream, size,
                                        on_progress=lambda sent: bars.update(task, completed=sent))
    if as_json:
        print_json(dataset)
        return
    io().out.print(f"Uploaded {display.clean(repr(dataset.name))} ({dataset.format}, {_size(dataset.size)}),"
                   f" id {dataset.dataset_id}.", markup=False, highlight=False)
    _describe(dataset)


@app.command("list")
@reports_errors
def list_(
    every: Annotated[bool, typer.Option("--all", help="Every user's datasets (admins).")] = False,
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Your datasets and the public ones."""
    datasets = api(server, token).datasets(every)
    if as_json:
        print_json({"datasets": datasets})
        return
    if not datasets:
        io().out.print("No datasets yet; upload one with `fitwire datasets upload FILE`.", markup=False)
        return
    table = Table("name", "format", "size", "contents", "owner", "public", "created", box=None, header_style="bold")
    for d in datasets:
        table.add_row(display.remote(d.name), d.format, _size(d.size), _contents(d),
                      display.remote(d.owner), "yes" if d.public else "", display.fmt_time(d.created_at, 16))
    io().out.print(table)


def _contents(dataset: Dataset) -> str:
    info = dataset.info
    if isinstance(info, CsvInfo):
        return f"{info.rows} rows × {len(info.columns)} columns"
    return f"{info.images} images, {len(info.classes)} classes"


def _describe(dataset: Dataset) -> None:
    out, info = io().out, dataset.info
    out.print(_contents(dataset), markup=False, highlight=False)
    if isinstance(info, CsvInfo):
        table = Table("column", "type", "unique", "one-hot", "", box=None, header_style="bold")
        for c in info.columns:
            unique = f"≥{c.unique}" if c.unique_capped else str(c.unique)
            table.add_row(display.remote(c.name), c.type, unique, str(c.one_hot_width or ""),
                          "blocked: too many labels" if c.blocked else "")
    else:
        sizes = ", ".join(f"{w}×{h}" for w, h in info.sizes[:5])
        out.print(f"image sizes: {sizes}; channels: {', '.join(map(str, info.channels))}", markup=False,
                  highlight=False)
        table = Table("class", "training", "validation", "sample", box=None, header_style="bold")
        for k in info.classes:
            table.add_row(display.remote(k.name), str(k.training), str(k.validation), display.remote(k.sample))
    out.print(table)


@app.command()
@reports_errors
def show(
    dataset: DatasetArg,
    rows: Annotated[int, typer.Option("--rows", help="Also print this many rows of a CSV table.", min=0,
                                      max=500)] = 0,
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """A dataset's columns (CSV: type, distinct values, one-hot width, blocked) or classes (images)."""
    client = api(server, token)
    found = client.find_dataset(dataset)
    page = None
    if rows and found.format == "csv":
        page = client.dataset_rows(found.dataset_id, rows)
    if as_json:
        print_json({**dump(found), "preview": page} if page else found)
        return
    io().out.print(f"{display.clean(found.name)} ({found.format}, {_size(found.size)}) by "
                   f"{display.clean(found.owner)}{', public' if found.public else ''}; sha256 {found.sha256}",
                   markup=False, highlight=False)
    _describe(found)
    if page:
        table = Table(box=None, header_style="bold")
        for heading in page["header"]:
            table.add_column(display.remote(heading))
        for row in page["rows"]:
            table.add_row(*[display.remote(v) for v in row])
        io().out.print(table)


@app.command()
@reports_errors
def download(
    dataset: DatasetArg,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write it (default: NAME.csv or "
                                                                      "NAME.zip here).", show_default=False)] = None,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Download the original file; written whole or not at all."""
    client = api(server, token)
    found = client.find_dataset(dataset)
    target = output or Path(found.name + (".csv" if found.format == "csv" else ".zip"))
    client.download_to(client.dataset_path(found.dataset_id), target, found.name)
    io().out.print(f"Wrote {target} ({_size(found.size)}).", markup=False, highlight=False)


@app.command()
@reports_errors
def delete(
    dataset: DatasetArg,
    force: Annotated[bool, typer.Option("--force", help="Even when a queued or running job uses it.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Delete a dataset (refused while a queued or running job uses it, unless --force)."""
    client = api(server, token)
    found = client.find_dataset(dataset)
    if not yes:
        typer.confirm(f"Delete dataset {found.name!r} ({found.dataset_id})?", abort=True)
    client.delete_dataset(found.dataset_id, force=force)
    io().out.print(f"Deleted dataset {found.name!r}.", markup=False, highlight=False)


@app.command()
@reports_errors
def publish(
    dataset: DatasetArg,
    private: Annotated[bool, typer.Option("--private", help="Make it private again.")] = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Make a dataset public, for every user to see and train on (admins)."""
    client = api(server, token)
    found = client.find_dataset(dataset)
    changed = client.publish_dataset(found.dataset_id, not private)
    state = "public" if changed.public else "private"
    io().out.print(f"Dataset {changed.name!r} is {state}.", markup=False, highlight=False)
