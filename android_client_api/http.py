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

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from fitwire import credentials
from fitwire.contract.errors import FitwireError
from fitwire.settings import Settings

RETRY = Retry(
    total=3, connect=3, read=0, status=3, other=0,
    backoff_factor=0.5, status_forcelist=(429, 502, 503, 504), respect_retry_after_header=True,
    raise_on_status=False,  # the last answer is returned, so its error sentence reaches the user
)
"""fitwire's one HTTP retry policy (idempotent methods only; see :func:`http_session`)."""

NO_RETRY = Retry(total=0, raise_on_status=False)


class ApiError(FitwireError):
    """The webhook answered with an error; ``message`` is its sentence, ``code`` its error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class ServerUnreachable(FitwireError):
    """Nothing answered at the server's URL (refused, timed out, DNS)."""


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
    """The :class:`ApiError` an error answer means (fitwire's ``{"error": {"code", "message"}}``)."""
    try:
        error = response.json()["error"]
        return ApiError(response.status_code, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return ApiError(response.status_code, f"HTTP_{response.status_code}",
                        f"the server answered HTTP {response.status_code}")


def json_of(response: requests.Response) -> Any:
    """The decoded JSON body, or None when there is none (or it is not JSON)."""
    try:
        return response.json()
    except ValueError:
        return None
