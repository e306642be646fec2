"""Every message round-trips (NaN and infinities included); malformed bodies raise DecodeError only."""

from __future__ import annotations

import json
import math

import pytest

from fitwire.broker import messages as m
from fitwire.broker.errors import DecodeError

LOGS = {"loss": 0.25, "acc": 1.0, "nan": math.nan, "inf": math.inf, "ninf": -math.inf, "none": None}

SAMPLES: list[m.Message] = [
    m.TrainBegin(run_id="r1", model_key="k", owner="ann", params={"lr": 0.1}, epochs=3, steps=10, host="h"),
    m.EpochBegin(run_id="r1", model_key="k", epoch=0),
    m.Batch(run_id="r1", model_key="k", epoch=0, batch=4, progress=0.5, logs=LOGS),
    m.Batch(run_id="r1", model_key="k", epoch=0, batch=4, progress=None),
    m.EpochEnd(run_id="r1", model_key="k", epoch=0, logs={**LOGS, "val_loss": math.nan}),
    m.TrainEnd(run_id="r1", model_key="k", status="stopped", reason="STOP from ann"),
    m.SignalAck(run_id="r1", model_key="k", signal_id="s", action="set_lr", ok=False, detail="schedule"),
    m.Heartbeat(run_id="r1", model_key="k"),
    m.Signal(action="set_lr", model_key="k", run_id="r1", value=1e-3),
    m.Job(owner="ann", spec=m.JobSpec(model_key="k", bundle="b", epochs=2)),
    m.NodeTelemetry(
        node_id="n", hostname="h", agent_version="0.1",
        gpus=[m.GpuInfo(index=0, name="T4", memory_total_mb=16, memory_used_mb=1, memory_free_mb=15)],
    ),
]


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("message", SAMPLES, ids=lambda msg: msg.__class__.__name__)
def test_round_trip(message: m.Message) -> None:
    body = m.encode(message)
    json.loads(body)  # strict JSON: no bare NaN/Infinity a browser could not parse
    assert b"NaN" not in body or b'"NaN"' in body
    back = m.decode(body)
    assert type(back) is type(message)
    assert _same(back.model_dump(), message.model_dump())
    assert m.decode(body, type(message)) == back or _same(m.decode(body, type(message)).model_dump(), back.model_dump())


def test_numbers_stay_numbers() -> None:
    body = json.loads(m.encode(m.Batch(run_id="r", model_key="k", epoch=1, batch=2, logs={"loss": 0.5})))
    assert body["logs"]["loss"] == 0.5 and body["batch"] == 2 and body["v"] == 1


def test_progress_decoder_refuses_other_types() -> None:
    with pytest.raises(DecodeError):
        m.decode(m.encode(SAMPLES[-1]), m.ProgressMessage)


MALFORMED: list[bytes | str] = [
    b"", b"{", b"[]", b"null", b"42", b'"text"', b"\xff\xfe\x00", b"NaN",
    b'{"type": "unknown"}',
    b'{"type": "batch"}',
    b'{"type": "batch", "run_id": "r", "model_key": "k", "epoch": "zero", "batch": 1}',
    b'{"type": "batch", "run_id": "r", "model_key": "k", "epoch": 0, "batch": 1, "surprise": 1}',
    b'{"type": "batch", "run_id": "r", "model_key": "k", "epoch": 0, "batch": 1, "logs": {"loss": "high"}}',
    b'{"type": "signal", "action": "explode", "model_key": "k"}',
    b'{"type": "signal", "v": 2, "action": "stop", "model_key": "k"}',
    b'{"type": "signal", "v": 99, "action": "stop", "model_key": "k", "new_field": true}',
    b'{"type": "train_end", "run_id": "r", "model_key": "k", "status": "exploded"}',
    b'{"type": "job", "owner": "a", "spec": {"model_key": "k", "bundle": "b", "epochs": -1}}',
    "{\"type\": \"heartbeat\", \"run_id\": \"r\", \"model_key\": \"k\", \"ts\": \"yesterday\"}",
    b"[" * 10_000,
]


@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_bodies_raise_decode_error(body: bytes | str) -> None:
    with pytest.raises(DecodeError) as info:
        m.decode(body)
    assert str(info.value)  # a sentence, not an empty error


def test_unknown_version_is_named() -> None:
    with pytest.raises(DecodeError, match="version 99"):
        m.decode(b'{"type": "signal", "v": 99, "action": "stop", "model_key": "k", "new_field": true}')
