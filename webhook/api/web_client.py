"""The web and phone client (a PWA), served at ``/`` from the built bundle in ``fitwire.client_api/static``.

The bundle is built from ``android_client_api/web`` by ``make install`` (npm + esbuild); it is a
build output, not in the repository. The page reads stored state from this webhook's HTTP API and
live data straight from RabbitMQ's Web STOMP with the user's own broker login, at the URL
``GET /api/v1/session`` announces as ``stomp_url`` (:func:`stomp_url`); the Content-Security-Policy
lets the page connect to that origin and to nothing else outside its own.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, current_app, send_file
from flask.blueprints import BlueprintSetupState

from fitwire.broker.local import STOMP_PORT_OFFSET
from fitwire.settings import Settings

bp = Blueprint("web_client", __name__)

ASSETS = frozenset({"app.js", "app.css", "icon.svg", "icon-192.png", "icon-512.png"})
"""The files under ``/app/``; nothing else of the static folder is served."""
NOT_BUILT = ("The web client is not built: run `make install` (or `npm ci && npm run build` in "
             "android_client_api/web).")


@bp.record_once
def _configure(state: BlueprintSetupState) -> None:
    # A STOMP_URL given to create_app (tests) wins over FITWIRE_STOMP_URL.
    state.app.config.setdefault("STOMP_URL", Settings.from_env().stomp_url)


def static_dir() -> Path:
    """Where the built bundle lives (``android_client_api/static``, shipped as package data)."""
    return Path(str(resources.files("fitwire.client_api"))) / "static"


def default_stomp_url(amqp_url: str) -> str:
    """The Web STOMP URL of the broker at ``amqp_url``: its host, AMQP port + 10002, path ``/ws``.

    The offset is the one ``fitwire dev broker up`` gives its node, and it maps RabbitMQ's
    defaults onto each other: 5672 → 15674 (``ws``) and 5671 (amqps) → 15673 (``wss``).
    """
    parts = urlsplit(amqp_url)
    secure = parts.scheme == "amqps"
    port = (parts.port or (5671 if secure else 5672)) + STOMP_PORT_OFFSET
    host = parts.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    return f"{'wss' if secure else 'ws'}://{host}:{port}/ws"


def stomp_url(app: Flask | None = None) -> str:
    """The Web STOMP URL browsers are told: ``STOMP_URL`` when set, else derived from ``AMQP_URL``."""
    config = (app or current_app).config
    return str(config.get("STOMP_URL") or default_stomp_url(str(config["AMQP_URL"])))


def content_security_policy() -> str:
    """Own origin only, plus the broker's Web STOMP origin for the live connection."""
    parts = urlsplit(stomp_url())
    broker = f"{parts.scheme}://{parts.netloc}"
    return "; ".join([
        "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
        f"connect-src 'self' {broker}", "worker-src 'self'", "manifest-src 'self'", "object-src 'none'",
        "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
    ])


def _serve(name: str, mimetype: str | None = None) -> Response:
    path = static_dir() / name
    if not path.is_file():
        if name == "index.html":  # a server without its bundle still says what to do
            return Response(NOT_BUILT, status=503, mimetype="text/plain")
        abort(404)
    # Revalidated on every load (ETag): a new build reaches every browser at once.
    response = send_file(path, mimetype=mimetype, max_age=0, conditional=True, etag=True)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = content_security_policy()
    return response


@bp.get("/")
def index() -> Response:
    return _serve("index.html", "text/html")


@bp.get("/app/<name>")
def asset(name: str) -> Response:
    if name not in ASSETS:
        abort(404)
    return _serve(name)


@bp.get("/manifest.webmanifest")
def manifest() -> Response:
    return _serve("manifest.webmanifest", "application/manifest+json")


@bp.get("/sw.js")
def service_worker() -> Response:
    # At the root, so that it may control every page of the app (its scope is its folder).
    return _serve("sw.js", "text/javascript")


def web_client_paths() -> dict[str, dict[str, Any]]:
    """The OpenAPI paths of these routes (the web client's files, not an API)."""
    from fitwire.webhook.openapi import _op

    def page(summary: str, mimetype: str, *params: str) -> dict[str, Any]:
        ok = {"200": {"description": "The file.", "content": {mimetype: {"schema": {"type": "string"}}}}}
        return {"get": _op(summary, ok, auth=False, params=params)}

    return {
        "/": page("The web client (PWA): its HTML page.", "text/html"),
        "/app/{name}": page("The web client's script, style sheet and icons.", "application/octet-stream", "name"),
        "/manifest.webmanifest": page("The web app manifest.", "application/manifest+json"),
        "/sw.js": page("The web client's service worker.", "text/javascript"),
    }
