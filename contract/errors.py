"""fitwire's one error hierarchy; every component raises these, never a library's own.

The HTTP API's errors (:class:`ApiError`) are what a client sees: the status, the code and
the server's sentence (``{"error": {"code", "message"}}``). The webhook's store errors are
its own (``fitwire.webhook.store.base``); it answers each with the status of its code here.
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


class ApiError(FitwireError):
    """The HTTP API answered with an error; ``message`` is the server's sentence, ``code`` its error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


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
