"""Sending outbox records to the webhook: one pass over a file, refusals, and leftovers of other runs.

Used by a run's outbox thread (:mod:`fitwire.callback.outbox_sender`) and by
``fitwire outbox flush``. Nothing here raises for HTTP trouble: a record is
sent (and deleted), retried later, made smaller once, or refused for good.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from fitwire.callback import _notices
from fitwire.callback.outbox import Lease, Outbox, Record, remove_files
from fitwire.client_api.http import http_session
from fitwire.contract.messages import MAX_NAME_CHARS, cut_text

EVENTS_PATH = "/api/v1/events"
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0
SHRUNK_REASON_CHARS = MAX_NAME_CHARS
"""A refused train_end is sent again with its reason cut to this, and without logs."""
SHRINKABLE = frozenset({400, 413, 422})
"""Refusals for what a record carries (too large, a value the store will not take): worth a smaller try."""


@dataclass
class FlushResult:
    sent: int = 0
    rejected: int = 0
    failed: int = 0
    shrunk: int = 0
    live: int = 0
    """Records left alone because a running fit owns their file (it sends them itself)."""
    errors: list[str] = field(default_factory=list)

    def add(self, other: FlushResult) -> None:
        self.sent += other.sent
        self.rejected += other.rejected
        self.failed += other.failed
        self.shrunk += other.shrunk
        self.live += other.live
        self.errors += other.errors


def post(record: Record, timeout: float | tuple[float, float], http: requests.Session) -> int | None:
    """POST one record; the HTTP status, or None when the webhook could not be reached."""
    try:
        resp = http.post(
            record.server + EVENTS_PATH,
            data=record.body,
            # Only the status matters here: the webhook then need not read the run back to answer.
            headers={"Authorization": f"Bearer {record.token}", "Content-Type": "application/json",
                     "Prefer": "return=minimal"},
            timeout=timeout,
        )
    except requests.RequestException:
        return None
    return resp.status_code


def shrink(record: Record) -> bytes | None:
    """A smaller body that still says what matters, for a record the webhook refused; None: nothing to drop.

    The run must not stay ``running`` because its end carried too much: a
    train_end keeps its status and a cut reason, a train_begin its shape
    without params, an epoch_end its number without logs.
    """
    try:
        body = json.loads(record.body)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    if record.kind == "train_end":
        reason = body.get("reason")
        body["reason"] = cut_text(str(reason), SHRUNK_REASON_CHARS) if reason else reason
        body["logs"] = {}
    elif record.kind == "train_begin":
        body["params"] = {}
    elif record.kind == "epoch_end":
        body["logs"] = {}
    smaller = json.dumps(body, separators=(",", ":")).encode()
    return smaller if smaller != record.body else None


def flush(
    outbox: Outbox,
    *,
    deadline: float | None = None,
    run_id: str | None = None,
    notices: _notices.Notices | None = None,
    http: requests.Session | None = None,
    stop: Callable[[], bool] | None = None,
    respect_backoff: bool = True,
) -> FlushResult:
    """One pass over the pending records of one file (of ``run_id`` only, when given).

    A webhook that cannot be reached or answers 5xx/429 is not tried again in
    this pass; its records back off. 401 rejects every record with that token,
    404 every record of that run (its model key is unknown). Any other 4xx
    (too large, a field the webhook will not take) sends the record once more
    made smaller (:func:`shrink`), then refuses it: a record that can never
    succeed is not retried forever, and a run's end is not lost to its size.

    Args:
        deadline: ``time.monotonic()`` after which no request starts; requests are cut to it.
        stop: polled between records; True ends the pass.
    """
    notices = notices or _notices.Notices()
    http = http or http_session(retry=False)
    result = FlushResult()
    down: set[str] = set()
    blocked_runs: set[str] = set()
    now = time.time()
    for rec in outbox.due(None, run_id):
        if stop is not None and stop():
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
        if status in SHRINKABLE:
            smaller = shrink(rec)
            if smaller is not None:
                rec = outbox.replace_body(rec, smaller)
                result.shrunk += 1
                notices.warn(
                    _notices.SHRUNK,
                    f"the webhook at {rec.server} refused a {rec.kind} record ({status}); "
                    "sent it again without its logs, params or long reason.",
                )
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


def flush_leftover(
    path: Path,
    *,
    deadline: float | None = None,
    notices: _notices.Notices | None = None,
    http: requests.Session | None = None,
    stop: Callable[[], bool] | None = None,
    respect_backoff: bool = True,
    before: Callable[[Outbox], None] | None = None,
) -> FlushResult | None:
    """Claim one outbox file that no live process holds, send it, and delete it once empty.

    Returns:
        What the pass did, or None when a live run holds the file (it sends its records itself).
    """
    lease = Lease.take(path)
    if lease is None:
        return None
    empty = False
    try:
        if not path.exists():  # its holder finished it between our listing and our claim
            empty = True
            return FlushResult()
        outbox = Outbox(path, create=False)
        try:
            if before is not None:
                before(outbox)
            result = flush(outbox, deadline=deadline, notices=notices, http=http, stop=stop,
                           respect_backoff=respect_backoff)
            counts = outbox.counts()
            empty = not counts["pending"] and not counts["rejected"]
        finally:
            outbox.close()
        if empty:
            remove_files(path)
        return result
    finally:
        lease.release(remove=empty)


def flush_leftovers(
    paths: Iterable[Path],
    *,
    deadline: float | None = None,
    notices: _notices.Notices | None = None,
    http: requests.Session | None = None,
    stop: Callable[[], bool] | None = None,
    respect_backoff: bool = True,
    before: Callable[[Outbox], None] | None = None,
    count_live: bool = False,
) -> FlushResult:
    """:func:`flush_leftover` over ``paths``; with ``count_live``, records of live runs' files count in ``live``."""
    total = FlushResult()
    for path in paths:
        if stop is not None and stop():
            break
        if deadline is not None and time.monotonic() >= deadline:
            break
        result = flush_leftover(path, deadline=deadline, notices=notices, http=http, stop=stop,
                                respect_backoff=respect_backoff, before=before)
        if result is None:
            if count_live:
                total.live += _pending_in(path)
        else:
            total.add(result)
    return total


def _pending_in(path: Path) -> int:
    try:
        outbox = Outbox(path, create=False)
    except (OSError, sqlite3.Error):  # gone or unreadable: nothing to count
        return 0
    try:
        return outbox.pending()
    finally:
        outbox.close()

