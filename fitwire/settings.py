"""Typed settings, read from ``FITWIRE_*`` environment variables.

Every setting has a type, a default and a one-line doc (the field's
description); the README's configuration table is checked against this module
(``tests/test_settings.py``). A bad value fails at start-up with a sentence
naming the variable, never later in the middle of a training.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, get_args, get_origin
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fitwire.contract.errors import SettingsError

ENV_PREFIX = "FITWIRE_"


def _default_data_dir() -> Path:
    return Path.home() / ".fitwire"


class Settings(BaseModel):
    """fitwire's configuration; build it with :meth:`Settings.from_env`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amqp_url: str = Field(
        "amqp://guest:guest@localhost:5672/",
        description="RabbitMQ URL of the broker every component talks to.",
    )
    webhook_url: str = Field(
        "http://127.0.0.1:8765",
        description="Base URL of the webhook service (also where `fitwire webhook serve` listens).",
    )
    stomp_url: str = Field(
        "",
        pattern=r"^(wss?://[^\s/]+(/\S*)?)?$",
        description="Web STOMP URL browsers read live data from (ws://… or wss://…), announced by "
        "`GET /api/v1/session`; empty = the AMQP host at AMQP port + 10002, path /ws (15674 for 5672; wss on "
        "15673 for amqps on 5671).",
    )
    store: str = Field(
        "",
        description="Store URL: sqlite:///path, postgresql://…, firestore://project; empty = SQLite in the data dir.",
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where fitwire keeps its local state: SQLite store, outbox, local broker, artifacts.",
    )
    token: str | None = Field(
        None,
        description="API token; overrides the one `fitwire login` saved.",
    )
    config_dir: Path = Field(
        default_factory=lambda: Path.home() / ".config" / "fitwire",
        description="Where `fitwire login` saves the server URL and token (file mode 0600).",
    )
    outbox_wait: float = Field(
        3.0,
        ge=0,
        description="Seconds `fit` may wait at train end for the outbox to reach the webhook.",
    )
    signup: Literal["open", "invite"] = Field(
        "invite",
        description="Who may sign up: anyone (open) or holders of an admin's invitation link (invite).",
    )
    pools: str = Field(
        "default",
        pattern=r"^[A-Za-z0-9_-]{1,64}(,[A-Za-z0-9_-]{1,64})*$",
        description="Job pools the server's admin declares (comma-separated); agents declare theirs by starting.",
    )
    unschedulable_after: float = Field(
        600.0,
        gt=0,
        description="Seconds a job may wait queued in a pool no agent has been seen on before it ends unschedulable.",
    )
    artifact_max_bytes: int = Field(
        2 * 1024**3,
        gt=0,
        description="Largest artifact upload (checkpoint) the webhook accepts, in bytes; streamed to disk, never held in memory.",
    )
    dataset_max_bytes: int = Field(
        2 * 1024**3,
        gt=0,
        description="Largest dataset upload (CSV or images zip) the webhook accepts, in bytes; streamed to disk.",
    )
    dataset_label_limit: int = Field(
        50,
        ge=1,
        description="A text (Label) column with more distinct values than this is blocked: too many to one-hot "
        "encode (e.g. a surname column).",
    )
    spec_max_layers: int = Field(200, ge=1, le=10_000, description="Most layers a model spec may have.")
    spec_max_params: int = Field(
        50_000_000, ge=1, description="Most weights a model spec may have (as Keras counts them); more is refused "
        "before it is ever queued.")
    trained_models_max: int = Field(10, ge=1, description="Most trained models one model keeps; training more "
                                    "is refused until some are deleted.")
    predict_timeout: float = Field(30.0, gt=0, description="Seconds the webhook waits for an agent's answer "
                                   "to a prediction before answering 503.")
    predict_models: int = Field(4, ge=1, description="Trained models an agent keeps loaded for predictions "
                                "(the least recently used is dropped first).")
    dataset_cache_dir: Path | None = Field(
        None,
        description="Where an agent keeps the datasets its jobs train on (default: the data dir's `datasets/`; "
        "where jobs run as another user who cannot reach it, `<tmp>/fitwire-datasets`).",
    )
    dataset_cache_bytes: int = Field(
        20 * 1024**3,
        gt=0,
        description="Size cap of an agent's dataset cache (its data dir's `datasets/`); the least recently "
        "used datasets go first.",
    )
    broker_logins: Literal["per-user", "shared"] = Field(
        "per-user",
        description="What `GET /api/v1/session` hands clients for the broker: each user's own login, checked "
        "by the webhook (per-user), or FITWIRE_AMQP_URL as is, only for an unauthenticated developer broker (shared).",
    )
    node_token_days: float = Field(
        90.0,
        gt=0,
        description="Days a node token stays valid after its node was last seen (each report renews it); "
        "an admin revokes one at once with `fitwire nodes revoke NODE`.",
    )
    job_user: str = Field(
        "nobody",
        pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
        description="Unprivileged user an agent running as root runs job code as (ignored when the agent is not root).",
    )
    broker_bind: str = Field(
        "127.0.0.1",
        pattern=r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$",
        description="IPv4 address the broker node `fitwire dev broker up` starts listens on (AMQP, Web STOMP, "
        "Erlang distribution, epmd); 0.0.0.0 = every interface.",
    )
    cors_origins: str = Field(
        "",
        pattern=r"^(https?://[^\s,/]+(,https?://[^\s,/]+)*)?$",
        description="Comma-separated browser origins (https://app.example.org) allowed to call the HTTP API "
        "cross-origin; empty = none (the web client is served by the webhook itself).",
    )
    trusted_proxies: int = Field(
        0,
        ge=0,
        le=5,
        description="Reverse proxies in front of the webhook whose X-Forwarded-For/-Proto it trusts (1 behind "
        "deploy/nginx-fitwire.conf); 0 = none, the client address is the peer's.",
    )
    login_address_max_failures: int = Field(
        30,
        ge=1,
        description="Failed log-ins from one client address, across all usernames, before that address must wait "
        "(the per-username limit is 5 per address and window, so a third party cannot lock a user out).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING",
        description="Log level of fitwire's own loggers.",
    )

    @field_validator("amqp_url")
    @classmethod
    def _amqp_scheme(cls, value: str) -> str:
        if urlparse(value).scheme not in ("amqp", "amqps"):
            raise ValueError("must start with amqp:// or amqps://")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _http_scheme(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("store")
    @classmethod
    def _store_scheme(cls, value: str) -> str:
        if value and urlparse(value).scheme.split("+")[0] not in ("sqlite", "postgresql", "firestore"):
            raise ValueError("must be sqlite:///…, postgresql://… or firestore://<project>")
        return value

    @property
    def pool_names(self) -> tuple[str, ...]:
        """``pools`` as a tuple."""
        return tuple(self.pools.split(","))

    @property
    def store_url(self) -> str:
        """The store URL with the SQLite default filled in."""
        return self.store or f"sqlite:///{self.data_dir / 'fitwire.db'}"

    @classmethod
    def env_name(cls, field: str) -> str:
        return ENV_PREFIX + field.upper()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read every ``FITWIRE_*`` variable; ``overrides`` win over the environment.

        Raises:
            SettingsError: a variable holds a value of the wrong type or shape;
                the message names the variable.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name in cls.model_fields:
            raw = env.get(cls.env_name(name))
            if raw is not None and raw != "":
                values[name] = raw
        values.update(overrides)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "?"
            shown = values.get(field, "")
            raise SettingsError(
                f"{cls.env_name(field)}={shown!r} is not valid: {first['msg']}."
            ) from None


def settings_table() -> str:
    """The README's configuration table, in Markdown."""
    rows = ["| variable | type | default | what it sets |", "| --- | --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        if isinstance(default, Path):
            default = str(default).replace(str(Path.home()), "~")
        shown = "(none)" if default in (None, "") else f"`{default}`"
        choices = get_args(field.annotation) if get_origin(field.annotation) is Literal else ()
        type_name = (
            " or ".join(f"`{c}`" for c in choices)
            if choices
            else getattr(field.annotation, "__name__", None) or str(field.annotation).replace("|", "or")
        )
        rows.append(f"| `{Settings.env_name(name)}` | {type_name} | {shown} | {field.description} |")
    return "\n".join(rows)
