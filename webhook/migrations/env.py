"""Alembic environment for the webhook's SQL store.

Run through ``fitwire webhook upgrade`` (or :func:`fitwire.webhook.store.migrate.upgrade`),
which hands over an open connection in ``config.attributes["connection"]``;
plain ``alembic -x url=… upgrade head`` with a ``script_location`` pointing here works too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from fitwire.webhook.store.sql_schema import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table.
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database URL: pass -x url=… or set sqlalchemy.url")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
