"""The store contract (fitwire.webhook.store.base.Store), run on SQLite, PostgreSQL and Firestore."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from fitwire.webhook.store import Store, open_store
from fitwire.webhook.store.base import (
    AlreadyExists,
    DoesNotExist,
    Epoch,
    InvalidState,
    PermissionDenied,
    RunStart,
    Unauthenticated,
    User,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)


def user(store: Store, name: str = "alice", **kwargs: object) -> User:
    return store.create_user(name, f"hash-of-{name}", now=NOW, **kwargs)  # type: ignore[arg-type]


def start(run_id: str, key: str, **kwargs: object) -> RunStart:
    return RunStart(run_id=run_id, model_key=key, started_at=NOW, **kwargs)  # type: ignore[arg-type]


def at_once(threads: int, work: Callable[[int], None]) -> None:
    """``work(0)`` … ``work(threads - 1)``, each in its own thread, released together by a barrier;
    raises the first error any of them raised (a thread's failure must fail the test)."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:
            errors.append(exc)

    started = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    if errors:
        raise errors[0]


# --- users, tokens, invitations -----------------------------------------------------------


def test_user_round_trip_and_unique_username(store: Store) -> None:
    alice = user(store, display_name="Alice A.", is_admin=True)
    assert store.get_user(alice.id) == alice
    assert alice.created_at == NOW and alice.is_admin and alice.display_name == "Alice A."
    creds = store.get_credentials("alice")
    assert creds.user == alice and creds.password_hash == "hash-of-alice"
    with pytest.raises(AlreadyExists):
        user(store)
    assert store.count_users() == 1


def test_unknown_user_does_not_exist(store: Store) -> None:
    with pytest.raises(DoesNotExist):
        store.get_credentials("nobody")
    with pytest.raises(DoesNotExist):
        store.get_user("0" * 32)
    with pytest.raises(DoesNotExist):
        store.update_user("0" * 32, display_name="x")


def test_profile_and_password_change(store: Store) -> None:
    alice = user(store)
    assert store.update_user(alice.id, display_name="Al").display_name == "Al"
    store.set_password_hash(alice.id, "new-hash")
    assert store.get_credentials("alice").password_hash == "new-hash"
    assert store.get_user(alice.id).display_name == "Al"


def test_token_valid_expired_revoked(store: Store) -> None:
    alice = user(store)
    store.create_token(alice.id, "a" * 64, NOW + timedelta(hours=1))
    assert store.user_for_token("a" * 64, NOW) == alice
    with pytest.raises(Unauthenticated, match="expired"):
        store.user_for_token("a" * 64, NOW + timedelta(hours=2))
    store.revoke_token("a" * 64)
    store.revoke_token("a" * 64)  # twice is fine
    store.revoke_token("f" * 64)  # unknown is fine
    with pytest.raises(Unauthenticated, match="revoked"):
        store.user_for_token("a" * 64, NOW)
    with pytest.raises(Unauthenticated):
        store.user_for_token("f" * 64, NOW)


def test_revoke_all_tokens_of_a_user_but_one(store: Store) -> None:
    alice, bob = user(store), user(store, "bob")
    later = NOW + timedelta(hours=1)
    for token_hash, owner in (("a" * 64, alice), ("b" * 64, alice), ("c" * 64, alice), ("d" * 64, bob)):
        store.create_token(owner.id, token_hash, later)
    store.revoke_user_tokens(alice.id, keep="b" * 64)
    for revoked in ("a" * 64, "c" * 64):
        with pytest.raises(Unauthenticated):
            store.user_for_token(revoked, NOW)
    assert store.user_for_token("b" * 64, NOW) == alice
    assert store.user_for_token("d" * 64, NOW) == bob


def test_tokens_in_use_are_refused_once_revoked_and_show_profile_changes(store: Store) -> None:
    # Looked up first, as every request does: a store that remembers lookups must still refuse at once.
    alice = user(store)
    for token_hash in ("a" * 64, "b" * 64):
        store.create_token(alice.id, token_hash, NOW + timedelta(hours=1))
        assert store.user_for_token(token_hash, NOW) == alice
    renamed = store.update_user(alice.id, display_name="Al")
    assert store.user_for_token("a" * 64, NOW) == renamed
    store.revoke_user_tokens(alice.id, keep="b" * 64)
    with pytest.raises(Unauthenticated, match="revoked"):
        store.user_for_token("a" * 64, NOW)
    assert store.user_for_token("b" * 64, NOW) == renamed
    store.revoke_token("b" * 64)
    with pytest.raises(Unauthenticated, match="revoked"):
        store.user_for_token("b" * 64, NOW)


def test_invitation_is_one_time_and_expires(store: Store) -> None:
    admin = user(store, "admin", is_admin=True)
    store.create_invitation("i" * 64, admin.id, NOW + timedelta(days=1))
    store.create_invitation("e" * 64, admin.id, NOW - timedelta(seconds=1))
    bob = store.create_user("bob", "h", invitation_hash="i" * 64, now=NOW)
    assert store.get_user(bob.id).username == "bob"
    for name, invitation in (("carol", "i" * 64), ("dave", "e" * 64), ("erin", "x" * 64)):
        with pytest.raises(PermissionDenied):
            store.create_user(name, "h", invitation_hash=invitation, now=NOW)
        with pytest.raises(DoesNotExist):
            store.get_credentials(name)
    assert store.count_users() == 2


def test_taken_username_does_not_use_up_the_invitation(store: Store) -> None:
    admin = user(store, "admin", is_admin=True)
    store.create_invitation("i" * 64, admin.id, NOW + timedelta(days=1))
    with pytest.raises(AlreadyExists):
        store.create_user("admin", "h", invitation_hash="i" * 64, now=NOW)
    assert store.create_user("bob", "h", invitation_hash="i" * 64, now=NOW).username == "bob"


# --- models --------------------------------------------------------------------------------


def test_models_create_list_rename_and_names_unique_per_owner(store: Store) -> None:
    alice, bob = user(store), user(store, "bob")
    m1 = store.create_model(alice.id, "k1", "mnist", NOW)
    m2 = store.create_model(alice.id, "k2", "cifar", NOW + timedelta(seconds=1))
    store.create_model(bob.id, "k3", "mnist", NOW)  # another owner may reuse the name
    assert (m1.key, m1.name, m1.owner, m1.runs, m1.created_at) == ("k1", "mnist", "alice", 0, NOW)
    assert [m.key for m in store.list_models(alice.id)] == ["k1", "k2"]
    with pytest.raises(AlreadyExists):
        store.create_model(alice.id, "k4", "mnist", NOW)
    with pytest.raises(AlreadyExists):
        store.rename_model(alice.id, "k2", "mnist")
    assert store.rename_model(alice.id, "k1", "mnist-v2").name == "mnist-v2"
    assert store.rename_model(alice.id, "k1", "mnist-v2").name == "mnist-v2"  # same name again: no-op
    assert store.create_model(alice.id, "k5", "mnist", NOW).name == "mnist"  # old name is free again
    assert m2 == store.get_model(alice.id, "k2")


def test_another_users_model_does_not_exist(store: Store) -> None:
    alice, bob = user(store), user(store, "bob")
    store.create_model(alice.id, "k1", "mnist", NOW)
    for call in (
        lambda: store.get_model(bob.id, "k1"),
        lambda: store.rename_model(bob.id, "k1", "x"),
        lambda: store.delete_model(bob.id, "k1"),
        lambda: store.list_runs(bob.id, "k1"),
        lambda: store.begin_run(bob.id, start("r1", "k1")),
    ):
        with pytest.raises(DoesNotExist):
            call()
    assert store.get_model(alice.id, "k1").name == "mnist"
    assert store.list_models(bob.id) == []


def test_delete_model_deletes_its_runs_and_epochs(store: Store) -> None:
    alice = user(store)
    store.create_model(alice.id, "k1", "mnist", NOW)
    store.create_model(alice.id, "k2", "other", NOW)
    store.begin_run(alice.id, start("r1", "k1"))
    store.begin_run(alice.id, start("r2", "k2"))
    store.upsert_epoch(alice.id, Epoch(run_id="r1", epoch=0, logs={"loss": 1.0}, ended_at=NOW))
    store.delete_model(alice.id, "k1")
    with pytest.raises(DoesNotExist):
        store.get_model(alice.id, "k1")
    with pytest.raises(DoesNotExist):
        store.get_run(alice.id, "r1")
    with pytest.raises(DoesNotExist):
        store.list_epochs(alice.id, "r1")
    assert store.get_run(alice.id, "r2").model_key == "k2"
    # The key and name are free again, and numbering starts over for the new model.
    store.create_model(alice.id, "k1", "mnist", NOW)
    assert store.begin_run(alice.id, start("r3", "k1"))[0].name == "training_001"


# --- runs and epochs -------------------------------------------------------------------------


def test_runs_are_numbered_per_model_and_begin_is_idempotent(store: Store) -> None:
    alice = user(store)
    store.create_model(alice.id, "k1", "mnist", NOW)
    store.create_model(alice.id, "k2", "other", NOW)
    run, created = store.begin_run(alice.id, start(
        "r1", "k1", params={"lr": 0.01, "nested": {"x": [1, 2]}}, epochs=5, steps=100, host="gpu1",
        framework="keras", framework_version="3.1"))
    assert created and run.name == "training_001" and run.number == 1
    assert (run.status, run.owner, run.epochs, run.steps, run.host, run.framework, run.framework_version) == (
        "running", "alice", 5, 100, "gpu1", "keras", "3.1")
    assert run.params == {"lr": 0.01, "nested": {"x": [1, 2]}} and run.started_at == NOW and run.ended_at is None
    again, created_again = store.begin_run(alice.id, start("r1", "k1", params={"lr": 99.0}))
    assert not created_again and again == run
    assert store.begin_run(alice.id, start("r2", "k1"))[0].name == "training_002"
    assert store.begin_run(alice.id, start("r3", "k2"))[0].name == "training_001"
    assert store.get_model(alice.id, "k1").runs == 2
    assert [r.run_id for r in store.list_runs(alice.id, "k1")] == ["r2", "r1"]


def test_a_run_id_of_another_model_is_refused(store: Store) -> None:
    alice = user(store)
    store.create_model(alice.id, "k1", "mnist", NOW)
    store.create_model(alice.id, "k2", "other", NOW)
    store.begin_run(alice.id, start("r1", "k1"))
    with pytest.raises(AlreadyExists):
        store.begin_run(alice.id, start("r1", "k2"))
    assert store.get_model(alice.id, "k2").runs == 0


def test_numbers_of_deleted_runs_are_not_reused(store: Store) -> None:
    alice = user(store)
    store.create_model(alice.id, "k1", "mnist", NOW)
    store.begin_run(alice.id, start("r1", "k1"))
    store.begin_run(alice.id, start("r2", "k1"))
    store.upsert_epoch(alice.id, Epoch(run_id="r2", epoch=0, logs={}, ended_at=NOW))
    store.delete_run(alice.id, "r2")
    with pytest.raises(DoesNotExist):
        store.get_run(alice.id, "r2")
    assert store.get_model(alice.id, "k1").runs == 1
    assert store.begin_run(alice.id, start("r3", "k1"))[0].name == "training_003"


def test_epoch_upsert_is_idempotent_and_keeps_non_finite_values(store: Store) -> None:
    alice = user(store)
    store.create_model(alice.id, "k1", "mnist", NOW)
    store.begin_run(alice.id, start("r1", "k1"))
    store.upsert_epoch(alice.id, Epoch(run_id="r1", epoch=1, logs={"loss": 0.5}, ended_at=NOW, duration=2.5))
    store.upsert_epoch(alice.id, Epoch(run_id="r1", epoch=0, logs={"loss": math.inf, "acc": None}, ended_at=NOW,
                                       duration=9.0))
    store.upsert_epoch(alice.id, Epoch(run_id="r1", epoch=0, logs={"loss": math.nan, "val_loss": -math.inf},
                                       ended_at=NOW + timedelta(seconds=1)))
    epochs = store.list_epochs(alice.id, "r1")
    assert [e.epoch for e in epochs] == [0, 1]
    assert epochs[1].duration == 2.5 and epochs[0].duration is None  # the resend replaced every field
    assert math.isnan(epochs[0].logs["loss"]) and epochs[0].logs["val_loss"] == -math.inf  # type: ignore[arg-type]
    assert "acc" not in epochs[0].logs and epochs[0].ended_at == NOW + timedelta(seconds=1)
    state = store.run_state(alice.id, "r1")
    assert state.last_epoch == epochs[1] and state.run.run_id == "r1"


def test_end_run_first_end_wins_and_finished_run_takes_no_epochs(store: Store) -> None:
    alice = user(store)
    store.create_model(alice.id, "k1", "mnist", NOW)
    store.begin_run(alice.id, start("r1", "k1"))
    later = NOW + timedelta(minutes=5)
    ended = store.end_run(alice.id, "r1", "stopped", "STOP from alice", {"loss": 0.25}, later)
    assert (ended.status, ended.reason, ended.final_logs, ended.ended_at) == (
        "stopped", "STOP from alice", {"loss": 0.25}, later)
    assert store.end_run(alice.id, "r1", "failed", "late", {}, later + timedelta(1)) == ended
    assert store.get_run(alice.id, "r1") == ended
    with pytest.raises(InvalidState):
        store.upsert_epoch(alice.id, Epoch(run_id="r1", epoch=3, logs={"loss": 1.0}, ended_at=later))
    assert store.list_epochs(alice.id, "r1") == []


def test_another_users_run_does_not_exist(store: Store) -> None:
    alice, bob = user(store), user(store, "bob")
    store.create_model(alice.id, "k1", "mnist", NOW)
    store.begin_run(alice.id, start("r1", "k1"))
    for call in (
        lambda: store.get_run(bob.id, "r1"),
        lambda: store.upsert_epoch(bob.id, Epoch(run_id="r1", epoch=0, logs={}, ended_at=NOW)),
        lambda: store.end_run(bob.id, "r1", "completed", None, {}, NOW),
        lambda: store.list_epochs(bob.id, "r1"),
        lambda: store.delete_run(bob.id, "r1"),
        lambda: store.run_state(bob.id, "r1"),
        lambda: store.upsert_epoch(alice.id, Epoch(run_id="nope", epoch=0, logs={}, ended_at=NOW)),
        lambda: store.record_epoch(bob.id, Epoch(run_id="r1", epoch=0, logs={}, ended_at=NOW)),
        lambda: store.record_end(bob.id, "r1", "completed", None, {}, NOW),
        lambda: store.record_epoch(alice.id, Epoch(run_id="nope", epoch=0, logs={}, ended_at=NOW)),
        lambda: store.record_end(alice.id, "nope", "completed", None, {}, NOW),
    ):
        with pytest.raises(DoesNotExist):
            call()
    assert store.get_run(alice.id, "r1").status == "running"
    assert store.list_epochs(alice.id, "r1") == []


def test_recording_without_the_run_back_stores_the_same(store: Store) -> None:
    """``record_epoch`` / ``record_end`` (the outbox's ``Prefer: return=minimal``) write what the full calls write."""
    alice = user(store)
    store.create_model(alice.id, "k1", "mnist", NOW)
    store.begin_run(alice.id, start("r1", "k1"))
    store.record_epoch(alice.id, Epoch(run_id="r1", epoch=0, logs={"loss": 1.0}, ended_at=NOW))
    store.record_epoch(alice.id, Epoch(run_id="r1", epoch=0, logs={"loss": 0.5}, ended_at=NOW))  # resent
    store.record_end(alice.id, "r1", "stopped", "STOP", {"loss": 0.5}, NOW)
    store.record_end(alice.id, "r1", "failed", "late", {}, NOW)  # resent or late: the first end wins
    run = store.get_run(alice.id, "r1")
    assert (run.status, run.reason, run.final_logs) == ("stopped", "STOP", {"loss": 0.5})
    assert [(e.epoch, e.logs) for e in store.list_epochs(alice.id, "r1")] == [(0, {"loss": 0.5})]
    with pytest.raises(InvalidState):
        store.record_epoch(alice.id, Epoch(run_id="r1", epoch=1, logs={}, ended_at=NOW))
    assert len(store.list_epochs(alice.id, "r1")) == 1


def test_concurrent_fits_get_distinct_consecutive_numbers(store_url: str) -> None:
    """Eight threads, each with its own store instance, start runs of one model at once."""
    setup = open_store(store_url)
    alice = user(setup)
    setup.create_model(alice.id, "k1", "mnist", NOW)
    stores = [open_store(store_url) for _ in range(8)]
    numbers: list[int] = []

    def fit(i: int) -> None:
        for j in range(3):
            numbers.append(stores[i].begin_run(alice.id, start(f"r{i}_{j}", "k1"))[0].number)

    try:
        at_once(len(stores), fit)
    finally:
        for s in stores:
            s.close()
    assert sorted(numbers) == list(range(1, 25))
    assert [r.number for r in setup.list_runs(alice.id, "k1")] == list(range(24, 0, -1))
    assert setup.get_model(alice.id, "k1").runs == 24
    setup.close()


def test_one_run_begun_by_many_at_once_is_created_once_with_one_number(store_url: str) -> None:
    """An outbox resending ``train_begin`` while the first is in flight: one run, one number, one creation."""
    setup = open_store(store_url)
    alice = user(setup)
    setup.create_model(alice.id, "k1", "mnist", NOW)
    stores = [open_store(store_url) for _ in range(8)]
    answers: list[tuple[int, bool]] = []

    def begin(i: int) -> None:
        run, created = stores[i].begin_run(alice.id, start("r1", "k1"))
        answers.append((run.number, created))

    try:
        at_once(len(stores), begin)
    finally:
        for s in stores:
            s.close()
    assert sorted(answers) == [(1, False)] * 7 + [(1, True)]
    assert setup.get_model(alice.id, "k1").runs == 1
    assert setup.begin_run(alice.id, start("r2", "k1"))[0].number == 2  # no number was used up by a loser
    setup.close()


def test_firestore_run_counter_holds_under_transaction_conflicts(request: pytest.FixtureRequest) -> None:
    """Without the in-process lock, only the Firestore transaction keeps concurrent numbers apart."""
    from fitwire.webhook.store.firestore import FirestoreStore
    from tests.fixtures.webhook import FIRESTORE_PROJECT, reset_firestore

    reset_firestore(request.getfixturevalue("firestore_emulator"))
    setup = FirestoreStore(FIRESTORE_PROJECT)
    alice = user(setup)
    setup.create_model(alice.id, "k1", "mnist", NOW)
    stores = [FirestoreStore(FIRESTORE_PROJECT, serialize_runs=False) for _ in range(2)]
    numbers: list[int] = []

    def fit(i: int) -> None:
        for j in range(2):
            numbers.append(stores[i].begin_run(alice.id, start(f"r{i}_{j}", "k1"))[0].number)

    at_once(2, fit)
    assert sorted(numbers) == [1, 2, 3, 4]
    assert setup.get_model(alice.id, "k1").runs == 4


def test_a_models_design_is_kept_and_changed_in_one_transaction(store: Store) -> None:
    from fitwire.contract.entities import Design
    from fitwire.contract.specs import ModelSpec

    alice = user(store)
    spec = ModelSpec.model_validate({"format": "images", "size": [8, 8, 3], "layers": [
        {"type": "Conv2D", "layer": {"filters": 2, "kernel_size": [3, 3]}}, {"type": "Flatten"},
        {"type": "Dense", "layer": {"units": None, "activation": "softmax"}}]})
    design = Design(spec=spec, state="dynamic")
    model = store.create_model(alice.id, "k1", "net", NOW, design=design)
    assert model.design == design and store.get_model(alice.id, "k1").design == design
    assert store.create_model(alice.id, "k2", "plain", NOW).design is None

    def shaped(current: Design | None) -> Design | None:
        assert current == design
        return current.model_copy(update={"state": "shaped", "output_units": 3})

    assert store.update_design(alice.id, "k1", shaped).design.state == "shaped"  # type: ignore[union-attr]
    assert store.get_model(alice.id, "k1").design.output_units == 3  # type: ignore[union-attr]

    def refuse(current: Design | None) -> Design | None:
        raise InvalidState("no")

    with pytest.raises(InvalidState):
        store.update_design(alice.id, "k1", refuse)
    assert store.get_model(alice.id, "k1").design.state == "shaped"  # type: ignore[union-attr]
    with pytest.raises(DoesNotExist):
        store.update_design(user(store, "bob").id, "k1", shaped)
    assert store.update_design(alice.id, "k1", lambda _: None).design is None


def test_users_are_listed_by_username(store: Store) -> None:
    bob, alice = user(store, "bob"), user(store, "alice", is_admin=True)
    assert store.list_users() == [alice, bob]


def test_concurrent_epochs_and_ends_of_many_runs_are_each_stored_or_refused_alone(store: Store) -> None:
    """32 threads write epochs and ends of 8 runs at once through one store (the webhook's
    request threads; on SQLite they share transactions): every live run's epochs are stored,
    and the epoch of a finished run is refused without failing the writes beside it."""
    alice = user(store)
    store.create_model(alice.id, "k1", "mnist", NOW)
    for i in range(8):
        store.begin_run(alice.id, start(f"r{i}", "k1"))
    store.end_run(alice.id, "r7", "completed", None, {}, NOW)
    refused: list[str] = []

    def write(t: int) -> None:
        for k in range(4):
            run_id = f"r{(t + k) % 8}"
            try:
                store.upsert_epoch(alice.id, Epoch(run_id=run_id, epoch=t * 4 + k, logs={"loss": float(t)},
                                                   ended_at=NOW))
            except InvalidState:
                refused.append(run_id)

    at_once(32, write)
    assert set(refused) == {"r7"} and len(refused) == 16
    stored = {i: store.list_epochs(alice.id, f"r{i}") for i in range(8)}
    assert sum(len(epochs) for epochs in stored.values()) == 128 - 16 and stored[7] == []
    for i in range(7):
        assert all(e.logs["loss"] == float(e.epoch // 4) for e in stored[i])
    ended = [store.end_run(alice.id, f"r{i}", "completed", None, {}, NOW) for i in range(7)]
    assert {run.status for run in ended} == {"completed"}
