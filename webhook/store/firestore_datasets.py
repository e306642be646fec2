"""Datasets of the Firestore store, mixed into :class:`~fitwire.webhook.store.firestore.FirestoreStore`.

Layout: ``datasets/{dataset_id}`` — owner_id, owner, name, public, format, size, sha256,
created_at, info; ``dataset_names/{sha256(name)}`` — ``{"owners": {owner_id: dataset_id},
"public": dataset_id | None}``: one document per name, read and written in the transaction
that takes, publishes or frees the name, so the naming rules (unique per owner, a public
name unique across owners) hold under concurrency without a query in a transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from google.cloud import firestore as gfirestore

from fitwire.webhook.store.base import AlreadyExists, Dataset, DoesNotExist
from fitwire.webhook.store.firestore_agents import _translated


def _dataset(doc: Any) -> Dataset:
    d = doc.to_dict()
    return Dataset(dataset_id=doc.id, name=d["name"], owner=d["owner"], owner_id=d["owner_id"], public=d["public"],
                   format=d["format"], size=d["size"], sha256=d["sha256"], created_at=d["created_at"],
                   info=json.loads(d["info"]))


def _clash(names: dict[str, Any], name: str, *, owner_id: str | None, but: str | None = None) -> str | None:
    """Why ``name`` cannot be taken by ``owner_id`` (None: as a public name), from its name document."""
    owners = {o: i for o, i in names.get("owners", {}).items() if i != but}
    public = names.get("public")
    if owner_id is not None and owner_id in owners:
        return f"You have a dataset named {name!r} already."
    if public is not None and public != but:
        return f"A public dataset is named {name!r}; choose another name."
    if owner_id is None and owners:
        return f"A dataset named {name!r} exists already; a public name must be unique."
    return None


class FirestoreDatasets:
    """The datasets part of the Firestore store (methods wrapped by ``_translated``)."""

    db: Any
    _ref: Callable[[str, str], Any]
    _transact: Callable[[Callable[[Any], Any]], Any]

    def _name_ref(self, name: str) -> Any:
        return self.db.collection("dataset_names").document(hashlib.sha256(name.encode()).hexdigest())

    @_translated
    def create_dataset(self, dataset: Dataset) -> Dataset:
        ref, name_ref = self._ref("datasets", dataset.dataset_id), self._name_ref(dataset.name)
        data = {**dataset.model_dump(mode="json", exclude={"dataset_id", "created_at", "info"}),
                "owner_id": dataset.owner_id, "created_at": dataset.created_at,
                "info": dataset.info.model_dump_json()}

        def create(tx: Any) -> None:
            names = name_ref.get(transaction=tx).to_dict() or {}
            clash = _clash(names, dataset.name, owner_id=None if dataset.public else dataset.owner_id)
            if clash:
                raise AlreadyExists(clash)
            if ref.get(transaction=tx).exists:
                raise AlreadyExists(f"A dataset with id {dataset.dataset_id!r} exists already.")
            owners = {**names.get("owners", {}), dataset.owner_id: dataset.dataset_id}
            tx.set(name_ref, {"owners": owners, "public": dataset.dataset_id if dataset.public else names.get("public")})
            tx.create(ref, data)

        self._transact(create)
        return dataset

    def _doc(self, dataset_id: str, viewer_id: str | None = None, tx: Any = None) -> Any:
        doc = self._ref("datasets", dataset_id).get(transaction=tx)
        if not doc.exists or (viewer_id is not None and doc.get("owner_id") != viewer_id and not doc.get("public")):
            raise DoesNotExist(f"No dataset with id {dataset_id!r}.")
        return doc

    @_translated
    def get_dataset(self, dataset_id: str, viewer_id: str | None = None) -> Dataset:
        return _dataset(self._doc(dataset_id, viewer_id))

    @_translated
    def list_datasets(self, viewer_id: str | None = None) -> list[Dataset]:
        datasets = self.db.collection("datasets")
        if viewer_id is None:
            docs = list(datasets.stream())
        else:  # two single-field queries (automatic indexes), merged here
            where = gfirestore.FieldFilter
            own = datasets.where(filter=where("owner_id", "==", viewer_id)).stream()
            public = datasets.where(filter=where("public", "==", True)).stream()
            docs = list({d.id: d for d in (*own, *public)}.values())
        return sorted((_dataset(d) for d in docs), key=lambda d: (d.name, d.created_at))

    @_translated
    def set_dataset_public(self, dataset_id: str, public: bool) -> Dataset:
        ref = self._ref("datasets", dataset_id)

        def publish(tx: Any) -> None:
            doc = self._doc(dataset_id, tx=tx)
            name = doc.get("name")
            name_ref = self._name_ref(name)
            names = name_ref.get(transaction=tx).to_dict() or {}
            if public:
                clash = _clash(names, name, owner_id=None, but=dataset_id)
                if clash:
                    raise AlreadyExists(clash)
            was = names.get("public")
            now_public = dataset_id if public else (None if was == dataset_id else was)
            tx.set(name_ref, {"owners": names.get("owners", {}), "public": now_public})
            tx.update(ref, {"public": public})

        self._transact(publish)
        return _dataset(ref.get())

    @_translated
    def delete_dataset(self, dataset_id: str) -> bool:
        ref = self._ref("datasets", dataset_id)

        def remove(tx: Any) -> str:
            doc = self._doc(dataset_id, tx=tx)
            name_ref = self._name_ref(doc.get("name"))
            names = name_ref.get(transaction=tx).to_dict() or {}
            owners = {o: i for o, i in names.get("owners", {}).items() if i != dataset_id}
            public = None if names.get("public") == dataset_id else names.get("public")
            if owners or public:
                tx.set(name_ref, {"owners": owners, "public": public})
            else:
                tx.delete(name_ref)
            tx.delete(ref)
            return str(doc.get("sha256"))

        sha256 = self._transact(remove)
        same = self.db.collection("datasets").where(filter=gfirestore.FieldFilter("sha256", "==", sha256)).limit(1)
        return not list(same.stream())
