"""The wire contract: RabbitMQ topology, message schemas, connections, errors.

Import from here: ``from fitwire.broker import declare_all, encode, decode, Batch``.
"""

from __future__ import annotations

from fitwire.broker.connection import Backoff, answers, connect, translate_errors
from fitwire.broker.errors import (
    BrokerAccessRefused,
    BrokerError,
    BrokerUnavailable,
    DecodeError,
    FitwireError,
    SettingsError,
)
from fitwire.broker.messages import (
    AnyMessage,
    Batch,
    Batches,
    EpochBegin,
    EpochEnd,
    GpuInfo,
    Heartbeat,
    Job,
    JobSpec,
    Message,
    NodeTelemetry,
    ProgressEvent,
    ProgressMessage,
    Signal,
    SignalAck,
    TrainBegin,
    TrainEnd,
    decode,
    encode,
    new_id,
)
from fitwire.broker.topology import PROTOCOL_VERSION, declare_all

__all__ = [
    "PROTOCOL_VERSION", "AnyMessage", "Backoff", "Batch", "Batches", "BrokerAccessRefused", "BrokerError",
    "BrokerUnavailable", "DecodeError", "EpochBegin", "EpochEnd", "FitwireError", "GpuInfo",
    "Heartbeat", "Job", "JobSpec", "Message", "NodeTelemetry", "ProgressEvent", "ProgressMessage",
    "SettingsError", "Signal", "SignalAck", "TrainBegin", "TrainEnd", "answers", "connect",
    "declare_all", "decode", "encode", "new_id", "translate_errors",
]
