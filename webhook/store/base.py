"""The store contract: entities, domain errors, and the abstract store every backend implements.

Rows and snapshots never leave a store: every method returns the frozen
entities below. Every failure a caller can act on is a :class:`StoreError`
with a code; the webhook answers it as the API error of that code (``fitwire.contract.errors``),
so a store never raises an HTTP error and a view never raises a store error. Ownership is
part of the contract: a method that takes ``owner_id`` treats another user's
model or run exactly like one that does not exist, so ids do not leak.

Adding an entity group (jobs, nodes, artifacts) means: new entities and
abstract methods here, their implementation in each backend, a new Alembic
revision for the SQL schema, and the contract tests in ``tests/webhook``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fitwire.contract.entities import (  # the entities the stores take and return
    Dataset,
    Design,
    Epoch,
    Invitation,
    Job,
    Model,
    Node,
    Run,
    RunStart,
    RunState,
    Token,
    User,
)
from fitwire.contract.enums import JOB_ENDED as JOB_ENDED  # the store backends check it
from fitwire.contract.enums import RUN_ENDS as FINISHED  # noqa: F401 - the store backends check it
from fitwire.contract.enums import JobState, RunStatus
from fitwire.contract.errors import FitwireError

# --- errors ---------------------------------------------------------------------------


class StoreError(FitwireError):
    """A store operation failed in a way the caller can report; ``code`` names the reason (one of
    ``fitwire.contract.errors.ERROR_STATUS``: the webhook answers it as that code's API error)."""

    code = "INTERNAL_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(StoreError):
    """The request names a value the store cannot accept."""

    code = "INVALID_REQUEST"


class Unauthenticated(StoreError):
    """No valid identity: unknown, expired or revoked token."""

    code = "UNAUTHENTICATED"


class PermissionDenied(StoreError):
    """The identity is known but may not do this (not an admin, bad invitation)."""

    code = "PERMISSION_DENIED"


class DoesNotExist(StoreError):
    """No such resource, or it belongs to someone else."""

    code = "RESOURCE_DOES_NOT_EXIST"


class AlreadyExists(StoreError):
    """A resource with this unique name or id exists already."""

    code = "RESOURCE_ALREADY_EXISTS"


class InvalidState(StoreError):
    """The resource is in a state that forbids the operation (an epoch for a finished run)."""

    code = "INVALID_STATE"


class Unavailable(StoreError):
    """The database does not answer; retrying later may succeed."""

    code = "TEMPORARILY_UNAVAILABLE"


class SchemaOutOfDate(StoreError):
    """The database schema is not the one this build needs; the message says which command fixes it."""

    code = "SCHEMA_OUT_OF_DATE"





# --- entities (the contract's; Credentials never leaves the store) -----------------------


@dataclass(frozen=True)
class Credentials:
    """A user with the password hash, for log-in only; never serialised."""

    user: User
    password_hash: str


# --- JSON helpers shared by the backends -------------------------------------------------


def to_wire_json(value: Any) -> Any:
    """``value`` with non-finite floats as ``"NaN"``/``"Infinity"``/``"-Infinity"`` (valid JSON, any depth)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): to_wire_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire_json(v) for v in value]
    return value


_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def logs_from_json(logs: dict[str, Any]) -> dict[str, float | None]:
    """Stored logs back to floats (the inverse of :func:`to_wire_json` for flat metric logs)."""
    return {k: (_NON_FINITE[v] if isinstance(v, str) and v in _NON_FINITE else v) for k, v in logs.items()}


def check_claim(job_id: str, state: str, claimed_delivery: int | None, delivery: int) -> None:
    """Raise InvalidState unless a claim for broker delivery ``delivery`` may start the job (every backend)."""
    if state == "queued":
        return
    if state == "running" and claimed_delivery is not None and delivery > claimed_delivery:
        return  # the broker redelivered it: the agent that held it is gone
    if state == "running":
        raise InvalidState(f"Job {job_id} is running already (claimed for this delivery); it is not claimed twice.")
    raise InvalidState(f"Job {job_id} is {state}; only a queued job can be claimed.")


# --- the contract -----------------------------------------------------------------------


class Store(ABC):
    """The webhook's memory. Every method is one transaction: it commits as a whole or changes nothing.

    Raises (every method): :class:`Unavailable` when the database does not
    answer; the method's own domain errors as documented.
    """

    kind: str = "?"
    """Backend name shown by ``/health``: ``sqlite``, ``postgresql`` or ``firestore``."""

    # users ---------------------------------------------------------------------------

    @abstractmethod
    def create_user(
        self,
        username: str,
        password_hash: str,
        *,
        display_name: str = "",
        is_admin: bool = False,
        invitation_hash: str | None = None,
        now: datetime,
    ) -> User:
        """Create a user. With ``invitation_hash`` the invitation is consumed in the same transaction.

        Raises:
            AlreadyExists: the username is taken.
            PermissionDenied: the invitation is unknown, used or expired (``now``).
        """

    @abstractmethod
    def get_user(self, user_id: str) -> User:
        """Raises: DoesNotExist."""

    @abstractmethod
    def get_credentials(self, username: str) -> Credentials:
        """The user and password hash for log-in. Raises: DoesNotExist."""

    @abstractmethod
    def update_user(self, user_id: str, *, display_name: str) -> User:
        """Change the profile. Raises: DoesNotExist."""

    @abstractmethod
    def set_password_hash(self, user_id: str, password_hash: str) -> None:
        """Replace the password hash. Raises: DoesNotExist."""

    @abstractmethod
    def list_users(self) -> list[User]:
        """Every user, by username (admins' user list)."""

    @abstractmethod
    def count_users(self) -> int:
        """How many users exist."""

    # tokens and invitations --------------------------------------------------------------

    @abstractmethod
    def create_token(self, user_id: str, token_hash: str, expires_at: datetime) -> Token:
        """Remember an API token by its hash. Raises: DoesNotExist (no such user)."""

    @abstractmethod
    def user_for_token(self, token_hash: str, now: datetime) -> User:
        """The user a token belongs to. Raises: Unauthenticated (unknown, revoked, or expired at ``now``)."""

    @abstractmethod
    def revoke_token(self, token_hash: str) -> None:
        """Make a token unusable; revoking an unknown or revoked token does nothing."""

    @abstractmethod
    def revoke_user_tokens(self, user_id: str, *, keep: str | None = None) -> None:
        """Revoke every token of a user except the one hashed ``keep`` (after a password change)."""

    @abstractmethod
    def create_invitation(self, invitation_hash: str, created_by: str, expires_at: datetime) -> Invitation:
        """Remember a one-time sign-up invitation by its hash."""

    # models ------------------------------------------------------------------------------

    @abstractmethod
    def create_model(self, owner_id: str, key: str, name: str, now: datetime, design: Design | None = None) -> Model:
        """Raises: AlreadyExists (the owner has a model of that name, or the key is taken)."""

    @abstractmethod
    def update_design(self, owner_id: str, key: str, change: Callable[[Design | None], Design | None]) -> Model:
        """Replace the model's design with ``change(current)`` in one transaction (two trainings ending
        at once both record their trained model). ``change`` may raise a StoreError to refuse.

        Raises: DoesNotExist; whatever ``change`` raises.
        """

    @abstractmethod
    def list_models(self, owner_id: str) -> list[Model]:
        """The owner's models, oldest first."""

    @abstractmethod
    def get_model(self, owner_id: str, key: str) -> Model:
        """Raises: DoesNotExist (also when another user owns it)."""

    @abstractmethod
    def rename_model(self, owner_id: str, key: str, name: str) -> Model:
        """Raises: DoesNotExist; AlreadyExists (the owner has another model of that name)."""

    @abstractmethod
    def delete_model(self, owner_id: str, key: str) -> None:
        """Delete a model with its runs and their epochs. Raises: DoesNotExist."""

    # runs and epochs ---------------------------------------------------------------------

    @abstractmethod
    def begin_run(self, owner_id: str, start: RunStart) -> tuple[Run, bool]:
        """Create a run numbered next for its model, atomically; ``(run, created)``.

        Idempotent: when ``start.run_id`` exists already for this owner and
        model, that run is returned unchanged with ``created=False``.

        Raises:
            DoesNotExist: no such model for this owner.
            AlreadyExists: the run id is used by another model, or reserved by a job of
                another owner or model (run ids are reserved when a job is submitted, so
                nobody can squat a queued job's run).
        """

    @abstractmethod
    def upsert_epoch(self, owner_id: str, epoch: Epoch) -> Run:
        """Insert or replace the epoch ``(epoch.run_id, epoch.epoch)``, every field of it; returns the run.

        Raises: DoesNotExist (no such run for this owner); InvalidState (the run has finished).
        """

    def record_epoch(self, owner_id: str, epoch: Epoch) -> None:
        """:meth:`upsert_epoch` for a caller that does not need the run back (the outbox: ``Prefer:
        return=minimal``); a store may then skip reading it. Raises as ``upsert_epoch``."""
        self.upsert_epoch(owner_id, epoch)

    @abstractmethod
    def end_run(
        self,
        owner_id: str,
        run_id: str,
        status: RunStatus,
        reason: str | None,
        logs: dict[str, float | None],
        ended_at: datetime,
    ) -> Run:
        """Set the final status; a run that has finished already is returned unchanged (first end wins).

        Raises: DoesNotExist.
        """

    def record_end(
        self, owner_id: str, run_id: str, status: RunStatus, reason: str | None,
        logs: dict[str, float | None], ended_at: datetime,
    ) -> None:
        """:meth:`end_run` without the run back (see :meth:`record_epoch`). Raises as ``end_run``."""
        self.end_run(owner_id, run_id, status, reason, logs, ended_at)

    @abstractmethod
    def get_run(self, owner_id: str, run_id: str) -> Run:
        """Raises: DoesNotExist."""

    @abstractmethod
    def list_runs(self, owner_id: str, model_key: str) -> list[Run]:
        """A model's runs, newest (highest number) first. Raises: DoesNotExist (no such model)."""

    @abstractmethod
    def delete_run(self, owner_id: str, run_id: str) -> None:
        """Delete a run and its epochs. Raises: DoesNotExist."""

    @abstractmethod
    def list_epochs(self, owner_id: str, run_id: str) -> list[Epoch]:
        """A run's epochs by epoch number. Raises: DoesNotExist."""

    def run_state(self, owner_id: str, run_id: str) -> RunState:
        """The run with all its epochs. Raises: DoesNotExist."""
        run = self.get_run(owner_id, run_id)
        return RunState(run=run, epochs=self.list_epochs(owner_id, run_id))

    # jobs and nodes (trainer agents) --------------------------------------------------------

    @abstractmethod
    def create_job(self, owner_id: str, *, job_id: str, run_id: str, pool: str, model_key: str,
                   spec: dict[str, Any], now: datetime) -> Job:
        """Record a new job, ``queued``.

        Raises: DoesNotExist (no such model for this owner); AlreadyExists (the job id is taken).
        """

    @abstractmethod
    def get_job(self, job_id: str, owner_id: str | None = None) -> Job:
        """The job; with ``owner_id``, only one of that owner's. Raises: DoesNotExist."""

    @abstractmethod
    def list_jobs(self, owner_id: str | None = None) -> list[Job]:
        """Jobs newest first; with ``owner_id``, only that owner's."""

    @abstractmethod
    def set_job_state(self, job_id: str, state: JobState, *, reason: str | None, node_id: str | None,
                      now: datetime, allowed_from: frozenset[str] | None = None) -> Job:
        """Move the job to ``state``, atomically checking where it is now.

        An ended job never changes again; setting the state it has already ended in
        returns it unchanged (agents retry). ``allowed_from`` narrows the states
        the job may be in (``cancel`` allows ``queued`` only).

        Raises: DoesNotExist; InvalidState (the job is in a state that does not allow it).
        """

    @abstractmethod
    def claim_job(self, job_id: str, *, node_id: str, token_hash: str, delivery: int, now: datetime) -> Job:
        """A node starts the job: ``running`` on ``node_id``, with the job token hashed ``token_hash``.

        Allowed for a ``queued`` job, or for a ``running`` one whose last claim was for an
        earlier broker delivery (``delivery`` is the message's ``x-delivery-count``: the
        agent that held it died and the broker handed the job on). The new token replaces
        the previous one, which stops working at once.

        Raises: DoesNotExist; InvalidState (ended, or already claimed for this delivery).
        """

    @abstractmethod
    def job_for_token(self, token_hash: str) -> Job:
        """The running job a job token belongs to. Raises: Unauthenticated (unknown, replaced, or the job
        is not running: a job token dies when its job ends or goes back to the queue)."""

    def cancel_job(self, owner_id: str | None, job_id: str, now: datetime) -> Job:
        """Cancel a queued job (``owner_id`` None: an admin). Raises: DoesNotExist; InvalidState."""
        self.get_job(job_id, owner_id)
        return self.set_job_state(job_id, "cancelled", reason="cancelled while queued", node_id=None, now=now,
                                  allowed_from=frozenset({"queued"}))

    @abstractmethod
    def create_node(self, node_id: str, name: str, token_hash: str, created_by: str, now: datetime) -> Node:
        """Register a node with the hash of its token. Raises: AlreadyExists."""

    @abstractmethod
    def node_for_token(self, token_hash: str) -> Node:
        """The node a node token belongs to. Raises: Unauthenticated (unknown or revoked).

        Expiry is the caller's: a node token lapses when its node has not been seen
        (``last_seen``, else ``created_at``) for the server's ``FITWIRE_NODE_TOKEN_DAYS``."""

    @abstractmethod
    def report_node(self, node_id: str, telemetry: dict[str, Any], *, agent_version: str,
                    protocol_version: int, now: datetime, pools: tuple[str, ...] | None = None) -> Node:
        """Keep the node's last report and last-seen time; ``pools`` (at hello) replaces its pools.

        Raises: DoesNotExist."""

    @abstractmethod
    def revoke_node(self, node_id: str, now: datetime) -> Node:
        """Revoke the node's token for good (revoking twice keeps the first time). Raises: DoesNotExist."""

    @abstractmethod
    def get_node(self, node_id: str) -> Node:
        """Raises: DoesNotExist."""

    @abstractmethod
    def list_nodes(self) -> list[Node]:
        """Every node, by name."""

    # datasets ------------------------------------------------------------------------------

    @abstractmethod
    def create_dataset(self, dataset: Dataset) -> Dataset:
        """Record an uploaded, inspected dataset (its file is already stored under its hash).

        Names follow WebML's rules: unique among the owner's datasets, and never equal to a
        public dataset's name, so a name means one dataset to every user.

        Raises: AlreadyExists naming the clash; AlreadyExists (the id is taken).
        """

    @abstractmethod
    def get_dataset(self, dataset_id: str, viewer_id: str | None = None) -> Dataset:
        """The dataset; with ``viewer_id``, only one the viewer owns or a public one. Raises: DoesNotExist."""

    @abstractmethod
    def list_datasets(self, viewer_id: str | None = None) -> list[Dataset]:
        """By name: the viewer's own and the public ones; ``None``: every dataset (admins)."""

    @abstractmethod
    def set_dataset_public(self, dataset_id: str, public: bool) -> Dataset:
        """Publish or unpublish. Raises: DoesNotExist; AlreadyExists (publishing a name another
        dataset, anyone's, already has: a public name must be unique)."""

    @abstractmethod
    def models_using_dataset(self, dataset_id: str) -> list[Model]:
        """Every model (anyone's: a public dataset is anyone's to shape to) whose design is shaped to it."""

    @abstractmethod
    def delete_dataset(self, dataset_id: str) -> bool:
        """Delete the record; True when no dataset is left with its file (the same ``sha256``),
        so the caller may remove the file. Raises: DoesNotExist."""

    # lifecycle ---------------------------------------------------------------------------

    def ping(self) -> None:
        """Raises: Unavailable when the database does not answer (``/health`` calls this)."""
        self.count_users()

    def close(self) -> None:  # noqa: B027 - optional hook, most backends have nothing to close
        """Release connections; the store is unusable afterwards."""
