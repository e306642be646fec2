"""``fitwire.agent.spec_model``: a spec as a Keras model, compiled with the spec's optimizer."""

from __future__ import annotations

import os
from typing import Any, get_args

import pytest

from fitwire.agent.spec_model import build_network, compile_network
from fitwire.contract.spec_shapes import default_loss, default_metrics, infer
from fitwire.contract.specs import Activation, Loss, MetricName, ModelSpec, Optimizer, SpecInvalid

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")

# What WebML's editor saves for a small image classifier.
WEBML: dict[str, Any] = {
    "format": "images",
    "size": [28, 28, 1],
    "layers": [
        {"type": "Rescaling", "layer": {"scale": 1 / 255}},
        {"type": "Conv2D", "layer": {"filters": 8, "kernel_size": [3, 3], "activation": "relu"}},
        {"type": "MaxPooling2D", "layer": {"pool_size": 2}},
        {"type": "Conv2D", "layer": {"filters": 16, "kernel_size": 3, "padding": "same", "activation": "leaky_relu"}},
        {"type": "Flatten"},
        {"type": "BatchNormalization", "layer": {"momentum": 0.9}},
        {"type": "Dropout", "layer": {"rate": 0.25}},
        {"type": "Dense", "layer": {"units": None, "activation": "softmax"}},
    ],
    "optimizer": "rmsprop",
    "learning_rate": 0.01,
}


def test_builds_exactly_the_spec_with_units_null_as_the_output_size() -> None:
    spec = ModelSpec.model_validate(WEBML)
    model = build_network(spec, [28, 28, 1], output_units=10)
    assert model.input_shape == (None, 28, 28, 1)
    assert model.output_shape == (None, 10)
    assert [type(layer).__name__ for layer in model.layers] == [entry.type for entry in spec.layers]
    assert [(list(layer.output.shape[1:]), layer.count_params()) for layer in model.layers] == [
        (row.output_shape, row.params) for row in infer(spec, output_units=10)]
    conv = model.layers[1]
    assert (conv.filters, conv.kernel_size, conv.padding) == (8, (3, 3), "valid")
    assert model.layers[3].activation is keras.activations.get("leaky_relu")
    assert model.layers[5].momentum == 0.9 and model.layers[6].rate == 0.25


def test_compiles_with_the_optimizer_and_learning_rate_and_trains() -> None:
    import numpy as np

    spec = ModelSpec.model_validate(WEBML)
    model = build_network(spec, [28, 28, 1], output_units=3)
    compile_network(model, spec, default_loss(spec, classes=True, output_units=3), default_metrics(True))
    assert type(model.optimizer).__name__ == "RMSprop"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    x = np.random.default_rng(0).uniform(0, 255, (8, 28, 28, 1)).astype("float32")
    y = np.eye(3, dtype="float32")[np.arange(8) % 3]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}


def test_a_spec_keras_cannot_build_fails_with_the_spec_error() -> None:
    spec = ModelSpec.model_validate({**WEBML, "layers": WEBML["layers"][1:3] + WEBML["layers"][-1:]})
    with pytest.raises(SpecInvalid) as caught:
        build_network(spec, [28, 28, 1], output_units=10)
    assert (caught.value.index, caught.value.field) == (2, "type")
    assert "13×13×10, not a vector of 10" in caught.value.message


def test_every_name_a_spec_may_hold_is_one_keras_knows() -> None:
    for name in get_args(Activation):
        keras.activations.get(name)
    for name in get_args(Loss):
        keras.losses.get(name)
    for name in get_args(MetricName):
        keras.metrics.get(name)
    for name in get_args(Optimizer):
        keras.optimizers.get(name)
