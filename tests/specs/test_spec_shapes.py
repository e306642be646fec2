"""``infer``: every rule by example, then against Keras itself on random specs."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fitwire.contract.spec_shapes import default_loss, default_metrics, infer, summary_rows
from fitwire.contract.specs import LAYER_TYPES, ModelSpec, SpecInvalid

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def make(*layers: tuple[str, dict[str, Any]] | str, size: list[int] | None = None,
         fmt: str = "images") -> ModelSpec:
    """A spec from ``("Conv2D", {...})`` pairs, or bare type names for layers without parameters."""
    entries = [{"type": layer} if isinstance(layer, str) else {"type": layer[0], "layer": layer[1]}
               for layer in layers]
    return ModelSpec.model_validate({"format": fmt, "size": size, "layers": entries})


def shapes(spec: ModelSpec, **kwargs: Any) -> list[tuple[list[int | None], int | None]]:
    return [(row.output_shape, row.params) for row in infer(spec, **kwargs)]


def refused(spec: ModelSpec, **kwargs: Any) -> SpecInvalid:
    with pytest.raises(SpecInvalid) as caught:
        infer(spec, **kwargs)
    return caught.value


# --- the rules -----------------------------------------------------------------------------


def test_conv2d_valid_and_same_padding_with_strides() -> None:
    spec = make(("Conv2D", {"filters": 8, "kernel_size": 3}),
                ("Conv2D", {"filters": 4, "kernel_size": [5, 3], "strides": [2, 1], "padding": "same"}),
                ("Conv2D", {"filters": 2, "kernel_size": 2, "strides": 3}), size=[28, 28, 3])
    assert shapes(spec) == [([26, 26, 8], 3 * 3 * 3 * 8 + 8), ([13, 26, 4], 5 * 3 * 8 * 4 + 4),
                            ([4, 9, 2], 2 * 2 * 4 * 2 + 2)]


def test_a_kernel_larger_than_its_input_is_refused_naming_layer_and_field() -> None:
    spec = make(("Conv2D", {"filters": 8}), ("MaxPooling2D", {"pool_size": 2}),
                ("Conv2D", {"filters": 8, "kernel_size": 5}), size=[7, 7, 1])
    error = refused(spec)
    assert (error.index, error.field) == (2, "kernel_size")
    assert "kernel_size 5 is larger than its input 2×2" in str(error)
    assert str(error).startswith("layer 2 (kernel_size): ")
    # "same" keeps every size: the same kernel then fits.
    same = make(("Conv2D", {"filters": 8, "kernel_size": 5, "padding": "same"}), size=[2, 2, 1])
    assert shapes(same) == [([2, 2, 8], 5 * 5 * 1 * 8 + 8)]


def test_pooling_strides_default_to_the_pool_size() -> None:
    spec = make(("MaxPooling2D", {"pool_size": 3}), ("AveragePooling2D", {"pool_size": [2, 1], "strides": 1}),
                ("MaxPooling2D", {"pool_size": 2, "padding": "same"}), "AveragePooling2D", size=[32, 20, 3])
    assert shapes(spec) == [([10, 6, 3], 0), ([9, 6, 3], 0), ([5, 3, 3], 0), ([2, 1, 3], 0)]


def test_a_pool_larger_than_its_input_is_refused() -> None:
    error = refused(make(("AveragePooling2D", {"pool_size": [4, 2]}), size=[3, 8, 1]))
    assert (error.index, error.field) == (0, "pool_size")
    assert "pool_size 4×2 is larger than its input 3×8" in error.message


@pytest.mark.parametrize("layer", ["MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
                                   "GlobalMaxPooling2D", ("Conv2D", {"filters": 2})])
def test_image_layers_need_height_width_channels(layer: Any) -> None:
    error = refused(make("Flatten", layer, size=[8, 8, 1]))
    assert (error.index, error.field) == (1, "type")
    assert "needs an input of height × width × channels, not a vector of 64" in error.message


def test_conv1d_needs_steps_and_channels() -> None:
    spec = make(("Conv1D", {"filters": 6, "kernel_size": 5, "strides": 2}),
                ("Conv1D", {"filters": 3, "padding": "same", "strides": 4}), size=[50, 2], fmt="csv")
    assert shapes(spec) == [([23, 6], 5 * 2 * 6 + 6), ([6, 3], 3 * 6 * 3 + 3)]
    error = refused(make(("Conv1D", {"filters": 2}), size=[8, 8, 1]))
    assert (error.index, error.field) == (0, "type")
    assert "steps × channels" in error.message
    error = refused(make(("Conv1D", {"filters": 2, "kernel_size": 9}), size=[8, 1], fmt="csv"))
    assert (error.index, error.field, error.message.split(":")[0]) == (
        0, "kernel_size", "kernel_size 9 is larger than its input 8")


def test_global_pooling_flatten_batch_normalization_and_shape_keeping_layers() -> None:
    spec = make("Rescaling", ("Conv2D", {"filters": 4}), "BatchNormalization", ("Dropout", {"rate": 0.5}),
                ("Activation", {"activation": "relu"}), "Flatten", "BatchNormalization", size=[6, 5, 3])
    assert shapes(spec) == [([6, 5, 3], 0), ([4, 3, 4], 3 * 3 * 3 * 4 + 4), ([4, 3, 4], 16), ([4, 3, 4], 0),
                            ([4, 3, 4], 0), ([48], 0), ([48], 4 * 48)]
    assert shapes(make("GlobalMaxPooling2D", size=[6, 5, 3])) == [([3], 0)]


def test_dense_applies_to_the_last_axis() -> None:
    spec = make(("Dense", {"units": 7}), ("Dense", {"units": 2}), size=[4, 5, 3])
    assert shapes(spec) == [([4, 5, 7], 3 * 7 + 7), ([4, 5, 2], 7 * 2 + 2)]


def test_units_null_is_the_output_size_or_open() -> None:
    spec = make(("Dense", {"units": 16, "activation": "relu"}), ("Dense", {"units": None}),
                ("Activation", {"activation": "softmax"}), size=[12], fmt="csv")
    assert shapes(spec, output_units=3) == [([16], 12 * 16 + 16), ([3], 16 * 3 + 3), ([3], 0)]
    # Not shaped to a dataset yet: the size and the Dense's weights are open.
    assert shapes(spec) == [([16], 12 * 16 + 16), ([None], None), ([None], 0)]
    assert summary_rows(infer(spec))[-1] == ("total", "", "208 + ?")


def test_units_null_only_on_the_last_dense() -> None:
    spec = make(("Dense", {"units": None}), ("Dense", {"units": 4}), size=[12], fmt="csv")
    error = refused(spec, output_units=4)
    assert (error.index, error.field) == (0, "units")
    assert "only on the last Dense layer, which is layer 1" in error.message


def test_weights_on_an_open_size_are_refused_until_shaped() -> None:
    spec = make(("Dense", {"units": None}), "BatchNormalization", size=[12], fmt="csv")
    error = refused(spec)
    assert (error.index, error.field) == (1, "type")
    assert shapes(spec, output_units=2) == [([2], 26), ([2], 8)]


def test_the_output_must_be_a_vector_of_the_output_units() -> None:
    spec = make(("Conv2D", {"filters": 8}), ("MaxPooling2D", {}), ("Dense", {"units": None}), size=[28, 28, 1])
    error = refused(spec, output_units=10)
    assert (error.index, error.field) == (2, "type")
    assert error.message == ("the network outputs 13×13×10, not a vector of 10: add Flatten or "
                             "GlobalAveragePooling2D before the last Dense")
    wrong_width = make("Flatten", ("Dense", {"units": 5}), size=[4, 4, 1])
    error = refused(wrong_width, output_units=10)
    assert (error.index, error.field) == (1, "units")
    assert "outputs 5 values, not the dataset's 10" in error.message
    assert shapes(wrong_width, output_units=5)[-1] == ([5], 16 * 5 + 5)


def test_input_size_is_required_and_positive() -> None:
    spec = make(("Dense", {"units": 2}), fmt="csv")
    error = refused(spec)
    assert (error.index, error.field) == (None, "size")
    assert error.message.startswith("the spec has no input size")
    assert (refused(spec, input_shape=[3, 0]).field, refused(spec, input_shape=[]).field) == ("size", "size")
    # The dataset's input shape wins over the spec's own size.
    assert shapes(make(("Dense", {"units": 2}), size=[5], fmt="csv"), input_shape=[3]) == [([2], 8)]


def test_too_many_layers_or_weights_are_refused() -> None:
    spec = make(*[("Dense", {"units": 8})] * 5, size=[8], fmt="csv")
    assert refused(spec, max_layers=4).field == "layers"
    error = refused(spec, max_params=4 * 72)
    assert (error.index, error.field) == (None, "layers")
    assert "more than 288 weights (360 up to layer 4, Dense)" in error.message
    assert len(infer(spec, max_layers=5, max_params=5 * 72)) == 5


def test_default_loss_and_metrics() -> None:
    softmax = make(("Dense", {"units": None, "activation": "softmax"}), size=[4], fmt="csv")
    sigmoid = make(("Dense", {"units": None}), ("Activation", {"activation": "sigmoid"}), ("Dropout", {"rate": 0.1}),
                   size=[4], fmt="csv")
    assert default_loss(softmax, classes=True, output_units=3) == "categorical_crossentropy"
    assert default_loss(sigmoid, classes=True, output_units=1) == "binary_crossentropy"
    assert default_loss(sigmoid, classes=True, output_units=2) == "categorical_crossentropy"
    assert default_loss(softmax, classes=False, output_units=1) == "mean_squared_error"
    assert default_metrics(True) == ["accuracy"]
    assert default_metrics(False) == ["mean_absolute_error"]


def test_summary_rows() -> None:
    spec = make(("Conv2D", {"filters": 8}), "Flatten", ("Dense", {"units": 10}), size=[28, 28, 1])
    assert summary_rows(infer(spec)) == [("0 Conv2D", "26×26×8", "80"), ("1 Flatten", "5408", "0"),
                                         ("2 Dense", "10", "54,090"), ("total", "", "54,170")]


def test_fast_well_under_a_millisecond_per_layer() -> None:
    layers: list[tuple[str, dict[str, Any]] | str] = []
    for _ in range(10):
        layers += [("Conv2D", {"filters": 16, "padding": "same"}), "BatchNormalization",
                   ("Activation", {"activation": "relu"}), ("Dropout", {"rate": 0.1}), ("Dense", {"units": 16})]
    spec = make(*layers, size=[64, 64, 3])
    timings = []
    for _ in range(50):
        began = time.perf_counter()
        infer(spec)
        timings.append(time.perf_counter() - began)
    # A loose bound so a loaded machine passes; the bench shows the real figure (a few µs).
    assert statistics.median(timings) / len(layers) < 200e-6


# --- against Keras --------------------------------------------------------------------------

# Layer types that take, and give, inputs of each rank (without the batch axis); the
# generator mostly picks from them so that most random specs are buildable.
# Convolutions and pools weigh double on images: they shrink them, so kernels and pools
# larger than what is left get drawn as well.
FITS = {3: ["Conv2D", "Conv2D", "MaxPooling2D", "MaxPooling2D", "AveragePooling2D", "AveragePooling2D",
            "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten", "BatchNormalization", "Dropout", "Dense", "Activation", "Rescaling"],
        2: ["Conv1D", "Flatten", "BatchNormalization", "Dropout", "Dense", "Activation", "Rescaling"],
        1: ["Flatten", "BatchNormalization", "Dropout", "Dense", "Activation", "Rescaling"]}
RANK_AFTER = {"Flatten": 1, "GlobalAveragePooling2D": 1, "GlobalMaxPooling2D": 1}

sides = st.integers(1, 9)
pairs = st.one_of(sides, st.lists(sides, min_size=2, max_size=2))
small = st.integers(1, 5)
small_pairs = st.one_of(small, st.lists(small, min_size=2, max_size=2))
padding = st.sampled_from(["valid", "same"])
activation = st.sampled_from(["linear", "relu", "sigmoid", "softmax", "tanh", "elu", "selu", "softplus",
                              "softsign", "gelu", "swish", "relu6", "leaky_relu", "hard_sigmoid",
                              "exponential"])


def params_of(draw: st.DrawFn, kind: str) -> dict[str, Any] | None:
    """Random parameters for one layer type (None: the layer's defaults)."""
    match kind:
        case "Conv2D":
            return {"filters": draw(st.integers(1, 6)), "kernel_size": draw(pairs), "strides": draw(small_pairs),
                    "padding": draw(padding), "activation": draw(activation)}
        case "Conv1D":
            return {"filters": draw(st.integers(1, 6)), "kernel_size": draw(sides), "strides": draw(small),
                    "padding": draw(padding), "activation": draw(activation)}
        case "MaxPooling2D" | "AveragePooling2D":
            return {"pool_size": draw(small_pairs), "strides": draw(st.none() | small_pairs),
                    "padding": draw(padding)}
        case "BatchNormalization":
            return {"momentum": draw(st.floats(0.5, 0.999)), "epsilon": draw(st.floats(1e-5, 0.1))}
        case "Dropout":
            return {"rate": draw(st.floats(0.0, 0.9))}
        case "Dense":
            return {"units": draw(st.none() | st.integers(1, 12)), "activation": draw(activation)}
        case "Activation":
            return {"activation": draw(activation)}
        case "Rescaling":
            return {"scale": draw(st.floats(-2.0, 2.0)), "offset": draw(st.floats(-1.0, 1.0))}
    return None


@st.composite
def random_specs(draw: st.DrawFn) -> tuple[ModelSpec, int]:
    """A spec of 1–7 random layers on a small input, and the output size for its units null."""
    rank = draw(st.sampled_from([3, 3, 2, 1]))
    if rank == 3:
        side = st.sampled_from([8, 9, 11, 16]) | st.integers(8, 64)
        size = [draw(side), draw(side), draw(st.integers(1, 3))]
    elif rank == 2:
        size = [draw(st.integers(8, 64)), draw(st.integers(1, 4))]
    else:
        size = [draw(st.integers(1, 64))]
    layers = []
    for _ in range(draw(st.sampled_from(range(1, 8)))):
        # One layer in five is any type at all, so refusals (and Keras's failures) are drawn too.
        kind = draw(st.sampled_from(LAYER_TYPES if draw(st.integers(0, 4)) == 0 else FITS.get(rank, FITS[1])))
        rank = RANK_AFTER.get(kind, rank)
        params = params_of(draw, kind)
        layers.append({"type": kind} if params is None else {"type": kind, "layer": params})
    if draw(st.booleans()):  # units null anywhere but on the last Dense must be refused too
        dense = [i for i, layer in enumerate(layers) if layer["type"] == "Dense"]
        if dense:
            layers[draw(st.sampled_from(dense))]["layer"]["units"] = None
    return ModelSpec.model_validate({"format": "images", "size": size, "layers": layers}), draw(st.integers(1, 12))


def keras_shapes(spec: ModelSpec, output_units: int) -> list[tuple[list[int | None], int]]:
    """Each layer's output shape and weights as Keras builds them; raises if Keras cannot."""
    import keras

    from fitwire.agent.spec_model import keras_layers

    assert spec.size is not None
    model = keras.Sequential([keras.Input(tuple(spec.size)), *keras_layers(spec, output_units)])
    return [(list(layer.output.shape[1:]), layer.count_params()) for layer in model.layers]


def filled(spec: ModelSpec, output_units: int) -> ModelSpec:
    """The spec with every units null set to ``output_units``, as shaping it to a dataset does."""
    data = spec.model_dump()
    for layer in data["layers"]:
        if layer["type"] == "Dense" and layer["layer"]["units"] is None:
            layer["layer"]["units"] = output_units
    return ModelSpec.model_validate(data)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(random_specs())
def test_infer_agrees_with_keras_on_every_layer(drawn: tuple[ModelSpec, int]) -> None:
    spec, output_units = drawn
    try:
        infer(spec)
    except SpecInvalid as refusal:
        if refusal.field == "units":
            event("refused: units null not on the last Dense")
            return  # a rule of specs, not of Keras: units null means the output layer
    concrete = filled(spec, output_units)
    try:
        ours = [(row.output_shape, row.params) for row in infer(concrete)]
    except SpecInvalid as refusal:
        try:
            built = keras_shapes(concrete, output_units)
        except Exception:  # noqa: BLE001 - any failure to build agrees with the refusal
            event(f"refused by both: {refusal.field}")
            return
        assert any(n is not None and n <= 0 for shape, _ in built for n in shape), (
            f"infer refused ({refusal}) what Keras builds: {built}")
        return
    event(f"built, {len(ours)} layers")
    assert ours == keras_shapes(concrete, output_units)
    # Shaped to a dataset of that output size, the spec is the same network, or it is refused
    # (on its last layer) because it does not end in a vector of exactly that size.
    if ours[-1][0] == [output_units]:
        assert [(row.output_shape, row.params) for row in infer(spec, output_units=output_units)] == ours
    else:
        mismatch = refused(spec, output_units=output_units)
        assert mismatch.index == len(spec.layers) - 1 and "the network outputs" in mismatch.message


@st.composite
def one_sliding_layer(draw: st.DrawFn) -> ModelSpec:
    """One convolution or pool on a tiny input (1–12), where kernels and pools often do not fit."""
    kind = draw(st.sampled_from(["Conv2D", "MaxPooling2D", "AveragePooling2D", "Conv1D"]))
    tiny = st.integers(1, 12)
    size = [draw(tiny), draw(st.integers(1, 3))] if kind == "Conv1D" else [draw(tiny), draw(tiny), 2]
    return ModelSpec.model_validate({"format": "images", "size": size,
                                     "layers": [{"type": kind, "layer": params_of(draw, kind)}]})


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(one_sliding_layer())
def test_output_sizes_and_their_refusals_agree_with_keras(spec: ModelSpec) -> None:
    try:
        ours = [(row.output_shape, row.params) for row in infer(spec)]
    except SpecInvalid as refusal:
        event("refused")
        assert refusal.index == 0 and refusal.field in ("kernel_size", "pool_size")
        with pytest.raises(ValueError, match="zero or negative"):
            keras_shapes(spec, 1)
        return
    event("built")
    assert ours == keras_shapes(spec, 1)
