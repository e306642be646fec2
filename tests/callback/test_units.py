"""Unit tests of single modules: the hand-off queue and the outbox store."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fitwire.callback.outbox import Outbox, Record
from fitwire.callback.transport import COALESCE_CHUNK, EventQueue, coalesce, numbers


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


def test_queue_wakes_the_consumer_only_when_it_becomes_non_empty() -> None:
    q = EventQueue()
    wakes: list[int] = []
    q.waker = lambda: wakes.append(1)
    q.put_batch(_batch(0))
    q.put_batch(_batch(1))
    q.take_all()
    q.put({"type": "epoch_end", "epoch": 0})
    assert len(wakes) == 2


def test_backlog_after_an_outage_keeps_only_the_latest_batch_between_other_events() -> None:
    events = [_batch(i) for i in range(COALESCE_CHUNK)] + [{"type": "epoch_end"}] + [_batch(99)]
    assert [e.get("batch") for e in coalesce(events)] == [COALESCE_CHUNK - 1, None, 99]
    short = [_batch(0), _batch(1)]
    assert coalesce(short) == short


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
