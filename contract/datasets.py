"""Datasets: what an upload is found to hold, and the rules its name follows.

A dataset is a CSV table (first row the header) or an image classification set (a zip
with ``training_data/<class>/…`` and ``validation_data/<class>/…``). The webhook inspects
it while it arrives (``fitwire.datasets``) and keeps what it found as one of the two
``*Info`` models below; the stored :class:`fitwire.contract.entities.Dataset` carries it.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fitwire.contract.errors import FitwireError

DatasetFormat = Literal["csv", "images"]
DATASET_FORMATS: tuple[DatasetFormat, ...] = ("csv", "images")

ColumnType = Literal["Int", "Float", "Label", "Binary"]
"""WebML's column types: whole numbers, other numbers, strings (one-hot encoded when used),
and columns holding only 0 and 1."""

TRAINING_DIR = "training_data"
VALIDATION_DIR = "validation_data"

DATASET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Allowed dataset names: a letter or digit, then letters, digits, ``_``, ``.``, ``-``; 64 at most."""
_NAME = re.compile(DATASET_NAME_PATTERN)

DISTINCT_CAP = 100_000
"""Distinct values counted per column; past it a column is only known to have "at least" this many."""


def dataset_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a dataset, or None."""
    if _NAME.fullmatch(name):
        return None
    return (f"{name[:80]!r} is not a dataset name: use 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or a digit.")


class DatasetInvalid(FitwireError, ValueError):
    """An upload is not a usable dataset; the message names the row, column or file at fault."""


class InfoModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Column(InfoModel):
    name: str
    type: ColumnType
    unique: int = Field(description="How many distinct values the column holds (exact up to "
                                    "DISTINCT_CAP; past it, DISTINCT_CAP and unique_capped is true).")
    unique_capped: bool = False
    one_hot_width: int = Field(description="The width of its one-hot encoding: the distinct count for a "
                                           "Label column, 0 for the others.")
    blocked: bool = Field(description="A Label column with too many distinct values to be used "
                                      "(over FITWIRE_DATASET_LABEL_LIMIT), e.g. a surname column.")


class CsvInfo(InfoModel):
    rows: int = Field(description="Data rows (the header not counted).")
    delimiter: str
    columns: list[Column]
    examples: list[list[str]] = Field(description="The first few rows, as text.")


class ImageClass(InfoModel):
    name: str
    training: int = Field(description="Images of the class in training_data/.")
    validation: int = Field(description="Images of the class in validation_data/.")
    sample: str = Field(description="The path in the zip of one of its training images.")


class ImagesInfo(InfoModel):
    classes: list[ImageClass]
    sizes: list[tuple[int, int]] = Field(description="The distinct (width, height) seen, most frequent first "
                                                     "(at most 20).")
    channels: list[int] = Field(description="The distinct channel counts seen (1 grey, 3 RGB, 4 RGBA).")
    images: int = Field(description="Images in all.")


__all__ = [
    "DATASET_FORMATS", "DISTINCT_CAP", "DATASET_NAME_PATTERN", "TRAINING_DIR", "VALIDATION_DIR", "Column", "ColumnType",
    "CsvInfo", "DatasetFormat", "DatasetInvalid", "ImageClass", "ImagesInfo", "dataset_name_problem",
]
