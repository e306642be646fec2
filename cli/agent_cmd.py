"""`fitwire agent`: run a trainer agent on this machine.

An agent authenticates to the webhook with a node token, which an admin creates
once per machine (`fitwire nodes token NAME`, or `POST /api/v1/nodes`); pass it
with `--token` or `FITWIRE_TOKEN`. It logs in to the broker as `node.<node id>` with
that token, on the broker the webhook names at hello. Without a token the agent runs in
local mode: job states and artifacts are files under the data dir, which is enough for
agents on one machine and for tests; it runs only jobs its journal recorded (`submit`).
Run as root, it runs job code as FITWIRE_JOB_USER (default nobody).
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from fitwire.cli.common import io, reports_errors
from fitwire.cli.common import settings as load_settings
from fitwire.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Run a trainer agent on this machine.")


def backend_config(settings: Settings, token: str | None, local: bool) -> dict[str, object]:
    """Where job states and artifacts go: the webhook (with a node token) or files under the data dir."""
    if local or not token:
        return {"kind": "local", "root": str(settings.data_dir)}
    return {"kind": "http", "url": settings.webhook_url, "token": token}


@app.command("start")
@reports_errors
def start(
    pool: Annotated[list[str], typer.Option("--pool", "-p", help="Pool(s) to take jobs from.")] = ["default"],  # noqa: B006
    token: Annotated[str | None, typer.Option(envvar="FITWIRE_TOKEN", help="Node token an admin created.")] = None,
    node_id: Annotated[str | None, typer.Option(help="Stable id of this node (default: hostname-based).")] = None,
    local: Annotated[bool, typer.Option("--local", help="Keep job states and artifacts under the data dir.")] = False,
    fake_gpu_mb: Annotated[
        list[int], typer.Option("--fake-gpu-mb", help="Pretend to have a GPU with this much free memory (demos).")
    ] = [],  # noqa: B006
    telemetry_interval: Annotated[float, typer.Option(help="Seconds between telemetry reports.")] = 5.0,
    tracker: Annotated[bool, typer.Option(help="Wrap each fit in the Tracker (live progress, STOP).")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Take jobs from the pool's queue and run them, one at a time, until SIGTERM or Ctrl+C."""
    from fitwire.agent import Agent, AgentConfig, StaticGpus, default_probe, fake_gpu
    from fitwire.agent.agent import default_node_id

    settings = load_settings()
    level = "INFO" if verbose else settings.log_level
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)  # its INFO is connection chatter
    backends = backend_config(settings, token, local)
    config = AgentConfig(
        amqp_url=settings.amqp_url,
        pools=tuple(pool),
        backends=backends,
        node_id=node_id or default_node_id(),
        telemetry_interval=telemetry_interval,
        tracker=tracker,
        webhook_url=settings.webhook_url,
        token=token,
        work_dir=Path(settings.data_dir) / "agent",
        dataset_cache=settings.dataset_cache_dir or Path(settings.data_dir) / "datasets",
        dataset_cache_bytes=settings.dataset_cache_bytes,
        log_level=level,
        job_user=settings.job_user,
    )
    probe = StaticGpus([fake_gpu(i, mb) for i, mb in enumerate(fake_gpu_mb)]) if fake_gpu_mb else default_probe()
    agent = Agent(config, probe=probe)
    signal.signal(signal.SIGTERM, agent.request_stop)
    signal.signal(signal.SIGINT, agent.request_stop)
    where = "local mode, data dir " + str(settings.data_dir) if backends["kind"] == "local" else settings.webhook_url
    io().err.print(f"agent {config.node_id} taking jobs from pool(s) {', '.join(pool)} ({where})")
    agent.run()
    io().err.print(f"agent {config.node_id} stopped after {agent.jobs_done} job(s)")
