"""SQLite's group commit (fitwire.webhook.store.sql_group_commit) on a real database file."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event, text

from fitwire.webhook.store.base import Epoch, RunStart
from fitwire.webhook.store.sql import SqlStore

NOW = datetime(2026, 1, 2, tzinfo=UTC)


def test_epochs_that_wait_for_the_writer_share_one_transaction(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'fitwire.sqlite3'}")
    alice = store.create_user("alice", "h", now=NOW)
    store.create_model(alice.id, "k1", "mnist", NOW)
    store.begin_run(alice.id, RunStart(run_id="r1", model_key="k1", started_at=NOW))
    commits: list[str] = []  # write transactions: each starts with BEGIN IMMEDIATE

    @event.listens_for(store.engine, "before_cursor_execute")
    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement == "BEGIN IMMEDIATE":
            commits.append(statement)

    writers = [threading.Thread(target=store.upsert_epoch,
                                args=(alice.id, Epoch(run_id="r1", epoch=i, logs={"loss": 1.0}, ended_at=NOW)))
               for i in range(20)]
    with store._writer_lock:  # another write in progress (begin_run, say): the epochs queue behind it
        for thread in writers:
            thread.start()
        time.sleep(0.5)
    for thread in writers:
        thread.join()
    assert [e.epoch for e in store.list_epochs(alice.id, "r1")] == list(range(20))
    # the first to arrive leads; all that queued while it waited for the lock join its transaction
    assert len(commits) <= 2, f"{len(commits)} write transactions for 20 queued epochs"


def test_a_failing_write_fails_alone_when_its_group_fails(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'fitwire.sqlite3'}")
    alice = store.create_user("alice", "h", now=NOW)
    store.create_model(alice.id, "k1", "mnist", NOW)
    store.begin_run(alice.id, RunStart(run_id="r1", model_key="k1", started_at=NOW))
    assert store._group is not None
    results: dict[str, object] = {}

    def good() -> None:
        results["good"] = store.upsert_epoch(alice.id, Epoch(run_id="r1", epoch=1, logs={}, ended_at=NOW)).run_id

    def bad() -> None:
        try:
            store._group.execute(text("INSERT INTO no_such_table VALUES (1)"), {})  # type: ignore[union-attr]
        except Exception as exc:  # the store's error for it, raised in this thread only
            results["bad"] = exc

    threads = [threading.Thread(target=good), threading.Thread(target=bad)]
    with store._writer_lock:
        for thread in threads:
            thread.start()
        time.sleep(0.3)
    for thread in threads:
        thread.join()
    assert results["good"] == "r1" and [e.epoch for e in store.list_epochs(alice.id, "r1")] == [1]
    assert isinstance(results["bad"], Exception)
