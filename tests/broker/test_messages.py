"""Every message round-trips (NaN and infinities included); malformed bodies raise DecodeError only."""

from __future__ import annotations

import json
import math

import pytest

from fitwire.contract import messages as m
from fitwire.contract.errors import DecodeError
from fitwire.contract.version import PROTOCOL_VERSION

LOGS = {"loss": 0.25, "acc": 1.0, "nan": math.nan, "inf": math.inf, "ninf": -math.inf, "none": None}

SAMPLES: list[m.Message] = [
    m.TrainBegin(run_id="r1", model_key="k", owner="ann", params={"lr": 0.1}, epochs=3, steps=10, host="h"),
    m.EpochBegin(run_id="r1", model_key="k", epoch=0),
    m.Batch(run_id="r1", model_key="k", epoch=0, batch=4, progress=0.5, logs=LOGS),
    m.Batch(run_id="r1", model_key="k", epoch=0, batch=4, progress=None),
    m.Batches(run_id="r1", model_key="k", epoch=0, first=3, count=2, progress=0.5,
              logs={"loss": [0.25, math.nan], "acc": [None, math.inf]}),
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
    assert body["logs"]["loss"] == 0.5 and body["batch"] == 2 and body["v"] == PROTOCOL_VERSION


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
    b'{"type": "batches", "run_id": "r", "model_key": "k", "epoch": 0, "first": 0, "count": 2, "logs": {"loss": [1]}}',
    b'{"type": "batches", "run_id": "r", "model_key": "k", "epoch": 0, "first": 0, "count": 0}',
    b'{"type": "batches", "run_id": "r", "model_key": "k", "epoch": 0, "first": -1, "count": 1}',
    b'{"type": "signal", "action": "explode", "model_key": "k"}',
    b'{"type": "signal", "v": 3, "action": "stop", "model_key": "k"}',
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
    with pytest.raises(DecodeError, match="speaks wire contract v99; this side speaks v2"):
        m.decode(b'{"type": "signal", "v": 99, "action": "stop", "model_key": "k", "new_field": true}')


def test_a_v1_message_is_refused_by_name_not_half_understood() -> None:
    """v1 routed signals model-first: a v1 Tracker would never get a v2 STOP, so v1 is not spoken at all."""
    with pytest.raises(m.UnsupportedVersion, match="speaks wire contract v1; this side speaks v2") as info:
        m.decode(b'{"type": "signal", "v": 1, "action": "stop", "model_key": "k"}')
    assert info.value.version == 1 and m.older_version(1) and not m.older_version(2)


def test_the_hot_path_encoder_and_pydantic_agree_on_batches() -> None:
    head = {"run_id": "r", "model_key": "k", "owner": "ann"}
    logs = {"loss": [0.5, m.wire_number(math.nan), m.wire_number(-math.inf)], "acc": [None, 1.0, 2.0]}
    body = m.batches_body(head, ts=12.5, seq=7, epoch=2, first=10, progress=math.inf,
                          logs=logs, count=3)
    json.loads(body)  # strict JSON
    fast = m.decode(body, m.ProgressMessage)
    model = m.Batches(ts=12.5, seq=7, epoch=2, first=10, count=3, progress=None, owner="ann", run_id="r",
                      model_key="k", logs={"loss": [0.5, math.nan, -math.inf], "acc": [None, 1.0, 2.0]})
    assert _same(fast.model_dump(), model.model_dump())
    assert _same(m.decode(m.encode(model)).model_dump(), model.model_dump())


def test_a_watcher_unpacks_batches_into_one_batch_each_with_its_values() -> None:
    packed = m.Batches(run_id="r", model_key="k", owner="ann", seq=20, epoch=1, first=6, count=2, progress=0.8,
                       logs={"loss": [0.5, math.nan]})
    events = m.unpack(m.decode(m.encode(packed), m.ProgressMessage))
    assert [type(e) for e in events] == [m.Batch, m.Batch]
    assert [(e.epoch, e.batch, e.seq) for e in events] == [(1, 6, 20), (1, 7, 21)]
    assert events[0].logs == {"loss": 0.5} and math.isnan(events[1].logs["loss"])
    # progress is (batch + 1) / steps: 0.8 after batch 7 means 10 steps, so 0.7 after batch 6
    assert events[1].progress == 0.8 and events[0].progress == pytest.approx(0.7)


def test_an_old_style_single_batch_still_reaches_watchers_unchanged() -> None:
    body = b'{"v": 2, "type": "batch", "run_id": "r", "model_key": "k", "epoch": 0, "batch": 3, "logs": {"loss": 1}}'
    [event] = m.unpack(m.decode(body, m.ProgressMessage))
    assert isinstance(event, m.Batch) and event.batch == 3 and event.logs == {"loss": 1.0}
