"""Artifacts as files under a directory: what agents on one machine and the webhook keep them in.

Datasets need more than a key-value store: they are inspected as they arrive into a staging
file (:meth:`LocalArtifacts.staging_file`), adopted under their hash only once valid, and
read in place (zip members, preview pages) through :meth:`LocalArtifacts.local_path`.
"""

from __future__ import annotations

import contextlib
import io
import os
import uuid
from pathlib import Path
from typing import BinaryIO

from fitwire.contract.artifacts import ARTIFACT_CHUNK_BYTES


class LocalArtifacts:
    """Artifacts as files under ``root`` (the data dir's ``artifacts/``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"artifact key {key!r} leaves the artifact store")
        return path

    def put(self, key: str, data: bytes) -> None:
        self.put_stream(key, io.BytesIO(data))

    def put_stream(self, key: str, stream: BinaryIO) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A unique temporary name: two uploads of one key (webhook threads) never share a file;
        # created like any file (0666 less the umask), as the artifact it becomes was before.
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(ARTIFACT_CHUNK_BYTES):
                    out.write(chunk)
                    size += len(chunk)
            os.replace(tmp, path)  # readers see the old or the new file, never half of one
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return size

    def open(self, key: str) -> BinaryIO | None:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            return None

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def staging_file(self) -> Path:
        """A new, unique path for an upload in progress, on the same filesystem as the artifacts
        (so :meth:`adopt` is a rename); the caller removes it if it is not adopted."""
        staging = self.root / ".incoming"
        staging.mkdir(parents=True, exist_ok=True)
        return staging / f"{uuid.uuid4().hex}.part"

    def adopt(self, key: str, path: Path) -> bool:
        """Move the complete file ``path`` to ``key``; True when ``key`` was new. Keys named by
        content (datasets) are never overwritten: an existing one already holds these bytes."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            path.unlink(missing_ok=True)
            return False
        os.replace(path, target)
        return True

    def local_path(self, key: str) -> Path | None:
        """The artifact's file, or None when there is none."""
        path = self._path(key)
        return path if path.is_file() else None

    def delete(self, key: str) -> None:
        """Remove the artifact; a missing one is fine."""
        self._path(key).unlink(missing_ok=True)
