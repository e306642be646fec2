"""A run's outbox thread: sends the records the training thread wrote to the run's outbox file.

The training thread writes each record to disk itself (see
:class:`fitwire.callback.outbox.Outbox`) and only wakes this thread, so
nothing depends on this thread being on time: whatever it has not sent when
the run ends stays in the file for the next fit or ``fitwire outbox flush``.
Between its own records it also claims leftover files of runs whose process
is gone (one claimer per file, see :class:`~fitwire.callback.outbox.Lease`).
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from fitwire.callback import _notices
from fitwire.callback.delivery import READ_TIMEOUT_S, flush, flush_leftovers
from fitwire.callback.outbox import RETRY_MAX_S, Lease, Outbox, Record, remove_files
from fitwire.client_api.http import http_session

LEFTOVER_SCAN_S = 60.0
"""How often a running fit looks for records that dead processes left behind (the first look is at once)."""
FINISH_GRACE_S = 0.25
"""What ``finish`` may add to its deadline to let the thread close the file."""


class OutboxSender(threading.Thread):
    """Sends one run's outbox file; ``finish`` is the one place where ``fit`` waits on HTTP.

    Args:
        path: the run's outbox file (or an in-memory URI when the data dir is unusable).
        lease: this run's claim on ``path``; released (and the file deleted when empty) at the end.
        run_id: for the thread's name.
        notices: the run's one-line warnings.
        leftovers: lists the other outbox files on this host, to claim and send.
    """

    def __init__(self, path: Path | str, *, lease: Lease | None, run_id: str, notices: _notices.Notices,
                 leftovers: Callable[[], list[Path]] | None = None) -> None:
        super().__init__(name=f"fitwire-outbox-{run_id[:8]}", daemon=True)
        self._path = path
        self._lease = lease
        self._notices = notices
        self._leftovers = leftovers
        self._unwritten: queue.SimpleQueue[Record] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._draining = threading.Event()
        self._deadline: float | None = None
        self.drained = threading.Event()
        self.remaining: int | None = None
        """This run's records still pending after the final pass (None: the pass did not finish)."""

    def wake(self) -> None:
        """A record was written: send it now (cheap, never blocks)."""
        self._wake.set()

    def submit(self, record: Record) -> None:
        """A record the training thread could not write itself: this thread stores it, then sends it."""
        self._unwritten.put(record)
        self._wake.set()

    def finish(self, deadline: float) -> bool:
        """Send what is pending until ``deadline`` (``time.monotonic()``), then stop the thread.

        Returns by ``deadline`` + :data:`FINISH_GRACE_S` whatever the webhook
        does; what was not sent stays in the file.

        Returns:
            True when no record of this run is left pending (each was sent or refused for good).
        """
        self._deadline = deadline
        self._draining.set()
        self._wake.set()
        if self.is_alive():
            self.drained.wait(max(0.0, deadline - time.monotonic()))
        self._halt.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout=max(0.0, deadline - time.monotonic()) + FINISH_GRACE_S)
        return self.remaining == 0

    def run(self) -> None:
        try:
            outbox = Outbox(self._path)
        except (OSError, sqlite3.Error) as exc:
            self._notices.warn(
                _notices.OUTBOX_UNAVAILABLE,
                f"cannot send from the outbox at {self._path} ({exc}); its records wait for `fitwire outbox flush`.",
            )
            self.drained.set()
            if self._lease is not None:
                self._lease.release()
            return
        http = http_session(retry=False)  # the outbox retries durably itself (backoff per record)
        try:
            self._loop(outbox, http)
        except Exception as exc:  # never let the outbox take the training down
            self._notices.warn(_notices.OUTBOX_UNAVAILABLE, f"the outbox stopped: {exc!r}")
        finally:
            http.close()
            self._close(outbox)
            self.drained.set()

    def _close(self, outbox: Outbox) -> None:
        """Release the run's file; delete it when the run ended and nothing is left in it."""
        empty = False
        try:
            counts = outbox.counts()
            ended = self._draining.is_set() or self._halt.is_set()  # the session wrote its last record
            empty = ended and not counts["pending"] and not counts["rejected"]
        except sqlite3.Error:
            pass
        outbox.close()
        if empty and isinstance(self._path, Path):
            remove_files(self._path)
        if self._lease is not None:
            self._lease.release(remove=empty)

    def _interrupted(self) -> bool:
        return self._halt.is_set() or self._draining.is_set()

    def _store_unwritten(self, outbox: Outbox) -> None:
        while True:
            try:
                record = self._unwritten.get_nowait()
            except queue.Empty:
                return
            outbox.add(record)

    def _loop(self, outbox: Outbox, http: requests.Session) -> None:
        wait: float | None = 0.0
        first = True
        scanned = False
        next_scan = time.monotonic() if self._leftovers is not None else float("inf")
        quiet = _notices.Notices(quiet=True)  # other runs' trouble is not this run's warning line
        while not self._halt.is_set():
            self._wake.wait(wait)
            self._wake.clear()
            self._store_unwritten(outbox)
            if self._halt.is_set():
                return
            if self._draining.is_set():
                # At run end: try this run's records once, now, whatever their backoff.
                flush(outbox, deadline=self._deadline, notices=self._notices, http=http,
                      stop=self._halt.is_set, respect_backoff=False)
                self.remaining = outbox.pending()
                self.drained.set()
                return
            # The first pass ignores a backoff an earlier process of the same run left behind.
            result = flush(outbox, deadline=time.monotonic() + READ_TIMEOUT_S * 2, notices=self._notices,
                           http=http, stop=self._interrupted, respect_backoff=not first)
            first = False
            if self._leftovers is not None and time.monotonic() >= next_scan and not result.failed:
                # A new fit is the "next time" for records an earlier process left: the first
                # look ignores their backoff. One file at a time, so this run's own records
                # (a wake) come first again.
                flush_leftovers(self._leftovers(), notices=quiet, http=http,
                                stop=lambda: self._interrupted() or self._wake.is_set(),
                                respect_backoff=scanned,
                                deadline=time.monotonic() + READ_TIMEOUT_S * 2)
                if not self._wake.is_set():
                    scanned = True
                    next_scan = time.monotonic() + LEFTOVER_SCAN_S
            nxt = outbox.next_due_in()
            until_scan = min(RETRY_MAX_S, max(0.0, next_scan - time.monotonic()))
            wait = until_scan if nxt is None else min(nxt + 0.01, until_scan)
