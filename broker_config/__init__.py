"""The broker adapter: RabbitMQ topology, connections, a local node.

Messages and errors are the contract's (``fitwire.contract``). Import from here:
``from fitwire.broker import connect, declare_all``.
"""

from __future__ import annotations

from fitwire.broker.connection import Backoff, answers, connect, translate_errors
from fitwire.broker.topology import declare_all

__all__ = ["Backoff", "answers", "connect", "declare_all", "translate_errors"]
