"""``/openapi.json`` is valid OpenAPI 3.1, every ``$ref`` in it resolves, and what it accepts the server accepts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node: Any = document
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve (no {part!r})"
        node = node[part]
    return node


def test_the_document_is_valid_openapi_31(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema


def test_every_ref_resolves_inside_the_document(document: dict[str, Any]) -> None:
    refs = set(_refs(document))
    assert "#/components/schemas/GpuInfo" in refs  # the telemetry's nested model, hoisted
    for ref in refs:
        _resolve(document, ref)


def _schema_accepts(document: dict[str, Any], schema: dict[str, Any], value: Any) -> bool:
    # Resolve the document's own references while validating a value against one of its schemas.
    validator = Draft202012Validator({**schema, "components": document["components"]})
    return validator.is_valid(value)


@pytest.mark.parametrize(("name", "accepted"), [
    ("mnist", True),
    ("  spaced out  ", True),
    ("é" * 200, True),
    ("\u00a0", False),  # only whitespace: stripped to nothing
    (" \t ", False),
    ("bell\x07", False),  # control characters
    ("x" * 201, False),
])
def test_model_names_the_schema_accepts_are_the_ones_the_server_accepts(
    client: FlaskClient, login: Callable[..., dict[str, str]], document: dict[str, Any], name: str, accepted: bool,
) -> None:
    body_schema = document["paths"]["/api/v1/models"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    body = {"name": name}
    assert _schema_accepts(document, body_schema, body) is accepted
    answer = client.post("/api/v1/models", json=body, headers=login())
    assert (answer.status_code == 201) is accepted, answer.json


@pytest.mark.parametrize(("kind", "name", "accepted"), [
    ("bundles", "0123abcd", True),
    ("checkpoints", "job_1-a", True),
    ("logs", "0123abcd", False),
    ("bundles", "..", False),
    ("bundles", "a.b", False),
    ("bundles", "x" * 65, False),
])
def test_artifact_kinds_and_names_the_schema_accepts_are_the_ones_the_server_accepts(
    client: FlaskClient, login: Callable[..., dict[str, str]], document: dict[str, Any],
    kind: str, name: str, accepted: bool,
) -> None:
    parameters = {p["name"]: p["schema"] for p in document["paths"]["/api/v1/artifacts/{kind}/{name}"]["get"]["parameters"]}
    assert (_schema_accepts(document, parameters["kind"], kind)
            and _schema_accepts(document, parameters["name"], name)) is accepted
    answer = client.get(f"/api/v1/artifacts/{kind}/{name}", headers=login(admin=True))
    # Accepted: looked up (an artifact nobody uploaded is a 404); refused: a 400 naming the key's form.
    assert answer.status_code == (404 if accepted else 400), answer.json


def _response_schema(document: dict[str, Any], path: str, method: str = "get", status: str = "200") -> Any:
    return document["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


def test_what_the_server_returns_is_what_the_document_says(
    client: FlaskClient, login: Callable[..., dict[str, str]], document: dict[str, Any],
) -> None:
    from fitwire.contract import EpochEnd, TrainBegin, encode

    headers = {**login(), "Content-Type": "application/json"}
    model = client.post("/api/v1/models", json={"name": "described"}, headers=headers).json
    ids = {"run_id": "r-described", "model_key": model["key"], "owner": "alice"}
    client.post("/api/v1/events", data=encode(TrainBegin(**ids, epochs=2)), headers=headers)
    client.post("/api/v1/events", headers=headers,
                data=encode(EpochEnd(**ids, epoch=0, logs={"loss": float("nan"), "acc": None}, duration=1.5)))
    answers = {
        "/api/v1/me": client.get("/api/v1/me", headers=headers).json,
        "/api/v1/models/{key}": client.get(f"/api/v1/models/{model['key']}", headers=headers).json,
        "/api/v1/runs/{run_id}/state": client.get("/api/v1/runs/r-described/state", headers=headers).json,
    }
    assert answers["/api/v1/runs/{run_id}/state"]["last_epoch"]["logs"]["loss"] == "NaN"
    for path, body in answers.items():
        validator = Draft202012Validator({**_response_schema(document, path), "components": document["components"]})
        problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
        assert problems == [], (path, problems)
