"""The on-disk outbox: run begin/end and epoch records wait here until the webhook has them.

A SQLite file under ``settings.data_dir`` (so it survives a crash or a
restart), one row per ``(run_id, kind, epoch)``: writing the same epoch again
replaces it, which makes a resumed run idempotent. :class:`OutboxSender` is
the run session's thread that writes and POSTs the records to
``/api/v1/events`` with backoff; :func:`flush` is the same pass for
``fitwire outbox flush``.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from fitwire.callback import _notices
from fitwire.settings import Settings

FILE_NAME = "outbox.sqlite3"
EVENTS_PATH = "/api/v1/events"
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0
RETRY_STEP_S = 0.5
RETRY_MAX_S = 60.0
_KIND_ORDER = {"train_begin": 0, "epoch_end": 1, "train_end": 2}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    server TEXT NOT NULL,
    token TEXT NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    UNIQUE (run_id, kind, epoch)
)
"""


def outbox_path(settings: Settings) -> Path:
    return settings.data_dir / FILE_NAME


@dataclass(frozen=True)
class Record:
    """One encoded wire message (train_begin, epoch_end or train_end) bound for one webhook."""

    run_id: str
    kind: str
    epoch: int
    server: str
    token: str
    body: bytes
    id: int = 0
    attempts: int = 0
    next_at: float = 0.0


@dataclass
class FlushResult:
    sent: int = 0
    rejected: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class Outbox:
    """The SQLite table of unsent records; one instance per thread (sqlite3 objects are thread-bound)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The rows hold API tokens: readable by the owner only, like the login file.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
        self._db = sqlite3.connect(str(path), timeout=10.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def add(self, record: Record) -> None:
        """Store ``record``; a newer record of the same (run, kind, epoch) replaces the old one."""
        with self._tx() as db:
            # REPLACE gives the row a new id, so a re-sent train_end stays after the epochs.
            db.execute(
                "INSERT OR REPLACE INTO records (run_id, kind, epoch, server, token, body, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.run_id, record.kind, record.epoch, record.server, record.token, record.body, time.time()),
            )

    def due(self, now: float | None = None, run_id: str | None = None) -> list[Record]:
        """Pending records whose retry time has come, in sending order (per run: begin, epochs, end)."""
        sql = ("SELECT id, run_id, kind, epoch, server, token, body, attempts, next_at FROM records"
               " WHERE state = 'pending'")
        args: list[object] = []
        if now is not None:
            sql += " AND next_at <= ?"
            args.append(now)
        if run_id is not None:
            sql += " AND run_id = ?"
            args.append(run_id)
        rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        records = [
            Record(run_id=r[1], kind=r[2], epoch=r[3], server=r[4], token=r[5], body=r[6], id=r[0],
                   attempts=r[7], next_at=r[8])
            for r in rows
        ]
        first_id: dict[str, int] = {}
        for rec in records:
            first_id.setdefault(rec.run_id, rec.id)
        return sorted(records, key=lambda r: (first_id[r.run_id], _KIND_ORDER.get(r.kind, 1), r.epoch, r.id))

    def sent(self, record: Record) -> None:
        self._db.execute("DELETE FROM records WHERE id = ?", (record.id,))

    def retry_later(self, record: Record, error: str) -> None:
        delay = min(RETRY_MAX_S, RETRY_STEP_S * 2 ** min(record.attempts, 16))
        self._db.execute(
            "UPDATE records SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE id = ?",
            (time.time() + delay, error, record.id),
        )

    def reject(self, error: str, *, record: Record | None = None, run_id: str | None = None,
               server: str | None = None, token: str | None = None) -> int:
        """Stop retrying: one record, all of a run's, or all sent with one (server, token)."""
        args: list[object]
        if record is not None:
            where, args = "id = ?", [record.id]
        elif run_id is not None:
            where, args = "run_id = ? AND state = 'pending'", [run_id]
        else:
            where, args = "server = ? AND token = ? AND state = 'pending'", [server, token]
        cur = self._db.execute(f"UPDATE records SET state = 'rejected', last_error = ? WHERE {where}", [error, *args])
        return cur.rowcount

    def requeue_rejected(self, token: str | None = None) -> int:
        """Make rejected records pending again; ``token`` replaces the token of those refused with 401."""
        with self._tx() as db:
            if token:
                db.execute("UPDATE records SET token = ? WHERE state = 'rejected' AND last_error LIKE '401%'", (token,))
            cur = db.execute("UPDATE records SET state = 'pending', attempts = 0, next_at = 0 WHERE state = 'rejected'")
        return cur.rowcount

    def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT state, COUNT(*) FROM records GROUP BY state").fetchall()
        return {"pending": 0, "rejected": 0, **{state: n for state, n in rows}}

    def rows(self) -> list[dict[str, object]]:
        """Every record, without bodies or tokens, for ``fitwire outbox status``."""
        cur = self._db.execute(
            "SELECT run_id, kind, epoch, server, state, attempts, last_error, created_at FROM records ORDER BY id"
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def next_due_in(self) -> float | None:
        row = self._db.execute("SELECT MIN(next_at) FROM records WHERE state = 'pending'").fetchone()
        return None if row[0] is None else max(0.0, row[0] - time.time())

    def close(self) -> None:
        self._db.close()


def post(record: Record, timeout: float | tuple[float, float], http: requests.Session) -> int | None:
    """POST one record; the HTTP status, or None when the webhook could not be reached."""
    try:
        resp = http.post(
            record.server + EVENTS_PATH,
            data=record.body,
            headers={"Authorization": f"Bearer {record.token}", "Content-Type": "application/json"},
            timeout=timeout,
        )
    except requests.RequestException:
        return None
    return resp.status_code


def flush(
    outbox: Outbox,
    *,
    deadline: float | None = None,
    run_id: str | None = None,
    notices: _notices.Notices | None = None,
    http: requests.Session | None = None,
    stop: threading.Event | None = None,
    respect_backoff: bool = True,
) -> FlushResult:
    """One pass over the due records (of ``run_id`` only, when given); never raises for HTTP trouble.

    A webhook that cannot be reached or answers 5xx/429 is not tried again in
    this pass; its records back off. 401 rejects every record with that token,
    404 every record of that run (its model key is unknown), any other 4xx the
    record itself: those would never succeed, so they are not retried forever.
    """
    notices = notices or _notices.Notices()
    http = http or requests.Session()
    result = FlushResult()
    down: set[str] = set()
    blocked_runs: set[str] = set()
    now = time.time()
    for rec in outbox.due(None, run_id):
        if stop is not None and stop.is_set():
            break
        if rec.server in down or rec.run_id in blocked_runs:
            continue
        if respect_backoff and rec.next_at > now:
            # Its run waits as a whole: an epoch must never overtake its train_begin.
            blocked_runs.add(rec.run_id)
            continue
        timeout: float | tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            timeout = (min(CONNECT_TIMEOUT_S, max(0.2, left)), min(READ_TIMEOUT_S, max(0.2, left)))
        status = post(rec, timeout, http)
        if status is not None and 200 <= status < 300:
            outbox.sent(rec)
            result.sent += 1
        elif status is None or status >= 500 or status == 429:
            what = "unreachable" if status is None else f"answered {status}"
            outbox.retry_later(rec, f"{status or 'unreachable'}")
            blocked_runs.add(rec.run_id)
            result.failed += 1
            result.errors.append(f"{rec.server} {what}")
            down.add(rec.server)
            notices.warn(
                _notices.WEBHOOK_DOWN,
                f"the webhook at {rec.server} is {what}; training goes on, run records wait "
                "in the outbox and are retried (`fitwire outbox flush`).",
            )
        elif status == 401:
            result.rejected += outbox.reject("401 token refused", server=rec.server, token=rec.token)
            result.errors.append(f"{rec.server} refused the token (401)")
            notices.warn(
                _notices.UNAUTHENTICATED,
                f"the webhook at {rec.server} refused the token (401); this run is not stored. "
                "Log in again with `fitwire login`.",
            )
        elif status == 404:
            result.rejected += outbox.reject("404 model key or run unknown", run_id=rec.run_id)
            blocked_runs.add(rec.run_id)
            result.errors.append(f"run {rec.run_id}: model key unknown to {rec.server} (404)")
            notices.warn(
                _notices.UNKNOWN_MODEL,
                f"the webhook at {rec.server} does not know this run's model key (404); "
                "this run is not stored. Create the model with `fitwire models create`.",
            )
        else:
            result.rejected += outbox.reject(f"{status} refused", record=rec)
            result.errors.append(f"{rec.kind} of run {rec.run_id} refused ({status})")
            notices.warn(_notices.REJECTED, f"the webhook refused a {rec.kind} record ({status}).")
    return result


class OutboxSender(threading.Thread):
    """A run session's outbox thread: stores records handed over by the training thread and sends them.

    ``finish`` is the one place where ``fit`` waits on HTTP, bounded by
    ``wait`` seconds.
    """

    def __init__(self, path: Path | str, *, run_id: str, notices: _notices.Notices) -> None:
        super().__init__(name=f"fitwire-outbox-{run_id[:8]}", daemon=True)
        self._path = path
        self._run_id = run_id
        self._notices = notices
        self._inbox: queue.Queue[Record | None] = queue.Queue()
        self._halt = threading.Event()
        self._draining = False
        self._deadline: float | None = None
        self.drained = threading.Event()
        self.remaining: int | None = None
        """This run's records still pending after the final pass (None: the pass did not finish)."""

    def submit(self, record: Record) -> None:
        """Hand a record over (cheap, never blocks)."""
        self._inbox.put(record)

    def finish(self, wait: float) -> bool:
        """Send this run's records for at most ``wait`` seconds, then stop the thread.

        Returns:
            True when no record of this run is left pending (each was sent or refused for good).
        """
        self._deadline = time.monotonic() + wait
        self._draining = True
        self._inbox.put(None)
        if self.is_alive():
            self.drained.wait(wait)
        self._halt.set()
        self._inbox.put(None)
        self.join(timeout=max(0.0, self._deadline - time.monotonic()) + 0.5)
        return self.remaining == 0

    def run(self) -> None:
        try:
            outbox = Outbox(self._path)
        except (OSError, sqlite3.Error) as exc:
            self._notices.warn(
                _notices.OUTBOX_UNAVAILABLE,
                f"cannot open the outbox at {self._path} ({exc}); run records are kept in memory only.",
            )
            outbox = Outbox(":memory:")
        http = requests.Session()
        try:
            self._loop(outbox, http)
        except Exception as exc:  # never let the outbox take the training down
            self._notices.warn(_notices.OUTBOX_UNAVAILABLE, f"the outbox stopped: {exc!r}")
        finally:
            http.close()
            outbox.close()
            self.drained.set()

    def _loop(self, outbox: Outbox, http: requests.Session) -> None:
        wait: float | None = 0.0
        first = True
        while not self._halt.is_set():
            try:
                item = self._inbox.get(timeout=wait)
                if item is not None:
                    outbox.add(item)
                while True:  # store everything handed over before sending
                    more = self._inbox.get_nowait()
                    if more is not None:
                        outbox.add(more)
            except queue.Empty:
                pass
            if self._halt.is_set():
                return
            if self._draining:
                # At train end: try this run's records once, now, whatever their backoff.
                flush(outbox, deadline=self._deadline, run_id=self._run_id, notices=self._notices,
                      http=http, stop=self._halt, respect_backoff=False)
                self.remaining = len(outbox.due(None, self._run_id))
                self.drained.set()
                return
            # The first pass ignores the backoff an earlier process left behind: a new
            # fit is the "next time" that leftovers from an outage are sent.
            flush(outbox, deadline=time.monotonic() + READ_TIMEOUT_S * 2, notices=self._notices,
                  http=http, stop=self._halt, respect_backoff=not first)
            first = False
            nxt = outbox.next_due_in()
            wait = None if nxt is None else min(nxt + 0.01, RETRY_MAX_S)
