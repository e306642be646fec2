"""RabbitMQ's HTTP auth backend, served by the webhook: who may log in to the broker and do what.

RabbitMQ (``rabbitmq_auth_backend_http`` behind ``rabbitmq_auth_backend_cache``; see
``broker_config/rabbitmq-auth.conf`` and docs/broker-auth.md) POSTs form fields to these
four routes and wants ``200`` with ``allow`` or ``deny`` as the body:

* ``user`` (``username``, ``password``): users log in with their username and an API token
  of theirs, agents as ``node.<node id>`` with their node token. No tag is ever granted: a
  fitwire admin is not RabbitMQ's management administrator.
* ``vhost`` (``username``, ``vhost``, ``ip``), ``resource`` (… ``resource``, ``name``,
  ``permission``) and ``topic`` (… ``routing_key``): the rules of
  :mod:`fitwire.webhook.broker_rules`.

The broker password is an ordinary API token, not a second broker-only secret: the clients
that log in to the broker (the Tracker, the CLI, a browser) hold that token anyway, so a
separate secret would protect nothing more, while reusing it means a broker login expires
and is revoked exactly when the token is (log-out, password change). The broker's internal
accounts (administrator, webhook) never reach these routes.

Fast on purpose: these answer for every connection, declare, bind and publish the broker
has not cached. A token check is one SHA-256 and one lookup (no password hashing); the
callers behind a username and the models a user owns are kept for ``LOOKUP_TTL_S``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from flask import Blueprint, Response, current_app, request
from flask.sansio.blueprints import BlueprintSetupState

from fitwire.contract.errors import Unauthenticated
from fitwire.webhook.api.common import now, store
from fitwire.webhook.broker_rules import (
    JOB_PREFIX,
    NODE_PREFIX,
    Caller,
    JobScope,
    resource_allowed,
    topic_allowed,
)
from fitwire.webhook.security import hash_secret
from fitwire.webhook.store.base import DoesNotExist, StoreError
from fitwire.webhook.store.base import Unauthenticated as StoreUnauthenticated

log = logging.getLogger(__name__)

bp = Blueprint("broker_auth", __name__, url_prefix="/api/v1/broker-auth")

LOOKUP_TTL_S = 5.0
"""How long a username's caller (user or node, admin or not) and a model's owner are reused.

Added to the broker's own cache (30 s), this bounds how late a deleted user or model, or a
demoted admin, is noticed by new operations."""
_MAX_FIELD = 1024
T = TypeVar("T")


class TtlCache:
    """A small thread-safe cache of lookups that may be ``LOOKUP_TTL_S`` stale; bounded in size."""

    def __init__(self, ttl: float = LOOKUP_TTL_S, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], T], keep: Callable[[T], bool] = lambda _: True) -> T:
        """The cached value, or ``compute()`` (kept only when ``keep`` says so)."""
        moment = self._clock()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and moment - hit[0] < self.ttl:
                return hit[1]  # type: ignore[return-value]
        value = compute()  # outside the lock: a slow store must not serialise every check
        if keep(value):
            with self._lock:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()  # crude, but bounded; everything is cheap to look up again
                self._entries[key] = (moment, value)
        return value


@bp.record_once
def _setup(state: BlueprintSetupState) -> None:
    state.app.extensions["fitwire_broker_lookups"] = TtlCache()


def _lookups() -> TtlCache:
    return current_app.extensions["fitwire_broker_lookups"]  # type: ignore[no-any-return]


def _answer(allowed: bool) -> Response:
    return Response("allow" if allowed else "deny", mimetype="text/plain")


def _field(name: str) -> str:
    value = request.values.get(name, "")
    return value if len(value) <= _MAX_FIELD else ""


def _find_caller(username: str) -> Caller | None:
    try:
        if username.startswith(NODE_PREFIX):
            node = store().get_node(username[len(NODE_PREFIX):])
            return None if node.revoked_at is not None else Caller(username, node_id=node.node_id, pools=node.pools)
        if username.startswith(JOB_PREFIX):
            job = store().get_job(username[len(JOB_PREFIX):])
            if job.state != "running":
                return None
            return Caller(username, job=JobScope(job.owner, job.model_key, job.run_id))
        user = store().get_credentials(username).user
    except DoesNotExist:
        return None
    # Exactly the stored spelling: routing keys carry it, and "Alice" is not "alice" to the broker.
    return Caller(username, is_admin=user.is_admin, user_id=user.id) if user.username == username else None


def _caller() -> Caller | None:
    """The known caller named by the request's ``username`` on the request's vhost, else None."""
    username = _field("username")
    if not username or _field("vhost") != current_app.config["BROKER_VHOST"]:
        return None
    return _lookups().get(("caller", username), lambda: _find_caller(username))


def _owns_model(caller: Caller) -> Callable[[str], bool]:
    def owns(model_key: str) -> bool:
        def lookup() -> bool:
            try:
                store().get_model(caller.user_id or "", model_key)
            except DoesNotExist:
                return False
            return True

        # Only "yes" is kept: a model created a second ago must work at once.
        return caller.user_id is not None and _lookups().get(
            ("model", caller.user_id, model_key), lookup, keep=bool
        )

    return owns


def _decide(check: Callable[[], bool], what: str) -> Response:
    """Run ``check``; a store that fails means "deny" (RabbitMQ refuses on an error anyway)."""
    try:
        allowed = check()
    except StoreError as exc:
        log.warning("broker %s check refused: the store failed (%s)", what, exc.code)
        allowed = False
    if not allowed:
        log.info("broker refused %s for %r: %s", what, _field("username"),
                 {k: _field(k) for k in ("resource", "name", "permission", "routing_key") if k in request.values})
    return _answer(allowed)


@bp.post("/user")
def user() -> Response:
    """May ``username`` log in with the token ``password``?"""

    from fitwire.webhook.api.nodes import live_node  # nodes imports this module's login_url

    def check() -> bool:
        username, token = _field("username"), _field("password")
        if not username or not token:
            return False
        token_hash = hash_secret(token)
        try:
            if username.startswith(NODE_PREFIX):  # revoked and lapsed node tokens are refused
                return live_node(token_hash).node_id == username[len(NODE_PREFIX):]
            if username.startswith(JOB_PREFIX):  # a job token dies when its job leaves `running`
                return store().job_for_token(token_hash).job_id == username[len(JOB_PREFIX):]
            return store().user_for_token(token_hash, now()).username == username
        except (StoreUnauthenticated, Unauthenticated):  # the store's (unknown, revoked) or lapsed
            return False

    return _decide(check, "login")


@bp.post("/vhost")
def vhost() -> Response:
    return _decide(lambda: _caller() is not None, "vhost access")


@bp.post("/resource")
def resource() -> Response:
    def check() -> bool:
        caller = _caller()
        return caller is not None and resource_allowed(
            caller, _field("resource"), _field("name"), _field("permission")
        )

    return _decide(check, "resource access")


@bp.post("/topic")
def topic() -> Response:
    def check() -> bool:
        caller = _caller()
        return caller is not None and _field("resource") == "topic" and topic_allowed(
            caller, _field("name"), _field("permission"), _field("routing_key"), _owns_model(caller)
        )

    return _decide(check, "topic access")


def login_url(amqp_url: str, username: str, token: str) -> str:
    """``amqp_url`` (the broker the webhook uses) with a client's own login (a user, a node, a job's
    child) instead of the webhook's credentials."""
    parts = urlsplit(amqp_url)
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{quote(username, safe='')}:{quote(token, safe='')}@{host}{port}"))


def broker_auth_paths() -> dict[str, dict[str, object]]:
    """The OpenAPI paths of these routes (called by RabbitMQ, not by clients)."""
    from fitwire.webhook.openapi import _S, _obj, _op

    text = {"200": {"description": "`allow` or `deny`", "content": {"text/plain": {"schema": _S}}}}

    def op(summary: str, **fields: object) -> dict[str, object]:
        form = _obj(username=_S, **fields)
        operation = _op(summary, text, auth=False)
        operation["requestBody"] = {"required": True,
                                    "content": {"application/x-www-form-urlencoded": {"schema": form}}}
        return {"post": operation}

    return {
        "/api/v1/broker-auth/user": op("RabbitMQ: may this login (username, API or node token) connect?",
                                       password=_S),
        "/api/v1/broker-auth/vhost": op("RabbitMQ: may this login use the vhost?", vhost=_S, ip=_S),
        "/api/v1/broker-auth/resource": op("RabbitMQ: may this login configure/write/read an exchange or queue?",
                                           vhost=_S, resource=_S, name=_S, permission=_S),
        "/api/v1/broker-auth/topic": op("RabbitMQ: may this login publish or bind with this routing key?",
                                        vhost=_S, resource=_S, name=_S, permission=_S, routing_key=_S),
    }
