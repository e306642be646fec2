"""What every blueprint shares: the store, the caller's identity, request bodies, JSON shapes.

Bodies are pydantic models with ``extra="forbid"`` and strict types, so an
unknown field or a wrong type is a 400 whose message names the field, and
nothing is stored. Every body is checked once, before any view reads it
(:func:`refuse_deep_json`): a parser that recurses must never meet 100k nested
brackets. Entities become JSON here and nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request
from pydantic import BaseModel, ValidationError

from fitwire.contract.entities import dump
from fitwire.contract.errors import BadRequest, PermissionDenied, Unauthenticated
from fitwire.contract.http import ID_PATTERN
from fitwire.webhook.security import hash_secret
from fitwire.webhook.store.base import Store

F = TypeVar("F", bound=Callable[..., Any])
B = TypeVar("B", bound=BaseModel)

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a body may have; no fitwire body comes near it."""
# A string (escapes included; an unterminated one runs to the end, so every position is
# scanned once) or a bracket. Strings are matched so that brackets inside them do not count.
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


def store() -> Store:
    return current_app.extensions["fitwire_store"]  # type: ignore[no-any-return]


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``: what every time in the API looks like."""
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def validation_message(exc: ValidationError) -> str:
    """One sentence naming the first bad field."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "json_invalid":
        return f"The body is not valid JSON ({first['msg']})."
    if first["type"] == "extra_forbidden":
        return f"Unknown field {where!r}."
    if first["type"] == "missing":
        return f"Field {where!r} is required."
    if not where:
        return "The body must be a JSON object."
    return f"Field {where!r}: {first['msg']}."


def json_depth(data: bytes) -> int:
    """How deep the arrays and objects of the JSON text ``data`` nest (0 for a scalar).

    Counts brackets outside strings, without parsing: linear, no recursion. ``data`` must
    be UTF-8, where no byte of a multi-byte character can look like a quote or a bracket.
    """
    depth = deepest = 0
    for token in _JSON_TOKEN.findall(data):
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def raw_body(view: F) -> F:
    """Mark a view that reads its body as a stream (an upload): :func:`refuse_deep_json` leaves it alone."""
    view.fitwire_raw_body = True  # type: ignore[attr-defined]
    return view


def refuse_deep_json() -> None:
    """Before every request: a body that is not UTF-8, or nests deeper than :data:`MAX_JSON_DEPTH`,
    is a 400 here, whatever route it is for (``json.loads`` would raise RecursionError, a 500).

    Reading the body here also applies the request's size limit (413) before any view runs.
    """
    if request.routing_exception is not None:
        return  # a 404/405 says more than anything about the body
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "fitwire_raw_body", False):
        return
    data = request.get_data(cache=True)
    if not data:
        return
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("The body must be JSON in UTF-8.") from None
    if data.count(b"[") + data.count(b"{") > MAX_JSON_DEPTH and json_depth(data) > MAX_JSON_DEPTH:
        raise BadRequest(f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.")


def size_text(size: int | None) -> str:
    """``1 MiB``, ``2 GiB``, ``1000 bytes``: a byte limit as people read it."""
    if size is None:
        return "no limit"
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


def parse_body(model: type[B]) -> B:
    """The request body as ``model``. Raises: BadRequest naming the field."""
    data = request.get_data(cache=True)
    if not data:
        raise BadRequest("The request needs a JSON body.")
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise BadRequest(validation_message(exc)) from None


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authenticated(view: F) -> F:
    """Require ``Authorization: Bearer <token>``; the user is ``g.user`` and the token's hash ``g.token_hash``."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = bearer_token()
        if token is None:
            raise Unauthenticated("This needs an 'Authorization: Bearer <token>' header; log in first.")
        g.token_hash = hash_secret(token)
        g.user = store().user_for_token(g.token_hash, now())
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def admin_only(view: F) -> F:
    """Like :func:`authenticated`, and the user must be an admin."""

    @authenticated
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not g.user.is_admin:
            raise PermissionDenied("Only an admin may do this.")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_id(value: str, what: str) -> str:
    """``value`` when it is a valid id (routing-key safe). Raises: BadRequest naming ``what``.

    A malformed id in a body is a 400, not a 404: it cannot name anything.
    """
    if not ID_PATTERN.match(value):
        raise BadRequest(f"{what} must be 1 to 64 letters, digits, '_' or '-'.")
    return value


# --- entities as JSON -----------------------------------------------------------------------


def to_json(entity: BaseModel) -> dict[str, Any]:
    """An entity as the API returns it: every field it shows (``docs/http-api.md``), times in ISO 8601
    UTC, non-finite numbers as the wire writes them: the contract's :func:`dump`, which the client's
    ``parse`` reads back."""
    return dump(entity)  # type: ignore[no-any-return]

