"""A job bundle whose code raises: the job ends `failed` with the error's last line, not retried."""

from __future__ import annotations


def build():
    raise ValueError("the dataset path /data/missing does not exist")
