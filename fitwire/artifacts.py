"""Artifacts as files under a directory: what agents on one machine and the webhook keep them in."""

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
