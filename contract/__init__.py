"""fitwire's contract: every shape two components exchange, defined once.

The error tree, the enumerations, the wire messages and the HTTP models. This package
imports nothing else from fitwire, so every other layer may import it (see
``tests/test_layers.py``). Import from here: ``from fitwire.contract import encode, Batch``.
"""

from __future__ import annotations

from fitwire.contract.errors import (
    BrokerAccessRefused,
    BrokerError,
    BrokerUnavailable,
    DecodeError,
    FitwireError,
    SettingsError,
)
from fitwire.contract.messages import (
    AnyMessage,
    Batch,
    Batches,
    DatasetRef,
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
from fitwire.contract.version import PROTOCOL_VERSION, SUPPORTED_VERSIONS

__all__ = [
    "PROTOCOL_VERSION", "SUPPORTED_VERSIONS", "AnyMessage", "Batch", "Batches", "BrokerAccessRefused",
    "BrokerError", "BrokerUnavailable", "DatasetRef", "DecodeError", "EpochBegin", "EpochEnd", "FitwireError",
    "GpuInfo", "Heartbeat", "Job", "JobSpec", "Message", "NodeTelemetry", "ProgressEvent",
    "ProgressMessage", "SettingsError", "Signal", "SignalAck", "TrainBegin", "TrainEnd", "decode",
    "encode", "new_id",
]
