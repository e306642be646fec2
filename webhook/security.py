"""Passwords, API tokens and the guard against password guessing.

Passwords are hashed with argon2id (``argon2-cffi``'s defaults follow RFC 9106's
recommendation). Tokens and invitations are 256 random bits, so a plain SHA-256
of them is enough for storage: nobody can brute-force 2**256 inputs, and a
fast hash keeps every authenticated request cheap.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from fitwire.webhook.store.base import StoreError

_HASHER = PasswordHasher()
# Verified when the username is unknown, so a wrong username costs as much time as a
# wrong password and response times do not tell which usernames exist.
_DUMMY_HASH = _HASHER.hash("fitwire: not a password")


class RateLimited(StoreError):
    """Too many failed log-ins for this username from this address; ``retry_after`` seconds to wait."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; a None hash (unknown user) still spends the time."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_secret() -> str:
    """A fresh token or invitation: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """What the store keeps of a token or invitation (hex SHA-256)."""
    return hashlib.sha256(secret.encode()).hexdigest()


class LoginGuard:
    """Counts failed log-ins per (username, client address); after ``max_failures`` within
    ``window`` seconds, further attempts (right or wrong) are refused until the window passes.

    In-memory and per process: the webhook runs as one waitress process, and a
    restart forgetting the counts is acceptable (argon2 keeps each guess slow anyway).
    """

    def __init__(
        self, max_failures: int = 5, window: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> list[float]:
        times = [t for t in self._failures.get(key, []) if now - t < self.window]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def check(self, username: str, address: str) -> None:
        """Raises: RateLimited when this pair has failed too often lately."""
        key = (username.lower(), address)
        with self._lock:
            now = self._clock()
            times = self._recent(key, now)
            if len(times) >= self.max_failures:
                wait = max(1, int(self.window - (now - times[0])) + 1)
                raise RateLimited(
                    f"Too many failed log-ins for {username!r}; try again in {wait} seconds.", wait
                )

    def failed(self, username: str, address: str) -> None:
        with self._lock:
            self._failures.setdefault((username.lower(), address), []).append(self._clock())

    def succeeded(self, username: str, address: str) -> None:
        with self._lock:
            self._failures.pop((username.lower(), address), None)
