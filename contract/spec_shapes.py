"""A spec's shapes without TensorFlow: every layer's output shape and weight count, as Keras 3 computes them.

The webhook refuses a spec that Keras could not build before it stores it or queues a
training, so a user learns which layer is wrong (and why) in the editor, not from a failed
job. :func:`infer` walks the layers once with plain integers; the rules are Keras's own
(``compute_conv_output_shape``, ``compute_pooling_output_shape``, the layers' weights), and
``tests/specs`` checks them against Keras on random specs.

Shapes never include the batch axis. ``None`` in a shape is an open size: what a Dense with
``units: null`` outputs before the model is shaped to a dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import prod
from typing import Any

from pydantic import TypeAdapter

from fitwire.contract.specs import (
    ActivationLayer,
    AveragePooling2D,
    Conv1D,
    Conv2D,
    Dense,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    LayerShape,
    Loss,
    MaxPooling2D,
    MetricName,
    ModelSpec,
    SpecInvalid,
)

Shape = list[int | None]

MAX_LAYERS = 200
MAX_PARAMS = 50_000_000

_ROWS = TypeAdapter(list[LayerShape])


def infer(spec: ModelSpec, *, input_shape: list[int] | None = None, output_units: int | None = None,
          max_layers: int = MAX_LAYERS, max_params: int = MAX_PARAMS) -> list[LayerShape]:
    """Every layer's output shape and weight count, in order, or :class:`SpecInvalid` naming the layer.

    Args:
        spec: the network.
        input_shape: the input without the batch axis; ``spec.size`` when omitted.
        output_units: what a Dense with ``units: null`` outputs; when given, the network must
            end in exactly ``[output_units]``. None leaves that size open (``None`` in shapes).
        max_layers: more layers than this are refused (field ``layers``).
        max_params: more weights in total than this are refused (field ``layers``).

    Example:
        >>> spec = ModelSpec.model_validate({"format": "images", "size": [28, 28, 1], "layers": [
        ...     {"type": "Conv2D", "layer": {"filters": 8}}, {"type": "Flatten"},
        ...     {"type": "Dense", "layer": {"units": None, "activation": "softmax"}}]})
        >>> [(s.output_shape, s.params) for s in infer(spec, output_units=10)]
        [([26, 26, 8], 80), ([5408], 0), ([10], 54090)]
    """
    shape = _input_shape(spec.size if input_shape is None else input_shape)
    layers = spec.layers
    if len(layers) > max_layers:
        raise SpecInvalid(f"the spec has {len(layers)} layers, more than the {max_layers} allowed", field="layers")
    last_dense = max((i for i, entry in enumerate(layers) if isinstance(entry, Dense)), default=-1)
    rows: list[dict[str, Any]] = []
    total = 0
    for index, entry in enumerate(layers):
        if isinstance(entry, Dense) and entry.layer.units is None and index != last_dense:
            raise SpecInvalid(f"units null (the dataset's output size) is allowed only on the last Dense "
                              f"layer, which is layer {last_dense}", index, "units")
        shape, params = _RULES[entry.type](entry, shape, index, output_units)
        total += params or 0  # an open Dense's weights are counted once the model is shaped
        if total > max_params:
            raise SpecInvalid(f"the network has more than {max_params:,} weights ({total:,} up to layer "
                              f"{index}, {entry.type})", field="layers")
        rows.append({"index": index, "type": entry.type, "output_shape": shape, "params": params})
    if output_units is not None and shape != [output_units]:
        raise SpecInvalid(_output_mismatch(spec, shape, output_units), len(layers) - 1,
                          "units" if isinstance(layers[-1], Dense) and len(shape) == 1 else "type")
    # One validation of the whole list: pydantic's compiled validator builds the rows about twice
    # as fast as LayerShape(...) one by one, and faster still than model_construct.
    return _ROWS.validate_python(rows)


def default_loss(spec: ModelSpec, *, classes: bool, output_units: int) -> Loss:
    """The loss a spec with ``loss: null`` trains with.

    Classes (one-hot targets) take categorical cross-entropy, or binary cross-entropy for a
    single sigmoid unit (yes/no); numbers take mean squared error.
    """
    if not classes:
        return "mean_squared_error"
    if output_units == 1 and last_activation(spec) == "sigmoid":
        return "binary_crossentropy"
    return "categorical_crossentropy"


def default_metrics(classes: bool) -> list[MetricName]:
    """What a spec with no metrics reports besides its loss."""
    return ["accuracy"] if classes else ["mean_absolute_error"]


def last_activation(spec: ModelSpec) -> str:
    """The activation the network's output comes out of ("linear" when none is set)."""
    for entry in reversed(spec.layers):
        if isinstance(entry, Dense | Conv2D | Conv1D | ActivationLayer):
            return entry.layer.activation
    return "linear"


def format_shape(shape: Sequence[int | None]) -> str:
    """``13×13×8``; an open size shows as ``?``."""
    return "×".join("?" if n is None else str(n) for n in shape)


def summary_rows(shapes: Sequence[LayerShape]) -> list[tuple[str, str, str]]:
    """(layer, output shape, weights) per layer and a total row, as ``model.summary()`` lists them."""
    rows = [(f"{s.index} {s.type}", format_shape(s.output_shape), "?" if s.params is None else f"{s.params:,}")
            for s in shapes]
    known = sum(s.params or 0 for s in shapes)
    open_ = any(s.params is None for s in shapes)
    rows.append(("total", "", f"{known:,}" + (" + ?" if open_ else "")))
    return rows


# --- the rules, one per layer type -----------------------------------------------------------

# Any: each rule takes its own entry class, and _RULES picks it by the entry's type.
Rule = Callable[[Any, Shape, int, "int | None"], tuple[Shape, int | None]]


def _input_shape(size: list[int] | None) -> Shape:
    if size is None:
        raise SpecInvalid("the spec has no input size: set size, or shape it to a dataset", field="size")
    if not size or any(not isinstance(n, int) or n < 1 for n in size):
        raise SpecInvalid(f"the input size {size} must be one or more whole numbers of at least 1", field="size")
    return list(size)


def _pair(value: int | list[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def _side(n: int | None, k: int, s: int, padding: str) -> int | None:
    # Keras: floor((n - k) / s) + 1 for valid, ceil(n / s) for same (no dilation in specs).
    if n is None:
        return None
    return (n - k) // s + 1 if padding == "valid" else -(-n // s)


def _need_rank(shape: Shape, rank: int, index: int, layer_type: str) -> None:
    if len(shape) != rank:
        what = "height × width × channels" if rank == 3 else "steps × channels"
        got = f"a vector of {format_shape(shape)}" if len(shape) == 1 else format_shape(shape)
        raise SpecInvalid(f"{layer_type} needs an input of {what}, not {got}", index, "type")


def _need_known(n: int | None, index: int, layer_type: str) -> int:
    # Only the last axis is ever open (Dense units null writes it), and weights depend on it.
    if n is None:
        raise SpecInvalid(f"{layer_type}'s weights depend on the output size, which is open until the model "
                          "is shaped to a dataset: move it before the Dense with units null", index, "type")
    return n


def _too_large(field: str, kernel: tuple[int, ...], inputs: Shape, index: int) -> SpecInvalid:
    k = str(kernel[0]) if len(set(kernel)) == 1 else "×".join(map(str, kernel))
    return SpecInvalid(f"{field} {k} is larger than its input {format_shape(inputs)}: use padding \"same\" "
                       "or a smaller one", index, field)


def _conv2d(entry: Conv2D, shape: Shape, index: int, _units: int | None) -> tuple[Shape, int]:
    p = entry.layer
    _need_rank(shape, 3, index, entry.type)
    kernel, strides = _pair(p.kernel_size), _pair(p.strides)
    h, w = (_side(shape[a], kernel[a], strides[a], p.padding) for a in (0, 1))
    if (h is not None and h <= 0) or (w is not None and w <= 0):
        raise _too_large("kernel_size", kernel, shape[:2], index)
    channels = _need_known(shape[2], index, entry.type)
    return [h, w, p.filters], kernel[0] * kernel[1] * channels * p.filters + p.filters


def _conv1d(entry: Conv1D, shape: Shape, index: int, _units: int | None) -> tuple[Shape, int]:
    p = entry.layer
    _need_rank(shape, 2, index, entry.type)
    steps = _side(shape[0], p.kernel_size, p.strides, p.padding)
    if steps is not None and steps <= 0:
        raise _too_large("kernel_size", (p.kernel_size,), shape[:1], index)
    channels = _need_known(shape[1], index, entry.type)
    return [steps, p.filters], p.kernel_size * channels * p.filters + p.filters


def _pooling(entry: MaxPooling2D | AveragePooling2D, shape: Shape, index: int,
             _units: int | None) -> tuple[Shape, int]:
    p = entry.layer
    _need_rank(shape, 3, index, entry.type)
    pool = _pair(p.pool_size)
    strides = pool if p.strides is None else _pair(p.strides)
    h, w = (_side(shape[a], pool[a], strides[a], p.padding) for a in (0, 1))
    if (h is not None and h <= 0) or (w is not None and w <= 0):
        raise _too_large("pool_size", pool, shape[:2], index)
    return [h, w, shape[2]], 0


def _global_pooling(entry: GlobalAveragePooling2D | GlobalMaxPooling2D, shape: Shape, index: int,
                    _units: int | None) -> tuple[Shape, int]:
    _need_rank(shape, 3, index, entry.type)
    return [shape[2]], 0


def _flatten(entry: object, shape: Shape, index: int, _units: int | None) -> tuple[Shape, int]:
    return [None if None in shape else prod(n for n in shape if n is not None)], 0


def _batch_normalization(entry: object, shape: Shape, index: int, _units: int | None) -> tuple[Shape, int]:
    # gamma, beta, and the moving mean and variance (not trainable, but summary() counts them).
    return shape, 4 * _need_known(shape[-1], index, "BatchNormalization")


def _same(entry: object, shape: Shape, index: int, _units: int | None) -> tuple[Shape, int]:
    return shape, 0


def _dense(entry: Dense, shape: Shape, index: int, output_units: int | None) -> tuple[Shape, int | None]:
    units = entry.layer.units if entry.layer.units is not None else output_units
    # Keras applies a Dense to the last axis of an N-D input, keeping the others.
    inputs = _need_known(shape[-1], index, entry.type)
    return [*shape[:-1], units], None if units is None else inputs * units + units


_RULES: dict[str, Rule] = {
    "Conv2D": _conv2d, "Conv1D": _conv1d, "MaxPooling2D": _pooling, "AveragePooling2D": _pooling,
    "GlobalAveragePooling2D": _global_pooling, "GlobalMaxPooling2D": _global_pooling, "Flatten": _flatten,
    "BatchNormalization": _batch_normalization, "Dropout": _same, "Dense": _dense, "Activation": _same,
    "Rescaling": _same,
}


def _output_mismatch(spec: ModelSpec, shape: Shape, output_units: int) -> str:
    if len(shape) != 1:
        return (f"the network outputs {format_shape(shape)}, not a vector of {output_units}: add Flatten or "
                "GlobalAveragePooling2D before the last Dense")
    if isinstance(spec.layers[-1], Dense):
        return (f"the network outputs {format_shape(shape)} values, not the dataset's {output_units}: set the "
                "last Dense's units to null")
    return (f"the network outputs {format_shape(shape)} values, not the dataset's {output_units}: end it with a "
            "Dense with units null")


__all__ = ["MAX_LAYERS", "MAX_PARAMS", "default_loss", "default_metrics", "format_shape", "infer",
           "last_activation", "summary_rows"]
