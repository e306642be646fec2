"""An agent's dataset cache: datasets fetched when a job needs them, kept by content hash under a size cap.

WebML pushed every dataset to every node. Here a job names its dataset (``spec.dataset``:
id, hash, size, as the webhook resolved it) and the runner, before it drops privileges,
asks this cache for it: a dataset already here is used as it is (no download); another is
downloaded with the job's token to a temporary file, its SHA-256 and size checked, and
renamed into place. An images zip is also unpacked once, safely
(``fitwire.datasets.images_inspect.extract_images``), next to it. Then the least recently
used datasets are removed until the cache is under its cap (``FITWIRE_DATASET_CACHE_BYTES``);
the one just used is never removed, so a dataset larger than the cap still trains.

Agents sharing a machine may share the cache directory: an exclusive ``flock`` on
``.lock`` serialises fetches and evictions between them. The directory is the agent's
(root's, where jobs run as another user): job code reads it and cannot change it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from fitwire.contract import DatasetRef, FitwireError

Download = Callable[[BinaryIO], None]
"""Writes the dataset's bytes to the file it is given (raises on failure)."""


class DatasetFetchError(FitwireError):
    """The dataset could not be fetched whole and intact (the message says why)."""


@dataclass(frozen=True)
class CachedDataset:
    path: Path
    """The CSV file, or the folder holding ``training_data/`` and ``validation_data/``."""
    downloaded: bool
    """False when the cache already held it."""


class DatasetCache:
    def __init__(self, root: Path, cap_bytes: int) -> None:
        self.root = Path(root)
        self.cap_bytes = cap_bytes

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # readable by a job user, writable by the agent only
        with (self.root / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _file(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise DatasetFetchError(f"{sha256!r} is not a SHA-256")
        return self.root / sha256

    def get(self, ref: DatasetRef, download: Download) -> CachedDataset:
        """The dataset ``ref`` names, from the cache or downloaded into it. Raises: DatasetFetchError."""
        with self._locked():
            file = self._file(ref.sha256)
            downloaded = False
            if not (file.is_file() and file.stat().st_size == ref.size):
                self._download(ref, file, download)
                downloaded = True
            path = self._unpacked(file) if ref.format == "images" else file
            os.utime(file)  # the last use, which eviction goes by
            self._evict(keep=ref.sha256)
            return CachedDataset(path, downloaded)

    def _download(self, ref: DatasetRef, file: Path, download: Download) -> None:
        partial = self.root / f".{ref.sha256}.{uuid.uuid4().hex}.part"
        try:
            with partial.open("wb") as out:
                download(out)
            digest, size = _sha256_of(partial)
            if size != ref.size or digest != ref.sha256:
                raise DatasetFetchError(f"dataset {ref.name!r} arrived damaged ({size} bytes, SHA-256 {digest[:12]}…; "
                                        f"expected {ref.size} bytes, {ref.sha256[:12]}…)")
            partial.chmod(0o644)
            os.replace(partial, file)
        finally:
            partial.unlink(missing_ok=True)
        shutil.rmtree(self._folder(file), ignore_errors=True)  # a stale unpacking of an older copy

    @staticmethod
    def _folder(file: Path) -> Path:
        return file.with_name(file.name + ".d")

    def _unpacked(self, file: Path) -> Path:
        from fitwire.datasets.images_inspect import extract_images

        folder = self._folder(file)
        if not (folder / ".complete").exists():  # unpacked whole, or not at all
            shutil.rmtree(folder, ignore_errors=True)
            staging = file.with_name(f".{file.name}.{uuid.uuid4().hex}.d")
            try:
                extract_images(file, staging)
                (staging / ".complete").touch()
                os.replace(staging, folder)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return folder

    def entries(self) -> list[tuple[str, int, float]]:
        """``(sha256, bytes with its unpacked folder, last use)`` of every cached dataset, oldest use first."""
        found = []
        for file in self.root.iterdir() if self.root.exists() else ():
            if file.is_file() and len(file.name) == 64 and not file.name.startswith("."):
                size = file.stat().st_size + _tree_size(self._folder(file))
                found.append((file.name, size, file.stat().st_mtime))
        return sorted(found, key=lambda e: e[2])

    def _evict(self, keep: str) -> None:
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        for sha256, size, _ in entries:
            if total <= self.cap_bytes:
                break
            if sha256 == keep:
                continue
            shutil.rmtree(self._folder(self.root / sha256), ignore_errors=True)
            (self.root / sha256).unlink(missing_ok=True)
            total -= size


def _sha256_of(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _tree_size(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
