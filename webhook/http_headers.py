"""Response headers every webhook answer carries, and CORS for configured origins only.

* ``X-Content-Type-Options: nosniff`` — a JSON error echoing user text is never sniffed as HTML.
* ``Content-Security-Policy: frame-ancestors 'none'`` (and ``X-Frame-Options: DENY`` for old
  browsers) — no page of another site can frame the web client to click for the user.
* ``Cache-Control: no-store`` on every API answer: log-in, ``/session``, node and job
  tokens travel in bodies, and no proxy or browser cache may keep one.
* CORS: none by default (the web client is served by the webhook itself, same origin).
  ``FITWIRE_CORS_ORIGINS`` lists origins (``https://app.example.org``) that may call the API
  from a browser with a bearer token; any other origin gets no ``Access-Control-*`` header.
"""

from __future__ import annotations

from flask import Flask, Response, request

ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type"
PREFLIGHT_MAX_AGE_S = 600


def install(app: Flask, cors_origins: frozenset[str]) -> None:
    """Register the hooks on ``app``."""

    @app.before_request
    def _preflight() -> Response | None:
        # A browser's CORS preflight; answered here so no view sees it. Unknown origins get a
        # bare 204 without Access-Control headers, which the browser reads as "refused".
        if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
            return Response(status=204)
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        origin = request.headers.get("Origin")
        if origin and origin in cors_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
                response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
                response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
        return response
