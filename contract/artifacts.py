"""Artifacts by key: how bundles and checkpoints are named, and what a store of them offers.

The webhook serves artifacts and the agent keeps them; both speak these names and this
interface, so neither needs the other's code.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO, Protocol


def bundle_id(source: bytes) -> str:
    """Content address of a bundle: the same file uploaded twice is stored once."""
    return hashlib.sha256(source).hexdigest()[:32]


def bundle_key(bundle_id: str) -> str:
    return f"bundles/{bundle_id}"


def dataset_key(sha256: str) -> str:
    """Datasets by content: the same file uploaded twice, by anyone, is stored once."""
    return f"datasets/{sha256}"


def trained_metadata_key(trained_key: str) -> str:
    """What a trained model's outputs mean (class names, vocabularies), next to its ``.keras``."""
    return f"{trained_key}-meta"


def checkpoint_key(job_id: str) -> str:
    """One checkpoint per job, overwritten at every epoch end: resume needs only the last."""
    return f"checkpoints/{job_id}"


class ArtifactStore(Protocol):
    """Job bundles and checkpoints, by key; ``put`` replaces atomically."""

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes | None:
        """The artifact's bytes, or None when there is none."""


class StreamingArtifactStore(ArtifactStore, Protocol):
    """An artifact store that also takes and gives artifacts as streams: what the webhook
    serves uploads from, so an artifact of gigabytes is never whole in memory."""

    def put_stream(self, key: str, stream: BinaryIO) -> int:
        """Copy ``stream`` to ``key`` and replace it atomically; the bytes written. When reading
        ``stream`` raises (a body over its limit, a client gone), nothing under ``key`` changes."""

    def open(self, key: str) -> BinaryIO | None:
        """The artifact for reading, or None when there is none; the caller closes it."""


ARTIFACT_CHUNK_BYTES = 1024 * 1024
"""What a streamed artifact copy holds in memory at once."""
