"""Schema revisions of the SQL store: what the database is at, what this build needs, and upgrading.

The Alembic scripts ship inside the package (``fitwire/webhook/migrations``), so
``fitwire webhook upgrade`` works from a plain ``pip install``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from fitwire.webhook.store.base import SchemaOutOfDate

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
UPGRADE_COMMAND = "fitwire webhook upgrade"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The revision this build of fitwire needs."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no Alembic revisions shipped"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None when it has never been migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_empty(engine: Engine) -> bool:
    """True when the database has no tables at all (a fresh file or database)."""
    return not inspect(engine).get_table_names()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: what this build needs)."""
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def check(engine: Engine, where: str) -> None:
    """Refuse a database whose schema is not this build's.

    Raises:
        SchemaOutOfDate: with a sentence naming the command that fixes it.
    """
    needed = head_revision()
    current = current_revision(engine)
    if current == needed:
        return
    known = {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if current is not None and current not in known:
        raise SchemaOutOfDate(
            f"The database at {where} is at schema revision {current}, newer than this fitwire "
            f"knows (it needs {needed}); upgrade fitwire to a version that knows it."
        )
    shown = current or "none (empty)"
    raise SchemaOutOfDate(
        f"The database at {where} is at schema revision {shown} but this fitwire needs {needed}; "
        f"run `{UPGRADE_COMMAND}` (with the same FITWIRE_STORE) to upgrade it."
    )
