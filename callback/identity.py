"""Who the run belongs to and which broker to use, learned from the webhook off the training thread."""

from __future__ import annotations

import os
from dataclasses import dataclass

import requests

from fitwire import credentials
from fitwire.broker.connection import choose_broker_url, redact
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
    owner: str | None = None,
) -> Identity:
    """Ask the webhook who the token belongs to and where its broker is; never raises.

    Precedence of the broker URL (:func:`fitwire.broker.connection.choose_broker_url`):
    a login the webhook announces for this very client (``amqp://<user>:<token>@…``,
    or a job's ``job.<id>`` login with its job token) first, since on a broker whose
    logins the webhook checks no other login may publish this user's runs; then the
    explicit ``amqp_url`` argument, then ``FITWIRE_AMQP_URL``, then a shared login the
    webhook announced; when the webhook cannot say, the same order over what it
    announced at ``fitwire login`` (see :func:`offline_broker`). The owner is the
    webhook's username, else ``owner`` (an agent's job in local mode: the job's owner), else the
    saved login's, else ``"anonymous"``: when the webhook is unreachable, live progress still flows.
    """
    saved = credentials.load(settings)
    owner = owner or (saved.username if saved else ANONYMOUS)
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
                notices.set_context(_notices.WEBHOOK_DOWN, "")  # the broker is known: nothing to add
    else:
        notices.warn(
            _notices.NO_TOKEN,
            "no fitwire token (Tracker(token=…), FITWIRE_TOKEN or `fitwire login`): "
            "live progress only, this run is not stored.",
        )
    url = choose_broker_url(learned_amqp, amqp_url, _named_in_env(), username=owner, token=token) \
        if learned_amqp else None
    if url is None:
        url = offline_broker(settings, webhook_url, amqp_url)[0]
    return Identity(owner=owner, amqp_url=url, webhook_url=webhook_url, token=token)


def _named_in_env() -> str | None:
    return os.environ.get(Settings.env_name("amqp_url")) or None


def offline_broker(settings: Settings, webhook_url: str, amqp_url: str | None) -> tuple[str, str]:
    """The broker a run uses when its webhook cannot say, and the clause its warning line adds.

    The same precedence as with an answer, over what the webhook announced at
    ``fitwire login`` (saved in the login file, for that same server): that
    login when it is the user's own, else the broker the user named (argument,
    ``FITWIRE_AMQP_URL``), else the remembered shared one; with none at all,
    ``settings.amqp_url``, and the clause says so: live progress may then go
    where no watcher and no STOP of that server can reach.
    """
    saved = credentials.load(settings)
    remembered = None
    if saved and saved.amqp_url and saved.server.rstrip("/") == webhook_url.rstrip("/"):
        remembered = saved.amqp_url
    url = choose_broker_url(remembered, amqp_url, _named_in_env(), username=saved.username if saved else None,
                            token=saved.token if saved else None)
    if url is None:
        return settings.amqp_url, (
            f"no broker URL remembered from a `fitwire login` to it, so live progress tries "
            f"{redact(settings.amqp_url)} (set FITWIRE_AMQP_URL to the right one)"
        )
    if url == remembered:
        return url, f"live progress goes to {redact(url)}, the broker it announced at login"
    return url, ""


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
