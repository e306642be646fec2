"""Training a model spec on an agent: the dataset read into ``tf.data`` and the spec's network
wrapped so that the saved ``.keras`` file predicts from what a user has, not from tensors.

:func:`prepare` turns a :class:`~fitwire.contract.specs.SpecTraining` and the fetched dataset
(``FITWIRE_DATASET``) into a compiled model and its training and validation data; the caller
fits ``Prepared.model``, then saves ``Prepared.predictor`` and ``Prepared.metadata`` with :func:`save`.

- Images: the model takes images resized to the spec's size (pixel values 0–255, as
  ``image_dataset_from_directory`` gives them; a ``Rescaling`` is there only if the spec has
  one). The augmentation layers come first in the fitted model (Keras's random layers act
  only in training); the saved model is the same network without them
  (:attr:`Prepared.predictor`), and predicts from plain images.
- CSV: the preprocessing is inside the model, so it predicts from raw rows: one scalar input
  per input column (``float32``, or ``string`` for a Label column), numbers normalized with
  statistics of the training split, labels one-hot. Predict with a dict of 1-D arrays, strings
  as ``dtype=object`` (:func:`raw_inputs` builds it from rows).

What a prediction means (class names, the output columns and their vocabularies) is in the
metadata, a small JSON document stored next to the model (:func:`metadata_path`), so a reader
needs no TensorFlow to label a prediction.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fitwire.agent.spec_model import build_network, compile_network
from fitwire.contract import FitwireError
from fitwire.contract.datasets import TRAINING_DIR, VALIDATION_DIR, Column, CsvInfo
from fitwire.contract.spec_shapes import default_loss, default_metrics
from fitwire.contract.specs import Augmentation, SpecTraining
from fitwire.datasets.csv_inspect import csv_dialect_of

SEED = 1337
"""Weights, split, shuffling and augmentation all follow it, so a job trained twice trains the same."""
VALIDATION_FRACTION = 0.2
"""Of a CSV table's rows (an images dataset has its own validation_data/)."""
METADATA_VERSION = 1
METADATA_SUFFIX = ".json"
COLOR_MODES = {1: "grayscale", 3: "rgb", 4: "rgba"}
"""The spec's channel count → how images are read."""


class SpecTrainingError(FitwireError, ValueError):
    """A spec cannot be trained on this dataset (the message says why, naming the numbers or columns)."""


@dataclass
class Prepared:
    """A compiled model and its data: ``model.fit(train_data, validation_data=val_data, epochs=…)``,
    then ``save(predictor, path, metadata)``."""

    model: keras.Model
    """What to fit: for images, the augmentation layers and then the network."""
    train_data: Any
    """A batched ``tf.data.Dataset`` of (inputs, targets)."""
    val_data: Any
    metadata: dict[str, Any]
    """JSON-ready: what the model's inputs and outputs mean (:func:`save` writes it next to the model)."""
    predictor: keras.Model
    """What to save: ``model`` without its augmentation, sharing its weights (``model`` itself when it
    has none). Keras's RandomShear cannot load the config it saves for a range around 0 (Keras
    3.15), and augmentation does nothing in prediction anyway, so the saved file goes without it.
    Uncompiled when it is not ``model``: it is for predicting (and for :func:`prepare`'s
    ``initial_weights``), not for training."""


def prepare(train: SpecTraining, dataset_path: Path, dataset_format: str, csv_info: CsvInfo | None,
            batch_size: int, initial_weights: Path | None = None) -> Prepared:
    """Build, compile and (when retraining) load the model, and read the dataset for it.

    Args:
        dataset_path: the CSV file, or the folder holding ``training_data/`` and ``validation_data/``.
        dataset_format: ``"csv"`` or ``"images"``.
        csv_info: what the webhook found in the CSV (column types); required for a CSV dataset.
        initial_weights: an earlier ``.keras`` of the same spec on the same data, to start from.

    Raises:
        SpecTrainingError: the spec and the dataset do not fit together, or the initial weights
            are not of this architecture.
    """
    if dataset_format != train.network.format:
        raise SpecTrainingError(f"the spec is for a {train.network.format} dataset; this dataset is {dataset_format}.")
    keras.utils.set_random_seed(SEED)
    if dataset_format == "images":
        prepared = _prepare_images(train, Path(dataset_path), batch_size)
        classes = True
    elif dataset_format == "csv":
        if csv_info is None:
            raise SpecTrainingError("a CSV dataset needs its column information (csv_info) to be trained.")
        prepared = _prepare_csv(train, Path(dataset_path), csv_info, batch_size)
        classes = _is_classification(prepared.metadata)
    else:
        raise SpecTrainingError(f"unknown dataset format {dataset_format!r}.")
    if initial_weights is not None:
        # Before compiling: only the weights carry over, the optimizer starts afresh. Into the
        # predictor: the earlier file is one, and it shares the fitted model's weights.
        try:
            prepared.predictor.load_weights(str(initial_weights))
        except (ValueError, KeyError) as exc:
            raise SpecTrainingError(f"the initial weights do not fit this spec and dataset: {exc}") from None
    spec = train.network
    loss = spec.loss or default_loss(spec, classes=classes, output_units=train.output_units)
    metrics = list(spec.metrics) or default_metrics(classes)
    compile_network(prepared.model, spec, loss, metrics)
    return prepared


def save(model: keras.Model, path: Path, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` to ``path`` (a ``.keras`` file) and, when given, ``metadata`` to
    :func:`metadata_path` next to it. Returns ``path``."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"a trained spec is saved as a .keras file, not {path.name!r}.")
    model.save(str(path))
    if metadata is not None:
        metadata_path(path).write_text(json.dumps(metadata, indent=1, ensure_ascii=False))
    return path


def metadata_path(model_path: Path) -> Path:
    """Where a model's metadata lives: ``model.keras`` → ``model.keras.json`` (an artifact key works alike)."""
    return model_path.with_name(model_path.name + METADATA_SUFFIX)


def raw_inputs(metadata: Mapping[str, Any], rows: Sequence[Mapping[str, object]]) -> dict[str, np.ndarray]:
    """A CSV model's input from rows (column → value, text or number): what ``model.predict`` takes."""
    batch: dict[str, np.ndarray] = {}
    for column in metadata["inputs"]:
        values = [row[column["name"]] for row in rows]
        if column["type"] == "Label":
            # Keras refuses fixed-width NumPy strings as model input; Python strings it takes.
            batch[column["key"]] = np.array([str(v) for v in values], dtype=object)
        else:
            batch[column["key"]] = np.array([float(str(v)) for v in values], dtype="float32")
    return batch


# --- images --------------------------------------------------------------------------------------


def _prepare_images(train: SpecTraining, root: Path, batch_size: int) -> Prepared:
    spec = train.network
    if spec.size is None or len(spec.size) != 3:
        raise SpecTrainingError(f"an images spec needs a size [height, width, channels]; it has {spec.size}.")
    height, width, channels = spec.size
    if channels not in COLOR_MODES:
        raise SpecTrainingError(f"images have 1 (grey), 3 (RGB) or 4 (RGBA) channels, not {channels}.")
    class_names = _class_names(root)
    label_mode = "categorical" if train.output_units > 1 else "binary"
    wanted = train.output_units if label_mode == "categorical" else 2
    if len(class_names) != wanted:
        raise SpecTrainingError(f"the dataset has {len(class_names)} classes but the model outputs "
                                f"{train.output_units} unit(s) (one per class, or 1 for exactly two classes).")

    def read(split: str, shuffle: bool) -> Any:
        # class_names fixes the label order: sorted, the same in both splits.
        return keras.utils.image_dataset_from_directory(
            str(root / split), labels="inferred", label_mode=label_mode, class_names=class_names,
            color_mode=COLOR_MODES[channels], batch_size=batch_size, image_size=(height, width),
            shuffle=shuffle, seed=SEED, verbose=False)

    train_data, val_data = read(TRAINING_DIR, True), read(VALIDATION_DIR, False)
    inputs = keras.Input(shape=(height, width, channels), name="image")
    x = inputs
    for layer in _augmentation_layers(train.augmentation):
        x = layer(x)
    network = build_network(spec, [height, width, channels], train.output_units)
    model = keras.Model(inputs, network(x), name="spec_images")
    predictor = model if x is inputs else keras.Model(inputs, network(inputs), name="spec_images")
    metadata = {"version": METADATA_VERSION, "format": "images", "class_names": class_names,
                "label_mode": label_mode, "input": {"size": [height, width, channels],
                                                    "color_mode": COLOR_MODES[channels]}}
    return Prepared(model, train_data.prefetch(tf.data.AUTOTUNE), val_data.prefetch(tf.data.AUTOTUNE), metadata,
                    predictor)


def _class_names(root: Path) -> list[str]:
    def classes(split: str) -> list[str]:
        folder = root / split
        if not folder.is_dir():
            raise SpecTrainingError(f"the dataset has no {split}/ folder.")
        return sorted(p.name for p in folder.iterdir() if p.is_dir())

    training, validation = classes(TRAINING_DIR), classes(VALIDATION_DIR)
    if training != validation:
        raise SpecTrainingError(f"{TRAINING_DIR}/ has the classes {training} but {VALIDATION_DIR}/ has {validation}.")
    return training


def _augmentation_layers(aug: Augmentation | None) -> list[keras.layers.Layer]:
    """WebML's augmentation options as Keras random layers (each seeded, so runs repeat)."""
    if aug is None:
        return []
    layers: list[keras.layers.Layer] = []
    if aug.shear > 0:
        # One shear angle, along x, either way, as ImageDataGenerator's shear_range applied it.
        layers.append(keras.layers.RandomShear(x_factor=aug.shear, y_factor=0.0, seed=SEED))
    if aug.zoom > 0:
        layers.append(keras.layers.RandomZoom(height_factor=aug.zoom, seed=SEED))
    if aug.rotation > 0:
        layers.append(keras.layers.RandomRotation(factor=aug.rotation / 360.0, seed=SEED))
    if aug.horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=SEED))
    return layers


# --- CSV -----------------------------------------------------------------------------------------


def _prepare_csv(train: SpecTraining, path: Path, info: CsvInfo, batch_size: int) -> Prepared:
    if not train.inputs or not train.outputs:
        raise SpecTrainingError("a CSV spec needs at least one input column and one output column.")
    columns = _columns(info, [*train.inputs, *train.outputs])
    table = _read_columns(path, list(columns))
    rows = len(next(iter(table.values())))
    if rows < 2:
        raise SpecTrainingError(f"the table has {rows} row(s); training needs 2 at least (some to validate on).")
    # Label vocabularies from the whole table, not the training split: then their widths are the
    # one-hot widths the webhook shaped the spec with, and a value seen only in validation is known.
    vocabularies = {name: sorted(set(table[name])) for name, col in columns.items() if col.type == "Label"}
    numbers = {name: _floats(name, table[name]) for name, col in columns.items() if col.type != "Label"}
    order = np.random.default_rng(SEED).permutation(rows)
    n_val = max(1, round(rows * VALIDATION_FRACTION))
    val_rows, train_rows = order[:n_val], order[n_val:]

    targets, outputs = _targets(train.outputs, columns, vocabularies, numbers, table)
    if targets.shape[1] != train.output_units:
        raise SpecTrainingError(f"the output columns encode to {targets.shape[1]} values (numbers 1 each, labels "
                                f"one per value) but the model outputs {train.output_units}.")

    inputs, features, described = _input_tensors(train.inputs, columns, vocabularies, numbers, train_rows)
    width = sum(int(f.shape[-1]) for f in features)
    size = train.network.size or [width]
    if math.prod(size) != width:
        raise SpecTrainingError(f"the input columns encode to {width} features (numbers 1 each, labels one per "
                                f"value) but the spec's input size is {size} ({math.prod(size)} values).")
    x = features[0] if len(features) == 1 else keras.layers.Concatenate(name="features")(features)
    if len(size) > 1:  # a Conv1D spec reads the features as [steps, channels]
        x = keras.layers.Reshape(tuple(size))(x)
    network = build_network(train.network, list(size), train.output_units)
    model = keras.Model(inputs, network(x), name="spec_csv")

    x_data = {c["key"]: _input_array(c["name"], c["type"], table, numbers) for c in described}

    def dataset(index: np.ndarray, shuffle: bool) -> Any:
        data = tf.data.Dataset.from_tensor_slices(({k: v[index] for k, v in x_data.items()}, targets[index]))
        if shuffle:
            data = data.shuffle(len(index), seed=SEED, reshuffle_each_iteration=True)
        return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    metadata = {"version": METADATA_VERSION, "format": "csv", "inputs": described, "outputs": outputs,
                "rows": {"training": len(train_rows), "validation": len(val_rows)}}
    return Prepared(model, dataset(train_rows, True), dataset(val_rows, False), metadata, model)


def _columns(info: CsvInfo, names: list[str]) -> dict[str, Column]:
    """The named columns (each once, inputs first), checked to exist and be usable."""
    known = {c.name: c for c in info.columns}
    found: dict[str, Column] = {}
    for name in names:
        col = known.get(name)
        if col is None:
            raise SpecTrainingError(f"the dataset has no column {name!r}.")
        if col.blocked:
            raise SpecTrainingError(f"column {name!r} has too many distinct values ({col.unique}) to be one-hot "
                                    "encoded; choose another column.")
        found[name] = col
    return found


def _read_columns(path: Path, names: list[str]) -> dict[str, list[str]]:
    """The named columns' values as text, with the dialect the webhook found."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, csv_dialect_of(path))
        header = next(reader, [])
        missing = [n for n in names if n not in header]
        if missing:
            raise SpecTrainingError(f"the CSV file has no column {missing[0]!r}.")
        where = {name: header.index(name) for name in names}
        values: dict[str, list[str]] = {name: [] for name in names}
        for row in reader:
            if not row:  # a blank line is no row
                continue
            for name, i in where.items():
                values[name].append(row[i] if i < len(row) else "")
    return values


def _floats(name: str, values: list[str]) -> np.ndarray:
    try:
        return np.array([float(v) for v in values], dtype="float32")
    except ValueError:
        bad = next(i for i, v in enumerate(values) if not _is_float(v))
        raise SpecTrainingError(f"column {name!r}, data row {bad + 1}: {values[bad]!r} is not a number.") from None


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _input_tensors(names: list[str], columns: dict[str, Column], vocabularies: dict[str, list[str]],
                   numbers: dict[str, np.ndarray], train_rows: np.ndarray,
                   ) -> tuple[dict[str, Any], list[Any], list[dict[str, Any]]]:
    """One scalar ``keras.Input`` per column and its encoding, in column order; and their description."""
    inputs: dict[str, Any] = {}
    features: list[Any] = []
    described: list[dict[str, Any]] = []
    for name in names:
        col = columns[name]
        key = name.replace("/", "_")  # a Keras layer name cannot hold "/"
        entry: dict[str, Any] = {"name": name, "key": key, "type": col.type}
        if col.type == "Label":
            tensor = keras.Input(shape=(), dtype="string", name=key)
            # No out-of-vocabulary slot: the width stays the column's one-hot width, as the spec was shaped.
            lookup = keras.layers.StringLookup(vocabulary=vocabularies[name], num_oov_indices=0, output_mode="one_hot")
            features.append(lookup(tensor))
            entry["vocabulary"] = vocabularies[name]
        else:
            tensor = keras.Input(shape=(), dtype="float32", name=key)
            encoded = tensor
            if col.type != "Binary":  # 0/1 is already on the scale the network wants
                norm = keras.layers.Normalization(axis=None)
                norm.adapt(numbers[name][train_rows])  # the training split only: validation stays unseen
                encoded = norm(tensor)
            features.append(keras.layers.Reshape((1,))(encoded))
        inputs[key] = tensor
        described.append(entry)
    return inputs, features, described


def _input_array(name: str, col_type: str, table: dict[str, list[str]], numbers: dict[str, np.ndarray]) -> np.ndarray:
    return np.array(table[name], dtype=object) if col_type == "Label" else numbers[name]


def _targets(names: list[str], columns: dict[str, Column], vocabularies: dict[str, list[str]],
             numbers: dict[str, np.ndarray], table: dict[str, list[str]]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The output columns side by side (numbers as they are, labels one-hot), and their description."""
    parts: list[np.ndarray] = []
    described: list[dict[str, Any]] = []
    for name in names:
        col = columns[name]
        if col.type == "Label":
            vocab = vocabularies[name]
            index = {v: i for i, v in enumerate(vocab)}
            parts.append(np.eye(len(vocab), dtype="float32")[[index[v] for v in table[name]]])
            described.append({"name": name, "type": col.type, "units": len(vocab), "vocabulary": vocab})
        else:
            parts.append(numbers[name].reshape(-1, 1))
            described.append({"name": name, "type": col.type, "units": 1})
    return np.concatenate(parts, axis=1), described


def _is_classification(metadata: Mapping[str, Any]) -> bool:
    """One output column of classes (a label, or 0/1): predicted as probabilities, not as numbers."""
    outputs = metadata["outputs"]
    return len(outputs) == 1 and outputs[0]["type"] in ("Label", "Binary")


__all__ = ["METADATA_SUFFIX", "METADATA_VERSION", "SEED", "Prepared", "SpecTrainingError", "metadata_path",
           "prepare", "raw_inputs", "save"]
