"""The login file `fitwire login` writes and the Tracker reads: server URL, user, token.

Kept at ``<config_dir>/credentials.json`` with mode 0600, because the token is
as good as the password until it expires or is revoked.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from fitwire.settings import Settings

FILE_NAME = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    server: str
    username: str
    token: str
    amqp_url: str | None = None
    """The broker the server announced at login; the Tracker uses it when the server cannot be asked."""


def path(settings: Settings) -> Path:
    return settings.config_dir / FILE_NAME


def load(settings: Settings) -> Credentials | None:
    """The saved login, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(path(settings).read_text())
        amqp_url = data.get("amqp_url")
        return Credentials(server=data["server"], username=data["username"], token=data["token"],
                           amqp_url=amqp_url if isinstance(amqp_url, str) and amqp_url else None)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(settings: Settings, creds: Credentials) -> Path:
    """Write the login file atomically, readable by its owner only."""
    target = path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(creds), fh)
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)
    return target


def forget(settings: Settings) -> bool:
    try:
        path(settings).unlink()
    except FileNotFoundError:
        return False
    return True


def resolve_server(settings: Settings) -> str:
    """The webhook URL: ``FITWIRE_WEBHOOK_URL`` when set, else the login file's, else the default."""
    if os.environ.get(Settings.env_name("webhook_url")):
        return settings.webhook_url
    creds = load(settings)
    return creds.server.rstrip("/") if creds else settings.webhook_url
