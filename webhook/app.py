"""The webhook's Flask application factory.

``create_app(config)``: defaults from ``FITWIRE_*`` settings, then ``config``
(tests pass a ready store as ``STORE``). Every error is answered by :func:`answer` as
``{"error": {"code", "message"}}`` with the status of ``docs/http-api.md``: the views'
API errors (``fitwire.contract.errors``) as they are, a store's error and Werkzeug's as the
API error of their code. Request bodies are never logged (they hold passwords).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from fitwire.broker import declare_all
from fitwire.broker.adapter import Broker
from fitwire.contract import BrokerError
from fitwire.contract.errors import ERROR_STATUS, ApiError, InternalError, RateLimited, api_error
from fitwire.settings import Settings
from fitwire.webhook import http_headers
from fitwire.webhook.api import BLUEPRINTS, broker_auth
from fitwire.webhook.api.common import refuse_deep_json, size_text
from fitwire.webhook.security import LoginGuard
from fitwire.webhook.store.base import Store, StoreError
from fitwire.webhook.store.factory import open_store

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
"""Largest request body accepted (1 MiB); more is a 413 PAYLOAD_TOO_LARGE."""

_HTTP_CODES = {
    400: "INVALID_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    405: "METHOD_NOT_ALLOWED",
    409: "RESOURCE_ALREADY_EXISTS",
    413: "PAYLOAD_TOO_LARGE",
    415: "INVALID_REQUEST",
    429: "RATE_LIMITED",
}


def answer(error: ApiError) -> Response:
    """The JSON answer of an API error, with the headers its code calls for."""
    response = jsonify({"error": {"code": error.code, "message": error.message}})
    response.status_code = error.status
    if isinstance(error, RateLimited) and error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    if error.code == "UNAUTHENTICATED":
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def api_error_of(exc: StoreError) -> ApiError:
    """A store's error as the API error of its code: where the store's vocabulary meets HTTP's."""
    return api_error(ERROR_STATUS.get(exc.code, 500), exc.code, exc.message)


def _defaults(settings: Settings) -> dict[str, Any]:
    return {
        "STORE_URL": settings.store_url,
        "STORE": None,  # a ready Store instance wins over STORE_URL
        "AMQP_URL": settings.amqp_url,
        "BROKER_LOGINS": settings.broker_logins,  # what GET /api/v1/session announces
        "BROKER_VHOST": "/",  # the only vhost fitwire's broker logins may use
        "SIGNUP": settings.signup,
        "JOB_POOLS": settings.pool_names,
        "UNSCHEDULABLE_AFTER": settings.unschedulable_after,
        "TOKEN_TTL_SECONDS": 30 * 24 * 3600,
        "NODE_TOKEN_TTL_SECONDS": settings.node_token_days * 24 * 3600,
        "DECLARE_TOPOLOGY": True,  # the shared exchanges and queues, with the webhook's own login, at start
        "INVITATION_TTL_SECONDS": 7 * 24 * 3600,
        "LOGIN_MAX_FAILURES": 5,
        "LOGIN_ADDRESS_MAX_FAILURES": settings.login_address_max_failures,
        "CORS_ORIGINS": frozenset(o for o in settings.cors_origins.split(",") if o),
        "TRUSTED_PROXIES": settings.trusted_proxies,
        "LOGIN_WINDOW_SECONDS": 300,
        "MAX_CONTENT_LENGTH": MAX_BODY_BYTES,
        "ARTIFACT_MAX_BYTES": settings.artifact_max_bytes,
        "DATASET_MAX_BYTES": settings.dataset_max_bytes,
        "DATASET_LABEL_LIMIT": settings.dataset_label_limit,
        "SPEC_MAX_LAYERS": settings.spec_max_layers,
        "SPEC_MAX_PARAMS": settings.spec_max_params,
        "TRAINED_MODELS_MAX": settings.trained_models_max,
        "PREDICT_TIMEOUT": settings.predict_timeout,  # seconds a prediction waits for an agent
    }


def declare_shared_topology(broker: Broker, pools: tuple[str, ...]) -> bool:
    """Declare every shared exchange and queue, and the declared pools' job queues; True when done.

    The webhook does this with its own broker account because users may not: configure on a
    shared exchange is also delete. A broker that is down now is not fatal (the webhook serves
    HTTP without it, and ``POST /jobs`` declares its pool again before publishing); it is logged.
    """
    try:
        broker.run(lambda channel: declare_all(channel, pools))
    except BrokerError as exc:
        log.warning("could not declare the shared broker topology at start (%s); clients that need it "
                    "will be refused until it exists", exc)
        return False
    return True


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the webhook app.

    Args:
        config: overrides of the defaults: ``STORE`` (a :class:`Store`) or
            ``STORE_URL``, ``AMQP_URL``, ``SIGNUP`` (``open``/``invite``), ``JOB_POOLS``,
            ``UNSCHEDULABLE_AFTER``,
            ``TOKEN_TTL_SECONDS``, ``INVITATION_TTL_SECONDS``,
            ``LOGIN_MAX_FAILURES`` (per username and address), ``LOGIN_ADDRESS_MAX_FAILURES`` (per address,
            any username), ``LOGIN_WINDOW_SECONDS``, ``CORS_ORIGINS``, ``TRUSTED_PROXIES``, ``MAX_CONTENT_LENGTH``,
            ``NODE_TOKEN_TTL_SECONDS`` (a node token lapses this long after its node was last seen),
            ``DECLARE_TOPOLOGY`` (declare the shared broker topology at start; on by default),
            ``ARTIFACT_MAX_BYTES`` (uploads of artifacts, streamed to disk), ``DATASET_MAX_BYTES`` and
            ``DATASET_LABEL_LIMIT`` (dataset uploads).

    Raises:
        SchemaOutOfDate: the SQL store's schema needs ``fitwire webhook upgrade``.
        Unavailable: the store does not answer.
        SettingsError: a ``FITWIRE_*`` variable is invalid.
    """
    app = Flask("fitwire.webhook", static_folder=None)
    app.config.update(_defaults(Settings.from_env()))
    app.config.update(config or {})
    app.json.sort_keys = False  # type: ignore[attr-defined]

    store: Store = app.config["STORE"] or open_store(app.config["STORE_URL"])
    app.extensions["fitwire_store"] = store
    app.extensions["fitwire_login_guard"] = LoginGuard(
        app.config["LOGIN_MAX_FAILURES"], app.config["LOGIN_WINDOW_SECONDS"],
        max_address_failures=app.config["LOGIN_ADDRESS_MAX_FAILURES"],
    )
    http_headers.install(app, frozenset(app.config["CORS_ORIGINS"]))
    if app.config["TRUSTED_PROXIES"]:
        # Behind nginx every peer is the proxy: take the client's address (the login limits are
        # per address) and scheme from the headers the trusted proxies set, and from no one else.
        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    app.register_blueprint(broker_auth.bp)  # RabbitMQ's HTTP auth backend
    app.before_request(refuse_deep_json)
    # One kept connection per serving thread (jobs, dead letters). Heartbeats off: a waitress
    # thread never services an idle connection, and one found dead is reopened on its next use.
    broker = Broker(app.config["AMQP_URL"], name="fitwire-webhook", confirm=True, heartbeat=0)
    app.extensions["fitwire_broker"] = broker
    if app.config["DECLARE_TOPOLOGY"]:
        once = Broker(app.config["AMQP_URL"], name="fitwire-webhook-topology", attempts=1)
        try:
            declare_shared_topology(once, tuple(app.config["JOB_POOLS"]))
        finally:
            once.close()

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return answer(exc)

    @app.errorhandler(StoreError)
    def _store_error(exc: StoreError) -> Response:
        return answer(api_error_of(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 413:
            # The request's own limit: artifact uploads have a larger one than JSON bodies.
            message = f"The body is larger than the limit of {size_text(request.max_content_length)}."
        elif status == 404:
            message = "No such route."
        else:
            message = exc.description or exc.name
        response = answer(api_error(status, _HTTP_CODES.get(status, "INVALID_REQUEST"), message))
        if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error in the webhook")  # the traceback, never the request body
        return answer(InternalError("The webhook failed unexpectedly; see its log."))

    return app
