"""The wire contract's version: every message carries it as ``v``."""

from __future__ import annotations

PROTOCOL_VERSION = 2
"""Version of the wire contract; every message carries it as ``v``.

2: signals are routed owner-first (``<owner>.<model_key>.…``, queue ``signals.<owner>.<run_id>``)
and their sender is the broker-validated ``user_id``. A v1 Tracker would never receive a v2
STOP, so v1 is not spoken at all: an old client is refused with one sentence, not ignored.
"""

SUPPORTED_VERSIONS: tuple[int, ...] = (2,)

__all__ = ["PROTOCOL_VERSION", "SUPPORTED_VERSIONS"]
