"""The store contract for datasets, run on SQLite, PostgreSQL and the Firestore emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fitwire.contract.datasets import Column, CsvInfo, ImageClass, ImagesInfo
from fitwire.contract.entities import Dataset
from fitwire.webhook.store import Store
from fitwire.webhook.store.base import AlreadyExists, DoesNotExist, User

NOW = datetime(2026, 12, 3, 8, 0, 0, 500000, tzinfo=UTC)
CSV_INFO = CsvInfo(rows=3, delimiter=",", examples=[["1", "a"]], columns=[
    Column(name="x", type="Int", unique=3, one_hot_width=0, blocked=False),
    Column(name="city", type="Label", unique=2, one_hot_width=2, blocked=False),
])
IMAGES_INFO = ImagesInfo(classes=[ImageClass(name="cat", training=4, validation=2, sample="training_data/cat/0.png")],
                         sizes=[(16, 16)], channels=[3], images=6)


def user(store: Store, name: str) -> User:
    return store.create_user(name, f"hash-of-{name}", now=NOW)


def dataset(owner: User, name: str, *, dataset_id: str | None = None, sha256: str = "a" * 64,
            images: bool = False, offset: int = 0) -> Dataset:
    return Dataset(dataset_id=dataset_id or f"ds-{owner.username}-{name}", name=name, owner=owner.username,
                   owner_id=owner.id, public=False, format="images" if images else "csv", size=1234,
                   sha256=sha256, created_at=NOW + timedelta(seconds=offset),
                   info=IMAGES_INFO if images else CSV_INFO)


def test_round_trip_keeps_every_field_of_both_formats(store: Store) -> None:
    alice = user(store, "alice")
    table, pictures = dataset(alice, "table"), dataset(alice, "pictures", images=True, sha256="b" * 64)
    assert store.create_dataset(table) == table
    store.create_dataset(pictures)
    assert store.get_dataset(table.dataset_id) == table
    assert store.get_dataset(pictures.dataset_id, alice.id) == pictures
    assert isinstance(store.get_dataset(pictures.dataset_id).info, ImagesInfo)
    assert [d.name for d in store.list_datasets(alice.id)] == ["pictures", "table"]


def test_names_unique_per_owner_and_public_names_unique_for_all(store: Store) -> None:
    alice, bob = user(store, "alice"), user(store, "bob")
    store.create_dataset(dataset(alice, "iris"))
    with pytest.raises(AlreadyExists, match="You have a dataset named 'iris'"):
        store.create_dataset(dataset(alice, "iris", dataset_id="other"))
    store.create_dataset(dataset(bob, "iris"))  # private names may repeat across owners
    with pytest.raises(AlreadyExists, match="public name must be unique"):
        store.set_dataset_public("ds-alice-iris", True)  # bob's private one has the name
    store.delete_dataset("ds-bob-iris")
    assert store.set_dataset_public("ds-alice-iris", True).public
    with pytest.raises(AlreadyExists, match="A public dataset is named 'iris'"):
        store.create_dataset(dataset(bob, "iris"))  # no private name equal to a public one
    store.set_dataset_public("ds-alice-iris", False)
    store.create_dataset(dataset(bob, "iris"))  # unpublished: the name is free for others again


def test_another_users_private_dataset_does_not_exist_for_them(store: Store) -> None:
    alice, bob = user(store, "alice"), user(store, "bob")
    mine = store.create_dataset(dataset(alice, "mine"))
    with pytest.raises(DoesNotExist):
        store.get_dataset(mine.dataset_id, bob.id)
    assert store.list_datasets(bob.id) == []
    store.set_dataset_public(mine.dataset_id, True)
    assert store.get_dataset(mine.dataset_id, bob.id).public
    assert [d.name for d in store.list_datasets(bob.id)] == ["mine"]
    assert [d.owner for d in store.list_datasets()] == ["alice"]  # admins: every dataset


def test_delete_says_when_the_file_is_no_longer_used(store: Store) -> None:
    alice, bob = user(store, "alice"), user(store, "bob")
    store.create_dataset(dataset(alice, "one", sha256="c" * 64))
    store.create_dataset(dataset(bob, "two", sha256="c" * 64))  # the same upload, stored once
    assert store.delete_dataset("ds-alice-one") is False  # bob's still uses the file
    assert store.delete_dataset("ds-bob-two") is True
    with pytest.raises(DoesNotExist):
        store.delete_dataset("ds-bob-two")
    with pytest.raises(DoesNotExist):
        store.set_dataset_public("nope", True)
    store.create_dataset(dataset(alice, "one", sha256="c" * 64))  # a deleted name is free again


def test_models_shaped_to_a_dataset_are_found_across_owners(store: Store) -> None:
    from fitwire.contract.entities import Design
    from fitwire.contract.specs import ModelSpec

    alice, bob = user(store, "alice"), user(store, "bob")
    shared = store.create_dataset(dataset(alice, "shared"))
    spec = ModelSpec.model_validate({"format": "csv", "size": [3], "layers": [{"type": "Dense", "layer": {"units": 1}}]})
    on_it = Design(spec=spec, state="shaped", dataset_id=shared.dataset_id, dataset_name="shared", output_units=1)
    store.create_model(bob.id, "kb", "bobs", NOW, design=on_it)
    store.create_model(alice.id, "ka", "dynamic", NOW, design=Design(spec=spec, state="dynamic"))
    store.create_model(alice.id, "kc", "plain", NOW)
    assert [(m.key, m.owner) for m in store.models_using_dataset(shared.dataset_id)] == [("kb", "bob")]
    assert store.models_using_dataset("other") == []
