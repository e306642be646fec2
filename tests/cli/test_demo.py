"""`make run`'s script, bounded: the local stack, a demo account and model, a fit, and `watch` on it."""

from __future__ import annotations

import os
import re
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
        assert re.search(r"stop [0-9a-f]{32}", done.stdout), done.stdout  # how to stop it from elsewhere
        assert re.search(rf"training_00{attempt} completed after 2/2 epochs", done.stdout), done.stdout
        assert "everything the demo started has ended" in done.stdout
    webhook = re.search(r"webhook on (http://\S+)", done.stdout)
    assert webhook
    with pytest.raises(OSError):  # the webhook it started is gone
        urllib.request.urlopen(webhook.group(1) + "/health", timeout=5)
