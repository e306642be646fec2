"""The files of an experiment zip that do not depend on the model: ``train.py``, the Dockerfile, the README.

``train.py`` is text here, not a module: it runs on the user's machine with Keras, which the
webhook neither has nor may import, and it reads everything model-specific from the
``spec.json`` next to it. Users read it, so it stays plain (argparse, one function per step)
and mirrors ``fitwire.agent.spec_training`` step for step; ``tests/webhook/test_experiment.py``
runs it and proves that the agent's trained weights predict the same in it.
"""

from __future__ import annotations

DOCKERFILE = """\
# Trains on a GPU (TensorFlow with CUDA; on the CPU when no GPU is visible).
FROM {image}

# Newer images' pip refuses to install next to the system's packages without this; older ones ignore it.
ENV PIP_BREAK_SYSTEM_PACKAGES=1
WORKDIR /experiment
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
ENTRYPOINT ["python", "train.py"]
"""
"""``{image}``: the pinned GPU image."""

README = """\
# {name}: an experiment to train offline

The fitwire model `{name}` (key `{key}`) as a standalone Keras script: train it on your own
machine or GPU, start from a model trained on fitwire, and watch the run on fitwire with `--track`.

| file | |
| --- | --- |
| `train.py` | builds the network of `spec.json`, reads the dataset as fitwire does, trains, saves `models/NAME.keras` |
| `spec.json` | the layers, optimizer, loss and metrics, and what the model is shaped to |
| `requirements.txt` | Keras, TensorFlow, NumPy and Pillow at the versions fitwire trains with; `fitwire` for `--track` |
| `Dockerfile` | the same on a GPU image (`{docker_image}`) |
| `models/` | the model's trained models from fitwire (each with a `.keras.json` naming what its outputs mean) |

{runs}

The dataset (`-d`) is {about}; `fitwire datasets download {dataset}` fetches fitwire's copy.

## In a virtual environment

```sh
cd {folder}
python -m venv .venv && . .venv/bin/activate
pip install -r requirements.txt
python train.py -d {data} -e 10{example}
python train.py -d {data} -e 5 -w models/{run}.keras              # continue from a trained model
fitwire login                                                    # once, to track runs
python train.py -d {data} -e 10 --track {key}    # the run streams to fitwire
```

`-b/--batch` (default {batch}), `-e/--epochs` (0 saves the model as `-w` gave it),
`-w/--weights FILE`, `--modelname NAME` (default `{modelname}`: writes `models/{modelname}.keras`
and `models/{modelname}.keras.json`); for images, augmentation while training: `--shear 0-1`,
`--zoom 0-1`, `--rotation 0-180` (degrees), `--flip`. `python train.py --help` lists them.

The saved model takes the same raw input as fitwire's (images resized to the input size, pixels
0-255; or one value per CSV input column, text for labels), so it predicts on fitwire and a
fitwire-trained model predicts here alike.

## With Docker, on a GPU

```sh
cd {folder}
docker build -t {image} .
docker run --rm --gpus all -v "$PWD:/experiment" {image} -d {mounted} -e 10
docker run --rm --gpus all -v "$PWD:/experiment" -v "$HOME/.config/fitwire:/root/.config/fitwire:ro" \\
    {image} -d {mounted} -e 10 --track {key}
```

This folder is mounted at `/experiment`, so put the dataset under it (e.g. `{mounted}`) and find
the trained model in `models/` here. `--gpus all` needs the NVIDIA Container Toolkit; without a
GPU, leave it out. With `--track`, the second `-v` lends the container your `fitwire login`
(read-only); or set `-e FITWIRE_WEBHOOK_URL=… -e FITWIRE_TOKEN=…` instead. A fitwire server on this
machine is `localhost` to you but not to the container: add `--network host`.
"""
"""Filled by ``fitwire.webhook.experiment.readme``."""

TRAIN_PY = r'''"""Train this fitwire model offline: the network its spec designs, on your own machine or GPU.

Written by fitwire (`fitwire models export`). Training needs Keras and TensorFlow only
(requirements.txt); `--track MODEL_KEY` also needs `pip install fitwire`, and streams the run
to fitwire as a training on its agents would.

The model is built as fitwire's trainers build it: the layers of spec.json, the same input
pipeline, the preprocessing inside the model. So a trained model from models/ loads into it
(`-w`) and predicts the same, and a model trained here takes the same raw input as fitwire's:
images (pixels 0-255) resized to the input size, or one value per CSV input column.

    python train.py -d people.csv -e 10
    python train.py -d pets.zip -e 20 --zoom 0.2 --flip
    python train.py -d pets/ -w models/RUN_ID.keras -e 5 --track MODEL_KEY
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

SPEC: dict[str, Any] = json.loads((Path(__file__).resolve().parent / "spec.json").read_text(encoding="utf-8"))
"""The model: its layers, optimizer, loss and metrics, and what it was shaped to (classes or columns)."""

# fitwire's own settings: with the same dataset, this script splits, shuffles and starts from the
# same weights as a training on fitwire.
SEED = 1337
VALIDATION_FRACTION = 0.2  # of a CSV table's rows; an images dataset has its own validation_data/
COLOR_MODES = {1: "grayscale", 3: "rgb", 4: "rgba"}  # the input's channels -> how images are read
METADATA_VERSION = 1


@dataclass
class Prepared:
    model: keras.Model  # what is fitted: for images, the augmentation layers, then the network
    predictor: keras.Model  # what is saved: the same weights without augmentation (it only acts in training)
    train_data: tf.data.Dataset
    val_data: tf.data.Dataset
    metadata: dict[str, Any]  # what the outputs mean, saved next to the model as fitwire does


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    keras.utils.set_random_seed(SEED)
    with dataset_path(args.dataset) as dataset:
        if SPEC["format"] == "images":
            prepared = prepare_images(dataset, args.batch, augmentation_layers(args))
        else:
            prepared = prepare_csv(dataset, args.batch)
        if args.weights:
            # Into the predictor, before compiling: the weights carry over, the optimizer starts afresh.
            prepared.predictor.load_weights(args.weights)
        compile_model(prepared.model)
        if args.epochs > 0:
            callbacks = [tracker(args.track)] if args.track else []
            # shuffle=False: the training data shuffles itself, seeded (Keras would only warn about it).
            prepared.model.fit(prepared.train_data, validation_data=prepared.val_data, epochs=args.epochs,
                               callbacks=callbacks, shuffle=False)
    output = Path("models") / f"{args.modelname.removesuffix('.keras')}.keras"
    output.parent.mkdir(parents=True, exist_ok=True)
    prepared.predictor.save(output)
    metadata = json.dumps(prepared.metadata, indent=1, ensure_ascii=False)
    output.with_name(output.name + ".json").write_text(metadata, encoding="utf-8")
    print(f"Saved {output} (and {output.name}.json, what its outputs mean).")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=f"Train {SPEC['model']['name']!r} ({SPEC['format']}) offline.")
    parser.add_argument("-d", "--dataset", required=True, type=Path,
                        help="the CSV file; or the images zip, or the folder holding training_data/ "
                             "and validation_data/")
    parser.add_argument("-b", "--batch", type=_at_least(1), default=SPEC["batch_size"],
                        help="batch size (default %(default)s)")
    parser.add_argument("-e", "--epochs", type=_at_least(0), default=10,
                        help="epochs (default %(default)s; 0 saves the model untrained, or as -w gave it)")
    parser.add_argument("-w", "--weights", type=Path,
                        help="start from a trained model's weights, e.g. models/RUN_ID.keras")
    parser.add_argument("--modelname", default=SPEC["modelname"],
                        help="the output file: models/NAME.keras (default %(default)s)")
    parser.add_argument("--track", metavar="MODEL_KEY",
                        help="stream the run to fitwire under this model key (needs `pip install fitwire` "
                             "and `fitwire login`, or FITWIRE_WEBHOOK_URL and FITWIRE_TOKEN)")
    images = parser.add_argument_group("augmentation (images only, while training)")
    images.add_argument("--shear", type=_within(0, 1), default=0.0, help="shear intensity, 0-1")
    images.add_argument("--zoom", type=_within(0, 1), default=0.0,
                        help="zoom in or out by up to this fraction, 0-1")
    images.add_argument("--rotation", type=_within(0, 180), default=0.0,
                        help="rotate by up to this many degrees, 0-180")
    images.add_argument("--flip", action="store_true", help="flip horizontally at random")
    args = parser.parse_args(argv)
    if SPEC["format"] != "images" and (args.shear or args.zoom or args.rotation or args.flip):
        parser.error("augmentation is for images; this model trains on a CSV table")
    if args.weights is not None and not args.weights.is_file():
        parser.error(f"no weights file {args.weights}")
    return args


def _at_least(low: int) -> Any:
    def parse(text: str) -> int:
        if int(text) < low:
            raise argparse.ArgumentTypeError(f"must be {low} or more")
        return int(text)
    return parse


def _within(low: float, high: float) -> Any:
    def parse(text: str) -> float:
        if not low <= float(text) <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return float(text)
    return parse


def network(input_shape: list[int]) -> keras.Sequential:
    """The spec's layers in order: each entry is ``getattr(keras.layers, type)(**layer)``."""
    layers = []
    for entry in SPEC["network"]["layers"]:
        params = dict(entry.get("layer") or {})
        if entry["type"] == "Dense" and params.get("units") is None:
            params["units"] = SPEC["output_units"]  # null: the dataset's output size
        layers.append(getattr(keras.layers, entry["type"])(**params))
    return keras.Sequential([keras.Input(tuple(input_shape)), *layers])


def compile_model(model: keras.Model) -> None:
    spec = SPEC["network"]
    optimizer: Any = spec["optimizer"]
    if spec.get("learning_rate") is not None:
        optimizer = keras.optimizers.get({"class_name": optimizer,
                                          "config": {"learning_rate": spec["learning_rate"]}})
    model.compile(optimizer=optimizer, loss=spec["loss"], metrics=list(spec["metrics"]))


def tracker(model_key: str) -> keras.callbacks.Callback:
    try:
        from fitwire.callback import Tracker
    except ImportError:
        raise SystemExit("--track needs fitwire: pip install fitwire, then fitwire login") from None
    return Tracker(model_key)  # the webhook and broker come from your fitwire login or FITWIRE_* variables


@contextlib.contextmanager
def dataset_path(path: Path) -> Iterator[Path]:
    """``path`` itself, or an images zip unpacked into a temporary folder (removed after training)."""
    if not path.exists():
        raise SystemExit(f"no dataset at {path}")
    if SPEC["format"] != "images" or not zipfile.is_zipfile(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="dataset-") as tmp, zipfile.ZipFile(path) as zf:
        zf.extractall(tmp)  # extractall keeps every member inside tmp (no "..", no absolute paths)
        yield images_root(Path(tmp))


def images_root(folder: Path) -> Path:
    """The folder holding training_data/: the zip's top, or the one folder it was zipped from."""
    if (folder / "training_data").is_dir():
        return folder
    inner = [p for p in folder.iterdir() if p.is_dir() and (p / "training_data").is_dir()]
    if len(inner) != 1:
        raise SystemExit("the images dataset needs training_data/ and validation_data/ at its top")
    return inner[0]


# --- images ------------------------------------------------------------------------------------


def prepare_images(root: Path, batch_size: int, augmentation: list[keras.layers.Layer]) -> Prepared:
    height, width, channels = SPEC["network"]["size"]
    class_names = sorted(p.name for p in (root / "training_data").iterdir() if p.is_dir())
    validation = sorted(p.name for p in (root / "validation_data").iterdir() if p.is_dir()) \
        if (root / "validation_data").is_dir() else []
    if validation != class_names:
        raise SystemExit(f"training_data/ has the classes {class_names} but validation_data/ has {validation}")
    units = SPEC["output_units"]
    label_mode = "categorical" if units > 1 else "binary"  # one unit: exactly two classes, yes or no
    if len(class_names) != (units if units > 1 else 2):
        raise SystemExit(f"the dataset has {len(class_names)} classes but the model outputs {units} unit(s)")

    def read(split: str, shuffle: bool) -> tf.data.Dataset:
        # class_names fixes the label order: sorted, the same in both splits (and as on fitwire).
        return keras.utils.image_dataset_from_directory(
            str(root / split), labels="inferred", label_mode=label_mode, class_names=class_names,
            color_mode=COLOR_MODES[channels], batch_size=batch_size, image_size=(height, width),
            shuffle=shuffle, seed=SEED, verbose=False)

    inputs = keras.Input(shape=(height, width, channels), name="image")
    x = inputs
    for layer in augmentation:
        x = layer(x)
    net = network([height, width, channels])
    model = keras.Model(inputs, net(x), name="spec_images")
    predictor = model if x is inputs else keras.Model(inputs, net(inputs), name="spec_images")
    metadata = {"version": METADATA_VERSION, "format": "images", "class_names": class_names,
                "label_mode": label_mode, "input": {"size": [height, width, channels],
                                                    "color_mode": COLOR_MODES[channels]}}
    return Prepared(model, predictor, read("training_data", True).prefetch(tf.data.AUTOTUNE),
                    read("validation_data", False).prefetch(tf.data.AUTOTUNE), metadata)


def augmentation_layers(args: argparse.Namespace) -> list[keras.layers.Layer]:
    """Random changes to training images, each seeded so that runs repeat."""
    layers: list[keras.layers.Layer] = []
    if args.shear > 0:  # one shear angle, along x, either way
        layers.append(keras.layers.RandomShear(x_factor=args.shear, y_factor=0.0, seed=SEED))
    if args.zoom > 0:
        layers.append(keras.layers.RandomZoom(height_factor=args.zoom, seed=SEED))
    if args.rotation > 0:  # Keras takes a fraction of a full turn
        layers.append(keras.layers.RandomRotation(factor=args.rotation / 360.0, seed=SEED))
    if args.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=SEED))
    return layers


# --- CSV ---------------------------------------------------------------------------------------


def prepare_csv(path: Path, batch_size: int) -> Prepared:
    """A model that takes one raw value per input column: numbers normalized, labels one-hot inside it."""
    types: dict[str, str] = SPEC["columns"]  # Binary, Int, Float or Label, as fitwire found them
    table = read_columns(path, list(types))
    rows = len(next(iter(table.values())))
    if rows < 2:
        raise SystemExit(f"the table has {rows} row(s); training needs 2 at least (some to validate on)")
    # Vocabularies from the whole table, so a label seen only in validation is known too.
    vocabularies = {name: sorted(set(table[name])) for name, kind in types.items() if kind == "Label"}
    numbers = {name: floats(name, table[name]) for name, kind in types.items() if kind != "Label"}
    order = np.random.default_rng(SEED).permutation(rows)
    n_val = max(1, round(rows * VALIDATION_FRACTION))
    val_rows, train_rows = order[:n_val], order[n_val:]

    targets, outputs = encode_targets(SPEC["outputs"], types, vocabularies, numbers, table)
    if targets.shape[1] != SPEC["output_units"]:
        raise SystemExit(f"the output columns encode to {targets.shape[1]} values but the model outputs "
                         f"{SPEC['output_units']}: has the table other labels than fitwire's copy?")

    inputs: dict[str, Any] = {}
    features = []
    described = []
    for name in SPEC["inputs"]:
        key = name.replace("/", "_")  # a Keras layer name cannot hold "/"
        entry: dict[str, Any] = {"name": name, "key": key, "type": types[name]}
        if types[name] == "Label":
            tensor = keras.Input(shape=(), dtype="string", name=key)
            # No out-of-vocabulary slot: the one-hot width stays the column's distinct count.
            lookup = keras.layers.StringLookup(vocabulary=vocabularies[name], num_oov_indices=0,
                                               output_mode="one_hot")
            features.append(lookup(tensor))
            entry["vocabulary"] = vocabularies[name]
        else:
            tensor = keras.Input(shape=(), dtype="float32", name=key)
            encoded = tensor
            if types[name] != "Binary":  # 0/1 is already on the scale the network wants
                norm = keras.layers.Normalization(axis=None)
                norm.adapt(numbers[name][train_rows])  # the training rows only: validation stays unseen
                encoded = norm(tensor)
            features.append(keras.layers.Reshape((1,))(encoded))
        inputs[key] = tensor
        described.append(entry)

    width = sum(int(f.shape[-1]) for f in features)
    size = SPEC["network"]["size"]
    if math.prod(size) != width:
        raise SystemExit(f"the input columns encode to {width} features but the model takes {size}: "
                         "has the table other labels than fitwire's copy?")
    x = features[0] if len(features) == 1 else keras.layers.Concatenate(name="features")(features)
    if len(size) > 1:  # a Conv1D network reads the features as [steps, channels]
        x = keras.layers.Reshape(tuple(size))(x)
    model = keras.Model(inputs, network(size)(x), name="spec_csv")

    # Labels as Python strings (dtype=object): Keras refuses fixed-width NumPy strings as input.
    x_data = {c["key"]: np.array(table[c["name"]], dtype=object) if c["type"] == "Label" else numbers[c["name"]]
              for c in described}

    def dataset(index: np.ndarray, shuffle: bool) -> tf.data.Dataset:
        data = tf.data.Dataset.from_tensor_slices(({k: v[index] for k, v in x_data.items()}, targets[index]))
        if shuffle:
            data = data.shuffle(len(index), seed=SEED, reshuffle_each_iteration=True)
        return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    metadata = {"version": METADATA_VERSION, "format": "csv", "inputs": described, "outputs": outputs,
                "rows": {"training": len(train_rows), "validation": len(val_rows)}}
    return Prepared(model, model, dataset(train_rows, True), dataset(val_rows, False), metadata)


class Dialect(csv.Dialect):
    """The table's dialect as fitwire read it: its delimiter, fields quoted with "."""

    delimiter = SPEC.get("delimiter") or ","
    quotechar = '"'
    doublequote = True
    skipinitialspace = False
    lineterminator = "\n"
    quoting = csv.QUOTE_MINIMAL
    strict = True


def read_columns(path: Path, names: list[str]) -> dict[str, list[str]]:
    """The named columns' values, as text."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, Dialect)
        header = next(reader, [])
        missing = [n for n in names if n not in header]
        if missing:
            raise SystemExit(f"the CSV file has no column {missing[0]!r}")
        where = {name: header.index(name) for name in names}
        values: dict[str, list[str]] = {name: [] for name in names}
        for row in reader:
            if not row:  # a blank line is no row
                continue
            for name, i in where.items():
                values[name].append(row[i] if i < len(row) else "")
    return values


def floats(name: str, values: list[str]) -> np.ndarray:
    try:
        return np.array([float(v) for v in values], dtype="float32")
    except ValueError as exc:
        raise SystemExit(f"column {name!r}: {exc}") from None


def encode_targets(names: list[str], types: dict[str, str], vocabularies: dict[str, list[str]],
                   numbers: dict[str, np.ndarray], table: dict[str, list[str]],
                   ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The output columns side by side (numbers as they are, labels one-hot), and what they are."""
    parts = []
    described = []
    for name in names:
        if types[name] == "Label":
            vocab = vocabularies[name]
            index = {v: i for i, v in enumerate(vocab)}
            parts.append(np.eye(len(vocab), dtype="float32")[[index[v] for v in table[name]]])
            described.append({"name": name, "type": "Label", "units": len(vocab), "vocabulary": vocab})
        else:
            parts.append(numbers[name].reshape(-1, 1))
            described.append({"name": name, "type": types[name], "units": 1})
    return np.concatenate(parts, axis=1), described


if __name__ == "__main__":
    main()
'''
