"""Shared fixtures. Each component's fixtures live in tests/fixtures/<name>.py and are
registered here, so every test module sees them."""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.broker",
    "tests.fixtures.webhook",
]
