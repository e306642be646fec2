"""fitwire: watch and steer deep-learning training from anywhere."""

from __future__ import annotations

__version__ = "0.1.0"

