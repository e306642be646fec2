"""The on-disk outbox: run begin/end and epoch records wait here until the webhook has them.

One SQLite file per run, ``<data dir>/outbox/<run_id>.sqlite3`` (mode 0600: the
rows hold API tokens), one row per ``(run_id, kind, epoch)``: writing the same
epoch again replaces it, which makes a resumed run idempotent.

Why one file per run and not one shared file: the training thread writes each
record itself, before ``fit`` moves on (a crash or a hung webhook must not lose
it), so that write must never wait for another run's write lock; and a run's
outbox thread must send its own records only (a shared file sent by every run
multiplied the POSTs and stranded records when 50 runs shared one host).

Each file has a :class:`Lease` (an OS lock on ``<run_id>.lock``), held by the
process whose run writes it. The OS drops the lock when that process dies, so
a file whose lease can be taken is a leftover: the next tracked fit or
``fitwire outbox flush`` claims it, one claimer at a time, and sends it.
The shared ``<data dir>/outbox.sqlite3`` of earlier versions is read as one
more leftover.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fitwire.settings import Settings

DIR_NAME = "outbox"
SUFFIX = ".sqlite3"
LEGACY_FILE_NAME = "outbox.sqlite3"
BUSY_TIMEOUT_S = 10.0
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


def outbox_dir(settings: Settings) -> Path:
    """Where the per-run outbox files live."""
    return settings.data_dir / DIR_NAME


def outbox_files(settings: Settings) -> list[Path]:
    """Every outbox file on this host, oldest first (the shared file of earlier versions included)."""
    files = list(outbox_dir(settings).glob("*" + SUFFIX))
    legacy = settings.data_dir / LEGACY_FILE_NAME
    if legacy.exists():
        files.append(legacy)

    def age(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return 0.0

    return sorted(files, key=age)


def remove_files(path: Path) -> None:
    """Delete an outbox file with its WAL and shared-memory files."""
    for extra in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            os.unlink(f"{path}{extra}")


# --- leases ----------------------------------------------------------------------------


def _lock(fd: int) -> None:
    """Take an exclusive, non-blocking OS lock on ``fd``; OSError when someone holds it."""
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


class Lease:
    """The claim of one live process (or thread) on one outbox file; only its holder sends that file.

    A ``flock`` on a side file, not on the database: SQLite's own POSIX locks on
    the database would be dropped if we closed another descriptor of it.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @staticmethod
    def lock_path(db_path: Path) -> Path:
        return db_path.with_suffix(".lock")

    @classmethod
    def take(cls, db_path: Path) -> Lease | None:
        """The lease on ``db_path``, or None when a live process holds it (or the file just went away)."""
        lock = cls.lock_path(db_path)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None
        try:
            _lock(fd)
            # Its holder may have removed the lock file between our open and our lock.
            if os.stat(lock).st_ino != os.fstat(fd).st_ino:
                raise OSError("lock file replaced")
        except OSError:
            os.close(fd)
            return None
        return cls(lock, fd)

    def release(self, *, remove: bool = False) -> None:
        """Drop the lease; ``remove`` deletes the lock file first (its database is gone)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if remove:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        os.close(fd)


def claim_run_file(settings: Settings, run_id: str) -> tuple[Path, Lease | None]:
    """The outbox file a new run session writes, with its lease.

    ``<run_id>.sqlite3`` normally, so a resumed run continues its own file; when
    that one is held (the same run id still ending elsewhere), a file of its own.
    """
    directory = outbox_dir(settings)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
    except OSError:
        return directory / (run_id + SUFFIX), None
    path = directory / (run_id + SUFFIX)
    lease = Lease.take(path)
    if lease is None:
        path = directory / f"{run_id}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        lease = Lease.take(path)
    return path, lease


# --- the table ---------------------------------------------------------------------------


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


class Outbox:
    """One outbox file's table of unsent records.

    Each thread opens its own instance (a connection), except that one instance
    may be shared under its lock: the run session's writer is used from
    whichever thread Keras runs a hook on.

    Args:
        path: the file, or a ``file:…?mode=memory&cache=shared`` URI (kept in memory only).
        create: False to open an existing file only (``fitwire outbox status``).
    """

    def __init__(self, path: Path | str, *, create: bool = True) -> None:
        self.path = path
        uri = str(path).startswith("file:")
        if not uri:
            target = Path(path)
            if not create and not target.exists():
                raise FileNotFoundError(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            # The rows hold API tokens: readable by the owner only, like the login file.
            os.close(os.open(target, os.O_RDWR | os.O_CREAT, 0o600))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False, uri=uri)
        if not uri:
            self._db.execute("PRAGMA journal_mode=WAL")
            # A commit survives the process dying (it is in the OS's cache); only a power cut
            # could lose the last records. Full fsync would cost the training thread milliseconds.
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _run(self, sql: str, args: Sequence[object] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def add(self, record: Record) -> None:
        """Store ``record``; a newer record of the same (run, kind, epoch) replaces the old one."""
        with self._tx() as db:
            if record.kind == "train_begin":
                # A resumed run begins again: the end its previous process left is not its end.
                db.execute("DELETE FROM records WHERE run_id = ? AND kind = 'train_end' AND state = 'pending'",
                           (record.run_id,))
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
        rows = self._run(sql + " ORDER BY id", args).fetchall()
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
        # By id: a newer record of the same epoch written meanwhile has a new id and stays.
        self._run("DELETE FROM records WHERE id = ?", (record.id,))

    def replace_body(self, record: Record, body: bytes) -> Record:
        """Keep a smaller version of ``record`` instead (after the webhook refused the full one)."""
        self._run("UPDATE records SET body = ? WHERE id = ?", (body, record.id))
        return Record(run_id=record.run_id, kind=record.kind, epoch=record.epoch, server=record.server,
                      token=record.token, body=body, id=record.id, attempts=record.attempts,
                      next_at=record.next_at)

    def retry_later(self, record: Record, error: str) -> None:
        delay = min(RETRY_MAX_S, RETRY_STEP_S * 2 ** min(record.attempts, 16))
        self._run(
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
        cur = self._run(f"UPDATE records SET state = 'rejected', last_error = ? WHERE {where}", [error, *args])
        return cur.rowcount

    def requeue_rejected(self, token: str | None = None, server: str | None = None) -> int:
        """Make rejected records pending again; ``token`` replaces the token of those bound for
        ``server`` that it refused with 401 (a token goes only to the server that issued it)."""
        with self._tx() as db:
            if token and server:
                db.execute("UPDATE records SET token = ? WHERE state = 'rejected' AND last_error LIKE '401%' "
                           "AND rtrim(server, '/') = ?", (token, server.rstrip("/")))
            cur = db.execute("UPDATE records SET state = 'pending', attempts = 0, next_at = 0 WHERE state = 'rejected'")
        return cur.rowcount

    def counts(self) -> dict[str, int]:
        rows = self._run("SELECT state, COUNT(*) FROM records GROUP BY state").fetchall()
        return {"pending": 0, "rejected": 0, **{state: n for state, n in rows}}

    def pending(self, run_id: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM records WHERE state = 'pending'", []
        if run_id is not None:
            sql, args = sql + " AND run_id = ?", [run_id]
        return int(self._run(sql, args).fetchone()[0])

    def rows(self) -> list[dict[str, object]]:
        """Every record, without bodies or tokens, for ``fitwire outbox status``."""
        cur = self._run(
            "SELECT run_id, kind, epoch, server, state, attempts, last_error, created_at FROM records ORDER BY id"
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def next_due_in(self) -> float | None:
        row = self._run("SELECT MIN(next_at) FROM records WHERE state = 'pending'").fetchone()
        return None if row[0] is None else max(0.0, row[0] - time.time())

    def close(self) -> None:
        with self._lock:
            self._db.close()
