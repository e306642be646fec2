"""A job bundle that kills its own process, as an OOM kill would: retried, then `dead`."""

from __future__ import annotations

import os
import signal


def build():
    os.kill(os.getpid(), signal.SIGKILL)
