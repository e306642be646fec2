"""`fitwire jobs`: submit training jobs to agents, list, show and cancel them.

Through the webhook (`POST /api/v1/jobs`) when logged in; with `--local`, jobs
are recorded under the data dir and published straight to the broker (agents
started with `fitwire agent start --local` on the same machine take them).
`fitwire jobs dead` shows admins what `jobs.dead` holds, and `--purge` empties it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from fitwire.cli import display
from fitwire.cli.common import (
    CliError,
    JsonOption,
    ServerOption,
    TokenOption,
    api,
    io,
    print_json,
    reports_errors,
    settings,
)
from fitwire.contract import JobSpec
from fitwire.contract.entities import Job, dump, parse

app = typer.Typer(no_args_is_help=True, help="Submit and manage training jobs.")

LocalOption = Annotated[bool, typer.Option("--local", help="Use the data dir and the broker directly (no webhook).")]
JobArg = Annotated[str, typer.Argument(help="A job id (or a unique prefix of one, with --local).")]
STATE_STYLE = {"queued": "yellow", "running": "cyan", "succeeded": "green", "failed": "red",
               "stopped": "magenta", "cancelled": "dim", "dead": "bold red", "unschedulable": "bold red"}
"""A colour per state of ``fitwire.contract.messages.JOB_STATES`` (a test keeps the two together)."""


def _local() -> tuple[Any, Any]:
    from fitwire.agent import LocalArtifacts, LocalJournal

    root = settings().data_dir
    return LocalJournal(root / "journal"), LocalArtifacts(root / "artifacts")


def local_job(record: dict[str, Any]) -> Job:
    """A local journal record as the API's Job."""
    job = record["job"]

    def when(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")

    return parse(Job, {
        "job_id": job["job_id"], "run_id": job["run_id"], "pool": job["pool"], "owner": job["owner"],
        "model_key": job["spec"]["model_key"], "state": record["state"], "reason": record.get("reason"),
        "node_id": record.get("node_id"), "spec": job["spec"],
        "created_at": when(record["history"][0]["at"]), "updated_at": when(record["updated_at"]),
    })


def _params(values: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CliError(f"--param {item!r} must look like NAME=VALUE")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw  # a bare word is a string
    return params


@app.command()
@reports_errors
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The job bundle (a Python file).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model key the run belongs to.")],
    epochs: Annotated[int, typer.Option(min=1)] = 1,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    entry_point: Annotated[str, typer.Option(help="Function returning (model, train, val).")] = "build",
    param: Annotated[list[str], typer.Option("--param", help="NAME=VALUE (JSON) for the entry point; repeatable.")] = [],  # noqa: B006
    pool: Annotated[str, typer.Option(help="Pool of agents to run it.")] = "default",
    gpus: Annotated[int, typer.Option(min=0, help="GPUs the job needs.")] = 0,
    gpu_memory_mb: Annotated[int, typer.Option(min=0, help="Free memory it needs on each GPU.")] = 0,
    dataset: Annotated[str | None, typer.Option(help="A dataset (yours or public) the job reads at "
                                                     "$FITWIRE_DATASET; the agent fetches and caches it.")] = None,
    local: LocalOption = False,
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue a training job; an agent of the pool runs it wrapped in the Tracker."""
    source = file.read_bytes()
    spec_fields = dict(model_key=model, entry_point=entry_point, epochs=epochs, batch_size=batch_size,
                       params=_params(param), gpus=gpus, gpu_memory_mb=gpu_memory_mb)
    if dataset is not None:
        if local:
            raise CliError("Datasets are served by a webhook; --dataset cannot be used with --local")
        spec_fields["dataset"] = dataset
    if local:
        from fitwire.agent import bundle_id
        from fitwire.agent import submit as submit_job

        journal, artifacts = _local()
        spec = JobSpec(bundle=bundle_id(source), **spec_fields)  # type: ignore[arg-type]
        job = submit_job(settings().amqp_url, spec, source, owner="local", pool=pool, events=journal,
                         artifacts=artifacts)
        record = local_job(journal.record(job.job_id))
    else:
        body = {"pool": pool, "spec": spec_fields, "bundle_source": source.decode(), "bundle_name": file.name}
        record = api(server, token).submit_job(body)
    if as_json:
        print_json(record)
        return
    if record.state != "queued":  # e.g. unschedulable: no registered node could ever run it
        raise CliError(f"Job {record.job_id} is {record.state}: "
                       f"{display.clean(record.reason or 'no reason given')}")
    io().out.print(
        f"Queued job [bold]{record.job_id}[/] on pool {record.pool} (run {record.run_id}).\n"
        f"Follow it with: fitwire watch {record.run_id}", highlight=False,
    )


def _records(local: bool, server: str | None, token: str | None) -> list[Job]:
    if local:
        return [local_job(r) for r in _local()[0].records()]
    return api(server, token).jobs()


def _find(ref: str, local: bool, server: str | None, token: str | None) -> Job:
    if not local:
        return api(server, token).job(ref)
    matches = [r for r in _records(True, None, None) if r.job_id.startswith(ref)]
    if len(matches) != 1:
        raise CliError(f"No job {ref!r}" if not matches else f"Several jobs start with {ref!r}; give more of the id")
    return matches[0]


@app.command("list")
@reports_errors
def list_(local: LocalOption = False, server: ServerOption = None, token: TokenOption = None,
          as_json: JsonOption = False) -> None:
    """Your jobs (an admin sees everyone's), newest first."""
    records = _records(local, server, token)
    if as_json:
        print_json({"jobs": records})
        return
    if not records:
        io().out.print("No jobs yet; submit one with `fitwire jobs submit FILE --model KEY`.", markup=False)
        return
    table = Table("job", "state", "model", "pool", "epochs", "node", "created", "reason", box=None,
                  header_style="bold")
    for r in records:
        style = STATE_STYLE.get(r.state, "")
        # remote text as Text, never markup: a reason or key may hold brackets or escape codes
        table.add_row(display.remote(r.job_id[:12]), display.remote(r.state, style),
                      display.remote(r.model_key), display.remote(r.pool), str(r.spec["epochs"]),
                      display.remote(r.node_id or ""), display.fmt_time(r.created_at, 16),
                      display.remote(r.reason or ""))
    io().out.print(table)


@app.command()
@reports_errors
def show(job: JobArg, local: LocalOption = False, server: ServerOption = None, token: TokenOption = None,
         as_json: JsonOption = False) -> None:
    """One job: its state, reason, node, run and spec."""
    record = _find(job, local, server, token)
    if as_json:
        print_json(record)
        return
    shown = dump(record)  # times as the API writes them
    table = Table(box=None, show_header=False)
    for key in ("job_id", "state", "reason", "model_key", "run_id", "pool", "owner", "node_id",
                "created_at", "updated_at"):
        table.add_row(Text(key, style="bold"), display.remote(shown.get(key) or ""))
    for key, value in record.spec.items():
        table.add_row(Text(f"spec.{display.clean(key)}", style="bold"),
                      display.remote(json.dumps(value) if isinstance(value, dict) else value))
    io().out.print(table)


@app.command()
@reports_errors
def cancel(job: JobArg, local: LocalOption = False, server: ServerOption = None, token: TokenOption = None,
           as_json: JsonOption = False) -> None:
    """Cancel a queued job (a running one is stopped with `fitwire stop RUN`)."""
    if local:
        from fitwire.agent.jobs import cancel as cancel_job
        from fitwire.contract import Job as WireJob

        journal, _ = _local()
        record = _find(job, True, None, None)
        try:
            cancel_job(journal, WireJob.model_validate(journal.record(record.job_id)["job"]))
        except ValueError as exc:
            raise CliError(str(exc)) from None
        record = local_job(journal.record(record.job_id))
    else:
        record = api(server, token).cancel_job(job)
    if as_json:
        print_json(record)
        return
    io().out.print(f"Cancelled job {record.job_id}.", highlight=False)


@app.command()
@reports_errors
def dead(
    purge: Annotated[bool, typer.Option("--purge", help="Empty jobs.dead (the jobs stay dead).")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Show at most this many letters.")] = 100,
    local: Annotated[bool, typer.Option("--local", help="Read the broker directly (no webhook).")] = False,
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """What jobs.dead holds (admins): dead jobs and undecodable messages, left in place."""
    if local:
        from fitwire.broker.adapter import Broker
        from fitwire.broker.dead_letters import peek_dead_letters, purge_dead_letters

        broker = Broker(settings().amqp_url, name="fitwire-jobs-dead")
        try:
            found = (broker.run(lambda ch: {"purged": purge_dead_letters(ch)}) if purge else
                     broker.run(lambda ch: dict(zip(("dead_letters", "total"), peek_dead_letters(ch, limit),
                                                    strict=True))))
        finally:
            broker.close()
    elif purge:
        found = dict(api(server, token).purge_dead_letters())
    else:
        found = dict(api(server, token).dead_letters(limit))
    if as_json:
        print_json(found)
        return
    if purge:
        io().out.print(f"Purged {found['purged']} dead letter(s) from jobs.dead.", highlight=False)
        return
    letters = found["dead_letters"]
    if not letters:
        io().out.print("jobs.dead is empty.", markup=False)
        return
    table = Table("job", "pool", "why", "died", "what", box=None, header_style="bold")
    for letter in letters:
        died = (datetime.fromtimestamp(letter["died_at"], UTC).isoformat()[:19].replace("T", " ")
                if letter.get("died_at") else "")
        what = (f"job of {letter['owner']}" if letter["decodable"]
                else f"undecodable ({letter['error']}): {letter['body'][:60]!r}")
        # Text, not markup: a dead letter's body is anyone's bytes
        table.add_row(Text((letter["job_id"] or "—")[:12]), Text(letter["pool"]), Text(letter["reason"]), died,
                      Text("".join(c if c.isprintable() else "?" for c in what)))
    io().out.print(table)
    if found["total"] > len(letters):
        io().out.print(f"… {found['total'] - len(letters)} more (--limit).", markup=False)
