"""Model specs: a network as JSON, in WebML's shape, validated with its shapes without TensorFlow.

A spec is what a user without training code designs: an input size, an ordered list of
layers ``{"type": "Conv2D", "layer": {…parameters…}}``, an optimizer, a loss and metrics.
The models here check each layer's parameters (types, ranges, fixed lists);
:func:`fitwire.contract.spec_shapes.infer` then computes every layer's output shape and
parameter count in order, as Keras would, and refuses a spec that cannot be built, naming
the layer index and the field. The webhook validates with these before it stores a spec
or queues a training; the agent builds the Keras model from the same spec.

``Dense.units`` may be ``null``: "the dataset's output size" (the class count of an images
dataset, the one-hot width of the chosen output columns of a CSV one), filled in when the
model is shaped to a dataset.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from fitwire.contract.errors import FitwireError

Activation = Literal["linear", "relu", "sigmoid", "softmax", "tanh", "elu", "selu", "softplus", "softsign", "gelu",
                     "swish", "relu6", "leaky_relu", "hard_sigmoid", "exponential"]
Optimizer = Literal["adam", "sgd", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "adamw"]
Loss = Literal["categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy",
               "mean_squared_error", "mean_absolute_error", "mean_squared_logarithmic_error", "huber",
               "kl_divergence", "poisson"]
MetricName = Literal["accuracy", "categorical_accuracy", "binary_accuracy", "top_k_categorical_accuracy",
                     "mean_squared_error", "mean_absolute_error", "auc", "precision", "recall"]
Padding = Literal["valid", "same"]
SpecFormat = Literal["images", "csv"]

KernelSide = Annotated[int, Field(ge=1, le=64)]
Kernel = KernelSide | Annotated[list[KernelSide], Field(min_length=2, max_length=2)]
"""One size for both axes, or [height, width]."""
PoolSide = Annotated[int, Field(ge=1, le=16)]
Pool = PoolSide | Annotated[list[PoolSide], Field(min_length=2, max_length=2)]
Stride = Pool


class SpecInvalid(FitwireError, ValueError):
    """A spec that cannot be built; ``index`` (0-based) and ``field`` name where, when known."""

    def __init__(self, message: str, index: int | None = None, field: str | None = None) -> None:
        where = "" if index is None else f"layer {index}" + (f" ({field})" if field else "") + ": "
        super().__init__(where + message)
        self.message = message
        self.index = index
        self.field = field


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Conv2DParams(Params):
    filters: int = Field(ge=1, le=1024)
    kernel_size: Kernel = 3
    strides: Stride = 1
    padding: Padding = "valid"
    activation: Activation = "linear"


class Conv1DParams(Params):
    filters: int = Field(ge=1, le=1024)
    kernel_size: int = Field(3, ge=1, le=64)
    strides: int = Field(1, ge=1, le=16)
    padding: Padding = "valid"
    activation: Activation = "linear"


class PoolingParams(Params):
    pool_size: Pool = 2
    strides: Stride | None = None
    """None: the pool size, as in Keras."""
    padding: Padding = "valid"


class NoParams(Params):
    pass


class BatchNormalizationParams(Params):
    momentum: float = Field(0.99, ge=0.0, le=1.0)
    epsilon: float = Field(0.001, gt=0.0, le=1.0)


class DropoutParams(Params):
    rate: float = Field(ge=0.0, lt=1.0)


class DenseParams(Params):
    units: int | None = Field(ge=1, le=65536)
    """None: the dataset's output size."""
    activation: Activation = "linear"


class ActivationParams(Params):
    activation: Activation


class RescalingParams(Params):
    scale: float = Field(1 / 255, ge=-1e6, le=1e6)
    offset: float = Field(0.0, ge=-1e6, le=1e6)


class LayerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Conv2D(LayerEntry):
    type: Literal["Conv2D"]
    layer: Conv2DParams


class Conv1D(LayerEntry):
    type: Literal["Conv1D"]
    layer: Conv1DParams


class MaxPooling2D(LayerEntry):
    type: Literal["MaxPooling2D"]
    layer: PoolingParams = Field(default_factory=PoolingParams)


class AveragePooling2D(LayerEntry):
    type: Literal["AveragePooling2D"]
    layer: PoolingParams = Field(default_factory=PoolingParams)


class GlobalAveragePooling2D(LayerEntry):
    type: Literal["GlobalAveragePooling2D"]
    layer: NoParams = Field(default_factory=NoParams)


class GlobalMaxPooling2D(LayerEntry):
    type: Literal["GlobalMaxPooling2D"]
    layer: NoParams = Field(default_factory=NoParams)


class Flatten(LayerEntry):
    type: Literal["Flatten"]
    layer: NoParams = Field(default_factory=NoParams)


class BatchNormalization(LayerEntry):
    type: Literal["BatchNormalization"]
    layer: BatchNormalizationParams = Field(default_factory=lambda: BatchNormalizationParams.model_validate({}))


class Dropout(LayerEntry):
    type: Literal["Dropout"]
    layer: DropoutParams


class Dense(LayerEntry):
    type: Literal["Dense"]
    layer: DenseParams


class ActivationLayer(LayerEntry):
    type: Literal["Activation"]
    layer: ActivationParams


class Rescaling(LayerEntry):
    type: Literal["Rescaling"]
    layer: RescalingParams = Field(default_factory=lambda: RescalingParams.model_validate({}))


Layer = Annotated[
    Conv2D | Conv1D | MaxPooling2D | AveragePooling2D | GlobalAveragePooling2D | GlobalMaxPooling2D | Flatten
    | BatchNormalization | Dropout | Dense | ActivationLayer | Rescaling,
    Field(discriminator="type"),
]
LAYER_TYPES: tuple[str, ...] = ("Conv2D", "Conv1D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
                                "GlobalMaxPooling2D", "Flatten", "BatchNormalization", "Dropout", "Dense",
                                "Activation", "Rescaling")


class ModelSpec(BaseModel):
    """A network as JSON (WebML's model document)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: SpecFormat
    size: list[Annotated[int, Field(ge=1, le=65536)]] | None = Field(
        None, min_length=1, max_length=3,
        description="The input shape: [height, width, channels] for images, [features] for csv (or "
                    "[steps, channels] before a Conv1D); null until the model is shaped to a dataset.")
    layers: list[Layer] = Field(min_length=1)
    optimizer: Optimizer = "adam"
    learning_rate: float | None = Field(None, gt=0.0, le=10.0)
    loss: Loss | None = Field(None, description="null: the default for the format and the output "
                                                "(categorical cross-entropy for classes, MSE for numbers).")
    metrics: list[MetricName] = Field(default_factory=list)


class LayerShape(BaseModel):
    """One row of a validated spec: what the layer outputs and how many weights it has."""

    model_config = ConfigDict(frozen=True)

    index: int
    type: str
    output_shape: list[int | None] = Field(description="Without the batch axis; None where the size is open "
                                                       "(a dynamic spec's output units).")
    params: int | None = Field(description="Weights (trainable and not), as Keras's summary counts them; None "
                                           "for a Dense with units null before the model is shaped (its count "
                                           "depends on the open output size).")




# --- training a spec: what a job carries -----------------------------------------------------


class Augmentation(BaseModel):
    """Random changes to training images (never to validation), WebML's options and ranges."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shear: float = Field(0.0, ge=0.0, le=1.0, description="Shear intensity, a fraction of the image (0–1).")
    zoom: float = Field(0.0, ge=0.0, le=1.0, description="Zoom in or out by up to this fraction (0–1).")
    rotation: float = Field(0.0, ge=0.0, le=180.0, description="Rotate by up to this many degrees (0–180).")
    horizontal_flip: bool = False


class SpecTraining(BaseModel):
    """What an agent needs to train a spec (``JobSpec.train_spec``); the webhook fills it from the
    shaped model, so it is complete and valid when a job is queued."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    network: ModelSpec = Field(description="The spec, shaped: its size is the input shape.")
    output_units: int = Field(ge=1, description="What a Dense with units null outputs.")
    inputs: list[str] = Field(default_factory=list, description="CSV: the input columns, in order.")
    outputs: list[str] = Field(default_factory=list, description="CSV: the output columns, in order.")
    augmentation: Augmentation | None = None
    initial_weights: str | None = Field(None, description="Artifact key of a trained model to start from "
                                                           "(retraining).")
    output_key: str = Field(description="Artifact key the trained model (.keras) is stored under.")


__all__ = ["LAYER_TYPES", "Activation", "Augmentation", "Layer", "LayerShape", "Loss", "MetricName", "ModelSpec",
           "Optimizer", "SpecInvalid", "SpecTraining"]
