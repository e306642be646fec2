"""`fitwire watch`: a model's previous runs, then its live runs with a progress bar per epoch.

Order matters when joining a run mid-way: the watcher queue is bound *before*
the stored state is fetched from the webhook, so nothing falls between the
two; events for epochs already drawn from the state are skipped.

Everything a run sends is remote text: it is drawn through :func:`display.clean`
and never as rich markup.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from fitwire.cli import display
from fitwire.cli.common import EXIT_INTERRUPTED, EXIT_OK, Api, ApiError, CliError, Unreachable
from fitwire.cli.wire import WatchQueue, run_pattern
from fitwire.contract import BrokerError, BrokerUnavailable, Signal
from fitwire.contract.entities import Model, Run
from fitwire.contract.messages import (
    Batch,
    EpochBegin,
    EpochEnd,
    ProgressEvent,
    SignalAck,
    TrainBegin,
    TrainEnd,
)

POLL_S = 0.2
"""How long one wait for broker events lasts; also how often staleness and timeouts are checked."""
STALE_S = 60.0
"""A run that sent nothing (not even a heartbeat) for this long has probably lost its process."""
RECONNECT_CAP_S = 5.0
HISTORY_ROWS = 5
NAME_TRIES = 5
NAME_RETRY_S = 1.0


@dataclass
class RunView:
    """What the watcher knows and has drawn of one run."""

    run_id: str
    model_key: str
    label: str
    epochs: int | None = None
    steps: int | None = None
    started: float | None = None
    epoch: int | None = None
    epoch_started: float | None = None
    task: TaskID | None = None
    drawn: set[int] = field(default_factory=set)
    stop_acked: bool = False
    partial: int | None = None
    ended: bool = False
    silent: bool = False
    last_seen: float = field(default_factory=time.monotonic)
    named: bool = False
    name_tries: int = 0
    next_name_try: float = 0.0


class Watcher:
    """Draws the runs of one model (optionally focused on one run first) until told to stop."""

    def __init__(
        self,
        client: Api,
        console: Console,
        *,
        owner: str,
        model: Model,
        amqp_url: str,
        run: Run | None = None,
        once: bool = False,
        stop_on_exit: bool = False,
        timeout: float | None = None,
    ) -> None:
        self.client = client
        self.console = console
        self.owner = owner
        self.model = model
        self.model_key = model.key
        self.focus: str | None = run.run_id if run else None
        self.once = once
        self.stop_on_exit = stop_on_exit
        self.deadline = time.monotonic() + timeout if timeout else None
        self.views: dict[str, RunView] = {}
        self.finished_any = False
        self.lost = False
        self.waiting_said = False
        self.since = time.time()
        # The model's owner names its keys (an admin may watch someone else's model).
        self.model_owner = model.owner or owner
        self.queue = WatchQueue(amqp_url, [run_pattern(self.model_owner, self.model_key)], name="fitwire-watch")
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),  # run names and metric names are remote text
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            display.RateColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}", markup=False),
            console=console,
        )

    # --- the main loop ------------------------------------------------------------

    def run(self) -> int:
        """Watch until done; the exit code."""
        self.queue.open()  # before anything is drawn: an unreachable broker is exit 3, not a half view
        try:
            with self.progress:
                self._history()
                self._catch_up()
                return self._loop()
        except KeyboardInterrupt:
            return self._interrupted()
        finally:
            self.queue.close()

    def _loop(self) -> int:
        while True:
            if self.once and (self.finished_any or self.lost) and not self._live():
                if self.lost and not self.finished_any:
                    raise CliError("The watched run went silent before it ended; its process may be gone")
                return EXIT_OK
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise CliError("Stopped watching: --timeout reached before the run(s) ended")
            self._say_waiting()
            try:
                events = self.queue.poll(POLL_S)
            except BrokerUnavailable:
                self._reconnect()
                continue
            for event in events:
                self._handle(event)
            self._check_stale()

    def _live(self) -> list[RunView]:
        return [v for v in self.views.values() if not v.ended and not v.silent]

    def _print(self, renderable: Any) -> None:
        self.progress.console.print(renderable, highlight=False, soft_wrap=True)

    def _say_waiting(self) -> None:
        if self._live() or self.waiting_said or (self.once and self.finished_any):
            return
        self.waiting_said = True
        self._print(
            display.remote(f"Waiting for the next run of model {self.model.name} ({self.model_key})… "
                           "Ctrl+C to leave.", style="dim")
        )

    def _reconnect(self) -> None:
        self._print(Text("Lost the broker connection; reconnecting…", style="yellow"))
        lost = time.monotonic()
        if not self.queue.reopen(cap=RECONNECT_CAP_S, give_up_at=self.deadline):
            return
        try:
            self._catch_up()
        except Unreachable:  # live events still flow; the stored ones come at the next catch-up
            self._print(Text("The server is unreachable too; showing live events only.", style="yellow"))
        self._print(
            Text(f"Reconnected after {display.fmt_duration(time.monotonic() - lost)}; caught up.", style="dim")
        )

    # --- state from the webhook ---------------------------------------------------

    def _history(self) -> None:
        runs = self.client.runs(self.model_key)
        done = [r for r in runs if r.status != "running" and r.run_id != self.focus]
        title = f"Model {self.model.name} ({self.model_key}): {len(runs)} run(s)"
        if done:
            shown = done[:HISTORY_ROWS]
            epochs = self.client.epochs_of([r.run_id for r in shown])
            self._print(display.runs_table(shown, epochs, title=title + ", previous:"))
        else:
            self._print(display.remote(title, style="bold"))

    def _catch_up(self) -> None:
        """Draw what the webhook stored and the live events did not show (start, reconnect)."""
        if self.focus is not None:
            self._sync(self.focus)
            return
        for run in self.client.runs(self.model_key):
            view = self.views.get(run.run_id)
            if (view is not None and not view.ended) or (
                view is None and (run.status == "running" or run.started_at.timestamp() >= self.since)
            ):
                self._sync(run.run_id)

    def _sync(self, run_id: str) -> RunView | None:
        try:
            state = self.client.run_state(run_id)
        except ApiError as exc:
            if exc.status == 404:
                return None  # its train_begin is still on its way to the webhook
            raise
        run, epochs = state.run, state.epochs
        view = self._view_from_run(run)
        partial = display.partial_epoch(run, epochs)
        for epoch in sorted(epochs, key=lambda e: e.epoch):
            self._epoch_done(view, epoch.epoch, dict(epoch.logs), partial=epoch.epoch == partial)
        if run.status != "running":
            ended = run.ended_at.timestamp() if run.ended_at else None
            took = ended - view.started if ended and view.started else None
            self._finish(view, run.status, run.reason, display.epochs_done(epochs), took, dict(run.final_logs))
        elif view.epoch is None:
            last = state.last_epoch
            self._start_epoch(view, last.epoch + 1 if last else 0, known_start=False)
        return view

    def _try_sync(self, run_id: str) -> RunView | None:
        """``_sync`` when the server answers; a webhook blip must not end a live view."""
        try:
            return self._sync(run_id)
        except Unreachable:
            return None

    def _view_from_run(self, run: Run) -> RunView:
        view = self.views.get(run.run_id)
        if view is None:
            view = RunView(run.run_id, run.model_key, "")
            self.views[view.run_id] = view
            self.waiting_said = False
        view.label = display.run_label(run, view.run_id)
        view.named = True
        view.epochs = run.epochs or view.epochs
        view.steps = run.steps or view.steps
        view.started = run.started_at.timestamp()
        view.last_seen = time.monotonic()
        return view

    def _name(self, view: RunView) -> None:
        """Learn the run's name (training_003) lazily: its train_begin reaches the broker
        before the Tracker's outbox has told the webhook, so ask again now and then."""
        now = time.monotonic()
        if view.named or view.name_tries >= NAME_TRIES or now < view.next_name_try:
            return
        view.name_tries += 1
        view.next_name_try = now + NAME_RETRY_S
        try:
            run = self.client.run(view.run_id)
        except (ApiError, Unreachable):
            return
        view.named = True
        view.label = display.run_label(run, view.run_id)
        if view.task is not None:
            self.progress.update(view.task, description=self._describe(view))

    # --- live events --------------------------------------------------------------

    def _handle(self, event: ProgressEvent) -> None:
        if self.focus is not None and event.run_id != self.focus:
            return
        view = self.views.get(event.run_id)
        if view is None:
            # A run we had not heard of: new, or begun before we bound (then draw its past first).
            fresh = isinstance(event, TrainBegin)
            view = (None if fresh else self._try_sync(event.run_id)) or self._bare_view(event)
        if view.ended:
            return
        view.last_seen = time.monotonic()
        if view.silent:
            view.silent = False
            self._print(Text(f"{view.label} is sending again.", style="dim"))
        if isinstance(event, TrainBegin):
            self._began(view, event)
        elif isinstance(event, EpochBegin):
            self._start_epoch(view, event.epoch)
        elif isinstance(event, Batch):
            self._batch(view, event)
        elif isinstance(event, EpochEnd):
            self._name(view)
            # The run acknowledged a STOP before this epoch ended: Keras ended it early.
            self._epoch_done(view, event.epoch, dict(event.logs), event.ts, partial=view.stop_acked)
        elif isinstance(event, TrainEnd):
            self._name(view)
            took = event.ts - view.started if view.started else None
            done = max(view.drawn) + 1 if view.drawn else 0
            self._finish(view, event.status, event.reason, done, took, dict(event.logs) or None)
        elif isinstance(event, SignalAck):
            view.stop_acked = view.stop_acked or (event.ok and event.action == "stop")
            verdict = "acknowledged" if event.ok else "refused"
            detail = f": {display.clean(event.detail)}" if event.detail else ""
            self._print(Text(f"  {view.label} {verdict} {display.clean(event.action)}{detail}", style="dim"))

    def _bare_view(self, event: ProgressEvent) -> RunView:
        view = RunView(event.run_id, event.model_key, display.run_label(None, event.run_id))
        self.views[event.run_id] = view
        self.waiting_said = False
        return view

    def _began(self, view: RunView, event: TrainBegin) -> None:
        view.epochs = event.epochs
        view.steps = event.steps
        view.started = event.ts
        where = f" on {display.clean(event.host)}" if event.host else ""
        framework = (
            f" ({display.clean(event.framework)} {display.clean(event.framework_version)})".rstrip()
            if event.framework else ""
        )
        shape = f"{event.epochs} epochs" if event.epochs else "epochs unknown"
        if event.steps:
            shape += f" × {event.steps} steps"
        self._print(Text(f"▶ {view.label} started{where}{framework}: {shape}", style="bold cyan"))

    def _describe(self, view: RunView) -> str:
        of = f"/{view.epochs}" if view.epochs else ""
        return f"{view.label} epoch {(view.epoch or 0) + 1}{of}"

    def _start_epoch(self, view: RunView, epoch: int, *, known_start: bool = True) -> None:
        if epoch in view.drawn:
            return
        view.epoch = epoch
        view.epoch_started = time.time() if known_start else None
        if view.task is not None:
            self.progress.remove_task(view.task)
        view.task = self.progress.add_task(self._describe(view), total=view.steps, metrics="")

    def _batch(self, view: RunView, event: Batch) -> None:
        if event.epoch in view.drawn:
            return
        self._name(view)
        if view.epoch != event.epoch or view.task is None:
            self._start_epoch(view, event.epoch, known_start=False)
        assert view.task is not None
        total = view.steps
        if total is None and event.progress:
            total = max(event.batch + 1, round((event.batch + 1) / event.progress))
        self.progress.update(
            view.task, completed=event.batch + 1, total=total, metrics=display.fmt_logs(dict(event.logs))
        )

    def _epoch_done(self, view: RunView, epoch: int, logs: dict[str, Any], ts: float | None = None,
                    *, partial: bool = False) -> None:
        if epoch in view.drawn:
            return
        view.drawn.add(epoch)
        if partial:
            view.partial = epoch
        took = ts - view.epoch_started if ts and view.epoch == epoch and view.epoch_started else None
        if view.epoch == epoch and view.task is not None:
            self.progress.remove_task(view.task)
            view.task, view.epoch = None, None
        self._print(display.epoch_line(view.label, epoch, view.epochs, logs, took, partial=partial))

    def _finish(self, view: RunView, status: str, reason: str | None, done: int,
                took: float | None, logs: dict[str, Any] | None) -> None:
        if view.task is not None:
            self.progress.remove_task(view.task)
            view.task, view.epoch = None, None
        view.ended = True
        self.finished_any = True
        partial = view.partial is not None and view.partial == done - 1
        self._print(display.end_line(view.label, status, reason, done, view.epochs, took, logs, partial=partial))
        if self.focus == view.run_id:
            self.focus = None  # the watched run is over: from now on, any next run of the model

    def _check_stale(self) -> None:
        now = time.monotonic()
        for view in self._live():
            if now - view.last_seen > STALE_S:
                view.silent = True
                self.lost = self.once  # --once: nothing more will come of it; leave with exit 1
                self._print(
                    Text(f"{view.label} has sent nothing for {STALE_S:.0f} s; its process may be gone.",
                         style="yellow")
                )

    # --- leaving ------------------------------------------------------------------

    def _interrupted(self) -> int:
        live = [v for v in self.views.values() if not v.ended]
        if live and (self.stop_on_exit or _ask("Stop the training too?")):
            for view in live:
                self._send_stop(view)
        return EXIT_INTERRUPTED

    def _send_stop(self, view: RunView) -> None:
        signal = Signal(action="stop", model_key=view.model_key, run_id=view.run_id, sender=self.owner)
        try:
            try:
                self.queue.publish(signal, self.model_owner)
            except BrokerError:  # the interrupt may have hit pika mid-frame: one fresh connection
                self.queue.open(attempts=1)
                self.queue.publish(signal, self.model_owner)
        except (BrokerError, Unreachable):
            self.console.print(f"Could not send STOP to {view.label}: the broker is unreachable.", style="red",
                               markup=False)
            return
        self.console.print(f"Sent STOP to {view.label} (signal {signal.id[:8]}).", markup=False, highlight=False)


def _interactive() -> bool:
    return sys.stdin.isatty()


def _ask(question: str) -> bool:
    """A y/N question; no (without asking) when nobody is at a terminal."""
    if not _interactive():
        return False
    try:
        return typer.confirm(question, default=False)
    except (typer.Abort, KeyboardInterrupt, EOFError):
        return False
