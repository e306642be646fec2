"""`make run`'s script, bounded: the local stack, a demo account and model, one agent, a job, `watch` on it."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_run_demo_shows_a_live_training_and_ends_everything(amqp_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "FITWIRE_DATA_DIR": str(tmp_path / "data"), "FITWIRE_AMQP_URL": amqp_url}
    command = [sys.executable, str(ROOT / "scripts" / "run_demo.py"),
               "--once", "--timeout", "150", "--epochs", "2", "--steps", "4", "--delay", "0.05"]

    for attempt in (1, 2):  # the second run reuses the account and the model
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)

        assert done.returncode == 0, done.stdout + done.stderr
        stop = re.search(r"stop ([0-9a-f]{32})", done.stdout)  # how to stop it from elsewhere
        assert stop, done.stdout
        assert re.search(r"FITWIRE_TOKEN=\$\(cat \S+/node-token\) \S*fitwire agent start --pool default",
                         done.stdout), done.stdout  # how to start a second agent
        assert re.search(rf"training_00{attempt} completed after 2/2 epochs", done.stdout), done.stdout
        assert "everything the demo started has ended" in done.stdout

        # The run came through the queue and an agent: the job the demo submitted is the run watched,
        # an agent took it (its node is recorded) and it succeeded.
        queued = re.search(r"job ([0-9a-f]{32}) queued on pool 'default' \(run ([0-9a-f]{32})\)", done.stdout)
        assert queued, done.stdout
        job_id, run_id = queued.groups()
        assert run_id == stop.group(1)
        assert f"run {run_id[:8]} started" in done.stdout, done.stdout
        assert f"stopped the trainer agent (job {job_id}: succeeded)" in done.stdout, done.stdout
        with sqlite3.connect(tmp_path / "data" / "fitwire.db") as db:
            state, node_id, stored_run = db.execute(
                "SELECT state, node_id, run_id FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        assert (state, stored_run) == ("succeeded", run_id) and node_id
        agent_log = (tmp_path / "data" / "logs" / "agent.log").read_text()
        assert agent_log.count("stopped after 1 job(s)") == attempt, agent_log
    webhook = re.search(r"webhook on (http://\S+)", done.stdout)
    assert webhook
    with pytest.raises(OSError):  # the webhook it started is gone
        urllib.request.urlopen(webhook.group(1) + "/health", timeout=5)
