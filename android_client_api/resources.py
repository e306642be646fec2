"""The webhook's HTTP API as typed calls: one method per route, answers as the contract's entities.

:class:`FitwireApi` is :class:`~fitwire.client_api.http.Client` (the token rule, the retry policy,
contract errors) with the resources on top: ``api.models()`` is a ``list[Model]``, ``api.run_state(id)``
a ``RunState``. Answers are read with :func:`fitwire.contract.entities.parse`, so a field a newer
server added is ignored and ``"NaN"`` metrics come back as floats; :func:`fitwire.contract.entities.dump`
gives back the JSON the server sent. Every route a client calls is written here once
(``docs/http-api.md``); callers never build an API path themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote, urlencode

from pydantic import BaseModel, ValidationError

from fitwire.client_api.http import Client
from fitwire.contract.entities import (
    Dataset,
    Epoch,
    Job,
    ListedNode,
    ListedTrained,
    Login,
    Model,
    Run,
    RunState,
    Session,
    User,
    parse,
)
from fitwire.contract.errors import ApiError

API = "/api/v1"

E = TypeVar("E", bound=BaseModel)


def _part(value: str) -> str:
    """One path segment: a key or id quoted whole (a ``/`` in it cannot reach another route)."""
    return quote(value, safe="")


class FitwireApi(Client):
    """A fitwire webhook's HTTP API, typed: every method is one route (see the module's docstring).

    Raises (every method): ``ServerUnreachable`` when nothing answers; ``ApiError`` when the server
    answers with an error, or with JSON that is not the entity the route returns.
    """

    # --- reading answers ------------------------------------------------------------

    def _read(self, entity: type[E], data: Any) -> E:
        try:
            return parse(entity, data)
        except ValidationError as exc:
            raise ApiError(200, "NOT_AN_ENTITY", f"The server at {self.server} answered with something that is "
                                                 f"not a {entity.__name__} ({exc.errors()[0]['msg']})") from None

    def _one(self, entity: type[E], method: str, path: str, body: Any = None) -> E:
        return self._read(entity, self.call(method, API + path, json=body))

    def _list(self, entity: type[E], path: str, field: str) -> list[E]:
        answer = self.call("GET", API + path)
        items = answer.get(field) if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise ApiError(200, "NOT_AN_ENTITY", f"The server at {self.server} answered without a list of {field}")
        return [self._read(entity, item) for item in items]

    def _json(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        """The decoded answer of a route whose answer is not an entity (None for 204)."""
        return self.call(method, API + path, json=body, auth=auth)

    # --- users --------------------------------------------------------------------

    def session(self) -> Session:
        return self._one(Session, "GET", "/session")

    def login(self, username: str, password: str) -> Login:
        return self._read(Login, self._json("POST", "/auth/login", {"username": username, "password": password},
                                            auth=False))

    def logout(self) -> None:
        self._json("POST", "/auth/logout")

    def me(self) -> User:
        return self._one(User, "GET", "/me")

    def users(self) -> list[User]:
        """Every user (admins)."""
        return self._list(User, "/users", "users")

    # --- models and runs ----------------------------------------------------------

    def models(self) -> list[Model]:
        return self._list(Model, "/models", "models")

    def model(self, key: str) -> Model:
        return self._one(Model, "GET", f"/models/{_part(key)}")

    def create_model(self, name: str) -> Model:
        return self._one(Model, "POST", "/models", {"name": name})

    def rename_model(self, key: str, name: str) -> Model:
        return self._one(Model, "PATCH", f"/models/{_part(key)}", {"name": name})

    def delete_model(self, key: str) -> None:
        self._json("DELETE", f"/models/{_part(key)}")

    def runs(self, model_key: str) -> list[Run]:
        """The model's runs, newest first."""
        return self._list(Run, f"/models/{_part(model_key)}/runs", "runs")

    def run(self, run_id: str) -> Run:
        return self._one(Run, "GET", f"/runs/{_part(run_id)}")

    def delete_run(self, run_id: str) -> None:
        self._json("DELETE", f"/runs/{_part(run_id)}")

    def epochs(self, run_id: str) -> list[Epoch]:
        """The run's stored epochs, by epoch."""
        return self._list(Epoch, f"/runs/{_part(run_id)}/epochs", "epochs")

    def run_state(self, run_id: str) -> RunState:
        return self._one(RunState, "GET", f"/runs/{_part(run_id)}/state")

    # --- designs and trained models -----------------------------------------------

    def validate_spec(self, body: Mapping[str, Any]) -> Any:
        """``{"layers": [{"index", "type", "output_shape", "params"}], "params"}`` for a spec."""
        return self._json("POST", "/specs/validate", dict(body))

    def set_spec(self, key: str, spec: Any) -> Model:
        """Give the model ``spec`` (a ``ModelSpec`` as JSON, sent as it is: the server judges it)."""
        return self._one(Model, "PUT", f"/models/{_part(key)}/spec", spec)

    def shape(self, key: str, body: Mapping[str, Any]) -> Model:
        """Shape the model to a dataset (``ShapeBody``); with a ``name``, a new model."""
        return self._one(Model, "POST", f"/models/{_part(key)}/shape", dict(body))

    def clone(self, key: str, name: str) -> Model:
        return self._one(Model, "POST", f"/models/{_part(key)}/clone", {"name": name})

    def train(self, key: str, body: Mapping[str, Any]) -> Job:
        """Queue the shaped model's training (``TrainBody``)."""
        return self._one(Job, "POST", f"/models/{_part(key)}/train", dict(body))

    def trained(self, key: str) -> list[ListedTrained]:
        return self._list(ListedTrained, f"/models/{_part(key)}/trained", "trained")

    def trained_path(self, key: str, run_id: str) -> str:
        """Where a trained model's ``.keras`` downloads from (:meth:`download`)."""
        return f"{API}/models/{_part(key)}/trained/{_part(run_id)}/file"

    def delete_trained(self, key: str, run_id: str) -> None:
        self._json("DELETE", f"/models/{_part(key)}/trained/{_part(run_id)}")

    def experiment_path(self, key: str) -> str:
        """Where the model's experiment zip downloads from (:meth:`download`)."""
        return f"{API}/models/{_part(key)}/experiment"

    def predict(self, key: str, body: Mapping[str, Any]) -> Any:
        """A prediction of the model's trained model (``docs/http-api.md``, predict)."""
        return self._json("POST", f"/models/{_part(key)}/predict", dict(body))

    # --- datasets -----------------------------------------------------------------

    def datasets(self, every: bool = False) -> list[Dataset]:
        """Yours and the public ones; ``every``: every user's (admins)."""
        return self._list(Dataset, "/datasets" + ("?all=true" if every else ""), "datasets")

    def dataset(self, dataset_id: str) -> Dataset:
        return self._one(Dataset, "GET", f"/datasets/{_part(dataset_id)}")

    def upload_dataset(self, name: str, fmt: str, stream: BinaryIO, size: int, *,
                       on_progress: Callable[[int], None] | None = None) -> Dataset:
        query = urlencode({"name": name, "format": fmt})
        return self._read(Dataset, self.upload(f"{API}/datasets?{query}", stream, size, on_progress=on_progress))

    def dataset_rows(self, dataset_id: str, limit: int, offset: int = 0) -> Any:
        """``{"header", "rows", "offset", "total"}`` of a CSV dataset."""
        return self._json("GET", f"/datasets/{_part(dataset_id)}/rows?offset={offset}&limit={limit}")

    def dataset_path(self, dataset_id: str) -> str:
        """Where the dataset's original file downloads from (:meth:`download`)."""
        return f"{API}/datasets/{_part(dataset_id)}/file"

    def publish_dataset(self, dataset_id: str, public: bool) -> Dataset:
        return self._one(Dataset, "PATCH", f"/datasets/{_part(dataset_id)}", {"public": public})

    def delete_dataset(self, dataset_id: str, *, force: bool = False) -> None:
        self._json("DELETE", f"/datasets/{_part(dataset_id)}" + ("?force=true" if force else ""))

    # --- jobs and nodes -----------------------------------------------------------

    def submit_job(self, body: Mapping[str, Any]) -> Job:
        """Queue a job (``SubmitBody``)."""
        return self._one(Job, "POST", "/jobs", dict(body))

    def jobs(self) -> list[Job]:
        """Your jobs (an admin's: everyone's), newest first."""
        return self._list(Job, "/jobs", "jobs")

    def job(self, job_id: str) -> Job:
        return self._one(Job, "GET", f"/jobs/{_part(job_id)}")

    def cancel_job(self, job_id: str) -> Job:
        return self._one(Job, "POST", f"/jobs/{_part(job_id)}/cancel")

    def dead_letters(self, limit: int) -> Any:
        """``{"total", "dead_letters": [DeadLetter]}`` (admins)."""
        return self._json("GET", f"/dead-letters?limit={limit}")

    def purge_dead_letters(self) -> Any:
        """``{"purged": N}`` (admins)."""
        return self._json("DELETE", "/dead-letters")

    def nodes(self) -> list[ListedNode]:
        """Every node (admins)."""
        return self._list(ListedNode, "/nodes", "nodes")

    def node(self, node_id: str) -> ListedNode:
        return self._one(ListedNode, "GET", f"/nodes/{_part(node_id)}")

    def create_node(self, name: str) -> Any:
        """``{"node_id", "name", "token", "created_at"}`` (admins): the token is shown this once."""
        return self._json("POST", "/nodes", {"name": name})

    def revoke_node(self, node_id: str) -> ListedNode:
        return self._one(ListedNode, "POST", f"/nodes/{_part(node_id)}/revoke", {})


__all__ = ["API", "FitwireApi", "ListedNode", "ListedTrained", "Login", "Session"]
