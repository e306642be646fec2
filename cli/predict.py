"""`fitwire predict MODEL`: one prediction of a trained model by an agent of a pool.

An images model takes ``--image FILE`` (any format Pillow reads; sent base64 in the JSON
body), a CSV model one ``--row column=value`` per input column. The answer is drawn as the
predicted class with a top-k table, or the output columns; ``--json`` prints the webhook's
answer as it is (``POST /api/v1/models/<key>/predict``).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fitwire.cli import display
from fitwire.cli.common import (
    Api,
    CliError,
    JsonOption,
    ServerOption,
    TokenOption,
    api,
    io,
    print_json,
    reports_errors,
    settings,
)

HTTP_SLACK_S = 30.0
"""Beyond the webhook's own wait for an agent: a cold model's download and load, and the round trip."""


def parse_row(pairs: list[str]) -> dict[str, str]:
    """``["age=31", "city=Oslo"]`` → ``{"age": "31", "city": "Oslo"}``; the webhook types the values."""
    row: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--row takes column=value, not {pair!r}.")
        row[name] = value
    return row


@reports_errors
def predict(
    model: Annotated[str, typer.Argument(help="Model key, or the model's name.", show_default=False)],
    image: Annotated[Path | None, typer.Option(help="Images models: the image file.", exists=True, dir_okay=False,
                                               readable=True, show_default=False)] = None,
    row: Annotated[list[str] | None, typer.Option(help="CSV models: an input column=value (repeat per column).",
                                                  show_default=False)] = None,
    run: Annotated[str | None, typer.Option(help="The trained model's run (default: the newest).",
                                            show_default=False)] = None,
    pool: Annotated[str, typer.Option(help="Pool of agents to predict.")] = "default",
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Predict with a trained model: an image's class, or a CSV row's outputs."""
    if (image is None) == (not row):
        raise CliError("Give either --image FILE (images models) or --row column=value … (CSV models).")
    found = api(server, token)
    # a prediction may wait for an agent up to the webhook's FITWIRE_PREDICT_TIMEOUT
    client = Api(found.server, found.token, timeout=settings().predict_timeout + HTTP_SLACK_S)
    key = client.find_model(model).key
    body: dict[str, Any] = {"run_id": run, "pool": pool}
    if image is not None:
        body["image"] = base64.b64encode(image.read_bytes()).decode()
    else:
        body["row"] = parse_row(row or [])
    answer = client.predict(key, body)
    if as_json:
        print_json(answer)
        return
    out = io().out
    if "class_name" in answer:
        out.print(f"{display.clean(answer['class_name'])} (class {answer['class_index']}, run {answer['run_id']})",
                  markup=False, highlight=False)
        table = Table("class", "probability")
        for entry in answer["top"]:
            table.add_row(display.clean(entry["class"]), f"{entry['probability']:.4f}")
        out.print(table)
        return
    table = Table("output", "value", "probability")
    probabilities = answer.get("probabilities", {})
    for name, value in answer["outputs"].items():
        p = probabilities.get(name)
        table.add_row(display.clean(name), display.clean(value if isinstance(value, str) else f"{value:.6g}"),
                      "" if p is None else f"{p:.4f}")
    out.print(table)
