"""Datasets of the SQL store, mixed into :class:`~fitwire.webhook.store.sql.SqlStore`.

A name is checked against the owner's datasets and every public one in the same writing
transaction that takes it. That check spans owners, which a unique constraint cannot
express: SQLite has one writer at a time anyway, and on PostgreSQL a transaction-scoped
advisory lock on the name serialises the writers that could clash (and nothing else).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy import delete, func, or_, select, text
from sqlalchemy.orm import Session

from fitwire.webhook.store.base import AlreadyExists, Dataset, DoesNotExist
from fitwire.webhook.store.sql_schema import DatasetRow, UserRow


class SqlDatasets:
    """The datasets part of the SQL store."""

    _session: Callable[..., AbstractContextManager[Session]]
    kind: str

    def _lock_name(self, s: Session, name: str) -> None:
        if self.kind == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"dataset-name:{name}"})

    @staticmethod
    def _clash(s: Session, name: str, *, owner_id: str | None, but: str | None = None) -> str | None:
        """Why ``name`` cannot be taken: by the owner ``owner_id`` (None: as a public name)."""
        query = select(DatasetRow.owner_id, DatasetRow.public).where(DatasetRow.name == name)
        if but is not None:
            query = query.where(DatasetRow.dataset_id != but)
        for row_owner, public in s.execute(query):
            if owner_id is not None and row_owner == owner_id:
                return f"You have a dataset named {name!r} already."
            if public:
                return f"A public dataset is named {name!r}; choose another name."
            if owner_id is None:
                return f"A dataset named {name!r} exists already; a public name must be unique."
        return None

    def create_dataset(self, dataset: Dataset) -> Dataset:
        with self._session(write=True) as s:
            self._lock_name(s, dataset.name)
            clash = self._clash(s, dataset.name, owner_id=None if dataset.public else dataset.owner_id)
            if clash:
                raise AlreadyExists(clash)
            s.add(DatasetRow(
                dataset_id=dataset.dataset_id, owner_id=dataset.owner_id, name=dataset.name, public=dataset.public,
                format=dataset.format, size=dataset.size, sha256=dataset.sha256, created_at=dataset.created_at,
                info=dataset.info.model_dump(mode="json"),
            ))
            s.flush()  # a taken id is an IntegrityError → AlreadyExists in _session
            return dataset

    def _dataset(self, s: Session, dataset_id: str, viewer_id: str | None = None) -> tuple[DatasetRow, str]:
        query = select(DatasetRow, UserRow.username).join(UserRow, UserRow.id == DatasetRow.owner_id) \
            .where(DatasetRow.dataset_id == dataset_id)
        if viewer_id is not None:
            query = query.where(or_(DatasetRow.owner_id == viewer_id, DatasetRow.public.is_(True)))
        found = s.execute(query).first()
        if found is None:
            raise DoesNotExist(f"No dataset with id {dataset_id!r}.")
        return found[0], found[1]

    def get_dataset(self, dataset_id: str, viewer_id: str | None = None) -> Dataset:
        with self._session() as s:
            row, owner = self._dataset(s, dataset_id, viewer_id)
            return row.to_entity(owner)

    def list_datasets(self, viewer_id: str | None = None) -> list[Dataset]:
        query = select(DatasetRow, UserRow.username).join(UserRow, UserRow.id == DatasetRow.owner_id) \
            .order_by(DatasetRow.name, DatasetRow.created_at)
        if viewer_id is not None:
            query = query.where(or_(DatasetRow.owner_id == viewer_id, DatasetRow.public.is_(True)))
        with self._session() as s:
            return [row.to_entity(owner) for row, owner in s.execute(query)]

    def set_dataset_public(self, dataset_id: str, public: bool) -> Dataset:
        with self._session(write=True) as s:
            row, owner = self._dataset(s, dataset_id)
            if public and not row.public:
                self._lock_name(s, row.name)
                clash = self._clash(s, row.name, owner_id=None, but=dataset_id)
                if clash:
                    raise AlreadyExists(clash)
            row.public = public
            return row.to_entity(owner)

    def delete_dataset(self, dataset_id: str) -> bool:
        with self._session(write=True) as s:
            row, _ = self._dataset(s, dataset_id)
            sha256 = row.sha256
            s.execute(delete(DatasetRow).where(DatasetRow.dataset_id == dataset_id))
            left = s.scalar(select(func.count()).select_from(DatasetRow).where(DatasetRow.sha256 == sha256))
            return not left
