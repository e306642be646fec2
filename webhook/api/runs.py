"""Runs (trainings) and their epochs: list, get, delete, and a run's whole state at once."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from fitwire.webhook.api.common import authenticated, store, to_json

bp = Blueprint("runs", __name__, url_prefix="/api/v1")


@bp.get("/models/<key>/runs")
@authenticated
def list_runs(key: str) -> dict[str, Any]:
    """Newest first."""
    return {"runs": [to_json(r) for r in store().list_runs(g.user.id, key)]}


@bp.get("/runs/<run_id>")
@authenticated
def get(run_id: str) -> dict[str, Any]:
    return to_json(store().get_run(g.user.id, run_id))


@bp.delete("/runs/<run_id>")
@authenticated
def delete(run_id: str) -> tuple[str, int]:
    store().delete_run(g.user.id, run_id)
    return "", 204


@bp.get("/runs/<run_id>/epochs")
@authenticated
def epochs(run_id: str) -> dict[str, Any]:
    return {"epochs": [to_json(e) for e in store().list_epochs(g.user.id, run_id)]}


@bp.get("/runs/<run_id>/state")
@authenticated
def state(run_id: str) -> dict[str, Any]:
    """Everything a client joining mid-run needs to draw at once."""
    found = store().run_state(g.user.id, run_id)
    last = found.last_epoch
    return {
        "run": to_json(found.run),
        "epochs": [to_json(e) for e in found.epochs],
        "last_epoch": to_json(last) if last else None,
    }
