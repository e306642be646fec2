"""Users and tokens: sign-up (open or by invitation), log-in/out, profile, password, invitations."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, g, request

from fitwire.contract.entities import Login
from fitwire.contract.errors import PermissionDenied, Unauthenticated
from fitwire.contract.http import LoginBody, PasswordBody, ProfileBody, SignupBody
from fitwire.webhook.api.common import (
    admin_only,
    authenticated,
    iso,
    now,
    parse_body,
    store,
    to_json,
)
from fitwire.webhook.security import (
    LoginGuard,
    hash_password,
    hash_secret,
    new_secret,
    verify_password,
)
from fitwire.webhook.store.base import Credentials, DoesNotExist

bp = Blueprint("auth", __name__, url_prefix="/api/v1")


def _guard() -> LoginGuard:
    return current_app.extensions["fitwire_login_guard"]  # type: ignore[no-any-return]


def _check_password(username: str, password: str) -> Credentials:
    """The user's credentials when ``password`` is right; counts failures against guessing.

    Raises: RateLimited (too many failures lately, even with the right password);
        Unauthenticated (wrong username or password: one message for both).
    """
    address = request.remote_addr or "?"
    _guard().check(username, address)
    try:
        creds: Credentials | None = store().get_credentials(username)
    except DoesNotExist:
        creds = None
    if not verify_password(creds.password_hash if creds else None, password) or creds is None:
        _guard().failed(username, address)
        raise Unauthenticated("Wrong username or password.")
    _guard().succeeded(username, address)
    return creds


@bp.post("/auth/signup")
def signup() -> tuple[dict[str, Any], int]:
    body = parse_body(SignupBody)
    if current_app.config["SIGNUP"] == "invite" and not body.invitation:
        raise PermissionDenied("Sign-up on this server needs an invitation from an admin.")
    user = store().create_user(
        body.username,
        hash_password(body.password),
        display_name=body.display_name,
        invitation_hash=hash_secret(body.invitation) if body.invitation else None,
        now=now(),
    )
    return to_json(user), 201


@bp.post("/auth/login")
def login() -> dict[str, Any]:
    body = parse_body(LoginBody)
    creds = _check_password(body.username, body.password)
    token = new_secret()
    expires_at = now() + timedelta(seconds=current_app.config["TOKEN_TTL_SECONDS"])
    store().create_token(creds.user.id, hash_secret(token), expires_at)
    return to_json(Login(token=token, expires_at=expires_at, user=creds.user))


@bp.post("/auth/logout")
@authenticated
def logout() -> tuple[str, int]:
    store().revoke_token(g.token_hash)
    return "", 204


@bp.get("/me")
@authenticated
def me() -> dict[str, Any]:
    return to_json(g.user)


@bp.patch("/me")
@authenticated
def update_me() -> dict[str, Any]:
    body = parse_body(ProfileBody)
    return to_json(store().update_user(g.user.id, display_name=body.display_name))


@bp.post("/me/password")
@authenticated
def change_password() -> tuple[str, int]:
    body = parse_body(PasswordBody)
    # Same guard as log-in: a stolen token must not become a way to guess the password.
    _check_password(g.user.username, body.old_password)
    store().set_password_hash(g.user.id, hash_password(body.new_password))
    # Whoever knew the old password may hold tokens from it; only this session stays logged in.
    store().revoke_user_tokens(g.user.id, keep=g.token_hash)
    return "", 204


@bp.get("/users")
@admin_only
def list_users() -> dict[str, Any]:
    """Every user (admins): who has signed up, who is an admin."""
    return {"users": [to_json(u) for u in store().list_users()]}


@bp.post("/invitations")
@admin_only
def invite() -> tuple[dict[str, Any], int]:
    """A one-time sign-up invitation (WebML's registration link); only its hash is kept."""
    token = new_secret()
    expires_at = now() + timedelta(seconds=current_app.config["INVITATION_TTL_SECONDS"])
    store().create_invitation(hash_secret(token), g.user.id, expires_at)
    return {"token": token, "expires_at": iso(expires_at)}, 201
