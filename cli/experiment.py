"""`fitwire models export`: a shaped model as an experiment zip, to train it offline with Keras.

The webhook writes the zip (``GET /api/v1/models/<key>/experiment``): ``train.py``,
``spec.json``, a pinned ``requirements.txt``, a GPU ``Dockerfile``, a ``README.md`` with the
commands, and the model's trained models under ``models/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from fitwire.cli.common import ServerOption, TokenOption, api, io, reports_errors

ModelArg = Annotated[str, typer.Argument(help="Model key, or the model's name.", show_default=False)]
OutputOption = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Where to write the zip (default: NAME-experiment.zip here).", show_default=False)]


def default_output(name: str, key: str) -> Path:
    """``NAME-experiment.zip``, the name made file-safe as the webhook names the zip's folder."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:64] or key
    return Path(f"{safe}-experiment.zip")


@reports_errors
def export(model: ModelArg, output: OutputOption = None, server: ServerOption = None,
           token: TokenOption = None) -> None:
    """Download a zip to train a shaped model offline: train.py (Keras), its spec, pinned requirements,
    a GPU Dockerfile, a README and the model's trained models. Written whole or not at all."""
    client = api(server, token)
    found = client.find_model(model)
    target = output or default_output(found.name, found.key)
    client.download_to(client.experiment_path(found.key), target, f"the experiment of {found.name or found.key}")
    io().out.print(f"Wrote {target}: unzip it and read its README.md (python train.py -d DATASET).",
                   markup=False, highlight=False)


__all__ = ["export"]
