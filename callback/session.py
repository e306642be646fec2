"""``RunSession``: the framework-free core of the Tracker, usable from any training loop.

The training thread only calls cheap methods here (they build a dict and hand
it over); the transport thread publishes progress and receives signals, the
outbox thread persists run records over HTTP. Both threads end with the run.
The three records the webhook stores (train_begin, each epoch_end, train_end)
are written to the run's outbox file on the calling thread before the call
returns (a small SQLite insert: about 30 µs, 0.1 ms at p99), so neither a
hung webhook nor a crash right after can lose them.

Example:
    ```python
    from fitwire.callback import RunSession

    with RunSession("MODEL_KEY") as run:
        run.start(params={"lr": 1e-3}, epochs=3, steps=len(loader))
        for epoch in range(3):
            run.begin_epoch(epoch)
            for i, batch in enumerate(loader):
                loss = train_step(batch)
                run.log_batch(epoch, i, {"loss": loss})
                if run.stop_requested:
                    break
            run.log_epoch(epoch, {"loss": loss})
            if run.stop_requested:
                break
    ```
"""

from __future__ import annotations

import atexit
import logging
import math
import socket
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from fitwire import credentials
from fitwire.callback import _notices, identity
from fitwire.callback.outbox import Outbox, Record, claim_run_file, outbox_files
from fitwire.callback.outbox_sender import OutboxSender
from fitwire.callback.transport import FLUSH_S, EventQueue, Transport, numbers
from fitwire.client_api.http import token_for
from fitwire.contract.enums import RunEnd, SignalAction
from fitwire.contract.messages import (
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    EpochEnd,
    Signal,
    TrainBegin,
    TrainEnd,
    cut_text,
    encode,
    new_id,
)
from fitwire.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCHES_PER_SECOND: float | None = None
"""Every batch: consecutive batches travel together in one message (``flush_interval``), so a
1 ms/step fit costs about 20 publishes a second either way; a number caps what watchers get."""
MAX_FLUSH_INTERVAL_S = 2.0
"""Watcher queues drop messages older than 5 s; a batch must reach them well before."""
END_GRACE_S = 0.5
"""What the end of a run may take beyond ``outbox_wait`` (closing files and threads), whatever
the webhook and the broker do; the README states the same bound."""

UNAUTHENTICATED_SIGNAL = (
    "unauthenticated signal: it carries no user_id, so nobody vouches for its sender "
    "(fitwire stop/lr set it; RabbitMQ checks it against the sender's login)"
)

SignalHandler = Callable[[Signal], tuple[bool, str]]
"""Acts on one signal; returns whether it did and what (the ack's ``ok`` and ``detail``)."""
SignalHandlers = Mapping[SignalAction, SignalHandler]
"""A run's one table of signal handlers, by action."""

_OPEN: weakref.WeakSet[RunSession] = weakref.WeakSet()


class RunSession:
    """One run of one model: progress out over RabbitMQ, signals in, records to the webhook.

    Args:
        model_key: the model this run belongs to.
        token: API token; default ``FITWIRE_TOKEN`` or the ``fitwire login`` file.
        run_id: a fixed run id (a resumed job continues its run); default a fresh id.
        webhook_url: default ``FITWIRE_WEBHOOK_URL`` or the login file's server.
        amqp_url: the broker, unless the webhook announces a login of this client's own (that wins);
            it beats FITWIRE_AMQP_URL and a shared login the webhook announces.
        settings: default ``Settings.from_env()``.
        every_n_batches: publish only every n-th batch.
        max_batches_per_second: publish at most this many batch events a second
            (default None: every batch). The last batch of an epoch always goes out.
        flush_interval: longest a batch waits before it is published, in seconds;
            batches that come faster travel together in one ``batches`` message.
            While the machine cannot keep up (the transport runs later than this),
            the window widens up to 0.4 s, and narrows back once it is on time.
        outbox_wait: seconds ``end`` may wait for the webhook (default ``settings.outbox_wait``).
        handlers: what this run does with each signal action (see :data:`SignalHandlers`).
            ``stop`` runs at once on the transport thread, before ``stop_requested`` turns
            True (it may only set flags: the loop halts at its next batch); the others run
            on the loop's own thread in :meth:`apply_signals`, where changing the model is
            safe. A handler returns ``(ok, what it did)`` for the ack; an action without a
            handler is refused (a STOP still sets ``stop_requested``).
        owner: the username the run's routing keys start with when no webhook answers for the
            token (default: the saved login's, else ``anonymous``); the webhook's answer wins.
    """

    def __init__(
        self,
        model_key: str,
        *,
        token: str | None = None,
        run_id: str | None = None,
        webhook_url: str | None = None,
        amqp_url: str | None = None,
        settings: Settings | None = None,
        every_n_batches: int | None = None,
        max_batches_per_second: float | None = DEFAULT_MAX_BATCHES_PER_SECOND,
        outbox_wait: float | None = None,
        flush_interval: float = FLUSH_S,
        handlers: SignalHandlers | None = None,
        owner: str | None = None,
    ) -> None:
        if not model_key or not isinstance(model_key, str):
            raise ValueError("model_key must be a non-empty string (the key `fitwire models create` printed)")
        if every_n_batches is not None and every_n_batches < 1:
            raise ValueError("every_n_batches must be at least 1")
        if max_batches_per_second is not None and not max_batches_per_second > 0:
            raise ValueError("max_batches_per_second must be positive (or None for no limit)")
        if not 0 < flush_interval <= MAX_FLUSH_INTERVAL_S:
            raise ValueError(f"flush_interval must be above 0 and at most {MAX_FLUSH_INTERVAL_S:g} seconds")
        self.settings = settings or Settings.from_env()
        self.model_key = model_key
        self.run_id = run_id or new_id()
        self._webhook_url = (webhook_url or credentials.resolve_server(self.settings)).rstrip("/")
        # The login file's token goes only to the server that issued it, never to a webhook_url named here.
        self._token = token_for(self.settings, self._webhook_url, token)
        self._amqp_url = amqp_url
        self._every_n = every_n_batches
        self._min_interval = 1.0 / max_batches_per_second if max_batches_per_second else 0.0
        self._outbox_wait = self.settings.outbox_wait if outbox_wait is None else outbox_wait
        self._handlers: SignalHandlers = dict(handlers or {})
        self._owner = owner
        self.notices = _notices.Notices()
        self._events = EventQueue(flush_after=flush_interval)
        self._transport: Transport | None = None
        self._outbox: OutboxSender | None = None
        self._writer: Outbox | None = None
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._pending: list[Signal] = []
        self._unacked: dict[str, Signal] = {}
        self._steps: int | None = None
        self._last_batch = (-1, -1)
        self._epoch_began: tuple[int, float] | None = None
        self._last_batch_at = -math.inf
        self._started = False
        self._ended = False
        self.stop_requested = False
        self.stop_signal: Signal | None = None
        self.has_pending = False
        """True while a signal waits for :meth:`apply_signals` (cheap to poll)."""
        self.stored: bool | None = None
        """After ``end``: whether the webhook has every record of this run (None: no token)."""

    # --- lifecycle -------------------------------------------------------------------

    def open(self) -> None:
        """Start the background threads (idempotent); ``start`` calls it too.

        Opening before ``start`` lets the connection and the signal queue come
        up while the caller still prepares the run.
        """
        if self._transport is not None:
            return
        self._transport = Transport(
            model_key=self.model_key,
            run_id=self.run_id,
            events=self._events,
            resolve_identity=self._resolve_identity,
            on_signal=self._deliver,
            notices=self.notices,
        )
        if self._token:
            self._open_outbox()
        # Said in the webhook-down line, whichever thread writes it first.
        self.notices.set_context(
            _notices.WEBHOOK_DOWN,
            identity.offline_broker(self.settings, self._webhook_url, self._amqp_url)[1],
        )
        if self._outbox is not None:
            self._outbox.start()
        self._transport.start()
        _OPEN.add(self)

    def start(
        self,
        params: Mapping[str, Any] | None = None,
        epochs: int | None = None,
        steps: int | None = None,
        framework: str = "python",
        framework_version: str = "",
        initial_epoch: int = 0,
    ) -> None:
        """Begin the run: publishes and stores ``train_begin``."""
        self.open()
        if self._started:
            return
        self._started = True
        self._steps = steps if steps and steps > 0 else None
        event = {
            "type": "train_begin",
            "ts": time.time(),
            "params": _jsonable(params or {}),
            "epochs": epochs,
            "steps": self._steps,
            "initial_epoch": initial_epoch,
            "host": socket.gethostname(),
            "framework": framework,
            "framework_version": framework_version,
        }
        self._events.put(event)
        self._store(TrainBegin, event, epoch=-1)

    def log_batch(self, epoch: int, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Report a finished batch; the hot path: a few comparisons and a dict, never blocks."""
        if not self._started or self._ended:
            return
        last = self._steps is not None and batch + 1 >= self._steps
        if self._every_n is not None and (batch + 1) % self._every_n and not last:
            return
        now = time.monotonic()
        if now - self._last_batch_at < self._min_interval and not last:
            return
        key = (epoch, batch)
        if key <= self._last_batch:  # async Keras hooks may finish out of order
            return
        self._last_batch, self._last_batch_at = key, now
        self._events.put_batch({
            "type": "batch",
            "ts": time.time(),
            "epoch": epoch,
            "batch": batch,
            "progress": min(1.0, (batch + 1) / self._steps) if self._steps else None,
            "logs": dict(logs) if logs else {},
        })

    def begin_epoch(self, epoch: int) -> None:
        if self._started and not self._ended:
            self._epoch_began = (epoch, time.monotonic())
            self._events.put({"type": "epoch_begin", "ts": time.time(), "epoch": epoch})

    def log_epoch(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Report a finished epoch (all logs, ``val_*`` included): published and stored.

        Its ``duration`` is the wall-clock time since ``begin_epoch`` of the same epoch
        (validation included); None when the loop did not call ``begin_epoch``.
        """
        if not self._started or self._ended:
            return
        began, self._epoch_began = self._epoch_began, None
        duration = time.monotonic() - began[1] if began and began[0] == epoch else None
        event = {"type": "epoch_end", "ts": time.time(), "epoch": epoch, "logs": numbers(logs), "duration": duration}
        self._events.put(event)
        self._store(EpochEnd, event, epoch=epoch)

    def end(self, status: RunEnd, reason: str | None = None, logs: Mapping[str, Any] | None = None) -> None:
        """End the run, wait at most ``outbox_wait`` s for the webhook, and stop both threads."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            leftovers = list(self._unacked.values())
            self._pending.clear()
            self._unacked.clear()
            self.has_pending = False
        for signal in leftovers:
            self._ack(signal, False, "the run ended before it acted on this signal")
        if self._started:
            event = {"type": "train_end", "ts": time.time(), "status": status, "reason": reason,
                     "logs": numbers(logs)}
            self._events.put(event)
            self._store(TrainEnd, event, epoch=-1)
        self._close()

    @property
    def ended(self) -> bool:
        return self._ended

    def _open_outbox(self) -> None:
        """The run's outbox file, claimed by this session; in memory (with a warning) when it cannot be."""
        path: Path | str
        path, lease = claim_run_file(self.settings, self.run_id)
        try:
            if lease is None:
                raise OSError(f"cannot lock {path}")
            self._writer = Outbox(path)
        except (OSError, sqlite3.Error) as exc:
            if lease is not None:
                lease.release()
            lease = None
            self.notices.warn(
                _notices.OUTBOX_UNAVAILABLE,
                f"cannot open the outbox at {path} ({exc}); run records are kept in memory only.",
            )
            path = f"file:fitwire-outbox-{self.run_id}?mode=memory&cache=shared"
            self._writer = Outbox(path)
        own = path

        def leftovers() -> list[Path]:
            return [p for p in outbox_files(self.settings) if p != own]

        self._outbox = OutboxSender(path, lease=lease, run_id=self.run_id, notices=self.notices,
                                    leftovers=leftovers)

    def _close(self) -> None:
        """Stop both threads within ``outbox_wait`` + :data:`END_GRACE_S`, whatever the webhook and broker do.

        Both get the same deadline and work at once: the transport publishes
        ``train_end`` while the outbox sends it. What the outbox could not send
        is already in its file (written by ``_store``).
        """
        deadline = time.monotonic() + self._outbox_wait
        transport, outbox = self._transport, self._outbox
        if transport is not None:
            transport.close()
        with self._write_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        if outbox is not None:
            self.stored = outbox.finish(deadline)
            if not self.stored and outbox.remaining is None:
                # A hung webhook: no request failed yet, so nothing has told the user.
                self.notices.warn(
                    _notices.WEBHOOK_DOWN,
                    f"the webhook at {self._webhook_url} did not answer within {self._outbox_wait:g} s "
                    "(outbox_wait); this run's records wait in the outbox (`fitwire outbox flush`).",
                )
        if transport is not None:
            # Wait for the last publishes only: the AMQP close handshake (p99 ~40–130 ms on a
            # busy machine) finishes in the background, bounded at exit. A broker that accepts
            # but never answers leaves the thread in pika's connect; it is a daemon and ends on
            # its own timeout, so it is not waited for beyond the grace either.
            transport.finished_publishing.wait(max(0.0, deadline + END_GRACE_S - time.monotonic()))
        _OPEN.discard(self)

    def __enter__(self) -> RunSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            self.end("failed", f"{type(exc).__name__}: {exc}")
        else:
            self.end("stopped" if self.stop_requested else "completed")

    # --- signals ---------------------------------------------------------------------

    def apply_signals(self) -> None:
        """Run the handlers of the signals that arrived since the last call, and answer each.

        Call it from the training loop between steps (the Tracker does, before every batch).
        A handler that raises is answered as failed, never raised into the loop.
        """
        with self._lock:
            taken, self._pending = self._pending, []
            self.has_pending = False
        for signal in taken:
            handler = self._handlers.get(signal.action)
            try:
                ok, detail = handler(signal) if handler else (False, f"this run does not handle {signal.action!r}")
            except Exception as exc:
                ok, detail = False, f"{signal.action} failed: {type(exc).__name__}: {exc}"
            self._answer(signal, ok, detail)

    def _answer(self, signal: Signal, ok: bool, detail: str) -> None:
        """Ack ``signal`` once: a signal answered already (or at the end of the run) is not answered again."""
        with self._lock:
            if self._unacked.pop(signal.id, None) is None:
                return
        self._ack(signal, ok, detail)

    def _ack(self, signal: Signal, ok: bool, detail: str) -> None:
        self._events.put({"type": "signal_ack", "ts": time.time(), "signal_id": signal.id,
                          "action": signal.action, "ok": ok, "detail": detail})

    def _deliver(self, signal: Signal, sender: str | None) -> None:
        """Called on the transport thread for every signal that reached this run's queue.

        ``sender`` is the broker-validated ``user_id`` of the message; a signal without one
        is answered as refused, since nobody vouches for who sent it. The body's own
        ``sender`` is replaced by it, so what the run records is never the sender's claim.
        """
        if signal.model_key != self.model_key or signal.run_id not in (None, self.run_id):
            # Not addressed to this run: its answer belongs to the other run, not here.
            log.debug("ignoring signal %s for %s/%s", signal.id, signal.model_key, signal.run_id)
            return
        if sender is None:
            log.debug("refusing signal %s: it carries no user_id", signal.id)
            self._ack(signal, False, UNAUTHENTICATED_SIGNAL)
            return
        signal = signal.model_copy(update={"sender": cut_text(sender, MAX_NAME_CHARS)})
        with self._lock:
            if self._ended:
                return
            self._unacked[signal.id] = signal
        if signal.action != "stop":
            if signal.action not in self._handlers:
                self._answer(signal, False, f"this run does not handle {signal.action!r}")
                return
            with self._lock:
                self._pending.append(signal)
                self.has_pending = True
            return
        if self.stop_requested:
            self._answer(signal, True, "already stopping")
            return
        detail = "stop requested; the loop ends at the next batch boundary"
        stop = self._handlers.get("stop")
        if stop is not None:
            try:
                detail = stop(signal)[1]
            except Exception as exc:  # the flag below still stops a loop that polls it
                detail = f"stop requested (the stop handler failed: {exc!r})"
        self.stop_signal = signal
        self.stop_requested = True
        self._answer(signal, True, detail)

    # --- helpers ---------------------------------------------------------------------

    def _resolve_identity(self) -> identity.Identity:
        return identity.resolve(self.settings, token=self._token, webhook_url=self._webhook_url,
                                amqp_url=self._amqp_url, notices=self.notices, owner=self._owner)

    def _store(self, model: type[TrainBegin] | type[EpochEnd] | type[TrainEnd], event: dict[str, Any],
               epoch: int) -> None:
        """Write the record to the run's outbox file now, on the caller's thread; the outbox thread sends it."""
        sender = self._outbox
        if sender is None or not self._token:
            return
        fields = {k: v for k, v in event.items() if k != "seq"}
        ident = self._transport.identity if self._transport else None
        try:
            body = encode(model(run_id=self.run_id, model_key=self.model_key,
                                owner=ident.owner if ident else "", **fields))
        except Exception as exc:  # a record that does not encode must not fail the fit
            log.debug("not storing %s: %r", event["type"], exc)
            return
        record = Record(run_id=self.run_id, kind=event["type"], epoch=epoch,
                        server=self._webhook_url, token=self._token, body=body)
        with self._write_lock:
            writer = self._writer
            try:
                if writer is None:
                    raise sqlite3.OperationalError("the outbox is closed")
                writer.add(record)
            except (OSError, sqlite3.Error) as exc:
                # The outbox thread tries to store it instead; the fit goes on either way.
                log.debug("could not write %s to the outbox: %r", event["type"], exc)
                sender.submit(record)
                return
        sender.wake()


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    """Params as JSON-safe values: numbers and strings as they are, anything else as its str()."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None or isinstance(value, bool | int | str):
            out[str(key)] = value
        elif isinstance(value, float):
            out[str(key)] = value if math.isfinite(value) else str(value)
        else:
            out[str(key)] = str(value)
        if isinstance(out[str(key)], str):
            # A param is the user's own text (a repr can be megabytes): cut, so train_begin stays storable.
            out[str(key)] = cut_text(out[str(key)], MAX_TEXT_CHARS)
    return out


@atexit.register
def _end_open_sessions() -> None:
    """A fit that raised never calls ``on_train_end``; close its run as failed when the process exits."""
    exc = getattr(sys, "last_value", None)
    reason = f"the process exited during the run ({type(exc).__name__}: {exc})" if exc else (
        "the process exited before the run ended")
    for session in list(_OPEN):
        try:
            session.end("failed", reason)
        except Exception:  # exiting anyway
            pass
