"""Models (DL-Tracker's model keys): create, list, get, rename, delete with their runs."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, g

from fitwire.contract.http import ModelBody
from fitwire.webhook.api.common import authenticated, now, parse_body, store, to_json

bp = Blueprint("models", __name__, url_prefix="/api/v1/models")


@bp.post("")
@authenticated
def create() -> tuple[dict[str, Any], int]:
    body = parse_body(ModelBody)
    # 128 random bits in hex: unguessable, and safe inside routing keys.
    model = store().create_model(g.user.id, secrets.token_hex(16), body.name, now())
    return to_json(model), 201


@bp.get("")
@authenticated
def list_models() -> dict[str, Any]:
    return {"models": [to_json(m) for m in store().list_models(g.user.id)]}


@bp.get("/<key>")
@authenticated
def get(key: str) -> dict[str, Any]:
    return to_json(store().get_model(g.user.id, key))


@bp.patch("/<key>")
@authenticated
def rename(key: str) -> dict[str, Any]:
    body = parse_body(ModelBody)
    return to_json(store().rename_model(g.user.id, key, body.name))


@bp.delete("/<key>")
@authenticated
def delete(key: str) -> tuple[str, int]:
    store().delete_model(g.user.id, key)
    return "", 204
