"""Open the store a URL names: ``sqlite:///…``, ``postgresql://…`` or ``firestore://<project>``."""

from __future__ import annotations

from urllib.parse import urlparse

from fitwire.contract.errors import SettingsError
from fitwire.webhook.store.base import Store


def open_store(url: str, *, auto_create: bool | None = None) -> Store:
    """The store for ``url`` (as in ``FITWIRE_STORE``).

    ``auto_create`` (SQL only): create the schema in an empty database; the
    default does so for SQLite only.

    Raises:
        SettingsError: an unknown scheme.
        SchemaOutOfDate, Unavailable: see :class:`~fitwire.webhook.store.sql.SqlStore`.
    """
    scheme = urlparse(url).scheme.split("+")[0]
    if scheme in ("sqlite", "postgresql", "postgres"):
        from fitwire.webhook.store.sql import SqlStore

        return SqlStore(url, auto_create=auto_create)
    if scheme == "firestore":
        from fitwire.webhook.store.firestore import FirestoreStore

        project = urlparse(url).netloc
        if not project:
            raise SettingsError(f"FITWIRE_STORE={url!r} needs a project: firestore://<project>.")
        return FirestoreStore(project)
    raise SettingsError(f"FITWIRE_STORE={url!r}: use sqlite:///…, postgresql://… or firestore://<project>.")
