"""Who the run belongs to and which broker to use, learned from the webhook off the training thread."""

from __future__ import annotations

import os
from dataclasses import dataclass

import requests

from fitwire import credentials
from fitwire.broker.connection import redact
from fitwire.callback import _notices
from fitwire.settings import Settings

SESSION_PATH = "/api/v1/session"
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 3.0
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Identity:
    """Everything the transport and the outbox need to address a run."""

    owner: str
    amqp_url: str
    webhook_url: str
    token: str | None


def resolve(
    settings: Settings,
    *,
    token: str | None,
    webhook_url: str,
    amqp_url: str | None,
    notices: _notices.Notices,
) -> Identity:
    """Ask the webhook who the token belongs to and where its broker is; never raises.

    Precedence of the broker URL: the explicit ``amqp_url`` argument, then
    ``FITWIRE_AMQP_URL`` in the environment, then the webhook's answer, then
    ``settings.amqp_url``. The owner is the webhook's username, else the saved
    login's, else ``"anonymous"``: when the webhook is unreachable, live
    progress still flows.
    """
    env_amqp = os.environ.get(Settings.env_name("amqp_url"))
    saved = credentials.load(settings)
    owner = saved.username if saved else ANONYMOUS
    learned_amqp: str | None = None
    if token:
        try:
            resp = requests.get(
                webhook_url + SESSION_PATH,
                headers={"Authorization": f"Bearer {token}"},
                timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
            )
        except requests.RequestException as exc:
            notices.warn(
                _notices.WEBHOOK_DOWN,
                f"the webhook at {webhook_url} is unreachable ({type(exc).__name__}); "
                "training goes on, run records wait in the outbox (`fitwire outbox flush`).",
            )
        else:
            if resp.status_code == 401:
                notices.warn(
                    _notices.UNAUTHENTICATED,
                    f"the webhook at {webhook_url} refused the token (401); this run is not "
                    "stored. Log in again with `fitwire login`.",
                )
            elif resp.status_code >= 500:
                notices.warn(
                    _notices.WEBHOOK_DOWN,
                    f"the webhook at {webhook_url} answered {resp.status_code}; training goes on, "
                    "run records wait in the outbox (`fitwire outbox flush`).",
                )
            elif resp.ok:
                owner, learned_amqp = _parse_session(resp, owner)
    else:
        notices.warn(
            _notices.NO_TOKEN,
            "no fitwire token (Tracker(token=…), FITWIRE_TOKEN or `fitwire login`): "
            "live progress only, this run is not stored.",
        )
    url = amqp_url or env_amqp or learned_amqp or settings.amqp_url
    return Identity(owner=owner, amqp_url=url, webhook_url=webhook_url, token=token)


def _parse_session(resp: requests.Response, fallback_owner: str) -> tuple[str, str | None]:
    """The username and broker URL of a ``GET /api/v1/session`` answer (lenient: a bad body changes nothing)."""
    try:
        body = resp.json()
        username = body["user"]["username"]
        url = body.get("amqp_url")
    except (ValueError, KeyError, TypeError):
        return fallback_owner, None
    owner = username if isinstance(username, str) and username else fallback_owner
    return owner, url if isinstance(url, str) and url.startswith(("amqp://", "amqps://")) else None


def describe(identity: Identity) -> str:
    """A one-line description for logs, without secrets."""
    return f"owner={identity.owner} broker={redact(identity.amqp_url)} webhook={identity.webhook_url}"
