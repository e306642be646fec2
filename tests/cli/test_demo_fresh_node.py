"""`make run` on a fresh node: nobody declared any topology; the demo's job must succeed through the agent."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fitwire.broker import answers
from fitwire.broker.local import free_port
from tests.fixtures.services import service_missing

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_run_demo_once_on_a_private_node_nobody_prepared(tmp_path: Path) -> None:
    if not (Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() or shutil.which("rabbitmq-server")):
        service_missing("rabbitmq-server (the program)")
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    assert not answers(url)
    env = {**os.environ, "FITWIRE_DATA_DIR": str(tmp_path / "data"), "FITWIRE_AMQP_URL": url}
    env.pop("FITWIRE_TOKEN", None)
    # its own port: test_demo.py's demo may hold the default one at the same time (another worker)
    command = [sys.executable, str(ROOT / "scripts" / "run_demo.py"), "--port", str(free_port()),
               "--once", "--timeout", "150", "--epochs", "2", "--steps", "4", "--delay", "0.05"]
    try:
        # the demo's own `fitwire dev broker up` starts the private node, in the temp data dir
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    finally:
        subprocess.run([sys.executable, "-m", "fitwire.cli", "dev", "broker", "down"], env=env,
                       capture_output=True, timeout=120, check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "started a local RabbitMQ node" in done.stdout
    assert "trainer agent up, taking jobs from pool 'default'" in done.stdout
    queued = re.search(r"job ([0-9a-f]{32}) queued on pool 'default'", done.stdout)
    assert queued, done.stdout
    assert re.search(r"training_001 completed after 2/2 epochs", done.stdout), done.stdout
    assert f"stopped the trainer agent (job {queued.group(1)}: succeeded)" in done.stdout, done.stdout
    agent_log = (tmp_path / "data" / "logs" / "agent.log").read_text()
    assert "NOT_FOUND" not in agent_log and " ERROR " not in agent_log, agent_log
    assert not answers(url)  # the node the demo started is stopped again


@pytest.mark.slow
def test_run_demo_stops_at_once_naming_the_agent_log_when_the_agent_fails(amqp_url: str, tmp_path: Path) -> None:
    """An agent that cannot take jobs (the pool's queue exists with other arguments) ends the demo with its log."""
    from fitwire.broker import connect
    from tests.fixtures.broker import fresh_vhost

    with fresh_vhost(amqp_url) as url:
        conn = connect(url)
        conn.channel().queue_declare("jobs.default", durable=True, arguments={"x-queue-type": "classic"})
        conn.close()
        env = {**os.environ, "FITWIRE_DATA_DIR": str(tmp_path / "data"), "FITWIRE_AMQP_URL": url}
        env.pop("FITWIRE_TOKEN", None)
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_demo.py"), "--once", "--timeout", "60",
                               "--port", str(free_port())],
                              env=env, capture_output=True, text=True, timeout=400)

    agent_log = tmp_path / "data" / "logs" / "agent.log"
    assert done.returncode != 0, done.stdout + done.stderr
    assert "the agent failed: " in done.stderr and "PRECONDITION_FAILED" in done.stderr, done.stderr
    assert f"the agent's log (with any traceback): {agent_log}" in done.stderr, done.stderr
    assert "queued on pool" not in done.stdout  # it stopped before submitting anything
    assert "everything the demo started has ended" in done.stdout
