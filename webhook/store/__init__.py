"""The webhook's stores: the contract (``base``), SQLAlchemy (``sql``), Firestore (``firestore``), ``open_store``."""

from __future__ import annotations

from fitwire.webhook.store.base import Store, StoreError
from fitwire.webhook.store.factory import open_store

__all__ = ["Store", "StoreError", "open_store"]
