"""Model specs from the terminal: `fitwire models spec|validate|shape|clone|weights` and `fitwire train`.

A spec is a JSON file in WebML's shape (``fitwire.contract.specs.ModelSpec``); the webhook
validates it (every layer's output shape and parameter count) and these commands draw the
answer as a table. `fitwire train MODEL` queues the shaped model's training and watches it.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fitwire.cli import display
from fitwire.cli.common import (
    Api,
    ApiError,
    CliError,
    JsonOption,
    ServerOption,
    TokenOption,
    api,
    io,
    print_json,
    reports_errors,
)
from fitwire.contract.entities import Job, Model, dump

spec_app = typer.Typer(no_args_is_help=True, help="A model's network spec (JSON layers).")
weights_app = typer.Typer(no_args_is_help=True, help="A model's trained models (.keras).")

ModelArg = Annotated[str, typer.Argument(help="Model key, or the model's name.", show_default=False)]
SpecFile = Annotated[Path, typer.Argument(help="A JSON spec: format, size, layers, optimizer, loss, metrics.",
                                          exists=True, dir_okay=False, readable=True, show_default=False)]


def _read_spec(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CliError(f"{file} is not a JSON file ({exc})") from None


def _shape_text(shape: list[int | None]) -> str:
    return "(" + ", ".join("?" if n is None else str(n) for n in shape) + ")"


def _layers_table(rows: list[dict[str, Any]], spec: dict[str, Any]) -> None:
    table = Table("#", "layer", "output shape", "params", "settings", box=None, header_style="bold")
    for row, entry in zip(rows, spec.get("layers", []), strict=False):
        settings = ", ".join(f"{k}={v}" for k, v in (entry.get("layer") or {}).items() if v is not None)
        params = "?" if row["params"] is None else f"{row['params']:,}"
        table.add_row(str(row["index"]), row["type"], _shape_text(row["output_shape"]), params,
                      display.remote(settings))
    io().out.print(table)
    known = sum(r["params"] or 0 for r in rows)
    open_units = any(r["params"] is None for r in rows)
    io().out.print(f"{known:,}{' + ?' if open_units else ''} parameters", highlight=False)


@spec_app.command("set")
@reports_errors
def spec_set(model: ModelArg, file: SpecFile, server: ServerOption = None, token: TokenOption = None,
             as_json: JsonOption = False) -> None:
    """Give a model a spec, or replace its spec (a shaped model keeps its dataset and sizes)."""
    client = api(server, token)
    key = client.find_model(model).key
    changed = client.set_spec(key, _read_spec(file))
    if as_json:
        print_json(changed)
        return
    _describe(client, changed)


def _describe(client: Api, model: Model) -> None:
    design = model.design
    out = io().out
    if design is None:
        out.print(f"Model {display.clean(model.name)} has no spec: it is tracked from its owner's script.",
                  markup=False, highlight=False)
        return
    shaped = f", shaped to {design.dataset_name}" if design.dataset_name else ""
    out.print(f"Model {display.clean(model.name)} ({model.key}): {design.state}{shaped}", markup=False,
              highlight=False)
    if design.inputs:
        out.print(f"inputs: {', '.join(design.inputs)}; outputs: {', '.join(design.outputs)}", markup=False,
                  highlight=False)
    spec = dump(design.spec)  # as the API shows it: the layers table reads the JSON's settings
    if spec.get("size"):
        checked = client.validate_spec({"spec": spec, "output_units": design.output_units})
        _layers_table(checked["layers"], spec)
    if design.trained:
        out.print(f"{len(design.trained)} trained model(s); see `fitwire models weights list {model.key}`",
                  markup=False, highlight=False)


@spec_app.command("show")
@reports_errors
def spec_show(model: ModelArg, server: ServerOption = None, token: TokenOption = None,
              as_json: JsonOption = False) -> None:
    """A model's spec: state, dataset, and every layer with its output shape and parameters."""
    client = api(server, token)
    found = client.find_model(model)
    if as_json:
        print_json(found.design)
        return
    _describe(client, found)


@reports_errors
def validate(
    file: SpecFile,
    size: Annotated[str | None, typer.Option(help="Input size instead of the file's, e.g. 64,64,3.",
                                             show_default=False)] = None,
    output_units: Annotated[int | None, typer.Option(min=1, help="What a Dense with units null outputs.",
                                                     show_default=False)] = None,
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a spec: a table of its layers with output shapes and parameter counts, or the layer at fault."""
    spec = _read_spec(file)
    body: dict[str, Any] = {"spec": spec, "output_units": output_units}
    if size:
        try:
            body["input_shape"] = [int(n) for n in size.split(",")]
        except ValueError:
            raise CliError(f"--size {size!r} must be numbers separated by commas, e.g. 64,64,3") from None
    checked = api(server, token).validate_spec(body)
    if as_json:
        print_json(checked)
        return
    _layers_table(checked["layers"], spec)


@reports_errors
def shape(
    model: ModelArg,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="The dataset's name.", show_default=False)],
    inputs: Annotated[str, typer.Option(help="CSV: input columns, comma-separated.")] = "",
    outputs: Annotated[str, typer.Option(help="CSV: output columns, comma-separated.")] = "",
    as_new: Annotated[str | None, typer.Option("--as", help="Shape as a new model of this name.",
                                               show_default=False)] = None,
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Shape a model's spec to a dataset: its input size and output units come from the data."""
    client = api(server, token)
    key = client.find_model(model).key
    body = {"dataset": dataset, "inputs": [c for c in inputs.split(",") if c],
            "outputs": [c for c in outputs.split(",") if c], "name": as_new}
    shaped = client.shape(key, body)
    if as_json:
        print_json(shaped)
        return
    _describe(client, shaped)


@reports_errors
def clone(model: ModelArg, name: Annotated[str, typer.Argument(help="The new model's name.", show_default=False)],
          server: ServerOption = None, token: TokenOption = None, as_json: JsonOption = False) -> None:
    """A new model with the same layers and dataset, editable, without trained models."""
    client = api(server, token)
    key = client.find_model(model).key
    cloned = client.clone(key, name)
    if as_json:
        print_json(cloned)
        return
    io().out.print(f"Cloned into model {display.clean(cloned.name)} with key {cloned.key}.", markup=False,
                   highlight=False)


@reports_errors
def train(
    model: ModelArg,
    epochs: Annotated[int, typer.Option(min=1)] = 1,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    pool: Annotated[str, typer.Option(help="Pool of agents to run it.")] = "default",
    gpus: Annotated[int, typer.Option(min=0)] = 0,
    shear: Annotated[float, typer.Option(min=0, max=1, help="Images: random shear (0–1).")] = 0.0,
    zoom: Annotated[float, typer.Option(min=0, max=1, help="Images: random zoom (0–1).")] = 0.0,
    rotation: Annotated[float, typer.Option(min=0, max=180, help="Images: random rotation, degrees.")] = 0.0,
    flip: Annotated[bool, typer.Option("--flip", help="Images: random horizontal flips.")] = False,
    from_run: Annotated[str | None, typer.Option(help="Retrain from this run's trained model.",
                                                 show_default=False)] = None,
    watch: Annotated[bool, typer.Option(help="Watch the training once an agent starts it.")] = True,
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train a shaped model on the agents: queue its job, then watch it (Ctrl+C leaves; it keeps training)."""
    client = api(server, token)
    key = client.find_model(model).key
    augmentation = {"shear": shear, "zoom": zoom, "rotation": rotation, "horizontal_flip": flip}
    body = {"epochs": epochs, "batch_size": batch_size, "pool": pool, "gpus": gpus, "from_run": from_run,
            "augmentation": augmentation if any(augmentation.values()) else None}
    job = client.train(key, body)
    if as_json:
        print_json(job)
        return
    if job.state != "queued":
        raise CliError(f"Job {job.job_id} is {job.state}: {display.clean(job.reason or '')}")
    io().out.print(f"Queued job {job.job_id} on pool {job.pool} (run {job.run_id}).", markup=False,
                   highlight=False)
    if not watch:
        return
    from fitwire.cli.runs import watch as watch_run

    if _run_started(client, job):
        watch_run(job.run_id, once=True, server=server, token=token)
    job = _ended(client, job)
    io().out.print(f"Job {job.job_id} {job.state}{': ' + job.reason if job.reason else ''}.",
                   markup=False, highlight=False)
    if job.state != "succeeded":
        raise typer.Exit(1)


def _run_started(client: Api, job: Job) -> bool:
    """Wait until the job's run exists (an agent took the job and its fit began); False if the job ended first."""
    while True:
        try:
            client.run(job.run_id)
            return True
        except ApiError as exc:
            if exc.status != 404:
                raise
        if client.job(job.job_id).state not in ("queued", "running"):
            return False
        time.sleep(0.5)


def _ended(client: Api, job: Job, patience: float = 300.0) -> Job:
    """The job once it ended: after its run ends, the agent still stores the trained model and reports."""
    deadline = time.monotonic() + patience
    while True:
        job = client.job(job.job_id)
        if job.state not in ("queued", "running") or time.monotonic() > deadline:
            return job
        time.sleep(0.5)


@weights_app.command("list")
@reports_errors
def weights_list(model: ModelArg, server: ServerOption = None, token: TokenOption = None,
                 as_json: JsonOption = False) -> None:
    """A model's trained models, with their runs' final metrics."""
    client = api(server, token)
    key = client.find_model(model).key
    trained = client.trained(key)
    if as_json:
        print_json({"trained": trained})
        return
    if not trained:
        io().out.print("No trained models yet; train one with `fitwire train MODEL`.", markup=False)
        return
    table = Table("run", "created", "size", "metrics", box=None, header_style="bold")
    for t in trained:
        metrics = ", ".join(f"{k}={v:.4g}" if v is not None and math.isfinite(v) else f"{k}={display.fmt_value(v)}"
                            for k, v in t.metrics.items())
        table.add_row(t.run_id, display.fmt_time(t.created_at, 16), f"{t.size:,} B", display.remote(metrics))
    io().out.print(table)


@weights_app.command("download")
@reports_errors
def weights_download(model: ModelArg, run: Annotated[str, typer.Argument(help="The run id.", show_default=False)],
                     output: Annotated[Path | None, typer.Option("--output", "-o", show_default=False)] = None,
                     server: ServerOption = None, token: TokenOption = None) -> None:
    """Download a trained model (.keras)."""
    client = api(server, token)
    key = client.find_model(model).key
    target = output or Path(f"{key}-{run}.keras")
    client.download_to(client.trained_path(key, run), target, f"run {run}'s trained model")
    io().out.print(f"Wrote {target}.", markup=False, highlight=False)


@weights_app.command("delete")
@reports_errors
def weights_delete(model: ModelArg, run: Annotated[str, typer.Argument(help="The run id.", show_default=False)],
                   server: ServerOption = None, token: TokenOption = None) -> None:
    """Delete a trained model (the model is editable again after its last)."""
    client = api(server, token)
    key = client.find_model(model).key
    client.delete_trained(key, run)
    io().out.print(f"Deleted the trained model of run {run}.", markup=False, highlight=False)
