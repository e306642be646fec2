"""Deeply nested JSON is a 400 on every route, over real HTTP, and changes nothing."""

from __future__ import annotations

import pytest

from fitwire.webhook.api.common import MAX_JSON_DEPTH, json_depth
from tests.fixtures.webhook import LiveWebhook

DEEP = b"[" * 100_000  # under the 1 MiB body limit; json.loads would raise RecursionError on it
DEEP_MESSAGE = f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels."


def _nested(depth: int) -> bytes:
    """``{"name": "m", "extra": [[…]]}`` whose arrays and object nest exactly ``depth`` deep."""
    return b'{"name": "m", "extra": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


@pytest.fixture
def tokens(live_webhook: LiveWebhook) -> dict[str, str]:
    """A user's token and a node's (registered over HTTP by an admin)."""
    admin = live_webhook.create_user("root", "correct horse", admin=True)
    created = live_webhook.api("POST", "/api/v1/nodes", admin, json={"name": "box"})
    assert created.status_code == 201, created.text
    return {"user": live_webhook.create_user("alice", "correct horse"), "node": created.json()["token"],
            "none": ""}


@pytest.mark.parametrize(
    ("path", "who"),
    [
        ("/api/v1/nodes/hello", "node"),
        ("/api/v1/nodes/telemetry", "node"),
        ("/api/v1/events", "user"),
        ("/api/v1/models", "user"),
        ("/api/v1/jobs", "user"),
        ("/api/v1/auth/login", "none"),
    ],
)
def test_deep_json_is_a_400_naming_the_limit(
    live_webhook: LiveWebhook, tokens: dict[str, str], path: str, who: str
) -> None:
    response = live_webhook.api("POST", path, tokens[who] or None, data=DEEP,
                                headers={"Content-Type": "application/json"})

    assert response.status_code == 400, response.text
    assert response.json() == {"error": {"code": "INVALID_REQUEST", "message": DEEP_MESSAGE}}
    # The server is still fine, and nothing was stored.
    models = live_webhook.api("GET", "/api/v1/models", tokens["user"])
    assert models.status_code == 200 and models.json()["models"] == []


def test_the_limit_is_exact_and_brackets_in_strings_do_not_count(
    live_webhook: LiveWebhook, tokens: dict[str, str]
) -> None:
    at_limit = live_webhook.api("POST", "/api/v1/models", tokens["user"], data=_nested(MAX_JSON_DEPTH))
    over = live_webhook.api("POST", "/api/v1/models", tokens["user"], data=_nested(MAX_JSON_DEPTH + 1))
    in_string = live_webhook.api("POST", "/api/v1/models", tokens["user"], json={"name": "[" * 150})

    # At the limit the body gets to the schema, which names the unknown field.
    assert at_limit.json()["error"]["message"] == "Unknown field 'extra'."
    assert over.json()["error"]["message"] == DEEP_MESSAGE
    assert in_string.status_code == 201 and in_string.json()["name"] == "[" * 150


def test_a_body_that_is_not_utf8_is_a_400(live_webhook: LiveWebhook, tokens: dict[str, str]) -> None:
    body = '{"name": "m\u0122"}'.encode("utf-16")  # U+0122's bytes hold a quote in UTF-16

    response = live_webhook.api("POST", "/api/v1/models", tokens["user"], data=body)

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "The body must be JSON in UTF-8."


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"1", 0),
        (b'{"a": [1, {"b": "[[[["}]}', 3),
        (b'["\\"[[", "\\\\", [[]]]', 3),
        (b'"unterminated [[[', 0),
        (b"[" * 1000, 1000),
    ],
)
def test_json_depth_counts_brackets_outside_strings(text: bytes, depth: int) -> None:
    assert json_depth(text) == depth
