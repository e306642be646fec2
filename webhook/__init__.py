"""The webhook service: Flask app, HTTP API, and the stores behind it.

Serve it with ``fitwire webhook serve``; build it in tests with :func:`create_app`.
"""

from __future__ import annotations

from fitwire.webhook.app import MAX_BODY_BYTES, create_app

__all__ = ["MAX_BODY_BYTES", "create_app"]
