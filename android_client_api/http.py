"""The client side of fitwire's HTTP API: which token goes where, how requests retry, what errors mean.

The CLI, the Tracker (its session lookup and its outbox) and the agent all talk to a
webhook through here, so three rules hold everywhere:

* **A token goes only to the server that issued it** (:func:`token_for`): a token given
  explicitly (an argument, ``--token``, ``FITWIRE_TOKEN``) goes where the caller sends it;
  the login file's token goes only to the server ``fitwire login`` got it from, never to a
  ``webhook_url`` named elsewhere.
* **One retry policy** (:data:`RETRY`): a connection that fails, or an answer 429/502/503/504,
  is tried again after 0, 1 and 2 seconds (``Retry-After`` honoured), for idempotent methods;
  POST only for callers whose POSTs are idempotent by design (the agent's job states are
  keyed by job and delivery, the outbox's records by run and epoch).
* **Errors are contract errors** (:class:`ApiError`, :class:`ServerUnreachable`), carrying
  the server's own sentence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from fitwire import credentials
from fitwire.contract.errors import ApiError, ServerUnreachable, api_error
from fitwire.settings import Settings

RETRY = Retry(
    total=3, connect=3, read=0, status=3, other=0,
    backoff_factor=0.5, status_forcelist=(429, 502, 503, 504), respect_retry_after_header=True,
    raise_on_status=False,  # the last answer is returned, so its error sentence reaches the user
)
"""fitwire's one HTTP retry policy (idempotent methods only; see :func:`http_session`)."""

NO_RETRY = Retry(total=0, raise_on_status=False)


def token_for(settings: Settings, server: str, explicit: str | None = None) -> str | None:
    """The token to send to ``server``: ``explicit``, else ``FITWIRE_TOKEN``, else the login
    file's token when that login was issued by ``server``; None otherwise."""
    if explicit:
        return explicit
    if settings.token:
        return settings.token
    saved = credentials.load(settings)
    if saved and saved.server.rstrip("/") == server.rstrip("/"):
        return saved.token
    return None


def http_session(*, retry: bool = True, retry_posts: bool = False) -> requests.Session:
    """A session with :data:`RETRY` mounted (``retry=False``: none, for callers with a durable
    retry of their own, such as the outbox); ``retry_posts`` adds POST to the retried methods."""
    policy = NO_RETRY
    if retry:
        methods = Retry.DEFAULT_ALLOWED_METHODS | ({"POST"} if retry_posts else set())
        policy = RETRY.new(allowed_methods=methods)
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def error_of(response: requests.Response) -> ApiError:
    """The :class:`ApiError` an error answer means (fitwire's ``{"error": {"code", "message"}}``): the
    class of its code (:class:`~fitwire.contract.errors.NotFound`, …), the one the server raised."""
    try:
        error = response.json()["error"]
        return api_error(response.status_code, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return ApiError(response.status_code, f"HTTP_{response.status_code}",
                        f"the server answered HTTP {response.status_code}")


def json_of(response: requests.Response) -> Any:
    """The decoded JSON body, or None when there is none (or it is not JSON)."""
    try:
        return response.json()
    except ValueError:
        return None


class Client:
    """A fitwire webhook's HTTP API, as every fitwire component calls it.

    Args:
        server: the webhook's URL.
        token: the bearer token (see :func:`token_for` for which token may go where).
        timeout: seconds (or ``(connect, read)``) one request may take.
        retry_posts: retry POSTs too (:func:`http_session`): only for callers whose POSTs are idempotent.
        keep_alive: keep the connection between calls (a daemon's); off, each call closes it,
            so a short-lived command never holds a server's graceful shutdown.
    """

    def __init__(self, server: str, token: str | None, *, timeout: float | tuple[float, float] = 15.0,
                 retry_posts: bool = False, keep_alive: bool = False) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.keep_alive = keep_alive
        self.http = http_session(retry_posts=retry_posts)

    def request(self, method: str, path: str, *, json: Any = None, data: bytes | None = None,
                token: str | None = None, auth: bool = True) -> requests.Response:
        """The server's answer, whatever its status.

        Raises:
            ServerUnreachable: nothing answered (after the retry policy's attempts).
        """
        headers = {} if self.keep_alive else {"Connection": "close"}
        if auth and (token or self.token):
            headers["Authorization"] = f"Bearer {token or self.token}"
        if data is not None:
            headers["Content-Type"] = "application/octet-stream"
        try:
            return self.http.request(method, self.server + path, json=json, data=data, headers=headers,
                                     timeout=self.timeout)
        except requests.exceptions.Timeout:
            raise ServerUnreachable(f"The fitwire server at {self.server} did not answer in time") from None
        except requests.exceptions.RequestException as exc:
            raise ServerUnreachable(f"Cannot reach the fitwire server at {self.server} ({type(exc).__name__})") from None

    def call(self, method: str, path: str, *, json: Any = None, auth: bool = True) -> Any:
        """The decoded JSON answer (None for 204).

        Raises:
            ServerUnreachable: nothing answered.
            ApiError: the server answered with an error (or with something that is not JSON).
        """
        with self.request(method, path, json=json, auth=auth) as response:  # released now
            status, data = response.status_code, json_of(response)
            if status == 204:
                return None
            if 200 <= status < 300:
                if data is None:
                    raise ApiError(status, "NOT_JSON", f"The server at {self.server} did not answer with JSON; "
                                                      "is it a fitwire server?")
                return data
            raise error_of(response)

    def upload(self, path: str, stream: BinaryIO, size: int, *,
               on_progress: Callable[[int], None] | None = None) -> Any:
        """POST the file ``stream`` (``size`` bytes) as the body, read in chunks as it is sent (never
        whole in memory); the decoded JSON answer. ``on_progress(bytes_sent)`` after each chunk.

        Raises: ServerUnreachable; ApiError.
        """
        body = _ProgressReader(stream, size, on_progress)
        with self.request("POST", path, data=body) as response:  # type: ignore[arg-type]
            if 200 <= response.status_code < 300:
                return json_of(response)
            raise error_of(response)

    def download(self, path: str, out: BinaryIO, *, on_progress: Callable[[int, int | None], None] | None = None,
                 ) -> int:
        """GET ``path`` into ``out`` in chunks; the bytes written. ``on_progress(done, total)``.

        Raises: ServerUnreachable; ApiError.
        """
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = self.http.get(self.server + path, headers=headers, stream=True, timeout=self.timeout)
        except requests.exceptions.RequestException as exc:
            raise ServerUnreachable(f"Cannot reach the fitwire server at {self.server} ({type(exc).__name__})") from None
        with response:
            if response.status_code != 200:
                raise error_of(response)
            total = int(response.headers["Content-Length"]) if "Content-Length" in response.headers else None
            done = 0
            for chunk in response.iter_content(DOWNLOAD_CHUNK_BYTES):
                out.write(chunk)
                done += len(chunk)
                if on_progress:
                    on_progress(done, total)
        return done

    def close(self) -> None:
        self.http.close()


DOWNLOAD_CHUNK_BYTES = 1024 * 1024


class _ProgressReader:
    """A file object requests streams as a body (``len`` gives its Content-Length), counting what it reads."""

    def __init__(self, stream: BinaryIO, size: int, on_progress: Callable[[int], None] | None) -> None:
        self.stream, self.size, self.on_progress, self.sent = stream, size, on_progress, 0

    def __len__(self) -> int:
        return self.size

    def read(self, amount: int = -1) -> bytes:
        chunk = self.stream.read(amount)
        self.sent += len(chunk)
        if self.on_progress is not None:
            self.on_progress(self.sent)
        return chunk
