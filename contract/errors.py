"""fitwire's one error hierarchy; every component raises these, never a library's own.

The HTTP API's errors (:class:`ApiError`) are what a client sees: the status, the code and
the server's sentence (``{"error": {"code", "message"}}``). Each code of :data:`ERROR_STATUS`
has its class here (:class:`NotFound`, :class:`BadRequest`, …): the webhook's views raise
them and a client gets the same class back (:func:`api_error`), so it can ``except NotFound``.
The webhook's store errors are its own (``fitwire.webhook.store.base``); the webhook answers
each as the API error of its code.
"""

from __future__ import annotations


class FitwireError(Exception):
    """Base of every error fitwire raises on purpose."""


class SettingsError(FitwireError):
    """A ``FITWIRE_*`` setting holds a value that cannot be used."""


class BrokerError(FitwireError):
    """Something went wrong talking to RabbitMQ."""


class BrokerUnavailable(BrokerError):
    """No broker answers at the configured URL, or the connection was lost."""


class BrokerAccessRefused(BrokerError):
    """The broker refused the credentials or the permission for an operation."""


class DecodeError(FitwireError, ValueError):
    """A message body is not a valid fitwire message (bad JSON, wrong shape, unknown version)."""


class LocalBrokerError(BrokerError):
    """A local RabbitMQ node could not be found, installed or started."""


class ServerUnreachable(FitwireError):
    """Nothing answered at the server's URL (refused, timed out, no such host)."""


ERROR_STATUS: dict[str, int] = {
    "INVALID_REQUEST": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "RESOURCE_ALREADY_EXISTS": 409,
    "INVALID_STATE": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "RATE_LIMITED": 429,
    "INTERNAL_ERROR": 500,
    "SCHEMA_OUT_OF_DATE": 503,
    "TEMPORARILY_UNAVAILABLE": 503,
}
"""HTTP status of each error code of the API (docs/http-api.md)."""


class ApiError(FitwireError):
    """The HTTP API answered with an error; ``message`` is the server's sentence, ``code`` its error code.

    Built as ``ApiError(status, code, message)`` for a code without a class of its own
    (``METHOD_NOT_ALLOWED``, a proxy's ``HTTP_502``); the subclasses below are built from
    the message alone.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class CodedApiError(ApiError):
    """An API error whose class names its code; its status is the code's in :data:`ERROR_STATUS`.

    ``status`` is given only for an answer that carried another one (Werkzeug's 415 is an
    ``INVALID_REQUEST``).
    """

    code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(ERROR_STATUS[type(self).code] if status is None else status, type(self).code, message)


class BadRequest(CodedApiError):
    """The request itself is wrong: bad JSON, an unknown field, a value out of range (400)."""

    code = "INVALID_REQUEST"


class Unauthenticated(CodedApiError):
    """No valid identity: no, unknown, expired or revoked token; wrong password (401)."""

    code = "UNAUTHENTICATED"


class PermissionDenied(CodedApiError):
    """The identity is known but may not do this (403)."""

    code = "PERMISSION_DENIED"


class NotFound(CodedApiError):
    """No such resource or route, or another user's (ids do not leak) (404)."""

    code = "RESOURCE_DOES_NOT_EXIST"


class AlreadyExists(CodedApiError):
    """A resource with this unique name or id exists already (409)."""

    code = "RESOURCE_ALREADY_EXISTS"


class InvalidState(CodedApiError):
    """The resource is in a state that forbids the operation (409)."""

    code = "INVALID_STATE"


class PayloadTooLarge(CodedApiError):
    """The request body is over its limit; the message names it (413)."""

    code = "PAYLOAD_TOO_LARGE"


class RateLimited(CodedApiError):
    """Too many failed log-ins lately (429); ``retry_after`` is the seconds to wait, when known."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: int | None = None, *, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class InternalError(CodedApiError):
    """The server failed: a bug, or an agent that could not do what it took on (500)."""

    code = "INTERNAL_ERROR"


class SchemaOutOfDate(CodedApiError):
    """The server's database schema needs upgrading (503)."""

    code = "SCHEMA_OUT_OF_DATE"


class TemporarilyUnavailable(CodedApiError):
    """The store, the broker or the agents do not answer now; retrying later may succeed (503)."""

    code = "TEMPORARILY_UNAVAILABLE"


API_ERRORS: dict[str, type[CodedApiError]] = {
    cls.code: cls for cls in (BadRequest, Unauthenticated, PermissionDenied, NotFound, AlreadyExists, InvalidState,
                              PayloadTooLarge, RateLimited, InternalError, SchemaOutOfDate, TemporarilyUnavailable)
}
"""The class of each error code of :data:`ERROR_STATUS`."""


def api_error(status: int, code: str, message: str) -> ApiError:
    """The error an answer ``status`` with ``{"error": {code, message}}`` means: the class of ``code``,
    or a plain :class:`ApiError` for a code without one. Server and client build errors here."""
    cls = API_ERRORS.get(code)
    return ApiError(status, code, message) if cls is None else cls(message, status=status)
