"""`fitwire stop` and `fitwire lr`: send a signal to a run (or all running runs of a model) and
wait for its answer.

The watcher queue is bound before the signal goes out, so the run's
``signal_ack`` cannot slip past; the halt time is measured here, from publish
to the ``train_end`` this process received.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.text import Text

from fitwire.cli import display
from fitwire.cli.common import (
    Api,
    CliError,
    ServerOption,
    TokenOption,
    amqp_url_for,
    api,
    io,
    reports_errors,
)
from fitwire.cli.wire import WatchQueue, run_pattern
from fitwire.contract import Signal
from fitwire.contract.entities import Model
from fitwire.contract.messages import SignalAck, SignalAction, TrainEnd, learning_rate_problem

STATUS_CHECK_S = 5.0
"""While waiting, how often to ask the webhook whether a run ended without answering (it finished first)."""

RefArg = Annotated[str, typer.Argument(help="A run id, or a model key/name (= all its running runs).")]
NoWaitOption = Annotated[bool, typer.Option("--no-wait", help="Send and return; do not wait for the answer.")]
TimeoutOption = Annotated[
    float, typer.Option(min=1, help="Seconds to wait for the answer before giving up (exit 1).")
]


@dataclass
class _Target:
    run_id: str
    label: str
    acked: float | None = None
    ended: float | None = None
    status: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def _targets(client: Api, ref: str) -> tuple[Model, str | None, list[_Target]]:
    """The model, the run id (None = the whole model) and the running runs a signal will reach."""
    run, model = client.find_run_or_model(ref)
    if run is not None:
        label = display.run_label(run, run.run_id)
        if run.status != "running":
            raise CliError(f"{label} already ended ({run.status}); there is nothing to signal")
        return model, run.run_id, [_Target(run.run_id, label)]
    running = [r for r in client.runs(model.key) if r.status == "running"]
    if not running:
        raise CliError(f"Model {model.name} ({model.key}) has no running run; there is nothing to signal")
    return model, None, [_Target(r.run_id, display.run_label(r, r.run_id)) for r in running]


def send(
    ref: str, action: SignalAction, *, value: float | None, wait_end: bool, no_wait: bool,
    timeout: float, server: str | None, token: str | None,
) -> None:
    client = api(server, token)
    model, run_id, targets = _targets(client, ref)
    session = client.session()
    # Keys are the model owner's; the broker lets only that owner (and admins, to watch) use them.
    owner = model.owner or session.user.username
    out = io().out
    signal = Signal(action=action, model_key=model.key, run_id=run_id, value=value, sender=session.user.username)
    with WatchQueue(amqp_url_for(session), [run_pattern(owner, model.key, run_id)], name="fitwire-signal") as queue:
        queue.open()
        sent = time.monotonic()
        queue.publish(signal, owner)
        names = ", ".join(t.label for t in targets)
        what = "STOP" if action == "stop" else f"{action} {value:g}" if value is not None else action
        out.print(f"Sent {what} to {names} (signal {signal.id[:8]}).", markup=False, highlight=False)
        if no_wait:
            return
        _wait(client, queue, signal, targets, sent=sent, wait_end=wait_end, timeout=timeout)


def _wait(
    client: Api, queue: WatchQueue, signal: Signal, targets: list[_Target], *,
    sent: float, wait_end: bool, timeout: float,
) -> None:
    out = io().out
    by_id = {t.run_id: t for t in targets}
    deadline = sent + timeout
    next_check = sent + STATUS_CHECK_S

    def settled() -> bool:
        return all((t.ended if wait_end else t.acked) is not None or t.status for t in by_id.values())

    while not settled():
        now = time.monotonic()
        if now > deadline:
            break
        for event in queue.poll(0.2):
            target = by_id.get(event.run_id)
            if isinstance(event, SignalAck) and event.signal_id == signal.id:
                if target is None:  # a model-wide signal reached a run that started after we looked
                    target = by_id[event.run_id] = _Target(event.run_id, display.run_label(None, event.run_id))
                target.acked = time.monotonic() - sent
                if not event.ok:
                    raise CliError(f"{target.label} refused {signal.action}: {display.clean(event.detail or 'no reason given')}")
                detail = f": {display.clean(event.detail)}" if event.detail else ""
                out.print(f"{target.label} acknowledged after {display.fmt_duration(target.acked)}{detail}",
                          markup=False, highlight=False)
            elif isinstance(event, TrainEnd) and target is not None and target.ended is None:
                target.ended = time.monotonic() - sent
                target.detail = {"status": event.status, "reason": event.reason}
                if wait_end:
                    line = Text(f"{target.label} ")
                    line.append(event.status, style=display.STATUS_STYLE.get(event.status, ""))
                    line.append(f" {display.fmt_duration(target.ended)} after the {signal.action.upper()}"
                                " was sent (training halted).")
                    out.print(line, highlight=False)
        if time.monotonic() >= next_check:
            next_check += STATUS_CHECK_S
            _check_ended(client, by_id, wait_end)

    late = [t for t in by_id.values() if (t.ended if wait_end else t.acked) is None and not t.status]
    if late:
        names = ", ".join(t.label for t in late)
        if any(t.acked is None for t in late):
            raise CliError(f"No answer from {names} within {timeout:g} s; is its training process still running?")
        raise CliError(f"{names} acknowledged but did not end within {timeout:g} s")


def _check_ended(client: Api, by_id: dict[str, _Target], wait_end: bool) -> None:
    """A run that ended on its own before the signal reached it never answers: ask the webhook."""
    for target in by_id.values():
        if (target.ended if wait_end else target.acked) is not None:
            continue
        try:
            run = client.run(target.run_id)
        except CliError:
            continue
        if run.status != "running":
            target.status = run.status
            io().out.print(f"{target.label} ended ({target.status}) before the signal reached it.",
                           highlight=False)


@reports_errors
def stop(
    run_or_model: RefArg,
    no_wait: NoWaitOption = False,
    timeout: TimeoutOption = 120.0,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Stop a run (or every running run of a model) at its next batch, and report how long it took."""
    send(run_or_model, "stop", value=None, wait_end=True, no_wait=no_wait, timeout=timeout,
         server=server, token=token)


@reports_errors
def lr(
    run_or_model: RefArg,
    value: Annotated[float, typer.Argument(help="The new learning rate (above 0, at most 10).")],
    no_wait: NoWaitOption = False,
    timeout: TimeoutOption = 60.0,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Change the learning rate of a running run (or of every running run of a model)."""
    problem = learning_rate_problem(value)
    if problem is not None:
        raise typer.BadParameter(problem, param_hint="VALUE")
    send(run_or_model, "set_lr", value=value, wait_end=False, no_wait=no_wait, timeout=timeout,
         server=server, token=token)
