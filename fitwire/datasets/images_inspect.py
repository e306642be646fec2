"""What an image-classification zip holds, checked in place: nothing is unpacked to disk.

The zip is read with :mod:`zipfile`, one member at a time, streamed into Pillow, which reads
each image's header (size, mode) and then checks the rest of the file (``verify``: a PNG's
checksums, a truncated file) without decoding pixels. The rules, each refusal a
:class:`DatasetInvalid` naming the member at fault:

* Safety first, over every member, before any is read: no path climbing out (``..``), no
  absolute path (``/x``, ``C:x``), no symbolic link or other special file, no encrypted
  member, no archive inside (by name or by its first bytes), no zip bomb: at most
  ``max_files`` entries and ``max_total_bytes`` unpacked, and no member (nor the whole zip)
  expanding more than ``max_ratio`` times once it unpacks to more than :data:`RATIO_FLOOR`
  (a small file cannot be a bomb whatever its ratio, and flat small images compress well).
* Layout: ``training_data/<class>/…`` and ``validation_data/<class>/…`` at the top, or inside
  one common top folder (``mydata/training_data/…``, what zipping a folder gives). Nothing
  else beside them, no file loose in them, the same classes on both sides, each with at
  least one image per side; images in sub-folders of a class count for the class.
* Every file of a class is a PNG, JPEG, GIF or BMP image Pillow reads, named ``.png``,
  ``.jpg``, ``.jpeg``, ``.gif`` or ``.bmp``: what Keras's ``image_dataset_from_directory``
  reads, so that training sees every image counted here (it skips other names silently).
  Litter that file managers add (``__MACOSX/``, ``.DS_Store``, ``Thumbs.db``) is ignored
  wherever it is.

Channels are what a training pipeline sees after the usual conversion: 1 for grey (``1``,
``L``, ``I``, ``I;16``, ``F``), 2 for grey with alpha (``LA``), 4 for colour with alpha
(``RGBA``, ``PA``), 3 for every other colour mode (``RGB``, ``P`` palette, ``CMYK``, ``YCbCr``).
"""

from __future__ import annotations

import io
import shutil
import stat
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from zlib import error as ZlibError

from PIL import Image, ImageOps, UnidentifiedImageError

from fitwire.contract.datasets import (
    TRAINING_DIR,
    VALIDATION_DIR,
    DatasetInvalid,
    ImageClass,
    ImagesInfo,
)

SPLITS = (TRAINING_DIR, VALIDATION_DIR)
RATIO_FLOOR = 2**20
"""Unpacked bytes under which a member's (or the zip's) compression ratio is not held against it."""

MAX_SIZES = 20
JUNK_DIRS = frozenset({"__MACOSX"})
JUNK_FILES = frozenset({".DS_Store", "Thumbs.db"})
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
"""The formats and names training reads (Keras's ``ALLOWLIST_FORMATS``); Pillow tries no other."""
_NOT_IMAGE = "a class folder holds only PNG, JPEG, GIF or BMP images named .png, .jpg, .jpeg, .gif or .bmp"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".tbz", ".xz", ".txz", ".zst", ".7z", ".rar",
                    ".jar", ".war", ".lz", ".lzma", ".cab", ".iso")
ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00",
                 b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07", b"\x28\xb5\x2f\xfd")
READABLE_COMPRESSION = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})
_ONE_CHANNEL = frozenset({"1", "L", "I", "F"})
_CHANNELS = {"LA": 2, "La": 2, "RGBA": 4, "RGBa": 4, "PA": 4}


def channels_of(mode: str) -> int:
    """The channel count a Pillow mode gives a training pipeline (see the module docstring)."""
    if mode in _ONE_CHANNEL or mode.startswith("I;"):
        return 1
    return _CHANNELS.get(mode, 3)


# --- members ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Image:
    """A member that must be an image: where it is in the zip and where it belongs."""

    info: zipfile.ZipInfo
    split: str
    cls: str
    rel: tuple[str, ...]  # its path under the class folder


@dataclass
class _Layout:
    """The zip's images by split and class, and the top folder they sit under ("" if none)."""

    top: str
    images: list[_Image]
    classes: dict[str, set[str]] = field(default_factory=dict)  # split → class names (folders too)
    groups: dict[tuple[str, str], list[_Image]] = field(default_factory=dict)  # (split, class) → images

    def add(self, img: _Image) -> None:
        self.images.append(img)
        self.groups.setdefault((img.split, img.cls), []).append(img)

    def of(self, split: str, cls: str) -> list[_Image]:
        return self.groups.get((split, cls), [])


def _parts(name: str) -> tuple[str, ...]:
    """A member's path split on ``/`` (and ``\\``, which Windows tools sometimes write), without
    empty and ``.`` parts."""
    return tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))


def _is_junk(parts: tuple[str, ...]) -> bool:
    return parts[-1] in JUNK_FILES or any(p in JUNK_DIRS for p in parts)


def _gb(size: int) -> str:
    return f"{size / 2**30:.1f} GB" if size >= 2**30 else f"{size / 2**20:.1f} MB"


def _check_member(info: zipfile.ZipInfo, max_ratio: float) -> None:
    """Refuse a member that could write outside the folder, is not a plain file, or is a bomb."""
    name = info.filename
    raw = name.replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":" and raw[0].isalpha()):
        raise DatasetInvalid(f"{name!r} is an absolute path; a dataset's paths are relative to the zip.")
    if ".." in raw.split("/"):
        raise DatasetInvalid(f"{name!r} climbs out of the archive (a '..' in its path).")
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise DatasetInvalid(f"{name!r} is a symbolic link; a dataset holds only plain files.")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise DatasetInvalid(f"{name!r} is a special file (not a plain file nor a folder).")
    if info.flag_bits & 0x1:
        raise DatasetInvalid(f"{name!r} is encrypted; upload a zip without a password.")
    if info.compress_type not in READABLE_COMPRESSION:
        raise DatasetInvalid(f"{name!r} uses a compression method that cannot be read "
                             f"(method {info.compress_type}); zip it again with deflate.")
    if info.is_dir():
        return
    if raw.lower().endswith(ARCHIVE_SUFFIXES):
        raise DatasetInvalid(f"{name!r} is an archive inside the archive; unpack it into the zip instead.")
    if info.file_size > RATIO_FLOOR and info.file_size > max_ratio * max(1, info.compress_size):
        raise DatasetInvalid(f"{name!r} expands {info.file_size / max(1, info.compress_size):,.0f} times "
                             f"when unpacked (at most {max_ratio:g} accepted): a zip bomb?")


def _check_archive(zf: zipfile.ZipFile, archive_bytes: int, max_files: int, max_total_bytes: int,
                   max_ratio: float) -> list[zipfile.ZipInfo]:
    """Every member, once the zip as a whole and each member are known to be safe to read."""
    infos = zf.infolist()
    if len(infos) > max_files:
        raise DatasetInvalid(f"the zip holds {len(infos):,} entries; at most {max_files:,} are accepted.")
    total = sum(info.file_size for info in infos)
    if total > max_total_bytes:
        raise DatasetInvalid(f"the zip unpacks to {_gb(total)}; at most {_gb(max_total_bytes)} are accepted.")
    if total > RATIO_FLOOR and total > max_ratio * max(1, archive_bytes):
        raise DatasetInvalid(f"the zip expands {total / max(1, archive_bytes):,.0f} times when unpacked "
                             f"(at most {max_ratio:g} accepted): a zip bomb?")
    seen: set[tuple[str, ...]] = set()
    for info in infos:
        _check_member(info, max_ratio)
        parts = _parts(info.filename)
        if parts in seen and not info.is_dir():
            raise DatasetInvalid(f"{info.filename!r} appears twice in the zip.")
        seen.add(parts)
    return infos


def _top_folder(entries: list[tuple[zipfile.ZipInfo, tuple[str, ...]]]) -> str:
    """"" when the splits are at the top of the zip, else the one folder holding everything."""
    if any(parts[0] in SPLITS for _, parts in entries):
        return ""
    tops = {parts[0] for info, parts in entries if len(parts) > 1 or info.is_dir()}
    loose = [info.filename for info, parts in entries if len(parts) == 1 and not info.is_dir()]
    if len(tops) == 1 and not loose:
        top = tops.pop()
        if any(len(parts) > 1 and parts[1] in SPLITS for _, parts in entries):
            return top
    raise DatasetInvalid(f"the zip has no {TRAINING_DIR}/ folder at its top (nor inside one common top "
                         f"folder); put {TRAINING_DIR}/<class>/… and {VALIDATION_DIR}/<class>/… in it.")


def _layout(infos: list[zipfile.ZipInfo]) -> _Layout:
    """Where each member sits: refuse anything outside the two splits or loose in one."""
    entries = [(info, parts) for info in infos if (parts := _parts(info.filename)) and not _is_junk(parts)]
    top = _top_folder(entries)
    skip = 1 if top else 0
    layout = _Layout(top=top, images=[], classes={split: set() for split in SPLITS})
    for info, parts in entries:
        rest = parts[skip:]
        if not rest:
            continue  # the top folder's own entry
        if rest[0] not in SPLITS:
            raise DatasetInvalid(f"{info.filename!r} is outside {TRAINING_DIR}/ and {VALIDATION_DIR}/; "
                                 "a dataset zip holds only those two folders.")
        if len(rest) == 1 and info.is_dir():
            continue  # the split's own folder entry
        if len(rest) <= 2 and not info.is_dir():
            raise DatasetInvalid(f"{info.filename!r} is not inside a class folder; put each image in "
                                 f"{rest[0]}/<class>/.")
        layout.classes[rest[0]].add(rest[1])
        if not info.is_dir():
            layout.add(_Image(info, rest[0], rest[1], rest[2:]))
    return layout


def _check_classes(layout: _Layout) -> None:
    training, validation = layout.classes[TRAINING_DIR], layout.classes[VALIDATION_DIR]
    for split, classes in layout.classes.items():
        if not classes:
            raise DatasetInvalid(f"the zip has no {split}/<class>/ folders; it needs both {TRAINING_DIR}/ "
                                 f"and {VALIDATION_DIR}/, with a folder per class in each.")
    for cls in sorted(training ^ validation):
        have, lack = (TRAINING_DIR, VALIDATION_DIR) if cls in training else (VALIDATION_DIR, TRAINING_DIR)
        raise DatasetInvalid(f"class {cls!r} is in {have}/ but missing from {lack}/; both need the same classes.")
    for cls in sorted(training):
        for split in SPLITS:
            if not layout.of(split, cls):
                raise DatasetInvalid(f"class {cls!r} has no images in {split}/; each class needs at least one.")


# --- images ----------------------------------------------------------------------------------


@contextmanager
def _open_zip(path: Path) -> Iterator[zipfile.ZipFile]:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise DatasetInvalid(f"the file is not a zip archive, or a corrupt one ({exc}).") from None
    except (OSError, EOFError, ValueError) as exc:
        raise DatasetInvalid(f"the zip archive cannot be read ({exc}).") from None
    with zf:
        yield zf


def _read_image(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, int], str]:
    """The size and mode of a member, refused unless Pillow reads it as an image throughout."""
    name = info.filename
    try:
        with zf.open(info) as f:
            if f.read(8).startswith(ARCHIVE_MAGIC):
                raise DatasetInvalid(f"{name!r} is an archive inside the archive; unpack it into the zip instead.")
            if not name.lower().endswith(IMAGE_SUFFIXES):
                raise DatasetInvalid(f"{name!r} is not an image: {_NOT_IMAGE}.")
            f.seek(0)
            with Image.open(f, formats=IMAGE_FORMATS) as img:
                size, mode = img.size, img.mode
                img.verify()
            return size, mode
    except DatasetInvalid:
        raise
    except (zipfile.BadZipFile, ZlibError, EOFError) as exc:
        raise DatasetInvalid(f"{name!r} is corrupt inside the zip ({exc}).") from None
    except Image.DecompressionBombError:
        raise DatasetInvalid(f"{name!r} has too many pixels to be a training image.") from None
    except UnidentifiedImageError:
        raise DatasetInvalid(f"{name!r} is not an image Pillow can read: {_NOT_IMAGE}.") from None
    except (OSError, SyntaxError, ValueError) as exc:  # what Pillow raises on a damaged image
        raise DatasetInvalid(f"{name!r} is not a readable image ({exc}); {_NOT_IMAGE}.") from None


def _scan(zf: zipfile.ZipFile, path: Path, max_files: int, max_total_bytes: int, max_ratio: float) -> _Layout:
    infos = _check_archive(zf, path.stat().st_size, max_files, max_total_bytes, max_ratio)
    layout = _layout(infos)
    _check_classes(layout)
    return layout


def inspect_images(path: Path, *, max_files: int = 200_000, max_total_bytes: int = 20 * 2**30,
                   max_ratio: float = 200.0) -> ImagesInfo:
    """Check an image-classification zip on disk and say what it holds; refuse it if unusable.

    Args:
        path: the zip.
        max_files: entries (files and folders) accepted in the zip.
        max_total_bytes: bytes accepted once unpacked, as the zip's headers declare them (a member
            is never read past its declared size).
        max_ratio: the largest unpacked / packed ratio accepted (see :data:`RATIO_FLOOR`).

    Raises:
        DatasetInvalid: the message names the member, class or folder at fault.
    """
    sizes: Counter[tuple[int, int]] = Counter()
    channels: set[int] = set()
    with _open_zip(path) as zf:
        layout = _scan(zf, path, max_files, max_total_bytes, max_ratio)
        for img in layout.images:
            size, mode = _read_image(zf, img.info)
            sizes[size] += 1
            channels.add(channels_of(mode))
    classes = []
    for cls in sorted(layout.classes[TRAINING_DIR]):
        training = layout.of(TRAINING_DIR, cls)
        classes.append(ImageClass(name=cls, training=len(training), validation=len(layout.of(VALIDATION_DIR, cls)),
                                  sample=min(img.info.filename for img in training)))
    return ImagesInfo(classes=classes, sizes=[s for s, _ in sizes.most_common(MAX_SIZES)],
                      channels=sorted(channels), images=len(layout.images))


def class_members(path: Path, split: str, cls: str, offset: int, limit: int) -> tuple[int, list[str]]:
    """How many images class ``cls`` has in ``split``, and their zip paths ``offset`` to
    ``offset + limit`` in name order (a page for a browser); ``(0, [])`` for a class the zip lacks.

    Only names are read (the safety and layout checks run again, which is cheap).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be {TRAINING_DIR!r} or {VALIDATION_DIR!r}, not {split!r}")
    if offset < 0 or limit < 0:
        raise ValueError("offset and limit must not be negative")
    with _open_zip(path) as zf:
        layout = _scan(zf, path, 2**62, 2**62, float("inf"))
    names = sorted(img.info.filename for img in layout.of(split, cls))
    return len(names), names[offset: offset + limit]


def thumbnail(path: Path, member: str, size: int = 128) -> bytes:
    """A JPEG of at most ``size`` × ``size`` of one image of the zip (transparency on white).

    Raises:
        DatasetInvalid: ``member`` is not one of the dataset's images (not in the zip, or litter,
            or a folder), or not a readable one; the webhook answers 404.
    """
    with _open_zip(path) as zf:
        layout = _scan(zf, path, 2**62, 2**62, float("inf"))
        match = [img.info for img in layout.images if img.info.filename == member]
        if not match:
            raise DatasetInvalid(f"{member[:200]!r} is not one of the dataset's images.")
        _read_image(zf, match[0])  # refuses what is not an image before decoding pixels
        with zf.open(match[0]) as f, Image.open(f, formats=IMAGE_FORMATS) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at a fraction of the size, far faster
            small = ImageOps.exif_transpose(img)
            small.thumbnail((size, size))
            return _jpeg(small)


def _jpeg(img: Image.Image) -> bytes:
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, "white")
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        img = canvas
    elif img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def extract_images(path: Path, dest: Path, *, max_files: int = 200_000, max_total_bytes: int = 20 * 2**30,
                   max_ratio: float = 200.0) -> Path:
    """Unpack a dataset zip for training: every check of :func:`inspect_images` again, then only its
    images, as plain files under ``dest`` (the top folder dropped, litter left out).

    Returns:
        ``dest``, which then holds ``training_data/`` and ``validation_data/``.

    Raises:
        DatasetInvalid: as :func:`inspect_images`; also when a file would land outside ``dest``
            or on a file already there (a file is never overwritten, a link never followed).
    """
    inspect_images(path, max_files=max_files, max_total_bytes=max_total_bytes, max_ratio=max_ratio)
    root = dest.resolve()
    with _open_zip(path) as zf:
        layout = _scan(zf, path, max_files, max_total_bytes, max_ratio)
        for img in layout.images:
            target = root.joinpath(img.split, img.cls, *img.rel)
            if not target.resolve().is_relative_to(root):
                raise DatasetInvalid(f"{img.info.filename!r} would be written outside the dataset folder.")
            target.parent.mkdir(parents=True, exist_ok=True)
            _copy(zf, img.info, target)
    return dest


def _copy(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    try:
        with zf.open(info) as src, target.open("xb") as out:  # "x": never through an existing file or link
            shutil.copyfileobj(src, out, 2**20)
    except FileExistsError:
        raise DatasetInvalid(f"{info.filename!r}: {target} already exists.") from None


__all__ = ["ARCHIVE_SUFFIXES", "IMAGE_FORMATS", "IMAGE_SUFFIXES", "RATIO_FLOOR", "channels_of", "class_members", "extract_images", "inspect_images",
           "thumbnail"]
