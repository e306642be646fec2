"""Users, API tokens and invitations of the Firestore store, mixed into
:class:`~fitwire.webhook.store.firestore.FirestoreStore` (layout: that module's docstring).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore as gfirestore

from fitwire.webhook.store.base import (
    AlreadyExists,
    Credentials,
    DoesNotExist,
    Invitation,
    PermissionDenied,
    Token,
    Unauthenticated,
    User,
)

T = TypeVar("T")
_BATCH = 400  # Firestore allows 500 writes per batch


def _translated(method: Callable[..., T]) -> Callable[..., T]:
    """The store's error translation (``firestore._translated``), looked up at call time:
    that module imports this one, so it cannot be imported here at load time."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        from fitwire.webhook.store.firestore import _translated as translate

        return translate(method)(self, *args, **kwargs)

    return wrapper


def _valid_id(value: str) -> bool:
    return bool(value) and "/" not in value and value not in (".", "..") and not value.startswith("__")


def _user(doc: Any) -> User:
    d = doc.to_dict()
    return User(id=doc.id, username=d["username"], display_name=d["display_name"], is_admin=d["is_admin"],
                created_at=d["created_at"])


class FirestoreUsers:
    """The users-and-tokens part of the Firestore store."""

    db: Any
    _ref: Callable[[str, str], Any]
    _transact: Callable[[Callable[[Any], Any]], Any]

    # --- users -------------------------------------------------------------------------

    @_translated
    def create_user(self, username: str, password_hash: str, *, display_name: str = "", is_admin: bool = False,
                    invitation_hash: str | None = None, now: datetime) -> User:
        user_id = uuid.uuid4().hex
        claim = self.db.collection("usernames").document(username)
        data = {"username": username, "display_name": display_name, "is_admin": is_admin,
                "password_hash": password_hash, "created_at": now}

        def create(tx: Any) -> None:
            invitation = None
            if invitation_hash is not None:
                invitation = self._ref("invitations", invitation_hash).get(transaction=tx) \
                    if _valid_id(invitation_hash) else None
                if invitation is None or not invitation.exists or invitation.get("used_by") is not None \
                        or invitation.get("expires_at") <= now:
                    raise PermissionDenied("The invitation is unknown, used already or expired.")
            if claim.get(transaction=tx).exists:
                raise AlreadyExists(f"The username {username!r} is taken.")
            tx.create(claim, {"user_id": user_id})
            tx.create(self.db.collection("users").document(user_id), data)
            if invitation is not None:
                tx.update(invitation.reference, {"used_by": user_id, "used_at": now})

        self._transact(create)
        return User(id=user_id, username=username, display_name=display_name, is_admin=is_admin, created_at=now)

    def _user_doc(self, user_id: str) -> Any:
        doc = self._ref("users", user_id).get()
        if not doc.exists:
            raise DoesNotExist("No such user.")
        return doc

    @_translated
    def get_user(self, user_id: str) -> User:
        return _user(self._user_doc(user_id))

    @_translated
    def get_credentials(self, username: str) -> Credentials:
        claim = self._ref("usernames", username).get() if _valid_id(username) else None
        if claim is None or not claim.exists:
            raise DoesNotExist(f"No user named {username!r}.")
        doc = self._user_doc(claim.get("user_id"))
        return Credentials(user=_user(doc), password_hash=doc.get("password_hash"))

    @_translated
    def update_user(self, user_id: str, *, display_name: str) -> User:
        self._user_doc(user_id).reference.update({"display_name": display_name})
        return _user(self._user_doc(user_id))

    @_translated
    def set_password_hash(self, user_id: str, password_hash: str) -> None:
        self._user_doc(user_id).reference.update({"password_hash": password_hash})

    @_translated
    def list_users(self) -> list[User]:
        return sorted((_user(doc) for doc in self.db.collection("users").stream()), key=lambda u: u.username)

    @_translated
    def count_users(self) -> int:
        result = self.db.collection("users").count().get()
        return int(result[0][0].value)

    # --- tokens and invitations ------------------------------------------------------------

    @_translated
    def create_token(self, user_id: str, token_hash: str, expires_at: datetime) -> Token:
        self._user_doc(user_id)
        self._ref("tokens", token_hash).create(
            {"user_id": user_id, "created_at": gfirestore.SERVER_TIMESTAMP, "expires_at": expires_at,
             "revoked_at": None})
        return Token(user_id=user_id, expires_at=expires_at)

    @_translated
    def user_for_token(self, token_hash: str, now: datetime) -> User:
        doc = self._ref("tokens", token_hash).get() if _valid_id(token_hash) else None
        if doc is None or not doc.exists or doc.get("revoked_at") is not None:
            raise Unauthenticated("The token is unknown or revoked; log in again.")
        if doc.get("expires_at") <= now:
            raise Unauthenticated("The token has expired; log in again.")
        try:
            return _user(self._user_doc(doc.get("user_id")))
        except DoesNotExist:
            raise Unauthenticated("The token's user no longer exists.") from None

    @_translated
    def revoke_token(self, token_hash: str) -> None:
        if not _valid_id(token_hash):
            return
        ref = self.db.collection("tokens").document(token_hash)
        # A precondition, so revoking an unknown token creates nothing.
        try:
            ref.update({"revoked_at": gfirestore.SERVER_TIMESTAMP})
        except gexc.NotFound:
            pass

    @_translated
    def revoke_user_tokens(self, user_id: str, *, keep: str | None = None) -> None:
        query = self.db.collection("tokens").where(filter=gfirestore.FieldFilter("user_id", "==", user_id))
        batch, pending = self.db.batch(), 0
        for doc in query.stream():
            if doc.id != keep and doc.get("revoked_at") is None:
                batch.update(doc.reference, {"revoked_at": gfirestore.SERVER_TIMESTAMP})
                pending += 1
                if pending == _BATCH:
                    batch.commit()
                    batch, pending = self.db.batch(), 0
        if pending:
            batch.commit()

    @_translated
    def create_invitation(self, invitation_hash: str, created_by: str, expires_at: datetime) -> Invitation:
        self._user_doc(created_by)
        self._ref("invitations", invitation_hash).create(
            {"created_by": created_by, "created_at": gfirestore.SERVER_TIMESTAMP, "expires_at": expires_at,
             "used_by": None, "used_at": None})
        return Invitation(created_by=created_by, expires_at=expires_at)
