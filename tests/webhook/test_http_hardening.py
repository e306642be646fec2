"""HTTP hardening on a real waitress server: security headers, no caching of tokens, CORS only
for configured origins, and a per-address limit on log-ins across usernames."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from fitwire.webhook import create_app
from fitwire.webhook.security import LoginGuard, RateLimited, hash_password
from fitwire.webhook.store import open_store
from tests.fixtures.webhook import serve_in_thread

ALLOWED = "https://app.example.org"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    store = open_store(f"sqlite:///{tmp_path / 'webhook.db'}")
    store.create_user("alice", hash_password("correct horse"), is_admin=False, now=datetime.now(UTC))
    app = create_app({"STORE": store, "SIGNUP": "open", "BROKER_LOGINS": "shared", "DECLARE_TOPOLOGY": False,
                      "AMQP_URL": os.environ.get("FITWIRE_AMQP_URL", "amqp://guest:guest@localhost:5672/"),
                      "CORS_ORIGINS": frozenset({ALLOWED}), "LOGIN_ADDRESS_MAX_FAILURES": 4})
    url, waitress, _ = serve_in_thread(app)
    try:
        yield url
    finally:
        waitress.close()
        store.close()


def _login(url: str, username: str, password: str, **headers: str) -> requests.Response:
    return requests.post(f"{url}/api/v1/auth/login", json={"username": username, "password": password},
                         headers=headers, timeout=30)


def test_a_token_answer_is_never_cached_framed_or_sniffed(server: str) -> None:
    response = _login(server, "alice", "correct horse")
    assert response.status_code == 200 and response.json()["token"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    error = requests.get(f"{server}/api/v1/models", timeout=30)  # errors too
    assert error.status_code == 401 and error.headers["X-Content-Type-Options"] == "nosniff"


def test_cors_answers_only_configured_origins(server: str) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = requests.options(f"{server}/api/v1/auth/login", headers={"Origin": ALLOWED, **preflight}, timeout=30)
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]

    other = requests.options(f"{server}/api/v1/auth/login",
                             headers={"Origin": "https://evil.example", **preflight}, timeout=30)
    assert "Access-Control-Allow-Origin" not in other.headers
    login = _login(server, "alice", "correct horse", Origin="https://evil.example")
    assert "Access-Control-Allow-Origin" not in login.headers  # the browser withholds the answer


def test_one_address_spraying_usernames_is_slowed_but_a_user_elsewhere_is_not_locked_out(server: str) -> None:
    for name in ("bob", "carol", "dave", "erin"):  # 4 failures, each for another username
        assert _login(server, name, "guess").status_code == 401
    refused = _login(server, "alice", "correct horse")  # even the right password, from this address
    assert refused.status_code == 429
    assert "from this address" in refused.json()["error"]["message"]
    assert int(refused.headers["Retry-After"]) > 0


def test_a_third_party_cannot_lock_a_user_out_from_her_own_address() -> None:
    now = [0.0]
    guard = LoginGuard(max_failures=5, window=300, clock=lambda: now[0], max_address_failures=30)
    for _ in range(5):
        guard.failed("alice", "203.0.113.9")  # someone else guessing alice's password
    with pytest.raises(RateLimited):
        guard.check("alice", "203.0.113.9")
    guard.check("alice", "198.51.100.7")  # alice, from her own address, is not refused
    now[0] = 301.0
    guard.check("alice", "203.0.113.9")  # and the window passes for the guesser too
