"""TokenCache (unit): what a webhook process remembers of looked-up tokens, and when it asks again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fitwire.webhook.security import TokenCache
from fitwire.webhook.store.base import User

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ALICE = User(id="u1", username="alice", display_name="", is_admin=False, created_at=NOW)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_lookup_is_reused_until_ttl_then_asked_again() -> None:
    clock = Clock()
    cache = TokenCache(ttl=2.0, clock=clock)
    assert cache.get("h", NOW) is None
    cache.put("h", ALICE, NOW + timedelta(hours=1), cache.generation)
    clock.t += 1.9
    assert cache.get("h", NOW) == ALICE
    clock.t += 0.1
    assert cache.get("h", NOW) is None  # the store is asked again (it may have been revoked elsewhere)


def test_an_expired_token_is_never_answered_from_the_cache() -> None:
    cache = TokenCache(ttl=60.0, clock=Clock())
    cache.put("h", ALICE, NOW + timedelta(seconds=1), cache.generation)
    assert cache.get("h", NOW) == ALICE
    assert cache.get("h", NOW + timedelta(seconds=1)) is None


def test_forget_and_clear_drop_entries_and_a_lookup_begun_before_them_is_not_cached() -> None:
    cache = TokenCache(clock=Clock())
    cache.put("a", ALICE, NOW + timedelta(hours=1), cache.generation)
    cache.put("b", ALICE, NOW + timedelta(hours=1), cache.generation)
    began = cache.generation  # a request reads the token from the store...
    cache.forget("a")  # ...while another revokes it
    assert cache.get("a", NOW) is None and cache.get("b", NOW) == ALICE
    cache.put("a", ALICE, NOW + timedelta(hours=1), began)  # what the first read found is stale
    assert cache.get("a", NOW) is None
    cache.clear()
    assert cache.get("b", NOW) is None


def test_the_cache_is_bounded() -> None:
    cache = TokenCache(max_entries=3, clock=Clock())
    for name in "abcd":
        cache.put(name, ALICE, NOW + timedelta(hours=1), cache.generation)
    assert [name for name in "abcd" if cache.get(name, NOW) is not None] == ["d"]
