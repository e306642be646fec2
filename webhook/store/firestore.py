"""The Firestore store (``firestore://<project>``), through ``firebase-admin``.

Layout (top-level collections; ids in braces):

* ``users/{user_id}`` — username, display_name, is_admin, password_hash, created_at
* ``usernames/{username}`` — ``{user_id}``: the claim that makes usernames unique
* ``tokens/{sha256}``, ``invitations/{sha256}`` — hashes only, never the secrets
* ``models/{key}`` — owner_id, owner, name, created_at, ``run_counter`` (last number
  handed out), ``run_total`` (runs that exist)
* ``model_names/{sha256(owner_id, name)}`` — ``{key}``: unique model names per owner
* ``datasets/{dataset_id}``, ``dataset_names/{sha256(name)}`` — see ``firestore_datasets``
* ``runs/{run_id}`` — model_key, owner_id, owner, number, status, … ; epochs in
  the sub-collection ``runs/{run_id}/epochs/{epoch:010d}``

Queries: ``models where owner_id ==`` and ``runs where model_key ==`` (single-field
indexes, automatic); ``runs where model_key == order by number desc`` needs the
composite index ``runs (model_key ASC, number DESC)`` (see README, "The webhook service").

Every multi-document change runs in a transaction, the run counter included: two
``begin_run`` calls for one model conflict on the model document and Firestore
retries the loser, so numbers are distinct and consecutive.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore as gfirestore

from fitwire.webhook.store.base import (
    FINISHED,
    AlreadyExists,
    Design,
    DoesNotExist,
    Epoch,
    InvalidRequest,
    InvalidState,
    Model,
    Run,
    RunStart,
    RunStatus,
    Store,
    StoreError,
    Unavailable,
    logs_from_json,
    to_wire_json,
)
from fitwire.webhook.store.firestore_agents import FirestoreAgents
from fitwire.webhook.store.firestore_datasets import FirestoreDatasets
from fitwire.webhook.store.firestore_users import FirestoreUsers, _valid_id

T = TypeVar("T")
TRANSACTION_ROUNDS = 30
"""Many fits of one model may start at once; contended transactions retry with a random backoff."""
BACKOFF_CAP = 0.5

# Run creation per model, serialised inside this process. The transaction alone keeps the
# numbers right across processes; but two transactions that read and then write the same
# model document deadlock until the server aborts one (the emulator takes seconds to do
# so), and the webhook is one process whose threads would otherwise collide on every
# concurrent start.
_RUN_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_RUN_LOCKS_GUARD = threading.Lock()


def _run_lock(project: str, model_key: str) -> threading.Lock:
    with _RUN_LOCKS_GUARD:
        return _RUN_LOCKS.setdefault((project, model_key), threading.Lock())
_BATCH = 400  # Firestore allows 500 writes per batch


def _translated(method: Callable[..., T]) -> Callable[..., T]:
    """Firestore and network errors become domain errors at the store boundary."""

    @functools.wraps(method)
    def wrapper(self: FirestoreStore, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except StoreError:
            raise
        except gexc.AlreadyExists:
            raise AlreadyExists("That conflicts with an existing record.") from None
        except (gexc.InvalidArgument, gexc.FailedPrecondition) as exc:
            raise InvalidRequest(f"Firestore refused the value ({exc.message}).") from None
        except (gexc.GoogleAPIError, OSError) as exc:
            raise Unavailable(f"Firestore does not answer ({type(exc).__name__}).") from None

    return wrapper


def _client(project: str) -> gfirestore.Client:
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        # The emulator takes no credentials; the client still wants an object.
        from google.auth.credentials import AnonymousCredentials

        return gfirestore.Client(project=project, credentials=AnonymousCredentials())
    import firebase_admin
    from firebase_admin import firestore

    name = f"fitwire-{project}"
    try:
        app = firebase_admin.get_app(name)
    except ValueError:
        app = firebase_admin.initialize_app(options={"projectId": project}, name=name)
    return firestore.client(app)


def _name_id(owner_id: str, name: str) -> str:
    return hashlib.sha256(f"{owner_id}\0{name}".encode()).hexdigest()


def _model(doc: Any) -> Model:
    d = doc.to_dict()
    design = d.get("design")  # JSON text: Firestore holds no array inside an array (kernel sizes are such)
    return Model(key=doc.id, name=d["name"], owner=d["owner"], created_at=d["created_at"], runs=d["run_total"],
                 design=None if design is None else Design.model_validate_json(design))


def _run(doc: Any) -> Run:
    d = doc.to_dict()
    return Run(
        run_id=doc.id, model_key=d["model_key"], owner=d["owner"], number=d["number"], status=d["status"],
        reason=d["reason"], params=d["params"], epochs=d["epochs"], steps=d["steps"], host=d["host"],
        framework=d["framework"], framework_version=d["framework_version"], started_at=d["started_at"],
        ended_at=d["ended_at"], final_logs=logs_from_json(d["final_logs"]),
    )


class FirestoreStore(FirestoreAgents, FirestoreDatasets, FirestoreUsers, Store):
    """A :class:`Store` on Cloud Firestore (or its emulator when ``FIRESTORE_EMULATOR_HOST`` is set)."""

    kind = "firestore"

    def __init__(self, project: str, *, serialize_runs: bool = True) -> None:
        """``serialize_runs=False`` leaves concurrent run creation to the transaction alone (tests)."""
        self.project = project
        self.db = _client(project)
        self._serialize_runs = serialize_runs

    def close(self) -> None:
        self.db.close()

    def _transact(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(transaction)`` in a transaction, retrying contention with a random exponential backoff.

        The client retries an aborted commit at once (5 attempts); under heavy
        contention that livelocks, so rounds of it are spread out in time here.
        """
        delay = 0.01
        for _ in range(TRANSACTION_ROUNDS):
            try:
                return gfirestore.transactional(fn)(self.db.transaction())  # type: ignore[no-any-return]
            except ValueError as exc:
                if not isinstance(exc.__cause__, gexc.Aborted):
                    raise
            except gexc.Aborted:
                pass
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, BACKOFF_CAP)
        raise Unavailable("Firestore kept aborting the transaction (too much contention); try again.")

    def _ref(self, collection: str, doc_id: str) -> Any:
        if not _valid_id(doc_id):
            raise DoesNotExist(f"No {collection[:-1]} with id {doc_id!r}.")
        return self.db.collection(collection).document(doc_id)

    # --- models ----------------------------------------------------------------------------

    def _model_doc(self, owner_id: str, key: str, tx: Any = None) -> Any:
        doc = self._ref("models", key).get(transaction=tx)
        if not doc.exists or doc.get("owner_id") != owner_id:
            raise DoesNotExist(f"No model with key {key!r}.")
        return doc

    @_translated
    def create_model(self, owner_id: str, key: str, name: str, now: datetime, design: Design | None = None) -> Model:
        owner = self._user_doc(owner_id).get("username")
        model_ref = self._ref("models", key)
        name_ref = self.db.collection("model_names").document(_name_id(owner_id, name))

        def create(tx: Any) -> None:
            if name_ref.get(transaction=tx).exists:
                raise AlreadyExists(f"You have a model named {name!r} already.")
            tx.create(name_ref, {"key": key})
            tx.create(model_ref, {"owner_id": owner_id, "owner": owner, "name": name, "created_at": now,
                                  "run_counter": 0, "run_total": 0,
                                  "design": None if design is None else design.model_dump_json()})

        self._transact(create)
        return Model(key=key, name=name, owner=owner, created_at=now, runs=0, design=design)

    @_translated
    def models_using_dataset(self, dataset_id: str) -> list[Model]:
        models = (_model(doc) for doc in self.db.collection("models").stream() if (doc.to_dict() or {}).get("design"))
        return [m for m in models if m.design is not None and m.design.dataset_id == dataset_id]

    @_translated
    def update_design(self, owner_id: str, key: str, change: Callable[[Design | None], Design | None]) -> Model:
        def update(tx: Any) -> None:
            doc = self._model_doc(owner_id, key, tx)
            stored = doc.to_dict().get("design")
            changed = change(None if stored is None else Design.model_validate_json(stored))
            tx.update(doc.reference, {"design": None if changed is None else changed.model_dump_json()})

        self._transact(update)
        return _model(self._model_doc(owner_id, key))

    @_translated
    def list_models(self, owner_id: str) -> list[Model]:
        docs = self.db.collection("models").where(filter=gfirestore.FieldFilter("owner_id", "==", owner_id)).stream()
        return sorted((_model(d) for d in docs), key=lambda m: (m.created_at, m.key))

    @_translated
    def get_model(self, owner_id: str, key: str) -> Model:
        return _model(self._model_doc(owner_id, key))

    @_translated
    def rename_model(self, owner_id: str, key: str, name: str) -> Model:
        new_ref = self.db.collection("model_names").document(_name_id(owner_id, name))

        def rename(tx: Any) -> None:
            doc = self._model_doc(owner_id, key, tx)
            old = doc.get("name")
            if old == name:
                return
            if new_ref.get(transaction=tx).exists:
                raise AlreadyExists(f"You have a model named {name!r} already.")
            tx.delete(self.db.collection("model_names").document(_name_id(owner_id, old)))
            tx.create(new_ref, {"key": key})
            tx.update(doc.reference, {"name": name})

        self._transact(rename)
        return _model(self._model_doc(owner_id, key))

    @_translated
    def delete_model(self, owner_id: str, key: str) -> None:
        self._model_doc(owner_id, key)
        while True:
            runs = list(self.db.collection("runs").where(
                filter=gfirestore.FieldFilter("model_key", "==", key)).limit(_BATCH).stream())
            for run in runs:
                self._delete_run_docs(run.reference)
            # The model goes only once no run is left, so a fit starting meanwhile leaves no orphan.

            def delete(tx: Any) -> bool:
                doc = self._model_doc(owner_id, key, tx)
                left = list(self.db.collection("runs").where(
                    filter=gfirestore.FieldFilter("model_key", "==", key)).limit(1).stream(transaction=tx))
                if left:
                    return False
                tx.delete(doc.reference)
                tx.delete(self.db.collection("model_names").document(_name_id(owner_id, doc.get("name"))))
                return True

            if self._transact(delete):
                return

    def _delete_run_docs(self, run_ref: Any) -> None:
        while True:
            epochs = list(run_ref.collection("epochs").limit(_BATCH).stream())
            if not epochs:
                break
            batch = self.db.batch()
            for epoch in epochs:
                batch.delete(epoch.reference)
            batch.commit()
        run_ref.delete()

    # --- runs and epochs ---------------------------------------------------------------------

    def _run_doc(self, owner_id: str, run_id: str, tx: Any = None) -> Any:
        doc = self._ref("runs", run_id).get(transaction=tx)
        if not doc.exists or doc.get("owner_id") != owner_id:
            raise DoesNotExist(f"No run with id {run_id!r}.")
        return doc

    @_translated
    def begin_run(self, owner_id: str, start: RunStart) -> tuple[Run, bool]:
        run_ref = self._ref("runs", start.run_id)

        def begin(tx: Any) -> tuple[Run, bool]:
            model = self._model_doc(owner_id, start.model_key, tx)
            existing = run_ref.get(transaction=tx)
            reserved = self._ref("job_runs", start.run_id).get(transaction=tx)
            if existing.exists:
                if existing.get("model_key") != start.model_key:
                    raise AlreadyExists(f"The run id {start.run_id!r} belongs to another model.")
                return _run(existing), False
            if reserved.exists and (reserved.get("owner_id") != owner_id
                                    or reserved.get("model_key") != start.model_key):
                raise AlreadyExists(f"The run id {start.run_id!r} is reserved by a job of another model.")
            number = int(model.get("run_counter")) + 1
            data = {
                "model_key": start.model_key, "owner_id": owner_id, "owner": model.get("owner"),
                "number": number, "status": "running", "reason": None, "params": to_wire_json(start.params),
                "epochs": start.epochs, "steps": start.steps, "host": start.host, "framework": start.framework,
                "framework_version": start.framework_version, "started_at": start.started_at,
                "ended_at": None, "final_logs": {},
            }
            tx.update(model.reference, {"run_counter": number, "run_total": gfirestore.Increment(1)})
            tx.create(run_ref, data)
            return _run(_Snapshot(start.run_id, data)), True

        if not self._serialize_runs:
            return self._transact(begin)
        with _run_lock(self.project, start.model_key):
            return self._transact(begin)

    @_translated
    def upsert_epoch(self, owner_id: str, epoch: Epoch) -> Run:
        run_id = epoch.run_id

        def upsert(tx: Any) -> Run:
            run = self._run_doc(owner_id, run_id, tx)
            if run.get("status") in FINISHED:
                raise InvalidState(f"The run {run_id!r} has finished ({run.get('status')}); it takes no more epochs.")
            document = {**epoch.model_dump(exclude={"run_id"}), "logs": to_wire_json(epoch.logs)}
            tx.set(run.reference.collection("epochs").document(f"{epoch.epoch:010d}"), document)
            return _run(run)

        return self._transact(upsert)  # type: ignore[no-any-return]

    @_translated
    def end_run(self, owner_id: str, run_id: str, status: RunStatus, reason: str | None,
                logs: dict[str, float | None], ended_at: datetime) -> Run:
        def end(tx: Any) -> Run:
            run = self._run_doc(owner_id, run_id, tx)
            if run.get("status") in FINISHED:
                return _run(run)
            change = {"status": status, "reason": reason, "ended_at": ended_at, "final_logs": to_wire_json(logs)}
            tx.update(run.reference, change)
            return _run(_Snapshot(run_id, {**run.to_dict(), **change}))

        return self._transact(end)  # type: ignore[no-any-return]

    @_translated
    def get_run(self, owner_id: str, run_id: str) -> Run:
        return _run(self._run_doc(owner_id, run_id))

    @_translated
    def list_runs(self, owner_id: str, model_key: str) -> list[Run]:
        self._model_doc(owner_id, model_key)
        query = self.db.collection("runs").where(filter=gfirestore.FieldFilter("model_key", "==", model_key))
        return [_run(d) for d in query.order_by("number", direction=gfirestore.Query.DESCENDING).stream()]

    @_translated
    def delete_run(self, owner_id: str, run_id: str) -> None:
        run = self._run_doc(owner_id, run_id)
        self._delete_run_docs(run.reference)
        model_ref = self.db.collection("models").document(run.get("model_key"))
        try:
            model_ref.update({"run_total": gfirestore.Increment(-1)})
        except gexc.NotFound:
            pass  # the model is being deleted too

    @_translated
    def list_epochs(self, owner_id: str, run_id: str) -> list[Epoch]:
        run = self._run_doc(owner_id, run_id)
        docs = run.reference.collection("epochs").order_by("epoch").stream()
        return [_epoch(run_id, d.to_dict() or {}) for d in docs]


def _epoch(run_id: str, document: dict[str, Any]) -> Epoch:
    """An epoch from its document; fields added to the entity later are absent from older ones (defaults)."""
    fields = {name: document[name] for name in Epoch.model_fields if name in document}
    return Epoch(**{**fields, "run_id": run_id, "logs": logs_from_json(document.get("logs") or {})})


class _Snapshot:
    """The bits of a DocumentSnapshot :func:`_run` reads, for a document written in this transaction."""

    def __init__(self, doc_id: str, data: dict[str, Any]) -> None:
        self.id = doc_id
        self._data = data

    def to_dict(self) -> dict[str, Any]:
        return self._data
