"""Run a command with a RabbitMQ available: ``python scripts/with_broker.py CMD ARGS…``.

Used by ``make test`` and ``make bench``: it makes a broker answer (starting or
installing a local node when none does), exports ``FITWIRE_AMQP_URL`` for the
command, and stops the node afterwards only if it started it.
"""

from __future__ import annotations

import os
import subprocess
import sys

from ensure_chromium import ensure_chromium  # (this folder) the web client's browser tests

from fitwire.broker.local import ensure_broker, stop_local
from fitwire.contract.errors import FitwireError
from fitwire.settings import Settings


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: with_broker.py COMMAND [ARGS…]", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
        url, started = ensure_broker(settings.amqp_url, settings.data_dir)
    except FitwireError as exc:
        print(f"fitwire: {exc}", file=sys.stderr)
        return 3
    ensure_chromium()  # missing still: the browser tests skip, or fail under CI=true
    try:
        return subprocess.call(argv, env={**os.environ, "FITWIRE_AMQP_URL": url})
    finally:
        if started:
            stop_local(settings.data_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
