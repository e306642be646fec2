"""The HTTP API's request bodies: what the webhook accepts, and what a client sends.

Each body refuses unknown fields and wrong types (strict), so a mistake is a 400 naming
the field and nothing is stored; ``/openapi.json`` publishes these very models. What the
API answers is the entities (``fitwire.contract.entities``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fitwire.contract.enums import JobState
from fitwire.contract.messages import MAX_GPU_MEMORY_MB, MAX_GPUS
from fitwire.contract.specs import Augmentation, ModelSpec

# Usernames are the first part of routing keys (``<owner>.<model_key>.<run_id>``): no dots, no wildcards.
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{2,32}$")]
Password = Annotated[str, StringConstraints(min_length=8, max_length=1024)]
# Printable, no control characters (PostgreSQL refuses NUL; terminals choke on the rest), and at
# least one character that is not whitespace: the server strips names, and the pattern says so to
# clients reading /openapi.json (a name of only "\u00a0" is refused by both).
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200,
                                        pattern=r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$")]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Run ids, model keys, job ids, pools, artifact names: routing-key safe."""
Pool = Annotated[str, StringConstraints(pattern=ID_PATTERN.pattern)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SignupBody(Body):
    username: Username
    password: Password
    display_name: DisplayName = ""
    invitation: str | None = Field(None, max_length=200)


class LoginBody(Body):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class ProfileBody(Body):
    display_name: DisplayName


class PasswordBody(Body):
    old_password: str = Field(max_length=1024)
    new_password: Password


class ModelBody(Body):
    name: Name


class NodeBody(Body):
    name: Name


class SubmitBody(Body):
    pool: Pool = "default"
    spec: dict[str, Any]
    bundle_source: str | None = None
    bundle_name: str = "job_bundle.py"


class ClaimBody(Body):
    node_id: str | None = None
    """Ignored: the job runs on the node whose token claims it."""
    delivery: int = Field(0, ge=0, le=1_000_000)
    """The job message's ``x-delivery-count`` (0 for its first delivery)."""


class StateBody(Body):
    state: JobState
    reason: str | None = None
    node_id: str | None = None


class DatasetPatch(Body):
    public: bool = Field(description="Publish (admins): every user may then see and train on the dataset.")


class ValidateBody(Body):
    spec: ModelSpec
    input_shape: list[int] | None = Field(None, description="Instead of the spec's size.")
    output_units: int | None = Field(None, ge=1, description="What a Dense with units null outputs.")


class ShapeBody(Body):
    dataset: str = Field(max_length=64, description="The dataset's name (yours or a public one).")
    inputs: list[str] = Field(default_factory=list, description="CSV: the input columns.")
    outputs: list[str] = Field(default_factory=list, description="CSV: the output columns (a column may be an "
                                                                 "input too, as in an autoencoder).")
    name: Name | None = Field(None, description="Shape as a new model of this name; else this model.")


class CloneBody(Body):
    name: Name


class TrainBody(Body):
    epochs: int = Field(1, ge=1, le=100_000)
    batch_size: int = Field(32, ge=1, le=1_000_000)
    augmentation: Augmentation | None = Field(None, description="Images only.")
    pool: Pool = "default"
    gpus: int = Field(0, ge=0, le=MAX_GPUS)
    gpu_memory_mb: int = Field(0, ge=0, le=MAX_GPU_MEMORY_MB)
    from_run: str | None = Field(None, max_length=64, description="Retrain from this run's trained model.")
