"""Unit tests of single modules: the hand-off queue, batch grouping and encoding, the outbox store."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fitwire.callback.outbox import Outbox, Record
from fitwire.callback.transport import EventQueue, batch_groups, encode_batches, numbers
from fitwire.contract.messages import Batches, ProgressMessage, decode, unpack


def _batch(i: int) -> dict[str, object]:
    return {"type": "batch", "epoch": 0, "batch": i}


def test_queue_coalesces_batches_under_pressure_but_never_drops_epoch_events() -> None:
    q = EventQueue(max_batches=4)
    for i in range(10):
        q.put_batch(_batch(i))
    q.put({"type": "epoch_end", "epoch": 0})
    for i in range(10, 12):
        q.put_batch(_batch(i))
    items = q.take_all()
    # Still under pressure after the epoch event: the newest batch keeps replacing the tail.
    assert [e.get("batch") for e in items] == [0, 1, 2, 9, None, 11]
    assert items[4]["type"] == "epoch_end"
    assert q.coalesced == 7
    seqs = [e["seq"] for e in items]
    assert seqs == sorted(seqs) and seqs[3] == 10  # the gap tells a watcher what was skipped


def test_queue_wakes_the_transport_once_per_flush_of_batches_and_at_once_for_other_events() -> None:
    q = EventQueue(flush_after=60.0, flush_batches=100)
    wakes: list[int] = []
    q.waker = lambda: wakes.append(1)
    for i in range(50):
        q.put_batch(_batch(i))
    assert len(wakes) == 1  # the first batch arms the flush; the next 49 cost no wake-up
    due = q.due_in()
    assert due is not None and 59.0 < due <= 60.0
    q.put({"type": "epoch_end", "epoch": 0})
    assert len(wakes) == 2 and q.due_in() == 0.0  # an epoch event goes out now, the batches before it
    assert [e.get("batch") for e in q.take_all()][-2:] == [49, None]
    assert q.due_in() is None
    for i in range(100):
        q.put_batch(_batch(i))
    assert len(wakes) == 4 and q.due_in() == 0.0  # enough batches for one message: sent without waiting


def test_the_flush_window_widens_while_the_transport_runs_late_and_narrows_once_on_time() -> None:
    now = [0.0]
    q = EventQueue(flush_after=0.05, clock=lambda: now[0])

    def flush_after_being(late: float) -> float:
        q.put_batch(_batch(0))
        now[0] += q.flush_after + late  # the transport takes the batches this long after they were due
        assert q.due_in() == 0.0 and len(q.take_all()) == 1
        return q.flush_after

    assert flush_after_being(0.001) == 0.05  # on time: the window stays
    assert [flush_after_being(0.3) for _ in range(4)] == [0.1, 0.2, 0.4, 0.4]  # late: doubles, up to 0.4 s
    assert flush_after_being(0.04) == 0.4  # neither late nor on time: kept
    # On time: it halves after 8 flushes in a row, back to 0.05 and no further.
    assert [flush_after_being(0.001) for _ in range(32)] == [0.4] * 7 + [0.2] * 8 + [0.1] * 8 + [0.05] * 9
    assert [flush_after_being(0.3), *(flush_after_being(0.001) for _ in range(7)), flush_after_being(0.3)] \
        == [0.1] * 8 + [0.2]  # a late flush starts the count again
    assert q.widest == 0.4
    q.put_batch(_batch(0))
    now[0] += 10.0
    q.put({"type": "epoch_end", "epoch": 0})
    q.take_all()  # taken for an epoch event: not a flush that was due, whatever the batch's age
    assert q.flush_after == 0.2
    slow = EventQueue(flush_after=1.0, clock=lambda: now[0])  # a window already wider than the cap: never widens
    slow.put_batch(_batch(0))
    now[0] += 5.0
    slow.take_all()
    assert slow.flush_after == 1.0


def _seq(events: list[dict[str, object]]) -> list[dict[str, object]]:
    for i, e in enumerate(events):
        e["seq"] = i + 1
    return events


def test_consecutive_batches_group_into_one_message_that_leaves_before_the_epoch_end() -> None:
    events = _seq([_batch(0), _batch(1), _batch(2), {"type": "epoch_end", "epoch": 0},
                   {"type": "batch", "epoch": 1, "batch": 0}, {"type": "batch", "epoch": 1, "batch": 5}])
    groups = batch_groups(events)
    assert [[(e["type"], e.get("batch")) for e in g] for g in groups] == [
        [("batch", 0), ("batch", 1), ("batch", 2)], [("epoch_end", None)], [("batch", 0)], [("batch", 5)]]


def test_a_group_encodes_as_one_batches_message_with_every_value() -> None:
    group = _seq([{"type": "batch", "ts": 5.0 + i, "epoch": 3, "batch": 4 + i, "progress": (5 + i) / 10,
                   "logs": {"loss": np.float32(0.5) if i else float("nan"), "f1": np.array([0.1, 0.2])}}
                  for i in range(3)])
    head = {"run_id": "r", "model_key": "k", "owner": "ann"}
    message = decode(encode_batches(head, group), ProgressMessage)
    assert isinstance(message, Batches)
    assert (message.epoch, message.first, message.count, message.seq, message.ts) == (3, 4, 3, 1, 7.0)
    assert set(message.logs) == {"loss"}  # per-class arrays are left out, as on every other event
    [first, *rest] = unpack(message)
    assert math.isnan(first.logs["loss"]) and [b.logs["loss"] for b in rest] == [0.5, 0.5]
    assert [b.batch for b in unpack(message)] == [4, 5, 6] and message.progress == 0.7


def test_numbers_keeps_scalars_and_drops_arrays() -> None:
    logs = {"loss": np.float32(0.5), "n": 3, "f1": np.array([0.1, 0.2]), "lr": None, "nan": float("nan")}
    out = numbers(logs)
    assert out["loss"] == 0.5 and out["n"] == 3.0 and out["lr"] is None and "f1" not in out
    assert out["nan"] != out["nan"]


def _rec(run: str, kind: str, epoch: int = -1, body: bytes = b"{}") -> Record:
    return Record(run_id=run, kind=kind, epoch=epoch, server="http://w", token="t", body=body)


def test_outbox_is_idempotent_per_run_and_epoch_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    box = Outbox(path)
    box.add(_rec("r1", "train_begin"))
    box.add(_rec("r1", "epoch_end", 0, b"old"))
    box.add(_rec("r1", "train_end"))
    box.add(_rec("r1", "epoch_end", 1))
    box.add(_rec("r1", "epoch_end", 0, b"new"))  # a resumed run re-did epoch 0
    box.close()
    assert path.stat().st_mode & 0o777 == 0o600
    box = Outbox(path)
    due = box.due()
    assert [(r.kind, r.epoch) for r in due] == [("train_begin", -1), ("epoch_end", 0), ("epoch_end", 1),
                                                ("train_end", -1)]
    assert due[1].body == b"new"
    box.retry_later(due[0], "unreachable")
    assert [r.kind for r in box.due(now=0.0)] == ["epoch_end", "epoch_end", "train_end"]
    assert box.reject("404", run_id="r1") == 4
    assert box.counts() == {"pending": 0, "rejected": 4}
    assert box.requeue_rejected() == 4
    box.close()
