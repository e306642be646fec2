"""Job bundles: a Python file with an entry point returning ``(model, train_data, val_data)``."""

from __future__ import annotations

import types
from typing import Any

from fitwire.contract import FitwireError


class BundleError(FitwireError):
    """A job bundle could not be loaded or its entry point returned something unusable."""


def load_entry_point(source: bytes, entry_point: str, filename: str = "job_bundle.py") -> Any:
    """Execute the bundle as a fresh module and return its entry point."""
    module = types.ModuleType("fitwire_job_bundle")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)  # the user's own code, in the job's child
    entry = getattr(module, entry_point, None)
    if not callable(entry):
        raise BundleError(f"the job bundle has no function {entry_point!r}")
    return entry


def build(source: bytes, entry_point: str, params: dict[str, Any]) -> tuple[Any, Any, Any]:
    """Call the entry point; it must return a compiled model, its training data and its validation data."""
    result = load_entry_point(source, entry_point)(**params)
    if not (isinstance(result, tuple) and len(result) == 3):
        raise BundleError(f"{entry_point}() must return (model, train_data, val_data)")
    model, train, val = result
    if getattr(model, "optimizer", None) is None:
        raise BundleError(f"{entry_point}() must return a compiled model (call model.compile first)")
    return model, train, val
