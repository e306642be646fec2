"""`fitwire login` remembers the broker its server announces, for a Tracker that later cannot ask."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import PASSWORD, Cli
from tests.fixtures.webhook import LiveWebhook


def test_login_saves_the_broker_url_the_server_announces(
    cli: Cli, live_webhook: LiveWebhook, isolated_login: Path
) -> None:
    live_webhook.create_user("hana", PASSWORD)

    result = cli("login", "hana", "--password-stdin", "--server", live_webhook.url, input=PASSWORD + "\n")

    assert result.exit_code == 0, result.output
    saved = json.loads((isolated_login / "credentials.json").read_text())
    # What the server announces for this login (the URL may carry the login's own broker credential).
    announced = live_webhook.api("GET", "/api/v1/session", saved["token"]).json()["amqp_url"]
    assert saved["amqp_url"] == announced and announced.startswith("amqp")
