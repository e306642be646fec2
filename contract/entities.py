"""What the webhook stores and the HTTP API returns, one model each.

The stores take and return these, and the API answers them; a few answers are an entity and
more (:class:`Session`, :class:`Login`, :class:`ListedNode`, :class:`ListedTrained`). The API's
JSON is their ``model_dump`` (fields marked ``exclude`` are the store's own and never leave it:
an entity read from the API holds their defaults) and :func:`parse` reads it back;
``/openapi.json`` and ``docs/http-api.md`` list their fields (tests keep both equal to them). A
field added here reaches every store, the API and ``--json`` at once (a SQL store also needs its
column: a migration).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, computed_field

from fitwire.contract.datasets import CsvInfo, DatasetFormat, ImagesInfo
from fitwire.contract.enums import JobState, RunStatus
from fitwire.contract.messages import EpochEnd, EpochRecord, Logs
from fitwire.contract.specs import ModelSpec

ModelState = Literal["dynamic", "shaped", "editable", "static"]
"""WebML's states of a designed model: *dynamic* (no dataset; its output size open), *shaped* to a
dataset, *editable* (edited after shaping, or a clone), *static* once trained (its layers frozen;
editable again only when its trained models are deleted)."""


class Entity(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")


class User(Entity):
    id: str
    username: str
    display_name: str
    is_admin: bool
    created_at: datetime


class Token(Entity):
    user_id: str
    expires_at: datetime


class Invitation(Entity):
    created_by: str
    expires_at: datetime


class TrainedModel(Entity):
    """A trained model (``.keras``) of a designed model: the outcome of one training run."""

    run_id: str
    job_id: str
    created_at: datetime
    size: int = Field(description="Bytes of the .keras file.")


class Design(Entity):
    """A model's network spec (``fitwire.contract.specs.ModelSpec``) and what it is shaped to."""

    spec: ModelSpec
    state: ModelState
    dataset_id: str | None = None
    dataset_name: str | None = None
    inputs: list[str] = Field(default_factory=list, description="CSV: the input columns, in order.")
    outputs: list[str] = Field(default_factory=list, description="CSV: the output columns, in order.")
    output_units: int | None = Field(None, description="What a Dense with units null outputs: the class count, "
                                                       "or the outputs' width; null while dynamic.")
    trained: list[TrainedModel] = Field(default_factory=list)


class Model(Entity):
    key: str
    name: str
    owner: str = Field(description="The owner's username (the first part of the model's routing keys).")
    created_at: datetime
    runs: int = Field(description="How many runs the model has now (deleted runs do not count; "
                                  "their numbers are not reused).")
    design: Design | None = Field(None, description="The network spec a model designed as JSON carries; null "
                                                    "for a model tracked from the user's own script.")


class RunStart(Entity):
    """What a ``train_begin`` says about a new run."""

    run_id: str
    model_key: str
    started_at: datetime
    params: dict[str, Any] = Field(default_factory=dict)
    epochs: int | None = None
    steps: int | None = None
    host: str = ""
    framework: str = ""
    framework_version: str = ""


class Run(Entity):
    run_id: str
    model_key: str
    owner: str
    number: int
    status: RunStatus
    reason: str | None
    params: dict[str, Any]
    epochs: int | None
    steps: int | None
    host: str
    framework: str
    framework_version: str
    started_at: datetime
    ended_at: datetime | None
    final_logs: Logs

    @computed_field  # type: ignore[prop-decorator]
    @property
    def name(self) -> str:
        """DL-Tracker's training name: ``training_001``, ``training_002``, …"""
        return f"training_{self.number:03d}"


class Epoch(EpochRecord):
    """A stored epoch of a run: every field of ``epoch_end``'s record, and where and when."""

    run_id: str
    ended_at: datetime = Field(description="When the epoch ended: its ``epoch_end`` message's ``ts``.")

    @classmethod
    def of(cls, event: EpochEnd, ended_at: datetime) -> Epoch:
        return cls(run_id=event.run_id, ended_at=ended_at,
                   **{name: getattr(event, name) for name in EpochRecord.model_fields})


class RunState(Entity):
    """Everything a client joining mid-run needs to draw at once."""

    run: Run
    epochs: list[Epoch]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def last_epoch(self) -> Epoch | None:
        return self.epochs[-1] if self.epochs else None


class Job(Entity):
    """A training job (``fitwire.contract.Job`` on the wire) and where it stands."""

    job_id: str
    run_id: str
    pool: str
    owner: str = Field(description="The owner's username.")
    owner_id: str = Field("", exclude=True)
    """The owner's user id: the store's own ("" in a job read from the API)."""
    model_key: str
    state: JobState
    reason: str | None
    node_id: str | None
    spec: dict[str, Any] = Field(description="The job's JobSpec (validated when it was submitted).")
    created_at: datetime
    updated_at: datetime
    claimed_delivery: int | None = Field(None, exclude=True)
    """The broker delivery (``x-delivery-count``, 0 for the first) the job's current claim was for;
    None until claimed. A redelivery after its agent died may claim it again, a second claim of
    the same delivery may not."""


class Node(Entity):
    """A trainer node (an agent's machine) and its last report."""

    node_id: str
    name: str
    created_by: str = Field("", exclude=True)
    """The id of the admin who created the node: the store's own ("" in a node read from the API)."""
    created_at: datetime
    last_seen: datetime | None
    agent_version: str
    protocol_version: int | None
    telemetry: dict[str, Any] | None
    pools: tuple[str, ...] = ()
    """The pools the agent said hello with: the only job queues the broker lets it consume."""
    revoked_at: datetime | None = None
    """When an admin revoked the node's token; a revoked node is refused on HTTP and on the broker."""


class Dataset(Entity):
    """An uploaded dataset: a CSV table or an images zip, stored once by content hash, and what
    inspecting it found."""

    dataset_id: str
    name: str
    owner: str = Field(description="The owner's username.")
    owner_id: str = Field("", exclude=True)
    """The owner's user id: the store's own ("" in a dataset read from the API)."""
    public: bool = Field(description="Every user may see and train on a public dataset; admins publish.")
    format: DatasetFormat
    size: int = Field(description="Bytes of the uploaded file.")
    sha256: str = Field(description="The uploaded file's SHA-256 (hex): agents cache datasets by it.")
    created_at: datetime
    info: CsvInfo | ImagesInfo = Field(description="CsvInfo for a csv dataset, ImagesInfo for images.")


# --- answers that are an entity and more ---------------------------------------------------------


class Session(Entity):
    """``GET /api/v1/session``: who the token is, and the broker to use with it."""

    user: User
    amqp_url: str | None = Field(None, description="The broker with the caller's own login (the token of the "
                                                   "request as its password), or the shared developer broker.")
    protocol_versions: list[int] = Field(default_factory=list, description="The wire-contract versions accepted.")
    stomp_url: str | None = Field(None, description="Web STOMP for browsers, with the login of amqp_url.")


class Login(Entity):
    """``POST /api/v1/auth/login``: a new API token and whose it is."""

    token: str
    expires_at: datetime
    user: User


class ListedNode(Node):
    """A node as the API shows it: the entity and when its token lapses (a setting, not stored)."""

    token_expires_at: datetime

    @classmethod
    def of(cls, node: Node, token_expires_at: datetime) -> ListedNode:
        return cls(token_expires_at=token_expires_at, **{name: getattr(node, name) for name in Node.model_fields})


class ListedTrained(TrainedModel):
    """A trained model as ``GET …/trained`` lists it: the entity and its run's final metrics
    (empty once its run is deleted: the trained model stays until deleted itself)."""

    metrics: Logs = Field(default_factory=dict)

    @classmethod
    def of(cls, trained: TrainedModel, metrics: Logs) -> ListedTrained:
        return cls(metrics=metrics, **{name: getattr(trained, name) for name in TrainedModel.model_fields})


E = TypeVar("E", bound=BaseModel)


def parse(entity: type[E], data: Any) -> E:
    """``entity`` from the API's JSON (:func:`dump`): the one way a client reads an answer.

    Computed fields (``Run.name``, ``RunState.last_epoch``) are computed again, and a field this
    build does not know (a newer server's) is ignored rather than refused; non-finite metrics come
    back from the wire's ``"NaN"``/``"Infinity"`` strings as floats; the store's own fields
    (``exclude``) keep their defaults.

    Raises:
        pydantic.ValidationError: ``data`` is not the entity (a field missing or of the wrong type).
    """
    return entity.model_validate(data, extra="ignore")


def dump(entity: BaseModel) -> Any:
    """``entity`` as the API's JSON shows it: every field but the store's own, computed ones too,
    times in ISO 8601, non-finite numbers as the wire's strings (what ``--json`` prints)."""
    return json.loads(entity.model_dump_json())


__all__ = ["Dataset", "Design", "Epoch", "Invitation", "Job", "ListedNode", "ListedTrained", "Login", "Model", "Node", "Run",
           "RunStart", "RunState", "Session", "Token", "TrainedModel", "User", "dump", "parse"]
