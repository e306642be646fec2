"""The pip-installable part of fitwire: ``Tracker`` (a Keras callback) on the framework-free ``RunSession``.

``import fitwire.callback`` does not import Keras: ``Tracker`` is loaded on
first use, so a plain Python or PyTorch loop can use ``RunSession`` alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fitwire.callback.session import RunSession

if TYPE_CHECKING:
    from fitwire.callback.keras_tracker import Tracker

__all__ = ["RunSession", "Tracker"]


def __getattr__(name: str) -> Any:
    if name == "Tracker":
        from fitwire.callback.keras_tracker import Tracker

        return Tracker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
