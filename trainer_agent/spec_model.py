"""A spec (``fitwire.contract.specs.ModelSpec``) as a Keras model: its layers in order, then compiled.

The webhook already refused a spec Keras could not build (``fitwire.contract.spec_shapes``);
:func:`build_network` checks it again with the job's real input shape and output size, so a
bad spec fails here with the same :class:`SpecInvalid` sentence, not a Keras traceback.
Keras is imported inside the functions: the agent loads it only in the process that trains.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fitwire.contract.spec_shapes import infer
from fitwire.contract.specs import Layer, Loss, MetricName, ModelSpec, SpecInvalid

if TYPE_CHECKING:
    import keras


def keras_layers(spec: ModelSpec, output_units: int | None) -> list[keras.Layer]:
    """The spec's layers as Keras layers, unchecked (``units: null`` becomes ``output_units``)."""
    return [_layer(entry, index, output_units) for index, entry in enumerate(spec.layers)]


def build_network(spec: ModelSpec, input_shape: list[int], output_units: int | None) -> keras.Model:
    """``keras.Input(input_shape)`` followed by exactly the spec's layers, or :class:`SpecInvalid`.

    Example:
        >>> model = build_network(spec, [28, 28, 1], output_units=10)
        >>> model.output_shape
        (None, 10)
    """
    import keras

    infer(spec, input_shape=input_shape, output_units=output_units)
    return keras.Sequential([keras.Input(tuple(input_shape)), *keras_layers(spec, output_units)])


def compile_network(model: keras.Model, spec: ModelSpec, loss: Loss, metrics: list[MetricName]) -> None:
    """Compile with the spec's optimizer (and its learning rate when set), ``loss`` and ``metrics``.

    The loss and metrics are arguments, not ``spec.loss``/``spec.metrics``: a spec leaves them
    null for the defaults that depend on the dataset (``spec_shapes.default_loss``).
    """
    import keras

    optimizer: Any = spec.optimizer
    if spec.learning_rate is not None:
        optimizer = keras.optimizers.get({"class_name": spec.optimizer,
                                          "config": {"learning_rate": spec.learning_rate}})
    model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics))


def _pair(value: int | list[int]) -> int | tuple[int, int]:
    return value if isinstance(value, int) else (value[0], value[1])


def _layer(entry: Layer, index: int, output_units: int | None) -> keras.Layer:
    import keras

    L = keras.layers
    p: Any = entry.layer
    # The spec's activation names are Keras's own (keras.activations.get resolves every one;
    # tests/specs checks it), so they pass through unchanged.
    match entry.type:
        case "Conv2D":
            return L.Conv2D(p.filters, _pair(p.kernel_size), strides=_pair(p.strides), padding=p.padding,
                            activation=p.activation)
        case "Conv1D":
            return L.Conv1D(p.filters, p.kernel_size, strides=p.strides, padding=p.padding, activation=p.activation)
        case "MaxPooling2D" | "AveragePooling2D":
            pooling = L.MaxPooling2D if entry.type == "MaxPooling2D" else L.AveragePooling2D
            return pooling(_pair(p.pool_size), strides=None if p.strides is None else _pair(p.strides),
                           padding=p.padding)
        case "GlobalAveragePooling2D":
            return L.GlobalAveragePooling2D()
        case "GlobalMaxPooling2D":
            return L.GlobalMaxPooling2D()
        case "Flatten":
            return L.Flatten()
        case "BatchNormalization":
            return L.BatchNormalization(momentum=p.momentum, epsilon=p.epsilon)
        case "Dropout":
            return L.Dropout(p.rate)
        case "Dense":
            units = p.units if p.units is not None else output_units
            if units is None:
                raise SpecInvalid("units null needs the dataset's output size, and none was given",
                                  index, "units")
            return L.Dense(units, activation=p.activation)
        case "Activation":
            return L.Activation(p.activation)
        case "Rescaling":
            return L.Rescaling(p.scale, offset=p.offset)
    raise SpecInvalid(f"unknown layer type {entry.type!r}", index, "type")


__all__ = ["build_network", "compile_network", "keras_layers"]
