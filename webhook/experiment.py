"""A shaped model as an experiment to train offline: a zip of a standalone Keras script and what it needs.

``GET /api/v1/models/<key>/experiment`` (:mod:`fitwire.webhook.api.experiment`) answers the zip
:func:`write_experiment` writes. Inside, under one folder named after the model:

- ``train.py``: Keras only (``fitwire`` just for ``--track``); it builds the network from
  ``spec.json`` and the input pipeline and in-model preprocessing as ``fitwire.agent.spec_training``
  does, so a trained model from ``models/`` loads into it and predicts the same;
- ``spec.json``: the spec (loss and metrics filled as a training on fitwire fills them), the
  output size, and for a CSV model its columns with the types and delimiter fitwire found;
- ``requirements.txt`` pinned to the trainers' versions, a GPU ``Dockerfile``, a ``README.md``;
- ``models/<run_id>.keras`` and ``<run_id>.keras.json``: the model's trained models, if any.

The webhook does not import Keras, and may not import the agent (``tests/test_layers.py``): the
script is text (:mod:`fitwire.webhook.experiment_template`), and ``tests/webhook/test_experiment.py``
proves it equal to the agent's code by loading the agent's trained weights into it.
"""

from __future__ import annotations

import json
import re
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from fitwire import __version__
from fitwire.contract.datasets import CsvInfo
from fitwire.contract.entities import Model
from fitwire.contract.http import TrainBody
from fitwire.contract.spec_shapes import default_loss, default_metrics
from fitwire.webhook.experiment_template import DOCKERFILE, README, TRAIN_PY

TESTED_WITH: dict[str, str] = {"keras": "3.15.1", "tensorflow": "2.21.0", "numpy": "2.4.6", "pillow": "13.0.0"}
"""The versions this build was tested with: the pins when this machine has none of its own to read."""
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {"tensorflow": ("tensorflow", "tensorflow-cpu")}
"""The agent extra installs tensorflow-cpu; the GPU image needs tensorflow at the same version."""


def _installed(name: str) -> str:
    for distribution in DISTRIBUTIONS.get(name, (name,)):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return TESTED_WITH[name]


PINNED: dict[str, str] = {name: _installed(name) for name in TESTED_WITH}
"""What the trainers train with: a ``.keras`` file loads best in the Keras that saved it. Read from
this installation (``fitwire[all]`` has the agent's Keras and TensorFlow), else ``TESTED_WITH``."""
DOCKER_IMAGE = f"tensorflow/tensorflow:{PINNED['tensorflow']}-gpu"
"""TensorFlow with CUDA, at the pinned version; it trains on the CPU when no GPU is visible."""
DEFAULT_BATCH = int(TrainBody.model_fields["batch_size"].default)
"""``train.py``'s default batch size: a training on fitwire's."""
EXPERIMENT_VERSION = 1
"""``spec.json``'s ``version``: what ``train.py`` reads."""


class NotShaped(ValueError):
    """The model has no spec, or is dynamic: there is no input size or output size to train with."""


@dataclass(frozen=True)
class TrainedFiles:
    """One trained model's files in the artifact store: the ``.keras`` and its metadata (when stored)."""

    run_id: str
    model: Path
    metadata: Path | None = None


def slug(name: str) -> str:
    """A model name as a file name: ``Pets net (v2)`` → ``Pets-net-v2``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:64]


def folder_name(model: Model) -> str:
    """The zip's top folder (and file name, with ``.zip``): the model's name, else its key."""
    return f"{slug(model.name) or model.key}-experiment"


def experiment_spec(model: Model, csv_info: CsvInfo | None) -> dict[str, Any]:
    """What ``train.py`` reads from ``spec.json``.

    Raises:
        NotShaped: the model has no spec or is dynamic.
        ValueError: a CSV model without ``csv_info``, or naming a column it lacks.
    """
    design = model.design
    if design is None:
        raise NotShaped(f"Model {model.name!r} has no spec: only a model designed as JSON can be exported.")
    if design.dataset_id is None or design.output_units is None or design.spec.size is None:
        raise NotShaped(f"Model {model.name!r} is dynamic: shape it to a dataset first (`fitwire models shape`).")
    spec = design.spec
    document: dict[str, Any] = {
        "version": EXPERIMENT_VERSION, "model": {"key": model.key, "name": model.name},
        "modelname": slug(model.name) or model.key, "format": spec.format, "batch_size": DEFAULT_BATCH,
        "dataset": design.dataset_name, "output_units": design.output_units,
    }
    classes = True
    if spec.format == "csv":
        if csv_info is None:
            raise ValueError("a CSV model's experiment needs its dataset's column information")
        types = {c.name: c.type for c in csv_info.columns}
        missing = [name for name in [*design.inputs, *design.outputs] if name not in types]
        if missing:
            raise ValueError(f"dataset {design.dataset_name!r} has no column {missing[0]!r}")
        document.update(inputs=design.inputs, outputs=design.outputs, delimiter=csv_info.delimiter,
                        columns={name: types[name] for name in dict.fromkeys([*design.inputs, *design.outputs])})
        # As the webhook decides when it queues a training (designs._training): classes when every
        # output column is a label or 0/1.
        classes = all(types[name] in ("Label", "Binary") for name in design.outputs)
    # The script trains with what a training on fitwire would: its spec's loss and metrics, or the defaults.
    network = spec.model_copy(update={
        "loss": spec.loss or default_loss(spec, classes=classes, output_units=design.output_units),
        "metrics": spec.metrics or default_metrics(classes)})
    document["network"] = network.model_dump(mode="json")
    return document


def requirements() -> str:
    pins = "\n".join(f"{name}=={version}" for name, version in PINNED.items())
    return ("# The versions fitwire's trainers use: the models in models/ load and predict the same with them.\n"
            f"{pins}\n# Only for --track (streams the run to fitwire):\nfitwire=={__version__}\n")


def readme(model: Model, document: dict[str, Any], trained: Sequence[TrainedFiles]) -> str:
    folder = folder_name(model)
    image = re.sub(r"^[^a-z0-9]+", "", folder.lower())  # a Docker tag starts with a letter or digit
    dataset = document["dataset"] or "dataset"
    if document["format"] == "images":
        data, example = f"{dataset}.zip", " --zoom 0.2 --flip"
        about = ("an images zip (or the folder) holding training_data/<class>/ and validation_data/<class>/, "
                 "the classes of dataset {dataset!r}")
    else:
        data, example = f"{dataset}.csv", ""
        about = "a CSV table with the columns {columns} of dataset {dataset!r}"
    about = about.format(dataset=dataset, columns=", ".join(document.get("columns", ())))
    runs = "\n".join(f"- `models/{t.run_id}.keras`" + (f" and `{t.run_id}.keras.json`" if t.metadata else "")
                     for t in trained) or "- none yet (train the model on fitwire, or here)"
    first = trained[0].run_id if trained else "RUN_ID"
    return README.format(name=model.name, key=model.key, folder=folder, image=image, data=data, mounted=f"data/{data}",
                         dataset=dataset,
                         example=example, about=about, runs=runs, run=first, batch=DEFAULT_BATCH,
                         modelname=document["modelname"], docker_image=DOCKER_IMAGE)


def write_experiment(model: Model, trained: Sequence[TrainedFiles], csv_info: CsvInfo | None, path: Path) -> Path:
    """Write the experiment zip of ``model`` to ``path`` (which the caller removes if this raises).

    Args:
        trained: the model's trained models to put under ``models/``.
        csv_info: what fitwire found in the model's CSV dataset (column types, delimiter); None for images.

    Raises:
        NotShaped: the model has no spec or is dynamic.
    """
    document = experiment_spec(model, csv_info)
    top = folder_name(model)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        _text(zf, f"{top}/train.py", TRAIN_PY, executable=True)
        _text(zf, f"{top}/spec.json", json.dumps(document, indent=1, ensure_ascii=False) + "\n")
        _text(zf, f"{top}/requirements.txt", requirements())
        _text(zf, f"{top}/Dockerfile", DOCKERFILE.format(image=DOCKER_IMAGE))
        _text(zf, f"{top}/README.md", readme(model, document, trained))
        for files in trained:
            # A .keras file is a zip already: deflating it again costs time and saves nothing.
            zf.write(files.model, f"{top}/models/{files.run_id}.keras", compress_type=zipfile.ZIP_STORED)
            if files.metadata is not None:
                zf.write(files.metadata, f"{top}/models/{files.run_id}.keras.json")
    return path


def _text(zf: zipfile.ZipFile, name: str, text: str, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, so that the mode bits below mean what they say
    info.external_attr = (0o755 if executable else 0o644) << 16
    zf.writestr(info, text.encode("utf-8"))


__all__ = ["DEFAULT_BATCH", "DOCKER_IMAGE", "PINNED", "NotShaped", "TrainedFiles", "experiment_spec", "folder_name",
           "slug", "write_experiment"]
