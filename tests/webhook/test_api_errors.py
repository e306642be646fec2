"""The API's errors are one set of classes on both sides of HTTP: a view raises ``NotFound``, the
client's ``error_of`` gives ``NotFound`` back (code, message, status). A store's errors are its own,
answered as the API error of their code; the views never raise them, and the store never raises
an API error."""

from __future__ import annotations

import ast
import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from flask import Flask

from fitwire.client_api.http import error_of
from fitwire.contract.errors import (
    API_ERRORS,
    ERROR_STATUS,
    ApiError,
    CodedApiError,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from fitwire.webhook import create_app
from fitwire.webhook.store import base as store_base
from fitwire.webhook.store import open_store
from fitwire.webhook.store.base import StoreError
from tests.fixtures.webhook import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
EDGE_FILES = sorted((ROOT / "webhook" / "api").glob("*.py")) + [
    ROOT / "webhook" / name for name in ("app.py", "security.py", "http_headers.py")
]
"""Where the webhook meets HTTP: the views and what answers for them."""
STORE_ERRORS = [cls for cls in vars(store_base).values()
                if isinstance(cls, type) and issubclass(cls, StoreError) and cls is not StoreError]


def _message(code: str) -> str:
    return f"Raised as {code} – with ünïcode and \"quotes\"."


def _add_raising_routes(app: Flask) -> None:
    """``/raise/api/<code>`` raises that code's API error, ``/raise/store/<name>`` that store error."""

    @app.get("/raise/api/<code>")
    def raise_api(code: str) -> str:
        cls = API_ERRORS[code]
        raise RateLimited(_message(code), retry_after=7) if cls is RateLimited else cls(_message(code))

    @app.get("/raise/store/<name>")
    def raise_store(name: str) -> str:
        raise getattr(store_base, name)(_message(name))


@dataclass
class Served:
    url: str

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=30, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('errors') / 'webhook.db'}")
    app = create_app({"STORE": store, "SIGNUP": "open", "BROKER_LOGINS": "shared", "DECLARE_TOPOLOGY": False,
                      "AMQP_URL": os.environ.get("FITWIRE_AMQP_URL", "amqp://guest:guest@localhost:5672/")})
    _add_raising_routes(app)
    url, waitress, thread = serve_in_thread(app)
    try:
        yield Served(url)
    finally:
        waitress.close()
        thread.join(timeout=10)
        store.close()


def test_every_error_code_has_its_class_built_from_a_message() -> None:
    assert set(API_ERRORS) == set(ERROR_STATUS)
    for code, cls in API_ERRORS.items():
        error = cls("why")
        assert (type(error), error.status, error.code, error.message, str(error)) == (
            cls, ERROR_STATUS[code], code, "why", "why")
        assert isinstance(error, ApiError)
    assert (ApiError(405, "METHOD_NOT_ALLOWED", "no").status, ApiError(405, "METHOD_NOT_ALLOWED", "no").code) == (
        405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize("code", sorted(ERROR_STATUS))
def test_an_api_error_raised_in_a_view_reaches_the_client_as_the_same_class(served: Served, code: str) -> None:
    response = served.get(f"/raise/api/{code}")
    assert response.status_code == ERROR_STATUS[code]
    assert response.json() == {"error": {"code": code, "message": _message(code)}}
    error = error_of(response)
    assert (type(error), error.status, error.code, error.message) == (
        API_ERRORS[code], ERROR_STATUS[code], code, _message(code))
    if code == "RATE_LIMITED":
        assert response.headers["Retry-After"] == "7"
    assert ("WWW-Authenticate" in response.headers) == (code == "UNAUTHENTICATED")


@pytest.mark.parametrize("store_error", STORE_ERRORS, ids=lambda cls: cls.__name__)
def test_a_store_error_is_answered_as_the_api_error_of_its_code(served: Served, store_error: type[StoreError]) -> None:
    name = store_error.__name__
    response = served.get(f"/raise/store/{name}")
    assert response.status_code == ERROR_STATUS[store_error.code]
    assert response.json() == {"error": {"code": store_error.code, "message": _message(name)}}
    error = error_of(response)
    assert type(error) is API_ERRORS[store_error.code] and error.message == _message(name)


def test_the_real_views_errors_arrive_as_their_classes(served: Served) -> None:
    no_token = error_of(served.get("/api/v1/me"))
    assert isinstance(no_token, Unauthenticated) and "Authorization" in no_token.message
    bad_token = error_of(served.get("/api/v1/me", headers={"Authorization": "Bearer nonsense"}))  # the store's
    assert isinstance(bad_token, Unauthenticated)
    assert isinstance(error_of(served.get("/api/v1/nothing")), NotFound)
    wrong_method = error_of(requests.delete(f"{served.url}/health", timeout=30))
    assert (type(wrong_method), wrong_method.status, wrong_method.code) == (ApiError, 405, "METHOD_NOT_ALLOWED")
    assert not isinstance(wrong_method, CodedApiError)


# --- which side raises what -----------------------------------------------------------------


def _store_error_names(tree: ast.Module) -> set[str]:
    """The local names a module binds to the store's error classes (``import X as Y`` gives Y)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fitwire.webhook.store"):
            for alias in node.names:
                imported = getattr(importlib.import_module(node.module or ""), alias.name, None)
                if isinstance(imported, type) and issubclass(imported, StoreError):
                    names.add(alias.asname or alias.name)
    return names


@pytest.mark.parametrize("path", EDGE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_http_edge_only_catches_store_errors_and_never_raises_one(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    store_names = _store_error_names(tree)
    caught = {id(name) for handler in ast.walk(tree) if isinstance(handler, ast.ExceptHandler) and handler.type
              for name in ast.walk(handler.type) if isinstance(name, ast.Name)}
    raised = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Raise) and node.exc is not None
              for name in ast.walk(node.exc) if isinstance(name, ast.Name) and name.id in store_names]
    assert not raised, f"{path.name} raises a store error (lines {raised}); raise the API error of its code"
    if path.name != "app.py":  # app.py is where store errors are translated into API errors
        used = [node.lineno for node in ast.walk(tree)
                if isinstance(node, ast.Name) and node.id in store_names and id(node) not in caught]
        assert not used, f"{path.name} uses a store error other than to catch it (lines {used})"
    module = importlib.import_module("fitwire.webhook." + ".".join(path.relative_to(ROOT / "webhook").with_suffix("").parts))
    own = [value for value in vars(module).values()
           if isinstance(value, type) and value.__module__ == module.__name__ and issubclass(value, StoreError)]
    assert not own, f"{path.name} defines store errors {own}; an HTTP failure is an API error"


def test_the_store_never_raises_an_api_error() -> None:
    for path in sorted((ROOT / "webhook" / "store").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = [alias.name for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module == "fitwire.contract.errors"
                    for alias in node.names]
        api = [name for name in imported if name == "ApiError" or name in {c.__name__ for c in API_ERRORS.values()}]
        assert not api, f"{path.name} imports API errors {api}; a store raises its own errors"
