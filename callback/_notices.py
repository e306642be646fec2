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
SHRUNK = "shrunk"
OUTBOX_UNAVAILABLE = "outbox_unavailable"


class Notices:
    """Warns at most once per condition; shared by the threads of one run session.

    Why per session and not per message: the user must learn that the broker or
    the webhook is unreachable, but a fit of 10,000 batches must not print
    10,000 lines about it.
    """

    def __init__(self, logger: logging.Logger = log, *, quiet: bool = False) -> None:
        self._log = logger
        self._level = logging.DEBUG if quiet else logging.WARNING
        self._seen: set[str] = set()
        self._context: dict[str, str] = {}
        self._lock = threading.Lock()

    def set_context(self, condition: str, clause: str) -> None:
        """A clause added to ``condition``'s line, whichever thread writes it first ("" removes it)."""
        with self._lock:
            self._context[condition] = clause

    def warn(self, condition: str, message: str) -> bool:
        """Log ``message`` as a warning unless ``condition`` was already reported.

        Returns:
            True when the line was written now.
        """
        with self._lock:
            if condition in self._seen:
                return False
            self._seen.add(condition)
            clause = self._context.get(condition)
        if clause:
            message = f"{message.rstrip('.')}; {clause}."
        self._log.log(self._level, "fitwire: %s", message)
        return True

    def seen(self, condition: str) -> bool:
        with self._lock:
            return condition in self._seen
