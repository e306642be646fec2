"""Dataset inspection speed: ``inspect_csv`` against ``pandas.read_csv``, and image-zip validation.

``python -m bench bench_datasets [--csv-mb N] [--images N] [--rounds N]``. Two files are
generated in a temporary directory (no download, fixed seeds):

* a mixed CSV of about ``--csv-mb`` MB (an id, Int, Float, Binary and Label columns, some
  quoted fields with commas), read by ``inspect_csv`` in 64 KiB chunks as the webhook feeds
  it; by ``csv.reader`` alone (the parsing it builds on, the floor for any pure-Python
  reader); by ``pandas.read_csv`` (C engine, types inferred) and by ``read_csv`` plus
  ``nunique`` (the distinct counts ``inspect_csv`` also gives), alternating, ``--rounds``
  each; printed: median seconds, MB/s and the ratio to ``pandas.read_csv``;
* a zip of ``--images`` small PNGs in 10 classes, checked by ``inspect_images``, alternating
  with merely reading every member out of the zip (the floor any check pays); printed:
  median seconds, files/s and the ratio to the plain read.

* the webhook's memory while a ``--upload-mb`` MB CSV uploads: a real ``fitwire webhook serve``
  process, its peak resident memory (``VmHWM``) before and after the upload (target: flat; the
  body streams to disk and is inspected as it goes).

No broker needed. Ratios hold on a busy machine; absolute figures are context only.
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from fitwire.datasets import inspect_csv, inspect_images, read_chunks
from tests.datasets.generate import image_zip

CITIES = [f"city {i}" for i in range(19)] + ["Paris, FR"]


def make_csv(path: Path, megabytes: float) -> int:
    """A mixed table of about ``megabytes`` MB; returns its size in bytes."""
    rnd = random.Random(7)
    target = megabytes * 1e6
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "age", "height", "score", "smoker", "city", "comment"])
        i = 0
        while f.tell() < target:
            rows = [[i + k, rnd.randint(18, 90), f"{rnd.uniform(1.4, 2.1):.2f}", repr(rnd.random()),
                     rnd.randint(0, 1), rnd.choice(CITIES), rnd.choice(("fine", "ok, thanks", "n/a", "good"))]
                    for k in range(10_000)]
            writer.writerows(rows)
            i += len(rows)
    return path.stat().st_size


def read_rows(path: Path) -> None:
    """Every row through the standard library's reader, nothing else: the floor under inspect_csv."""
    with path.open(encoding="utf-8", newline="") as f:
        for _ in csv.reader(f):
            pass


def read_members(path: Path) -> None:
    """Every member's bytes out of the zip, nothing else: the floor under any check."""
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            zf.read(info)


def alternate(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """The median seconds of each variant over ``rounds``, the variants taking turns."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            began = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - began)
    return {name: statistics.median(values) for name, values in times.items()}


def table(title: str, unit: str, amount: float, medians: dict[str, float], base: str) -> None:
    print(title)
    print(f"{'variant':<26} {'median s':>9} {unit:>10} {'ratio':>7}")
    for name, seconds in medians.items():
        print(f"{name:<26} {seconds:9.3f} {amount / seconds:10.1f} {seconds / medians[base]:7.2f}")


def bench_csv(tmp: Path, megabytes: float, rounds: int) -> None:
    path = tmp / "mixed.csv"
    size = make_csv(path, megabytes)
    info = inspect_csv(read_chunks(path))
    variants: dict[str, Callable[[], object]] = {"inspect_csv (64 KiB chunks)": lambda: inspect_csv(read_chunks(path)),
                                                 "csv.reader rows only": lambda: read_rows(path)}
    try:
        import pandas

        variants["pandas.read_csv"] = lambda: pandas.read_csv(path)
        variants["pandas.read_csv + nunique"] = lambda: pandas.read_csv(path).nunique()
    except ImportError:
        print("pandas is not installed: its rows are skipped")
    medians = alternate(variants, rounds)
    base = "pandas.read_csv" if "pandas.read_csv" in medians else next(iter(medians))
    table(f"CSV {size / 1e6:.1f} MB, {info.rows:,} rows × {len(info.columns)} columns "
          f"({', '.join(c.type for c in info.columns)}), {rounds} alternating rounds",
          "MB/s", size / 1e6, medians, base)


def bench_images(tmp: Path, images: int, rounds: int) -> None:
    classes = tuple(f"class{i}" for i in range(10))
    per_class = max(1, images // len(classes))
    training = max(1, round(per_class * 0.8))
    path = image_zip(tmp / "images.zip", classes=classes, per_class=(training, max(1, per_class - training)),
                     size=(32, 32))
    info = inspect_images(path)
    medians = alternate({"inspect_images": lambda: inspect_images(path),
                         "read members only": lambda: read_members(path)}, rounds)
    table(f"\nImage zip: {info.images:,} PNGs 32×32 in {len(classes)} classes, "
          f"{path.stat().st_size / 1e6:.1f} MB, {rounds} alternating rounds",
          "files/s", info.images, medians, "read members only")


def bench_upload_memory(tmp: Path, megabytes: float) -> None:
    from tests.webhook.test_artifact_uploads import serve

    source = tmp / "upload.csv"
    make_csv(source, megabytes)
    (tmp / "server").mkdir(exist_ok=True)
    with serve(tmp / "server") as server:
        before = server.peak_memory()
        with source.open("rb") as body:
            started = time.perf_counter()
            answer = server.api("POST", "/api/v1/datasets?name=upload", server.user_token, data=body)
            seconds = time.perf_counter() - started
        after = server.peak_memory()
    if answer.status_code != 201:
        raise RuntimeError(f"the upload was refused: {answer.text}")
    size = source.stat().st_size / 1e6
    print(f"upload of a {size:.0f} MB CSV to `fitwire webhook serve`: {seconds:.1f} s "
          f"({size / seconds:.1f} MB/s, inspection included); the server's peak memory "
          f"{before / 2**20:.0f} MiB before, {after / 2**20:.0f} MiB after (+{(after - before) / 2**20:.1f} MiB)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--csv-mb", type=float, default=50.0, help="size of the generated CSV")
    parser.add_argument("--images", type=int, default=2000, help="images in the generated zip")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--upload-mb", type=float, default=200.0, help="size of the CSV uploaded to a webhook")
    args = parser.parse_args(argv if argv is not None else [])
    with tempfile.TemporaryDirectory() as tmp:
        bench_csv(Path(tmp), args.csv_mb, args.rounds)
        bench_images(Path(tmp), args.images, args.rounds)
        bench_upload_memory(Path(tmp), args.upload_mb)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
