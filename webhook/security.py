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
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from fitwire.contract.errors import RateLimited
from fitwire.webhook.store.base import User

_HASHER = PasswordHasher()
# Verified when the username is unknown, so a wrong username costs as much time as a
# wrong password and response times do not tell which usernames exist.
_DUMMY_HASH = _HASHER.hash("fitwire: not a password")


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


def _any_user_key(address: str) -> tuple[str, str]:
    """The key counting an address's failures across usernames ("\0" is no username)."""
    return ("\0", address)


class LoginGuard:
    """Counts failed log-ins per (username, client address); after ``max_failures`` within
    ``window`` seconds, further attempts (right or wrong) are refused until the window passes.
    One address is also limited across usernames (``max_address_failures``), so spraying many
    usernames from one place is slowed too.

    Lock-out: the counts are per address, so a third party guessing Alice's password from
    elsewhere blocks only their own address, never Alice's log-ins from hers.

    In-memory and per process: the webhook runs as one waitress process, and a
    restart forgetting the counts is acceptable (argon2 keeps each guess slow anyway).
    """

    def __init__(
        self, max_failures: int = 5, window: float = 300.0, clock: Callable[[], float] = time.monotonic,
        max_address_failures: int = 30,
    ) -> None:
        self.max_failures = max_failures
        self.max_address_failures = max_address_failures
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
            from_address = self._recent(_any_user_key(address), now)
            if len(from_address) >= self.max_address_failures:
                wait = max(1, int(self.window - (now - from_address[0])) + 1)
                raise RateLimited(
                    f"Too many failed log-ins from this address; try again in {wait} seconds.", wait
                )

    def failed(self, username: str, address: str) -> None:
        with self._lock:
            now = self._clock()
            self._failures.setdefault((username.lower(), address), []).append(now)
            self._failures.setdefault(_any_user_key(address), []).append(now)

    def succeeded(self, username: str, address: str) -> None:
        with self._lock:
            self._failures.pop((username.lower(), address), None)


TOKEN_CACHE_SECONDS = 2.0
"""How long a store process trusts a token it looked up before asking the database again."""


class TokenCache:
    """Users of recently looked-up API tokens, so that a busy run's every request does not read the database.

    Every request looks its token up; with many live runs posting their epochs that
    read was a tenth of the webhook's work per request. A token's own expiry is checked
    on every use; its revocation takes effect at once in the process that revoked it
    (:meth:`forget`, :meth:`clear`) and within ``ttl`` seconds in any other webhook
    process on the same database. Unknown tokens are never cached, so a new token works
    at once. Thread-safe; bounded (emptied when ``max_entries`` is reached).
    """

    def __init__(self, ttl: float = TOKEN_CACHE_SECONDS, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, datetime, User]] = {}
        self._lock = threading.Lock()
        self._generation = 0  # bumped by forget/clear: a lookup that began before one is not cached

    @property
    def generation(self) -> int:
        """Read before looking a token up in the store; pass it to :meth:`put`."""
        return self._generation

    def get(self, token_hash: str, now: datetime) -> User | None:
        """The cached user of a token that has not expired at ``now``; None: look it up."""
        with self._lock:
            entry = self._entries.get(token_hash)
            if entry is None:
                return None
            cached_at, expires_at, user = entry
            if self._clock() - cached_at >= self.ttl or expires_at <= now:
                del self._entries[token_hash]  # the store says why (expired, revoked) and renews it
                return None
            return user

    def put(self, token_hash: str, user: User, expires_at: datetime, generation: int) -> None:
        """Cache a lookup that began at ``generation``, unless a revocation has happened since."""
        with self._lock:
            if generation != self._generation:
                return
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[token_hash] = (self._clock(), expires_at, user)

    def forget(self, token_hash: str) -> None:
        with self._lock:
            self._entries.pop(token_hash, None)
            self._generation += 1

    def clear(self) -> None:
        """After a change to users or to many tokens: every token is looked up again."""
        with self._lock:
            self._entries.clear()
            self._generation += 1
