"""The files of a private RabbitMQ node on which the webhook checks every login.

:func:`write_node_files` writes into the node's data dir:

* ``accounts.json`` (mode 0600) — the internal accounts' generated secrets: the broker
  administrator and the webhook. Generated once, kept across restarts.
* ``definitions.json`` (0600) — those accounts in RabbitMQ's definitions format (salted
  SHA-256 hashes), loaded at boot. Nothing else: no ``guest`` (RabbitMQ does not create it
  when definitions are loaded at boot) and no topology, which each component declares itself.
* ``enabled_plugins`` — the HTTP auth backend, its cache and Web STOMP.
* ``rabbitmq.conf`` — ``broker_config/rabbitmq.conf`` followed by ``rabbitmq-auth.conf``
  rendered for this node (webhook URL, Web STOMP port, bind address).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from urllib.parse import quote

ADMIN_USER = "fitwire.admin"
"""The broker administrator (``administrator`` tag): for operators, never handed to a client."""
WEBHOOK_USER = "fitwire.webhook"
"""The webhook's own account: declares the shared topology and publishes jobs."""
# A dot is not allowed in fitwire usernames, so no user can ever take these names.

CACHE_TTL_MS = 30_000
"""How long the broker reuses the webhook's answers: the revocation latency for new operations."""

ACCOUNTS_FILE = "accounts.json"
DEFINITIONS_FILE = "definitions.json"
PLUGINS_FILE = "enabled_plugins"
CONFIG_FILE = "rabbitmq.conf"


@dataclass(frozen=True)
class Account:
    username: str
    password: str

    def url(self, host: str, port: int, scheme: str = "amqp") -> str:
        return f"{scheme}://{quote(self.username, safe='')}:{quote(self.password, safe='')}@{host}:{port}/"


@dataclass(frozen=True)
class Accounts:
    admin: Account
    webhook: Account


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, never briefly readable by others."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)  # an older file may have had a wider mode


def load_accounts(data_dir: Path) -> Accounts | None:
    """The node's internal accounts, or None when they were never generated."""
    try:
        raw = json.loads((data_dir / ACCOUNTS_FILE).read_text())
        return Accounts(admin=Account(**raw["admin"]), webhook=Account(**raw["webhook"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_accounts(data_dir: Path) -> Accounts:
    """The node's internal accounts, generated (and kept, 0600) the first time."""
    accounts = load_accounts(data_dir)
    if accounts is None:
        accounts = Accounts(
            admin=Account(ADMIN_USER, secrets.token_urlsafe(32)),
            webhook=Account(WEBHOOK_USER, secrets.token_urlsafe(32)),
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        _write_private(data_dir / ACCOUNTS_FILE, json.dumps({
            "admin": {"username": accounts.admin.username, "password": accounts.admin.password},
            "webhook": {"username": accounts.webhook.username, "password": accounts.webhook.password},
        }, indent=2))
    return accounts


def rabbit_password_hash(password: str, salt: bytes | None = None) -> str:
    """``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password)), 4-byte salt."""
    salt = secrets.token_bytes(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def account_definitions(accounts: Accounts, vhost: str = "/") -> dict[str, object]:
    """The internal accounts in ``rabbitmqctl import_definitions`` format."""

    def user(account: Account, tags: list[str]) -> dict[str, object]:
        return {
            "name": account.username,
            "password_hash": rabbit_password_hash(account.password),
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": tags,
            "limits": {},
        }

    everything = {"configure": ".*", "write": ".*", "read": ".*"}
    return {
        "users": [user(accounts.admin, ["administrator"]), user(accounts.webhook, [])],
        "vhosts": [{"name": vhost}],
        "permissions": [
            {"user": accounts.admin.username, "vhost": vhost, **everything},
            {"user": accounts.webhook.username, "vhost": vhost, **everything},
        ],
    }


def render_config(*, webhook_url: str, bind: str, stomp_port: int, definitions: Path) -> str:
    """The node's rabbitmq.conf: the shared tunables, then the auth section for this node."""
    package = resources.files("fitwire.broker")
    base = package.joinpath("rabbitmq.conf").read_text()
    auth = Template(package.joinpath("rabbitmq-auth.conf").read_text()).substitute(
        webhook_url=webhook_url.rstrip("/"),
        bind=bind,
        stomp_port=stomp_port,
        definitions=str(definitions),
        cache_ttl_ms=CACHE_TTL_MS,
    )
    return f"{base.rstrip()}\n\n{auth}"


def write_node_files(data_dir: Path, *, webhook_url: str, bind: str, stomp_port: int) -> Accounts:
    """Write (or refresh) every file the node reads at boot; returns its internal accounts."""
    data_dir.mkdir(parents=True, exist_ok=True)
    accounts = ensure_accounts(data_dir)
    definitions = data_dir / DEFINITIONS_FILE
    _write_private(definitions, json.dumps(account_definitions(accounts), indent=2))
    plugins = resources.files("fitwire.broker").joinpath(PLUGINS_FILE).read_text()
    (data_dir / PLUGINS_FILE).write_text(plugins)
    _write_private(
        data_dir / CONFIG_FILE,
        render_config(webhook_url=webhook_url, bind=bind, stomp_port=stomp_port, definitions=definitions),
    )
    return accounts
