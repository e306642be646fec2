"""What a CSV upload holds, found while it streams in: rows, delimiter, and each column's type.

The webhook hands :func:`inspect_csv` a generator of byte chunks that also writes each
chunk to disk, so the file is read once, never whole in memory: what is kept grows with
the distinct values of each column (at most :data:`DISTINCT_CAP` each), not with the file.

Rules, each refusal a :class:`DatasetInvalid` naming the row and column at fault:

* The text is UTF-8 (a leading BOM is dropped); a NUL byte means binary data.
* The delimiter is the one of ``, ; TAB |`` that splits the first 64 KiB into the most
  consistent rows; fields may be quoted (``"a, b"``, ``"two\\nlines"``, ``""`` for a quote).
* Row 1 is the header: every column named, no name twice. Every row has as many fields.
* Blank lines are skipped. An empty cell (empty or only blanks) is refused: training
  cannot use it, and guessing a value for it would hide a mistake in the data.
* A column is ``Binary`` when every value is ``0`` or ``1``, else ``Int`` when every value
  is a whole number (``-12``, ``007``), else ``Float`` when every value is a decimal number
  (``1.5``, ``-.5``, ``3e8``), else ``Label``. Numbers are plain ASCII decimals; blanks
  around them are allowed; ``nan``, ``inf``, ``1_000`` and decimal commas (``1,5``) are text.
* Distinct values are counted as text (``1`` and ``01`` are two).

Row numbers in messages are the file's lines as an editor counts them, the header being
row 1; a row whose quoted field spans lines is named by the line it starts on.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from fitwire.contract.datasets import DISTINCT_CAP, Column, ColumnType, CsvInfo, DatasetInvalid

if TYPE_CHECKING:
    from _csv import Reader as _Reader

    from _typeshed import WriteableBuffer as Buffer

DELIMITERS = ",;\t|"
"""The delimiters a file may use, preferred in this order when two split it equally well."""

SNIFF_CHARS = 64 * 1024
"""How much of the start of the file the delimiter is chosen from."""

MAX_LINE_BYTES = 16 * 2**20
"""The longest line accepted: past it the upload is not a table (and memory must stay bounded)."""

CHUNK_BYTES = 64 * 1024
_BATCH_ROWS = 1024
"""Rows gathered before the columns are examined: set operations on a batch run at C speed."""

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BLANK = re.compile(r"\s*")
_BLANK_IN = re.compile(r"\0\s*\0")
_BINARY = r"[ \t]*[01][ \t]*"
_INT = r"[ \t]*[+-]?[0-9]+[ \t]*"
_FLOAT = r"[ \t]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t]*"


def _all_of(value: str) -> Callable[[str], object]:
    """A test that NUL-joined values all match ``value``: one regex call for a batch (NUL never
    occurs in an accepted file, so it cannot be mistaken for part of a value)."""
    return re.compile(f"{value}(?:\\0{value})*+").fullmatch


_NARROWER: list[tuple[ColumnType, Callable[[str], object]]] = [
    ("Binary", _all_of(_BINARY)), ("Int", _all_of(_INT)), ("Float", _all_of(_FLOAT)),
]
"""Each type with the test its values must pass, narrowest first; a column that fails all is Label."""


def read_chunks(path: Path, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The file at ``path`` as chunks of ``size`` bytes, the shape :func:`inspect_csv` consumes."""
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk


# --- bytes → checked text ----------------------------------------------------------------


class _Upload(io.RawIOBase):
    """The upload's chunks as a binary stream, checked as they pass: no NUL byte, valid UTF-8, no
    line past :data:`MAX_LINE_BYTES`; each refusal names the file offset at fault.

    The text is then read through ``io.TextIOWrapper(newline="")``, whose line splitting in C (at
    LF, CRLF and a lone CR, the line ends kept) is what ``csv.reader`` expects; decoding here as
    well, only to check, costs little next to parsing and is the one place true offsets are known.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._offset = 0  # bytes checked so far
        self._line_bytes = 0  # bytes since the last line end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._finish()
                return 0
            self._check(chunk)
            self._pending = memoryview(chunk)
        n = min(len(memoryview(buffer)), len(self._pending))
        memoryview(buffer)[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _check(self, chunk: bytes) -> None:
        nul = chunk.find(b"\0")
        if nul >= 0:
            raise DatasetInvalid(f"binary data (a NUL byte) at offset {self._offset + nul}: "
                                 "the file is not a CSV text table.")
        pending = len(self._decoder.getstate()[0])
        try:
            self._decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise DatasetInvalid(f"the file is not UTF-8 text (byte 0x{exc.object[exc.start]:02X} at offset "
                                 f"{self._offset - pending + exc.start}); save it as CSV UTF-8.") from None
        last_end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        self._line_bytes = self._line_bytes + len(chunk) if last_end < 0 else len(chunk) - last_end - 1
        if self._line_bytes > MAX_LINE_BYTES:
            raise DatasetInvalid(f"a line longer than {MAX_LINE_BYTES:,} bytes ends past offset "
                                 f"{self._offset + len(chunk)}; the file is not a table with a row per line.")
        self._offset += len(chunk)

    def _finish(self) -> None:
        pending = len(self._decoder.getstate()[0])
        if pending:
            raise DatasetInvalid(f"the file is not UTF-8 text (it ends inside a character at offset "
                                 f"{self._offset - pending}).")


def _text(chunks: Iterable[bytes]) -> io.TextIOWrapper:
    """The upload as text lines, BOM dropped."""
    return io.TextIOWrapper(io.BufferedReader(_Upload(chunks), CHUNK_BYTES), encoding="utf-8-sig", newline="")


def _head(text: io.TextIOBase) -> tuple[str, bool]:
    """The first :data:`SNIFF_CHARS` or so of the text, ending at a line end; and whether that is all."""
    head = text.read(SNIFF_CHARS)
    complete = len(head) < SNIFF_CHARS
    if head.endswith("\r"):
        head += text.read(1)  # keep a \r\n together
    if head and head[-1] not in "\r\n":
        head += text.readline()
    return head, complete


# --- delimiter -----------------------------------------------------------------------------


def sniff_delimiter(sample: str, complete: bool = False) -> str:
    """The delimiter of :data:`DELIMITERS` under which the sample's rows most often have the header's
    field count (two fields at least); ``,`` when none splits the header.

    ``complete`` says the sample is the whole file; otherwise its last row may be cut and is ignored.
    """
    best: tuple[float, int, int] = (0.0, 0, 0)
    choice = ","
    for rank, delimiter in enumerate(DELIMITERS):
        try:
            rows = [row for row in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter) if row]
        except csv.Error:
            continue
        if not complete and len(rows) > 1:
            rows.pop()
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        consistent = sum(len(row) == width for row in rows[1:]) / max(1, len(rows) - 1)
        score = (consistent, width, -rank)
        if score > best:
            best, choice = score, delimiter
    return choice


def _dialect(delimiter: str) -> type[csv.Dialect]:
    """Strict quoting: ``"a"b`` is refused rather than read as something the user did not write."""
    return type("CsvDialect", (csv.Dialect,), {
        "delimiter": delimiter, "quotechar": '"', "doublequote": True, "skipinitialspace": False,
        "lineterminator": "\n", "quoting": csv.QUOTE_MINIMAL, "strict": True})


def csv_dialect_of(path: Path) -> type[csv.Dialect]:
    """The ``csv`` dialect of a stored CSV file, found as :func:`inspect_csv` finds it; pass it
    to ``csv.reader(f, dialect)`` on the file opened with ``encoding="utf-8-sig", newline=""``."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        sample, complete = _head(f)
    return _dialect(sniff_delimiter(sample, complete))


# --- columns -------------------------------------------------------------------------------


class _ColumnStats:
    """What is known of one column so far: its narrowest type and its distinct values (up to the cap)."""

    def __init__(self, name: str, index: int) -> None:
        self.name = name
        self.index = index
        self.type_rank = 0  # index into _NARROWER; len(_NARROWER) is Label
        self.seen: set[str] | None = set()  # None once over DISTINCT_CAP

    def add(self, values: tuple[str, ...]) -> str | None:
        """Take a batch of the column's values; the first empty one, if any.

        Only values never seen before can change the type, so each distinct value is tested once.
        """
        new = set(values)
        if self.seen is not None:
            new -= self.seen
            if not new:
                return None
            self.seen |= new
            if len(self.seen) > DISTINCT_CAP:
                self.seen = None
        joined = "\0".join(new)
        while self.type_rank < len(_NARROWER) and not _NARROWER[self.type_rank][1](joined):
            self.type_rank += 1
        # A number test fails on a blank, so only a Label column can hold one.
        if self.type_rank == len(_NARROWER) and _BLANK_IN.search(f"\0{joined}\0"):
            return next(value for value in values if _BLANK.fullmatch(value))
        return None

    def column(self, label_limit: int) -> Column:
        col_type: ColumnType = "Label" if self.type_rank == len(_NARROWER) else _NARROWER[self.type_rank][0]
        unique = DISTINCT_CAP if self.seen is None else len(self.seen)
        label = col_type == "Label"
        return Column(name=self.name, type=col_type, unique=unique, unique_capped=self.seen is None,
                      one_hot_width=unique if label else 0, blocked=label and unique > label_limit)


def _check_header(header: list[str]) -> None:
    where: dict[str, int] = {}
    for i, name in enumerate(header, start=1):
        if not name.strip():
            raise DatasetInvalid(f"the header has an empty column name (column {i}); every column needs a name.")
        if name in where:
            raise DatasetInvalid(f"duplicate column name {name!r} (columns {where[name]} and {i}).")
        where[name] = i


def _lines_of(row: list[str]) -> int:
    """How many lines of the file a row spans (a blank line, read as ``[]``, is one)."""
    return 1 + sum(len(_LINE_BREAK.findall(field)) for field in row)


class _Table:
    """Rows gathered in batches and handed to the column statistics.

    Lines are not counted row by row, which would cost more than the rest of the loop: a
    batch knows the line it starts on, and a message needing a row's line counts it then.
    """

    def __init__(self, header: list[str], header_end: int, examples: int) -> None:
        self.header = header
        self.stats = [_ColumnStats(name, i) for i, name in enumerate(header, start=1)]
        self.rows = 0
        self.examples: list[list[str]] = []
        self.want_examples = examples
        self.batch: list[list[str]] = []  # rows as read, blank lines ([]) included
        self.batch_line = header_end + 1  # the line the batch's first row starts on

    def line_of(self, k: int) -> int:
        """The line row ``k`` of the batch starts on (``len(batch)``: the row after the batch)."""
        return self.batch_line + sum(map(_lines_of, self.batch[:k]))

    def flush(self, end_line: int) -> None:
        """Check and count the batch, which ends on line ``end_line``."""
        batch = self.batch
        width = len(self.header)
        if set(map(len, batch)) != {width}:
            for k, row in enumerate(batch):
                if row and len(row) != width:
                    raise DatasetInvalid(f"row {self.line_of(k)} has {len(row)} fields; the header has {width}.")
            batch = [row for row in batch if row]
        if len(self.examples) < self.want_examples:
            self.examples += batch[: self.want_examples - len(self.examples)]
        empties = []  # (row in batch, column) of the first empty cell of each column
        # Not strict: a batch of blank lines only has no columns at all.
        for stats, values in zip(self.stats, zip(*batch, strict=True), strict=False):
            empty = stats.add(values)
            if empty is not None:
                empties.append((values.index(empty), stats))
        if empties:
            k, stats = min(empties, key=lambda found: found[0])
            raise DatasetInvalid(f"row {self.line_of(self.batch.index(batch[k]))}, column {stats.index} "
                                 f"({stats.name!r}) is empty; training cannot use an empty cell: "
                                 "fill it in or remove the row.")
        self.rows += len(batch)
        self.batch.clear()
        self.batch_line = end_line + 1


def _header(reader: _Reader) -> list[str]:
    for row in reader:
        if row:  # not a blank line
            _check_header(row)
            return row
    raise DatasetInvalid("the file is empty.")


def _read_rows(reader: _Reader, table: _Table) -> None:
    """Hand every data row to ``table``, a batch at a time: ``extend(islice(…))`` runs the loop in C,
    and keeps the rows read so far when the reader raises, so a message can still count lines."""
    while True:
        table.batch.extend(itertools.islice(reader, _BATCH_ROWS))
        if not table.batch:
            return
        table.flush(reader.line_num)


def _csv_error(exc: csv.Error, line: int, table: _Table | None) -> DatasetInvalid:
    """``line`` is where the reader stopped; a field left open started on the row after the last good one."""
    text = str(exc)
    started = table.line_of(len(table.batch)) if table else 1
    if "field larger than field limit" in text:
        line = started
        text = f"a field is longer than {csv.field_size_limit():,} characters (a quote never closed?)"
    elif "unexpected end of data" in text:
        line = started
        text = "a quoted field is never closed"
    return DatasetInvalid(f"row {line}: {text}.")


def inspect_csv(chunks: Iterable[bytes], *, label_limit: int = 50, examples: int = 5) -> CsvInfo:
    """Read a CSV upload chunk by chunk and say what it holds; refuse it if it is not a usable table.

    Args:
        chunks: the file's bytes in order, in pieces of any size (a piece may end mid-character
            or mid-line); consumed once.
        label_limit: a Label column with more distinct values than this is ``blocked``
            (FITWIRE_DATASET_LABEL_LIMIT): one-hot encoding it would be as wide as the data.
        examples: how many of the first data rows to keep, as text.

    Raises:
        DatasetInvalid: the message names the row (line of the file, header = row 1), the
            column or the byte offset at fault.

    Example:
        >>> inspect_csv([b"a,b\\n1,x\\n0,y\\n"]).columns[0].type
        'Binary'
    """
    text = _text(chunks)
    head, complete = _head(text)
    if complete and not head.strip():
        raise DatasetInvalid("the file is empty.")
    delimiter = sniff_delimiter(head, complete)
    reader = csv.reader(itertools.chain(io.StringIO(head, newline=""), text), _dialect(delimiter))
    table: _Table | None = None
    try:
        table = _Table(_header(reader), reader.line_num, examples)
        _read_rows(reader, table)
    except csv.Error as exc:
        raise _csv_error(exc, reader.line_num, table) from None
    if not table.rows:
        raise DatasetInvalid("no data rows after the header: a table needs at least one row of values.")
    return CsvInfo(rows=table.rows, delimiter=delimiter, examples=table.examples,
                   columns=[stats.column(label_limit) for stats in table.stats])


def csv_page(path: Path, offset: int, limit: int) -> tuple[list[str], list[list[str]]]:
    """The header and data rows ``offset`` to ``offset + limit`` (0-based, blank lines skipped) of a
    stored CSV file that :func:`inspect_csv` accepted, for a paged preview; reads only up to the page."""
    if offset < 0 or limit < 0:
        raise ValueError("offset and limit must not be negative")
    dialect = csv_dialect_of(path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = (row for row in csv.reader(f, dialect) if row)
        header = next(rows, [])
        page = list(itertools.islice(rows, offset, offset + limit))
    return header, page


def inspect_csv_file(path: Path, *, label_limit: int = 50, examples: int = 5) -> CsvInfo:
    """:func:`inspect_csv` of a file on disk (the CLI's and the tests' way in)."""
    return inspect_csv(read_chunks(path), label_limit=label_limit, examples=examples)


__all__ = ["CHUNK_BYTES", "DELIMITERS", "csv_dialect_of", "csv_page", "inspect_csv", "inspect_csv_file",
           "read_chunks", "sniff_delimiter"]
