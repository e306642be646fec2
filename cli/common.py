"""What every CLI command shares: consoles, the webhook client, options, errors → exit codes.

Exit codes are part of the CLI's contract (scripts test them):

* 0 — done;
* 1 — an error the user can act on (unknown model, not logged in, run already ended, …);
* 2 — usage (bad option or argument; typer/click also use 2);
* 3 — the fitwire server (webhook) or the broker cannot be reached;
* 130 — interrupted with Ctrl+C.

Every failure is one sentence on stderr, never a traceback.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, BinaryIO, ParamSpec, TypeVar
from urllib.parse import urlparse

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from fitwire import credentials
from fitwire.broker.connection import choose_broker_url, redact
from fitwire.cli.display import clean
from fitwire.client_api.http import token_for
from fitwire.client_api.resources import FitwireApi, Session
from fitwire.contract import (
    BrokerAccessRefused,
    BrokerError,
    BrokerUnavailable,
    FitwireError,
    SettingsError,
)
from fitwire.contract.entities import Dataset, Epoch, Model, Run, dump, parse
from fitwire.contract.errors import ApiError as ContractApiError
from fitwire.contract.errors import ServerUnreachable
from fitwire.settings import Settings

# The exit codes of every command (README, "Exit codes"); :func:`reports_errors` maps errors to them.
EXIT_OK = 0
EXIT_ERROR = 1
"""The server or the broker refused, or the command failed."""
EXIT_USAGE = 2
"""Bad usage or configuration: an invalid option or ``FITWIRE_*`` setting, or a command whose
extra (``fitwire[server]``, ``fitwire[agent]``) is not installed (``cli/extras.py``)."""
EXIT_UNREACHABLE = 3
"""The webhook or the broker does not answer."""
EXIT_INTERRUPTED = 130

HTTP_TIMEOUT_S = 15.0
"""Long enough for a busy SQLite webhook, short enough that a dead server is noticed."""

STATE_FETCHES = 8
"""Run states fetched at once for a table of runs (the webhook serves 8 threads by default)."""


# --- consoles -------------------------------------------------------------------------


@dataclass
class Io:
    """The consoles a command draws on; tests inject ``Io(out=Console(file=StringIO()))``
    with :func:`use_io` around ``CliRunner.invoke``."""

    out: Console = field(default_factory=Console)
    err: Console = field(default_factory=lambda: Console(stderr=True))


_IO: ContextVar[Io | None] = ContextVar("fitwire_cli_io", default=None)


def io() -> Io:
    """The current command's consoles: the injected ones, else fresh ones on stdout/stderr."""
    return _IO.get() or Io()


@contextmanager
def use_io(consoles: Io) -> Iterator[Io]:
    """Draw every command run inside this block on ``consoles``."""
    token = _IO.set(consoles)
    try:
        yield consoles
    finally:
        _IO.reset(token)


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no colours, no wrapping; entities (also inside
    lists and dicts) as the API's JSON (:func:`fitwire.contract.entities.dump`)."""
    typer.echo(json.dumps(as_json(data), indent=2, sort_keys=True, default=str))


def as_json(data: Any) -> Any:
    """``data`` with every entity in it replaced by its API JSON."""
    if isinstance(data, BaseModel):
        return dump(data)
    if isinstance(data, dict):
        return {key: as_json(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [as_json(value) for value in data]
    return data


# --- errors ---------------------------------------------------------------------------


class CliError(Exception):
    """A failure the CLI reports as one sentence and an exit code."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code


class Unreachable(CliError):
    """The webhook or the broker does not answer."""

    exit_code = EXIT_UNREACHABLE


class ApiError(CliError):
    """The webhook answered with an error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        # A gateway or a store that is down: the server cannot really be reached either.
        super().__init__(message, EXIT_UNREACHABLE if status in (502, 503, 504) else EXIT_ERROR)
        self.status = status
        self.code = code


def sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


def fail(message: str, exit_code: int = EXIT_ERROR) -> typer.Exit:
    """Print ``message`` on stderr and return the ``typer.Exit`` to raise."""
    # Messages quote the server (its error sentences, names): cleaned like any remote text.
    io().err.print(sentence(clean(message)), style="red", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(exit_code)


P = ParamSpec("P")
R = TypeVar("R")


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn every expected failure of ``command`` into a sentence and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CliError as exc:
            raise fail(exc.message, exc.exit_code) from None
        except BrokerUnavailable as exc:
            raise fail(f"Cannot reach the broker: {exc}", EXIT_UNREACHABLE) from None
        except BrokerAccessRefused as exc:
            raise fail(f"The broker refused access: {exc}", EXIT_ERROR) from None
        except SettingsError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        except (BrokerError, FitwireError) as exc:
            raise fail(str(exc), EXIT_ERROR) from None
        except KeyboardInterrupt:
            raise fail("Interrupted", EXIT_INTERRUPTED) from None

    return wrapper


# --- options --------------------------------------------------------------------------


def _check_server(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise typer.BadParameter("must be an http:// or https:// URL, e.g. http://127.0.0.1:8765")
    return value.rstrip("/")


ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="FITWIRE_WEBHOOK_URL",
        callback=_check_server,
        help="URL of the fitwire server (webhook); else the one you logged in to.",
        show_default=False,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="FITWIRE_TOKEN",
        help="API token; else the one `fitwire login` saved.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def settings() -> Settings:
    return Settings.from_env()


# --- the webhook client ---------------------------------------------------------------


class Api(FitwireApi):
    """The webhook as the CLI calls it: fitwire's one typed client (``fitwire.client_api.resources``),
    with its errors worded for a terminal and the look-ups by name the CLI's arguments allow.

    Raises (every call): :class:`Unreachable` when nothing answers; :class:`ApiError` when the server
    answered with an error.
    """

    def __init__(self, server: str, token: str | None, *, timeout: float = HTTP_TIMEOUT_S) -> None:
        super().__init__(server, token, timeout=timeout)

    def call(self, method: str, path: str, *, json: Any = None, auth: bool = True) -> Any:
        return self.worded(lambda: super(Api, self).call(method, path, json=json, auth=auth), auth=auth)

    def upload(self, path: str, stream: BinaryIO, size: int, *,
               on_progress: Callable[[int], None] | None = None) -> Any:
        return self.worded(lambda: super(Api, self).upload(path, stream, size, on_progress=on_progress))

    def worded(self, operation: Callable[[], R], *, auth: bool = True) -> R:
        """``operation()`` (a call of this client), its errors in the CLI's words.

        Raises:
            Unreachable: nothing answers at the server URL.
            ApiError: the server answered with an error.
        """
        try:
            return operation()
        except ServerUnreachable as exc:
            raise Unreachable(f"{exc}; is `fitwire webhook serve` running there?") from None
        except ContractApiError as exc:
            raise self._error(exc.status, exc.code, exc.message, auth=auth) from None

    def _error(self, status: int, code: str, message: str, *, auth: bool) -> ApiError:
        if code == "NOT_JSON" or code == f"HTTP_{status}":
            message = ""  # not the server's own sentence: say it in the CLI's words below
        if status == 401 and not auth:
            message = message or "The server refused the credentials"
        elif status == 401 and not self.token:
            message = f"You are not logged in to {self.server}; run `fitwire login` first (or set FITWIRE_TOKEN)"
        elif status == 401:
            message = (message or "The server refused the token") + "; run `fitwire login` again"
        elif code == "NOT_JSON":
            message = f"The server at {self.server} did not answer with JSON; is it a fitwire server?"
        elif status >= 500 and not message:
            message = f"The fitwire server at {self.server} failed (HTTP {status})"
        elif not message:
            message = f"The server answered HTTP {status}"
        return ApiError(status, code, message)

    # --- what the CLI's arguments name ----------------------------------------------

    def epochs_of(self, run_ids: Sequence[str]) -> dict[str, list[Epoch]]:
        """Each run's stored epochs (how far it got: a run's record holds only the plan)."""

        def epochs(run_id: str) -> list[Epoch]:
            try:
                return self.epochs(run_id)
            except ApiError as exc:
                if exc.status == 404:
                    return []  # deleted since it was listed
                raise

        with ThreadPoolExecutor(max_workers=STATE_FETCHES) as pool:
            return dict(zip(run_ids, pool.map(epochs, run_ids), strict=True))

    def find_model(self, key_or_name: str) -> Model:
        """A model by key, else by its (unique) name; CliError when there is none."""
        try:
            return self.model(key_or_name)
        except ApiError as exc:
            if exc.status != 404:
                raise
        named = [m for m in self.models() if m.name == key_or_name]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            keys = ", ".join(m.key for m in named)
            raise CliError(f"Several models are named {key_or_name!r} ({keys}); give the key")
        raise CliError(f"No model {key_or_name!r} (neither a key nor a name of one of your models)")

    def download_to(self, path: str, target: Path, what: str) -> None:
        """GET ``path`` into the file ``target``, with a progress bar on stderr; written whole or not at all
        (a ``.part`` file beside it is renamed when complete, removed otherwise)."""
        partial = target.with_name(f".{target.name}.part")
        bars = transfer_progress()
        try:
            with bars, partial.open("wb") as out:
                task = bars.add_task(f"downloading {what}", total=None)
                self.worded(lambda: self.download(
                    path, out, on_progress=lambda done, total: bars.update(task, completed=done, total=total)))
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)

    def find_dataset(self, id_or_name: str) -> Dataset:
        """A dataset by name (yours or a public one), else by id; CliError when there is none."""
        named = [d for d in self.datasets() if d.name == id_or_name]
        if named:
            return named[0]  # names are unique among one's own and the public datasets
        try:
            return self.dataset(id_or_name)
        except ApiError as exc:
            if exc.status not in (400, 404):
                raise
        try:  # an admin may name another user's private dataset
            named = [d for d in self.datasets(every=True) if d.name == id_or_name]
        except ApiError as exc:
            if exc.status != 403:
                raise
        if len(named) == 1:
            return named[0]
        if named:
            which = ", ".join(f"{d.owner}'s {d.dataset_id}" for d in named)
            raise CliError(f"Several users have a dataset named {id_or_name!r} ({which}); give the id")
        raise CliError(f"No dataset {id_or_name!r} (neither a name of yours or a public one, nor an id)")

    def find_run_or_model(self, ref: str) -> tuple[Run | None, Model]:
        """``(run, model)`` when ``ref`` is a run id, ``(None, model)`` when it names a model."""
        try:
            run = self.run(ref)
        except ApiError as exc:
            if exc.status not in (400, 404):
                raise
        else:
            return run, self.model(run.model_key)
        try:
            return None, self.find_model(ref)
        except CliError:
            raise CliError(f"No run or model {ref!r} among yours") from None


def transfer_progress() -> Progress:
    """A progress bar for an upload or a download: bytes, speed, time left; on stderr, gone when done."""
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=io().err, transient=True)


def api(server: str | None, token: str | None) -> Api:
    """The webhook client: ``--server`` > FITWIRE_WEBHOOK_URL > login file > default URL.

    The login file's token goes only to the server it was issued by.
    """
    conf = settings()
    saved = credentials.load(conf)
    url = (server or (saved.server if saved else conf.webhook_url)).rstrip("/")
    return Api(url, token_for(conf, url, token))


def amqp_url_for(session: Session | dict[str, Any]) -> str:
    """The broker URL (``choose_broker_url``): the server's login for this very user, else
    FITWIRE_AMQP_URL when set, else what the server announced (a shared login), else the default.

    ``session`` is ``GET /api/v1/session``'s answer (as the API's JSON, or read)."""
    conf = settings()
    found = session if isinstance(session, Session) else parse(Session, session)
    named = conf.amqp_url if os.environ.get(Settings.env_name("amqp_url")) else None
    chosen = choose_broker_url(found.amqp_url, named, username=found.user.username)
    return chosen or conf.amqp_url


def broker_unreachable(url: str) -> Unreachable:
    return Unreachable(f"Cannot reach the broker at {redact(url)}; is RabbitMQ running (`fitwire dev broker up`)?")
