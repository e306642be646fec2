"""Dataset inspection: what a CSV table or an image-classification zip holds, or why it is refused.

Pure functions over bytes and files (the standard library and Pillow, no web, no store), so
the webhook can inspect an upload while it streams in, the CLI can check a file before
sending it, and the agent can unpack one safely for training. What they find is a
:class:`fitwire.contract.datasets.CsvInfo` or :class:`~fitwire.contract.datasets.ImagesInfo`;
what they refuse is a :class:`~fitwire.contract.datasets.DatasetInvalid` whose message names
the row, column or file at fault.
"""

from __future__ import annotations

from fitwire.datasets.csv_inspect import (
    csv_dialect_of,
    csv_page,
    inspect_csv,
    inspect_csv_file,
    read_chunks,
    sniff_delimiter,
)
from fitwire.datasets.images_inspect import (
    channels_of,
    class_members,
    extract_images,
    inspect_images,
    thumbnail,
)

__all__ = [
    "channels_of", "class_members", "csv_dialect_of", "csv_page", "extract_images", "inspect_csv",
    "inspect_csv_file", "inspect_images", "read_chunks", "sniff_delimiter", "thumbnail",
]
