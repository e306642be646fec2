"""Training a spec on an agent (fitwire.agent.spec_training): real, tiny fits on generated datasets.

What a user relies on is checked: the saved ``.keras`` file, loaded back, predicts what the
trained model predicted, from plain images or from raw CSV rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from fitwire.agent.spec_training import (
    METADATA_VERSION,
    Prepared,
    SpecTrainingError,
    metadata_path,
    prepare,
    raw_inputs,
    save,
)
from fitwire.contract.datasets import CsvInfo
from fitwire.contract.specs import SpecTraining
from fitwire.datasets.csv_inspect import inspect_csv_file
from fitwire.datasets.images_inspect import extract_images
from tests.datasets.generate import image_zip, sample_csv, sample_row

CLASSES = ("cat", "dog", "fox")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images")
    zipped = image_zip(root / "set.zip", CLASSES, per_class=(6, 3), size=(20, 16))
    return extract_images(zipped, root / "data")


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CsvInfo]:
    path = sample_csv(tmp_path_factory.mktemp("csv") / "people.csv", rows=120)
    return path, inspect_csv_file(path)


def image_training(units: int = len(CLASSES), channels: int = 3, **extra: Any) -> SpecTraining:
    return SpecTraining.model_validate({
        "network": {"format": "images", "size": [12, 12, channels], "layers": [
            {"type": "Conv2D", "layer": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
            {"type": "MaxPooling2D"},
            {"type": "Flatten"},
            {"type": "Dense", "layer": {"units": None, "activation": "softmax" if units > 1 else "sigmoid"}},
        ]},
        "output_units": units, "output_key": "models/m.keras", **extra})


def csv_training(inputs: list[str], outputs: list[str], features: int, units: int, activation: str,
                 **extra: Any) -> SpecTraining:
    return SpecTraining.model_validate({
        "network": {"format": "csv", "size": [features], "layers": [
            {"type": "Dense", "layer": {"units": 8, "activation": "relu"}},
            {"type": "Dense", "layer": {"units": None, "activation": activation}},
        ]},
        "output_units": units, "inputs": inputs, "outputs": outputs, "output_key": "models/m.keras", **extra})


def fit_and_reload(prepared: Prepared, path: Path, epochs: int = 1) -> keras.Model:
    prepared.model.fit(prepared.train_data, validation_data=prepared.val_data, epochs=epochs, verbose=0,
                          shuffle=False)  # the datasets shuffle themselves (seeded)
    save(prepared.predictor, path, prepared.metadata)
    return keras.models.load_model(path)


# --- images ----------------------------------------------------------------------------------------


def test_an_images_spec_trains_with_augmentation_and_predicts_the_same_once_reloaded(images: Path,
                                                                                      tmp_path: Path) -> None:
    aug = {"shear": 0.2, "zoom": 0.1, "rotation": 30.0, "horizontal_flip": True}
    prepared = prepare(image_training(augmentation=aug), images, "images", None, batch_size=8)
    layer_types = [type(layer).__name__ for layer in prepared.model.layers]
    assert layer_types[1:5] == ["RandomShear", "RandomZoom", "RandomRotation", "RandomFlip"]

    reloaded = fit_and_reload(prepared, tmp_path / "m.keras")

    batch = np.concatenate([x for x, _ in prepared.val_data])
    assert batch.shape == (9, 12, 12, 3)  # resized to the spec's size
    expected = prepared.model.predict(batch, verbose=0)  # augmentation is for training only
    np.testing.assert_allclose(reloaded.predict(batch, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert not any(type(layer).__name__.startswith("Random") for layer in reloaded.layers)

    # retraining from the saved file starts where the first training ended
    again = prepare(image_training(augmentation=aug), images, "images", None, batch_size=8,
                    initial_weights=tmp_path / "m.keras")
    np.testing.assert_allclose(again.model.predict(batch, verbose=0), expected, rtol=1e-5, atol=1e-6)
    meta = json.loads(metadata_path(tmp_path / "m.keras").read_text())
    assert meta == {"version": METADATA_VERSION, "format": "images", "class_names": list(CLASSES),
                    "label_mode": "categorical", "input": {"size": [12, 12, 3], "color_mode": "rgb"}}


def test_labels_are_one_hot_in_sorted_class_order_in_both_splits(images: Path) -> None:
    prepared = prepare(image_training(channels=1), images, "images", None, batch_size=4)
    labels = np.concatenate([y for _, y in prepared.val_data])
    # validation is not shuffled: 3 images of each class, in sorted class order
    np.testing.assert_array_equal(labels, np.repeat(np.eye(3), 3, axis=0))
    x, _ = next(iter(prepared.train_data))
    assert x.shape[1:] == (12, 12, 1)  # one channel: read as grayscale
    assert prepared.metadata["input"]["color_mode"] == "grayscale"


def test_an_images_spec_with_the_wrong_class_count_is_refused(images: Path) -> None:
    with pytest.raises(SpecTrainingError, match="3 classes but the model outputs 4"):
        prepare(image_training(units=4), images, "images", None, batch_size=4)
    with pytest.raises(SpecTrainingError, match="3 classes but the model outputs 1"):
        prepare(image_training(units=1), images, "images", None, batch_size=4)


# --- CSV -------------------------------------------------------------------------------------------


CSV_CASES = {
    "binary": (["age", "height", "city"], ["smoker"], 6, 1, "sigmoid"),
    "label": (["age", "height", "smoker"], ["city"], 3, 4, "softmax"),
    "regression": (["age", "smoker", "city"], ["height"], 6, 1, "linear"),
    "autoencoder": (["age", "height"], ["age", "height"], 2, 2, "linear"),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_a_csv_spec_predicts_from_raw_rows_once_reloaded(case: str, table: tuple[Path, CsvInfo],
                                                         tmp_path: Path) -> None:
    path, info = table
    inputs, outputs, features, units, activation = CSV_CASES[case]
    prepared = prepare(csv_training(inputs, outputs, features, units, activation), path, "csv", info, batch_size=16)
    reloaded = fit_and_reload(prepared, tmp_path / "m.keras", epochs=2)

    header = ["age", "height", "smoker", "city"]
    rows = [dict(zip(header, sample_row(i)[:4], strict=True)) for i in range(5)]
    batch = raw_inputs(prepared.metadata, rows)
    expected = prepared.model.predict(batch, verbose=0)
    assert expected.shape == (5, units)
    np.testing.assert_allclose(reloaded.predict(batch, verbose=0), expected, rtol=1e-5, atol=1e-6)
    meta = json.loads(metadata_path(tmp_path / "m.keras").read_text())
    assert [c["name"] for c in meta["inputs"]] == inputs
    assert [c["name"] for c in meta["outputs"]] == outputs
    assert meta["rows"] == {"training": 96, "validation": 24}  # a seeded 80/20 split


def test_a_label_output_is_one_hot_in_sorted_order_and_described(table: tuple[Path, CsvInfo]) -> None:
    path, info = table
    prepared = prepare(csv_training(["age"], ["city"], 1, 4, "softmax"), path, "csv", info, batch_size=200)
    x, y = next(iter(prepared.val_data))
    vocabulary = sorted(["Paris", "New York, NY", "Oslo", "Lima"])
    assert prepared.metadata["outputs"] == [{"name": "city", "type": "Label", "units": 4, "vocabulary": vocabulary}]
    # In the sample table a row's age gives its city (both repeat every 60 rows), so each target
    # can be checked against the raw age it came with.
    city_of_age = {sample_row(i)[0]: sample_row(i)[3] for i in range(60)}
    expected = np.array([np.eye(4)[vocabulary.index(city_of_age[int(age)])] for age in x["age"].numpy()])
    np.testing.assert_array_equal(y.numpy(), expected)
    assert prepared.model.loss == "categorical_crossentropy"  # the default for one label column


def test_the_split_and_the_first_weights_are_the_same_every_time(table: tuple[Path, CsvInfo]) -> None:
    path, info = table
    training = csv_training(["age", "height"], ["smoker"], 2, 1, "sigmoid")
    first, second = (prepare(training, path, "csv", info, batch_size=200) for _ in range(2))
    np.testing.assert_array_equal(next(iter(first.val_data))[1], next(iter(second.val_data))[1])
    for a, b in zip(first.model.get_weights(), second.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_retraining_starts_from_the_initial_weights(table: tuple[Path, CsvInfo], tmp_path: Path) -> None:
    path, info = table
    training = csv_training(["age", "height", "city"], ["smoker"], 6, 1, "sigmoid")
    first = prepare(training, path, "csv", info, batch_size=16)
    fit_and_reload(first, tmp_path / "first.keras", epochs=3)
    trained_loss = first.model.evaluate(first.val_data, verbose=0, return_dict=True)["loss"]

    again = prepare(training.model_copy(update={"initial_weights": "models/first.keras"}), path, "csv", info,
                    batch_size=16, initial_weights=tmp_path / "first.keras")
    for a, b in zip(first.model.get_weights(), again.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert again.model.evaluate(again.val_data, verbose=0, return_dict=True)["loss"] == pytest.approx(trained_loss,
                                                                                                        rel=1e-5)
    fresh = prepare(training, path, "csv", info, batch_size=16)
    assert fresh.model.evaluate(fresh.val_data, verbose=0, return_dict=True)["loss"] != pytest.approx(trained_loss)


def test_initial_weights_of_another_architecture_are_refused(table: tuple[Path, CsvInfo], tmp_path: Path) -> None:
    path, info = table
    other = prepare(csv_training(["age", "height"], ["smoker"], 2, 1, "sigmoid"), path, "csv", info, batch_size=16)
    save(other.model, tmp_path / "other.keras")
    with pytest.raises(SpecTrainingError, match="initial weights do not fit"):
        prepare(csv_training(["age", "height", "city"], ["smoker"], 6, 1, "sigmoid"), path, "csv", info,
                batch_size=16, initial_weights=tmp_path / "other.keras")


@pytest.mark.parametrize(("inputs", "outputs", "features", "units", "message"), [
    (["age", "height", "city"], ["smoker"], 5, 1,
     r"input columns encode to 6 features .* input size is \[5\] \(5 values\)"),
    (["age", "height"], ["city"], 2, 3, "output columns encode to 4 values .* the model outputs 3"),
    (["age", "height"], ["smoker", "city"], 2, 4, "output columns encode to 5 values .* the model outputs 4"),
    (["age", "weight"], ["smoker"], 2, 1, "the dataset has no column 'weight'"),
])
def test_a_width_mismatch_or_an_unknown_column_is_named(table: tuple[Path, CsvInfo], inputs: list[str],
                                                        outputs: list[str], features: int, units: int,
                                                        message: str) -> None:
    path, info = table
    with pytest.raises(SpecTrainingError, match=message):
        prepare(csv_training(inputs, outputs, features, units, "linear"), path, "csv", info, batch_size=16)


def test_a_blocked_label_column_and_a_missing_csv_info_are_refused(table: tuple[Path, CsvInfo]) -> None:
    path, info = table
    blocked = info.model_copy(update={"columns": [c.model_copy(update={"blocked": c.name == "name"})
                                                  for c in info.columns]})
    with pytest.raises(SpecTrainingError, match="column 'name' has too many distinct values"):
        prepare(csv_training(["age", "name"], ["smoker"], 121, 1, "sigmoid"), path, "csv", blocked, batch_size=16)
    with pytest.raises(SpecTrainingError, match="needs its column information"):
        prepare(csv_training(["age"], ["smoker"], 1, 1, "sigmoid"), path, "csv", None, batch_size=16)
    with pytest.raises(SpecTrainingError, match="the spec is for a csv dataset"):
        prepare(csv_training(["age"], ["smoker"], 1, 1, "sigmoid"), path, "images", None, batch_size=16)
