"""The OpenAPI 3.1 document served at ``/openapi.json``; tests keep it valid and in step with the routes.

Request bodies are the pydantic body models themselves (:func:`model_ref`), so the
document cannot drift from what the views accept; their nested definitions are hoisted
into ``components.schemas``, so every ``$ref`` resolves. Schemas here write "or null"
as ``nullable`` for brevity; :func:`_openapi_31` turns it into JSON Schema's own form.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from fitwire import __version__
from fitwire.contract.http import ID_PATTERN
from fitwire.contract.schema import COMPONENTS_TEMPLATE
from fitwire.contract.schema import model_ref as hoisted_ref

_ERROR = {"$ref": "#/components/responses/Error"}
_ID = {"type": "string", "pattern": ID_PATTERN.pattern}  # routing-key safe

PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "kind": {"type": "string", "enum": ["bundles", "checkpoints", "trained"]},  # webhook.api.artifacts
    "name": _ID,
}
"""Path parameters whose values the server constrains; the others are any string (an unknown one is a 404)."""


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


_S, _I, _B, _T = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}, {"type": "string", "format": "date-time"}
_NULLABLE_T = {"type": "string", "format": "date-time", "nullable": True}
_LOGS = {"type": "object", "additionalProperties": {"oneOf": [{"type": "number"}, {"type": "string"}], "nullable": True}}

SCHEMAS: dict[str, Any] = {"Error": _obj(error=_obj(code=_S, message=_S))}
"""``components.schemas``: the entities and bodies join it as :func:`model_ref` meets them."""


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


REF_TEMPLATE = COMPONENTS_TEMPLATE


def model_ref(model: type[BaseModel], mode: JsonSchemaMode = "validation") -> dict[str, Any]:
    """A reference to ``model``'s JSON Schema, which joins ``components.schemas`` with its definitions.

    ``mode="serialization"`` for what the server returns (computed fields in, the store's own
    fields out), ``"validation"`` for what it accepts. The hoisting is the contract's
    (:func:`fitwire.contract.schema.model_ref`), shared with the AsyncAPI document.
    """
    return hoisted_ref(model, SCHEMAS, mode, REF_TEMPLATE)


def _openapi_31(node: Any) -> Any:
    """``node`` with every ``"nullable": true`` written as OpenAPI 3.1 (JSON Schema 2020-12) has it."""
    if isinstance(node, list):
        return [_openapi_31(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _openapi_31(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        elif "oneOf" in node:
            node["oneOf"] = [*node["oneOf"], {"type": "null"}]
        else:  # a $ref (or an object schema): null or that
            node = {"anyOf": [node, {"type": "null"}]}
    return node


def _ok(schema: dict[str, Any] | None, status: str = "200") -> dict[str, Any]:
    if schema is None:
        return {status: {"description": "Done; no body."}}
    return {status: {"description": "OK", "content": {"application/json": {"schema": schema}}}}


def _op(summary: str, responses: dict[str, Any], body: Any = None, auth: bool = True,
        params: tuple[str, ...] = ()) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {**responses, "default": _ERROR}}
    if body is not None:
        schema = body if isinstance(body, dict) else model_ref(body)
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    if not auth:
        op["security"] = []
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": PATH_PARAMETERS.get(p, _S)}
                            for p in params]
    return op


@cache
def openapi_document() -> dict[str, Any]:
    from fitwire.contract.entities import Epoch, Login, Model, Run, Session, User
    from fitwire.contract.http import LoginBody, ModelBody, PasswordBody, ProfileBody, SignupBody

    user, model, run, epoch = (model_ref(entity, "serialization") for entity in (User, Model, Run, Epoch))
    run_box = _obj(run=run)
    event = {"type": "object", "description": "One encoded wire message (fitwire.contract.messages): "
             "train_begin, epoch_end or train_end.", "required": ["type", "run_id", "model_key"]}
    paths: dict[str, dict[str, Any]] = {
        "/health": {"get": _op("Service and store health.", _ok(_obj(status=_S, version=_S, store=_S)), auth=False)},
        "/openapi.json": {"get": _op("This document.", _ok({"type": "object"}), auth=False)},
        "/api/v1/session": {"get": _op("The caller, the broker URL and protocol versions.",
                                       _ok(model_ref(Session, "serialization")))},
        "/api/v1/auth/signup": {"post": _op("Sign up (open, or with an invitation).", _ok(user, "201"), SignupBody, auth=False)},
        "/api/v1/auth/login": {"post": _op("Log in; returns an API token.",
                                           _ok(model_ref(Login, "serialization")), LoginBody, auth=False)},
        "/api/v1/auth/logout": {"post": _op("Revoke the token used.", _ok(None, "204"))},
        "/api/v1/me": {"get": _op("The caller's profile.", _ok(user)),
                       "patch": _op("Change the display name.", _ok(user), ProfileBody)},
        "/api/v1/me/password": {"post": _op("Change the password.", _ok(None, "204"), PasswordBody)},
        "/api/v1/users": {"get": _op("Admin: every user, by username.",
                                     _ok(_obj(users={"type": "array", "items": user})))},
        "/api/v1/invitations": {"post": _op("Admin: a one-time sign-up invitation.", _ok(_obj(token=_S, expires_at=_T), "201"))},
        "/api/v1/models": {"get": _op("The caller's models.", _ok(_obj(models={"type": "array", "items": model}))),
                           "post": _op("Create a model (returns its key).", _ok(model, "201"), ModelBody)},
        "/api/v1/models/{key}": {
            "get": _op("One model.", _ok(model), params=("key",)),
            "patch": _op("Rename a model.", _ok(model), ModelBody, params=("key",)),
            "delete": _op("Delete a model with its runs and epochs.", _ok(None, "204"), params=("key",)),
        },
        "/api/v1/models/{key}/runs": {"get": _op("A model's runs, newest first.",
                                                 _ok(_obj(runs={"type": "array", "items": run})), params=("key",))},
        "/api/v1/runs/{run_id}": {"get": _op("One run.", _ok(run), params=("run_id",)),
                                  "delete": _op("Delete a run and its epochs.", _ok(None, "204"), params=("run_id",))},
        "/api/v1/runs/{run_id}/epochs": {"get": _op("A run's epochs by number.",
                                                    _ok(_obj(epochs={"type": "array", "items": epoch})), params=("run_id",))},
        "/api/v1/runs/{run_id}/state": {"get": _op("A run, its epochs and the last epoch at once.",
                                                   _ok(_obj(run=run, epochs={"type": "array", "items": epoch},
                                                            last_epoch={**epoch, "nullable": True})), params=("run_id",))},
        "/api/v1/events": {"post": _op("Persist a train_begin / epoch_end / train_end (idempotent); with "
                                       "`Prefer: return=minimal`, epoch_end and train_end answer 204.",
                                       {**_ok(run_box), **_ok(run_box, "201"), **_ok(None, "204")}, event)},
    }
    from fitwire.webhook.api.agents_openapi import (  # jobs, nodes, artifacts
        agent_paths,
        agent_schemas,
    )

    paths.update(agent_paths())
    from fitwire.webhook.api.broker_auth import broker_auth_paths

    paths.update(broker_auth_paths())
    from fitwire.webhook.api.datasets import datasets_paths

    paths.update(datasets_paths())
    from fitwire.webhook.api.designs import designs_paths

    paths.update(designs_paths())
    from fitwire.webhook.api.experiment import experiment_paths

    paths.update(experiment_paths())
    from fitwire.webhook.api.predictions import predictions_paths

    paths.update(predictions_paths())
    from fitwire.webhook.api.web_client import web_client_paths

    paths.update(web_client_paths())
    SCHEMAS.update(agent_schemas())
    return _openapi_31({
        "openapi": "3.1.0",
        "info": {"title": "fitwire webhook", "version": __version__,
                 "description": "Users, model keys, runs and epochs. Errors: {\"error\": {\"code\", \"message\"}}."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "An error.",
                                    "content": {"application/json": {"schema": _ref("Error")}}}},
        },
    })
