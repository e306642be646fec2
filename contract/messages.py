"""Pydantic models of every message on the wire, and their one codec.

Every message is a JSON object with ``v`` (schema version) and ``type``; numbers
stay numbers. JSON has no NaN or infinity, so a non-finite metric is sent as the
string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` (what JavaScript's
``Number("NaN")`` and Python's ``float("NaN")`` both read back); ``decode``
turns them into floats again. Any body that is not a valid message raises
:class:`~fitwire.contract.errors.DecodeError`, and nothing else.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from fitwire.contract.enums import RunEnd, SignalAction
from fitwire.contract.errors import DecodeError
from fitwire.contract.specs import SpecTraining
from fitwire.contract.version import PROTOCOL_VERSION, SUPPORTED_VERSIONS

Metric = Annotated[float | None, WithJsonSchema(
    {"anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}, {"type": "null"}]}
)]
"""A metric value; JSON has no NaN or infinity, so those travel as strings (the schema says so)."""
Logs = dict[str, Metric]
"""Keras-style metric logs: name → number (NaN/inf allowed, None when unknown)."""


MAX_NAME_CHARS = 255
"""Longest name a message carries as free text (a signal's ``sender``); longer ones are cut."""
MAX_TEXT_CHARS = 2000
"""Longest free text a message carries (a run's end ``reason``, a signal ack's ``detail``); longer is cut."""
CUT_MARK = "…"


def cut_text(value: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``value`` cut to ``limit`` characters, the last one a ``…`` when something was cut."""
    return value if len(value) <= limit else value[: limit - len(CUT_MARK)] + CUT_MARK


# Cut, not refused: a long label must never cost a STOP or the record that ends a run.
Name = Annotated[str, AfterValidator(lambda v: cut_text(v, MAX_NAME_CHARS))]
Text = Annotated[str, AfterValidator(cut_text)]


def new_id() -> str:
    """A fresh id for runs, signals and jobs (32 hex digits, routing-key safe)."""
    return uuid.uuid4().hex


class Message(BaseModel):
    """Fields every message carries."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings", frozen=True)

    v: int = PROTOCOL_VERSION
    ts: float = Field(default_factory=time.time, description="Unix time the sender made it.")


# --- fitwire.progress -------------------------------------------------------------


class ProgressEvent(Message):
    """An event of one run; routed as ``<owner>.<model_key>.<run_id>``."""

    run_id: str
    model_key: str
    owner: str = ""
    seq: int = Field(0, description="Per-run counter, so a watcher can tell order and gaps.")


class TrainBegin(ProgressEvent):
    type: Literal["train_begin"] = "train_begin"
    params: dict[str, Any] = Field(default_factory=dict)
    epochs: int | None = None
    steps: int | None = Field(None, description="Batches per epoch, when known.")
    initial_epoch: int = 0
    host: str = ""
    framework: str = ""
    framework_version: str = ""


class EpochBegin(ProgressEvent):
    type: Literal["epoch_begin"] = "epoch_begin"
    epoch: int


class Batch(ProgressEvent):
    type: Literal["batch"] = "batch"
    epoch: int
    batch: int
    progress: float | None = Field(None, description="0..1 within the epoch; None when steps are unknown.")
    logs: Logs = Field(default_factory=dict)


class Batches(ProgressEvent):
    """Consecutive batches of one epoch in one message (batches ``first`` … ``first + count - 1``).

    What a Tracker sends when batches come faster than a watcher needs one
    message each: one publish and one wake-up per flush instead of per batch.
    ``seq`` is the first batch's; the others follow it without gaps.
    ``logs`` are columns, one value per batch; ``ts`` and ``progress`` are the
    last batch's (the others' progress is proportional: ``(batch + 1) / steps``).
    Watchers read it through :func:`unpack`, which yields one :class:`Batch` each.
    """

    type: Literal["batches"] = "batches"
    epoch: int
    first: int = Field(ge=0)
    count: int = Field(ge=1)
    progress: float | None = Field(None, description="0..1 after the last batch; None when steps are unknown.")
    logs: dict[str, list[Metric]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _columns_fit(self) -> Batches:
        for name, column in self.logs.items():
            if len(column) != self.count:
                raise ValueError(f"logs[{name!r}] has {len(column)} values for {self.count} batches")
        return self

    def unpack(self) -> list[Batch]:
        """One :class:`Batch` per batch carried, in order."""
        last = self.first + self.count
        out = []
        for i in range(self.count):
            batch = self.first + i
            progress = None if self.progress is None else min(1.0, self.progress * (batch + 1) / last)
            out.append(Batch(v=self.v, ts=self.ts, run_id=self.run_id, model_key=self.model_key, owner=self.owner,
                             seq=self.seq + i, epoch=self.epoch, batch=batch, progress=progress,
                             logs={name: column[i] for name, column in self.logs.items()}))
        return out


def batches_body(head: Mapping[str, Any], *, ts: float, seq: int, epoch: int, first: int,
                 progress: float | None, logs: Mapping[str, list[float | None]], count: int) -> bytes:
    """A :class:`Batches` message as JSON without building the model: the Tracker's hot-path encoder.

    ``head`` holds ``run_id``, ``model_key`` and ``owner``; a progress that is not finite
    is sent as unknown (None); the values in ``logs``
    must already have passed through :func:`wire_number`. The
    round-trip through :func:`decode` is the test that both encoders agree.
    """
    return json.dumps(
        {"v": PROTOCOL_VERSION, "type": "batches", **head, "ts": ts, "seq": seq, "epoch": epoch,
         "first": first, "count": count,
         "progress": progress if progress is not None and math.isfinite(progress) else None, "logs": logs},
        separators=(",", ":"), allow_nan=False,
    ).encode()


def wire_number(value: float | None) -> float | str | None:
    """A float as JSON carries it: finite as is, NaN and infinities as the strings ``decode`` reads back."""
    if value is None or math.isfinite(value):
        return value
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


class EpochRecord(BaseModel):
    """One epoch as a run records it: what ``epoch_end`` carries, and what the webhook stores and
    returns (``fitwire.contract.entities.Epoch``). A field added here travels from the Tracker over the wire to every
    store, the HTTP API and ``--json`` without another list of fields to edit (a SQL store needs
    its column: a migration)."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings", frozen=True)

    epoch: int
    logs: Logs = Field(default_factory=dict)
    duration: float | None = Field(
        None, ge=0, allow_inf_nan=False,
        description="Wall-clock seconds from the epoch's begin to its end, as the Tracker measured them.",
    )


class EpochEnd(ProgressEvent, EpochRecord):
    type: Literal["epoch_end"] = "epoch_end"


class TrainEnd(ProgressEvent):
    type: Literal["train_end"] = "train_end"
    status: RunEnd
    reason: Text | None = None
    logs: Logs = Field(default_factory=dict)


class SignalAck(ProgressEvent):
    type: Literal["signal_ack"] = "signal_ack"
    signal_id: str
    action: str
    ok: bool
    detail: Text = ""


class Heartbeat(ProgressEvent):
    type: Literal["heartbeat"] = "heartbeat"


ProgressMessage = Annotated[
    TrainBegin | EpochBegin | Batch | Batches | EpochEnd | TrainEnd | SignalAck | Heartbeat,
    Field(discriminator="type"),
]

# --- fitwire.signals --------------------------------------------------------------


MAX_LEARNING_RATE = 10.0
"""set_lr refuses anything above: no optimizer trains with it, and 1e6 only turns the loss to NaN."""


def learning_rate_problem(value: float | None) -> str | None:
    """Why ``value`` is not a learning rate set_lr accepts, or None; the Tracker and the CLI both ask."""
    if value is None or not math.isfinite(value) or not 0 < value <= MAX_LEARNING_RATE:
        return f"set_lr needs a finite learning rate above 0 and at most {MAX_LEARNING_RATE:g}"
    return None


class Signal(Message):
    """A remote command to a run (``run_id``) or to every running run of a model (``run_id=None``)."""

    type: Literal["signal"] = "signal"
    id: str = Field(default_factory=new_id)
    action: SignalAction
    model_key: str
    run_id: str | None = None
    value: float | None = Field(None, description="The new learning rate, for set_lr.")
    sender: Name = ""


# --- fitwire.jobs -----------------------------------------------------------------

MAX_GPUS = 64
MAX_GPU_MEMORY_MB = 1024 * 1024
"""1 TiB per GPU: far above any GPU made, far below what would overflow a consumer priority."""


class DatasetRef(BaseModel):
    """The dataset a job trains on, as the webhook resolved it at submission (never the submitter's
    word): the agent fetches it by id with the job's token and caches it by hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset_id: str
    name: str
    format: Literal["csv", "images"]
    sha256: str
    size: int


class JobSpec(BaseModel):
    """What to train: a function in an uploaded job bundle, and how to fit it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_key: str
    bundle: str = Field("", description="Artifact id of the uploaded Python file (empty for a spec training).")
    entry_point: str = Field("build", description="Function returning (model, train_data, val_data).")
    epochs: int = Field(1, ge=1, le=100_000)
    batch_size: int = Field(32, ge=1, le=1_000_000)
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the entry point.")
    gpus: int = Field(0, ge=0, le=MAX_GPUS)
    gpu_memory_mb: int = Field(0, ge=0, le=MAX_GPU_MEMORY_MB, description="Free GPU memory the job needs on each GPU.")
    train_spec: SpecTraining | None = Field(None, description="Train a model spec (fitwire.contract.specs) "
                                                               "instead of a bundle; the webhook fills it.")
    dataset: DatasetRef | None = Field(None, description="Submit a dataset's name; the webhook stores the "
                                                         "reference. The job reads it at $FITWIRE_DATASET.")


class Job(Message):
    type: Literal["job"] = "job"
    job_id: str = Field(default_factory=new_id)
    pool: str = "default"
    owner: str
    run_id: str = Field(default_factory=new_id, description="The run this job trains; kept across redeliveries.")
    spec: JobSpec


# --- fitwire.telemetry ------------------------------------------------------------


class GpuInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int
    name: str
    memory_total_mb: int
    memory_used_mb: int
    memory_free_mb: int
    utilization_pct: float | None = None
    temperature_c: float | None = None


class NodeTelemetry(Message):
    type: Literal["node_telemetry"] = "node_telemetry"
    node_id: str
    hostname: str
    agent_version: str
    protocol_version: int = PROTOCOL_VERSION
    pools: list[str] = Field(default_factory=list)
    cpu_model: str = ""
    cpu_threads: int = 0
    cpu_percent: float | None = None
    memory_total_mb: int = 0
    memory_available_mb: int = 0
    disk_free_mb: int = 0
    gpus: list[GpuInfo] = Field(default_factory=list)
    job_id: str | None = None


AnyMessage = Annotated[
    TrainBegin | EpochBegin | Batch | Batches | EpochEnd | TrainEnd | SignalAck | Heartbeat | Signal | Job
    | NodeTelemetry,
    Field(discriminator="type"),
]

_ANY = TypeAdapter(AnyMessage)
_PROGRESS = TypeAdapter(ProgressMessage)
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}

M = TypeVar("M", bound=Message)


def encode(message: Message) -> bytes:
    """The message as compact UTF-8 JSON (non-finite floats as strings)."""
    return message.model_dump_json().encode()


class UnsupportedVersion(DecodeError):
    """A message of a wire-contract version this build does not speak (``version``: its ``v``)."""

    def __init__(self, version: object) -> None:
        self.version = version
        super().__init__(f"the sender speaks wire contract v{version}; this side speaks {spoken_versions()}")


def older_version(version: object) -> bool:
    """True when ``version`` is a wire contract older than every one this build speaks."""
    return isinstance(version, int) and not isinstance(version, bool) and version < min(SUPPORTED_VERSIONS)


def spoken_versions() -> str:
    """The wire-contract versions this build speaks, as a reader sees them (``v2``)."""
    return ", ".join(f"v{v}" for v in SUPPORTED_VERSIONS)


def _version_of(body: bytes | str) -> object:
    """The ``v`` of a body that failed validation, to tell a newer sender from garbage."""
    try:
        parsed = json.loads(body)
    except (TypeError, ValueError, RecursionError):
        return None
    return parsed.get("v") if isinstance(parsed, dict) else None


def decode(body: bytes | str, expected: type[M] | Any = AnyMessage) -> M:
    """Parse ``body`` as a message of type ``expected`` (a class, or a union such as ``ProgressMessage``).

    Raises:
        DecodeError: bad JSON, not an object, an unknown ``type``, a field of the
            wrong type, an unknown field, or a version this build does not speak.
    """
    adapter = _ANY if expected is AnyMessage else _PROGRESS if expected is ProgressMessage else None
    if adapter is None:
        adapter = _ADAPTERS.get(expected)
        if adapter is None:  # building a validator costs ~0.6 ms: once per type
            adapter = _ADAPTERS[expected] = TypeAdapter(expected)
    try:
        message = adapter.validate_json(body)
    except ValidationError as exc:
        version = _version_of(body)
        if version is not None and version not in SUPPORTED_VERSIONS:
            raise UnsupportedVersion(version) from None
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise DecodeError(f"not a valid message ({where}: {first['msg']})") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise DecodeError(f"not a valid message ({exc})") from None
    if message.v not in SUPPORTED_VERSIONS:
        raise UnsupportedVersion(message.v)
    return message  # type: ignore[no-any-return,return-value]


def unpack(message: ProgressEvent) -> list[ProgressEvent]:
    """A decoded progress message as the events it carries: a :class:`Batches` as one ``Batch`` per batch.

    Every watcher reads through this, so a run that sends single ``batch``
    messages (older Trackers) and one that sends ``batches`` look the same.
    """
    if isinstance(message, Batches):
        return list(message.unpack())
    return [message]


# --- fitwire.rpc ------------------------------------------------------------------


PredictValue = str | float | int | bool
"""A CSV cell as a client sends it: text for a Label column, a number (or numeric text) otherwise."""


class PredictRequest(Message):
    """One prediction from a trained model, for an agent of a pool (``predict.<pool>`` on ``fitwire.rpc``).

    The webhook has checked the caller owns the model and the input fits the model's metadata;
    the reply goes to the AMQP ``reply_to`` with this message's ``correlation_id``.
    """

    type: Literal["predict_request"] = "predict_request"
    owner: str
    model_key: str
    run_id: str = Field(description="The run whose trained model (artifact `trained/<run_id>`) predicts.")
    row: dict[str, PredictValue] | None = Field(None, description="CSV: input column → value.")
    image: str | None = Field(None, description="Images: the image file's bytes, base64 (any format Pillow reads).")


class PredictReply(Message):
    """The answer to a :class:`PredictRequest`: the model's output vector, or why there is none."""

    type: Literal["predict_reply"] = "predict_reply"
    ok: bool
    outputs: list[Metric] = Field(default_factory=list,
                                  description="The model's output for the one input (probabilities or numbers).")
    code: str | None = Field(None, description="When not ok: INVALID_REQUEST, RESOURCE_DOES_NOT_EXIST or "
                                               "INTERNAL_ERROR.")
    error: Text | None = Field(None, description="When not ok: one sentence saying what was wrong.")
    node_id: str | None = Field(None, description="The agent that answered.")
    load_s: float | None = Field(None, description="Seconds spent loading the model (0 when it was in memory).")
