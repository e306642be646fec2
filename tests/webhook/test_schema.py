"""Schema revisions: a fresh SQLite file is created, an old or foreign schema is refused with the fix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from fitwire.cli.main import app as cli
from fitwire.webhook import create_app
from fitwire.webhook.store import migrate, open_store
from fitwire.webhook.store.base import SchemaOutOfDate, Unavailable
from fitwire.webhook.store.sql import make_engine
from tests.fixtures.services import service_missing
from tests.fixtures.webhook import POSTGRES_ADMIN_URL


def test_a_new_sqlite_file_is_created_at_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'fitwire.db'}"
    open_store(url).close()
    assert migrate.current_revision(make_engine(url)) == migrate.head_revision()


def test_an_old_sqlite_schema_is_refused_until_upgraded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(make_engine(url), "0001")
    with pytest.raises(SchemaOutOfDate, match=r"revision 0001 .* run `fitwire webhook upgrade`"):
        open_store(url)
    with pytest.raises(SchemaOutOfDate):
        create_app({"STORE_URL": url})
    monkeypatch.setenv("FITWIRE_STORE", url)
    result = CliRunner().invoke(cli, ["webhook", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "from revision 0001 to" in result.output
    assert open_store(url).kind == "sqlite"
    assert "up to date" in CliRunner().invoke(cli, ["webhook", "upgrade"]).output


def test_a_schema_newer_than_this_build_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    open_store(url).close()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    with pytest.raises(SchemaOutOfDate, match="newer than this fitwire knows"):
        open_store(url)


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        service_missing(f"PostgreSQL at {POSTGRES_ADMIN_URL}")
        return
    name = f"fitwire_empty_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_an_empty_postgresql_is_refused_until_upgraded(empty_postgres: str) -> None:
    with pytest.raises(SchemaOutOfDate, match="none .* `fitwire webhook upgrade`"):
        open_store(empty_postgres)
    migrate.upgrade(make_engine(empty_postgres))
    store = open_store(empty_postgres)
    assert store.kind == "postgresql" and store.count_users() == 0
    store.close()


def test_a_database_that_does_not_answer_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="does not answer"):
        open_store("postgresql://postgres@127.0.0.1:1/fitwire")
