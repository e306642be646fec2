"""fitwire's one error hierarchy; every component raises these, never a library's own."""

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
