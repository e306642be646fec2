"""Small deterministic dataset files for tests: CSV tables and image-classification zips.

Nothing is downloaded; every file is built here from fixed seeds, so a test that fails
fails the same way on every machine. Other test packages (webhook, CLI) use these too.
"""

from __future__ import annotations

import csv
import io
import random
import stat
import zipfile
from collections.abc import Mapping, Sequence, Set
from pathlib import Path

from PIL import Image

SAMPLE_HEADER = ["age", "height", "smoker", "city", "name"]
SAMPLE_CITIES = ("Paris", "New York, NY", "Oslo", "Lima")
"""The four cities of :func:`sample_csv`; one holds a comma, so the writer quotes it."""


def write_csv(path: Path, header: list[str], rows: Sequence[Sequence[object]], *, delimiter: str = ",",
              bom: bool = False, encoding: str = "utf-8") -> Path:
    """Write ``header`` then ``rows`` with the csv module (quoting only where needed, ``\\n`` line ends).

    ``bom`` puts U+FEFF first, as Excel's "CSV UTF-8" does.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    text = ("\ufeff" if bom else "") + buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def sample_row(i: int) -> list[object]:
    """Row ``i`` (0-based) of :func:`sample_csv`."""
    name = f"Person\n{i}" if i % 10 == 3 else f"Person {i}"  # an embedded newline in some rows
    return [18 + (i * 7) % 60, f"{1.5 + (i % 50) / 100:.2f}", 1 if i % 3 == 0 else 0,
            SAMPLE_CITIES[i % len(SAMPLE_CITIES)], name]


def sample_csv(path: Path, rows: int = 50) -> Path:
    """A mixed table: ``age`` Int, ``height`` Float, ``smoker`` Binary, ``city`` Label (4 values
    once rows >= 4, one with a quoted comma), ``name`` Label unique per row (blocked once rows
    exceed the label limit; rows 3, 13, 23, … hold an embedded newline)."""
    return write_csv(path, SAMPLE_HEADER, [sample_row(i) for i in range(rows)])


def png_bytes(size: tuple[int, int] = (16, 16), mode: str = "RGB", seed: int = 0) -> bytes:
    """A PNG of ``size`` in Pillow ``mode`` (one PNG can hold: 1, L, LA, I;16, P, RGB, RGBA) with noise
    from ``seed``, so images differ."""
    w, h = size
    noise = Image.frombytes("RGB", size, random.Random(seed).randbytes(w * h * 3))
    try:
        img = noise.convert(mode)
    except ValueError:  # a mode Pillow cannot convert RGB to directly
        img = Image.new(mode, size)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def image_zip(path: Path, classes: Sequence[str] = ("cat", "dog"), per_class: tuple[int, int] = (4, 2),
              size: tuple[int, int] = (16, 16), mode: str = "RGB", extra: Mapping[str, bytes] | None = None,
              skip_validation: Set[str] = frozenset(), *, top: str = "") -> Path:
    """A zip with ``training_data/<class>/<i>.png`` and ``validation_data/<class>/<i>.png``.

    Args:
        per_class: images per class in (training, validation).
        extra: more members, name → bytes, written as given (bad input for refusal tests).
        skip_validation: classes that get no validation folder at all.
        top: a common top folder (``"mydata"`` gives ``mydata/training_data/…``), as zipping
            a folder does.
    """
    prefix = f"{top.strip('/')}/" if top else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    seed = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for split, count in (("training_data", per_class[0]), ("validation_data", per_class[1])):
            for cls in classes:
                if split == "validation_data" and cls in skip_validation:
                    continue
                for i in range(count):
                    seed += 1
                    zf.writestr(f"{prefix}{split}/{cls}/{i}.png", png_bytes(size, mode, seed))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def add_symlink(path: Path, name: str, target: str) -> Path:
    """Append a symlink member ``name`` → ``target`` to the zip at ``path`` (as ``zip -y`` stores one)."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix, so the mode bits in external_attr mean what they say
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(info, target)
    return path
