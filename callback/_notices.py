"""One warning line per condition: an outage must never print once per batch."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("fitwire.callback")

BROKER_DOWN = "broker_down"
BROKER_REFUSED = "broker_refused"
WEBHOOK_DOWN = "webhook_down"
UNAUTHENTICATED = "unauthenticated"
UNKNOWN_MODEL = "unknown_model"
NO_TOKEN = "no_token"
REJECTED = "rejected"
OUTBOX_UNAVAILABLE = "outbox_unavailable"


class Notices:
    """Warns at most once per condition; shared by the threads of one run session.

    Why per session and not per message: the user must learn that the broker or
    the webhook is unreachable, but a fit of 10,000 batches must not print
    10,000 lines about it.
    """

    def __init__(self, logger: logging.Logger = log) -> None:
        self._log = logger
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def warn(self, condition: str, message: str) -> bool:
        """Log ``message`` as a warning unless ``condition`` was already reported.

        Returns:
            True when the line was written now.
        """
        with self._lock:
            if condition in self._seen:
                return False
            self._seen.add(condition)
        self._log.warning("fitwire: %s", message)
        return True

    def seen(self, condition: str) -> bool:
        with self._lock:
            return condition in self._seen
