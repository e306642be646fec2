"""Users, API tokens and invitations of the SQL store, mixed into :class:`~fitwire.webhook.store.sql.SqlStore`.

Same habits as the rest of the SQL store: one managed session per method
(``self._session``; ``write=True`` for a writing transaction), rows become
entities before they leave.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fitwire.webhook.security import TokenCache
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
from fitwire.webhook.store.sql_schema import InvitationRow, TokenRow, UserRow

# Every request looks its token up: built once, with a bind parameter (building it per call cost
# more CPU than running it).
_TOKEN_AND_USER = (
    select(TokenRow, UserRow).join(UserRow, UserRow.id == TokenRow.user_id)
    .where(TokenRow.token_hash == bindparam("token_hash"))
)


class SqlUsers:
    """The users-and-tokens part of the SQL store."""

    _session: Callable[..., AbstractContextManager[Session]]

    @property
    def _tokens(self) -> TokenCache:
        """Users of recently looked-up tokens; every write to users or tokens here updates it.

        Made on first use, so the store's constructor need not know of it; ``setdefault`` keeps
        two threads' first uses to one cache."""
        cache = self.__dict__.get("_token_cache")
        return cache if cache is not None else self.__dict__.setdefault("_token_cache", TokenCache())

    # --- users -------------------------------------------------------------------------

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
        with self._session(write=True) as s:
            invitation = None
            if invitation_hash is not None:
                invitation = s.get(InvitationRow, invitation_hash, with_for_update=True)
                if invitation is None or invitation.used_by is not None or invitation.expires_at <= now:
                    raise PermissionDenied("The invitation is unknown, used already or expired.")
            if s.scalar(select(UserRow.id).where(UserRow.username == username)) is not None:
                raise AlreadyExists(f"The username {username!r} is taken.")
            row = UserRow(
                id=uuid.uuid4().hex,
                username=username,
                display_name=display_name,
                is_admin=is_admin,
                password_hash=password_hash,
                created_at=now,
            )
            s.add(row)
            if invitation is not None:
                invitation.used_by, invitation.used_at = row.id, now
            try:
                s.flush()
            except IntegrityError:
                raise AlreadyExists(f"The username {username!r} is taken.") from None
            return row.to_entity()

    def _user_row(self, s: Session, user_id: str) -> UserRow:
        row = s.get(UserRow, user_id)
        if row is None:
            raise DoesNotExist("No such user.")
        return row

    def get_user(self, user_id: str) -> User:
        with self._session() as s:
            return self._user_row(s, user_id).to_entity()

    def get_credentials(self, username: str) -> Credentials:
        with self._session() as s:
            row = s.scalar(select(UserRow).where(UserRow.username == username))
            if row is None:
                raise DoesNotExist(f"No user named {username!r}.")
            return Credentials(user=row.to_entity(), password_hash=row.password_hash)

    def update_user(self, user_id: str, *, display_name: str) -> User:
        with self._session(write=True) as s:
            row = self._user_row(s, user_id)
            row.display_name = display_name
            user = row.to_entity()
        self._tokens.clear()
        return user

    def set_password_hash(self, user_id: str, password_hash: str) -> None:
        with self._session(write=True) as s:
            self._user_row(s, user_id).password_hash = password_hash
        self._tokens.clear()

    def list_users(self) -> list[User]:
        with self._session() as s:
            return [row.to_entity() for row in s.scalars(select(UserRow).order_by(UserRow.username))]

    def count_users(self) -> int:
        with self._session() as s:
            return s.scalar(select(func.count()).select_from(UserRow)) or 0

    # --- tokens and invitations ------------------------------------------------------------

    def create_token(self, user_id: str, token_hash: str, expires_at: datetime) -> Token:
        with self._session(write=True) as s:
            self._user_row(s, user_id)
            s.add(TokenRow(token_hash=token_hash, user_id=user_id, created_at=datetime.now(expires_at.tzinfo),
                           expires_at=expires_at))
            return Token(user_id=user_id, expires_at=expires_at)

    def user_for_token(self, token_hash: str, now: datetime) -> User:
        cached = self._tokens.get(token_hash, now)
        if cached is not None:
            return cached
        generation = self._tokens.generation
        with self._session() as s:
            found = s.execute(_TOKEN_AND_USER, {"token_hash": token_hash}).first()
            if found is None or found[0].revoked_at is not None:
                raise Unauthenticated("The token is unknown or revoked; log in again.")
            if found[0].expires_at <= now:
                raise Unauthenticated("The token has expired; log in again.")
            user: User = found[1].to_entity()
            self._tokens.put(token_hash, user, found[0].expires_at, generation)
            return user

    def revoke_token(self, token_hash: str) -> None:
        with self._session(write=True) as s:
            s.execute(
                update(TokenRow)
                .where(TokenRow.token_hash == token_hash, TokenRow.revoked_at.is_(None))
                .values(revoked_at=func.now())
            )
        self._tokens.forget(token_hash)

    def revoke_user_tokens(self, user_id: str, *, keep: str | None = None) -> None:
        with self._session(write=True) as s:
            query = update(TokenRow).where(TokenRow.user_id == user_id, TokenRow.revoked_at.is_(None))
            if keep is not None:
                query = query.where(TokenRow.token_hash != keep)
            s.execute(query.values(revoked_at=func.now()))
        self._tokens.clear()

    def create_invitation(self, invitation_hash: str, created_by: str, expires_at: datetime) -> Invitation:
        with self._session(write=True) as s:
            self._user_row(s, created_by)
            s.add(InvitationRow(invitation_hash=invitation_hash, created_by=created_by,
                                created_at=datetime.now(expires_at.tzinfo), expires_at=expires_at))
            return Invitation(created_by=created_by, expires_at=expires_at)
