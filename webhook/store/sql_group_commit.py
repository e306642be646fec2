"""Group commit: SQLite's hot writes (every run's epochs and ends) share transactions.

SQLite has one writer. With a hundred live runs, each outbox POST used to take the writer
lock for its own ``BEGIN IMMEDIATE``, one statement and ``COMMIT``; on a busy machine every
one of those transactions waits for a core, and every request behind it waits for the lock
(the lock wait was most of ``POST /api/v1/events``'s p99). Here the writes that arrive while
a transaction runs wait together, and the next of them to be served runs all of them in one
transaction: one ``BEGIN``/``COMMIT`` and one lock hand-over for the whole group.

No extra thread: the first waiting request leads (classic leader/follower group commit), and
after its group commits it hands the lead to the first request still waiting, so no request
serves others for longer than one group. If a group's transaction fails, its statements are
tried again one transaction each, so one bad write cannot fail the others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy.orm import Session

MAX_GROUP = 256
"""Statements in one transaction at most: bounds how long the writer lock is held at a time."""


class _Write:
    """One statement waiting for a group, and what came of it."""

    __slots__ = ("statement", "values", "wake", "leads", "written", "error")

    def __init__(self, statement: Any, values: dict[str, Any]) -> None:
        self.statement = statement
        self.values = values
        self.wake = threading.Event()
        self.leads = False
        self.written = False
        self.error: Exception | None = None


class GroupCommit:
    """Runs single-statement writes, grouping those that wait into one transaction.

    Args:
        transaction: opens one write transaction (the store's, under its writer lock) and
            commits it when the block ends, translating database errors to store errors.
    """

    def __init__(self, transaction: Callable[[], AbstractContextManager[Session]]) -> None:
        self._transaction = transaction
        self._lock = threading.Lock()
        self._waiting: list[_Write] = []
        self._leading = False

    def execute(self, statement: Any, values: dict[str, Any]) -> bool:
        """Run ``statement`` with ``values`` once its group has committed; True when it wrote
        (returned a row, or changed one).

        Raises: the store error its transaction raised.
        """
        write = _Write(statement, values)
        with self._lock:
            self._waiting.append(write)
            if not self._leading:
                self._leading = write.leads = True
        if not write.leads:
            write.wake.wait()  # done by a leader, or made the leader of the next group
        if write.leads:
            self._commit_group()
        if write.error is not None:
            raise write.error
        return write.written

    def _commit_group(self) -> None:
        group: list[_Write] = []
        try:
            try:
                with self._transaction() as session:
                    group = self._take()  # with the writer lock held: all that queued meanwhile join
                    connection = session.connection()
                    for write in group:
                        write.written = wrote(connection.execute(write.statement, write.values))
            except Exception as exc:
                group = group or self._take()
                self._one_by_one(group, exc)
        finally:
            with self._lock:
                if self._waiting:
                    successor = self._waiting[0]
                    successor.leads = True
                    successor.wake.set()
                else:
                    self._leading = False
            for write in group:
                write.wake.set()

    def _take(self) -> list[_Write]:
        with self._lock:
            group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
        return group

    def _one_by_one(self, group: list[_Write], error: Exception) -> None:
        """After a group's transaction failed: each write in its own, so one bad write fails alone."""
        if len(group) == 1:
            group[0].error = error
            return
        for write in group:
            try:
                with self._transaction() as session:
                    write.written = wrote(session.connection().execute(write.statement, write.values))
            except Exception as exc:
                write.error = exc


def wrote(result: Any) -> bool:
    """Whether a statement wrote: it returned a row (RETURNING), or changed one."""
    return result.first() is not None if result.returns_rows else bool(result.rowcount)
