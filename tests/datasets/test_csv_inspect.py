"""CSV inspection: types, distinct counts, dialects, chunking, and every refusal named by row and column."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fitwire.contract.datasets import DISTINCT_CAP, CsvInfo, DatasetInvalid
from fitwire.datasets import csv_inspect
from fitwire.datasets.csv_inspect import (
    csv_dialect_of,
    csv_page,
    inspect_csv,
    inspect_csv_file,
    sniff_delimiter,
)
from tests.datasets.generate import SAMPLE_HEADER, sample_csv, sample_row, write_csv


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def inspect_bytes(data: bytes, size: int = 64 * 1024, **kwargs: int) -> CsvInfo:
    return inspect_csv(chunked(data, size), **kwargs)


def refusal(data: bytes, size: int = 64 * 1024) -> str:
    with pytest.raises(DatasetInvalid) as caught:
        inspect_bytes(data, size)
    return str(caught.value)


def types(info: CsvInfo) -> dict[str, str]:
    return {c.name: c.type for c in info.columns}


# --- a good table -------------------------------------------------------------------------


def test_sample_table_types_uniques_and_blocked_labels(tmp_path: Path) -> None:
    info = inspect_csv_file(sample_csv(tmp_path / "s.csv", rows=60), label_limit=50)

    assert info.rows == 60
    assert info.delimiter == ","
    assert [c.name for c in info.columns] == SAMPLE_HEADER
    assert types(info) == {"age": "Int", "height": "Float", "smoker": "Binary", "city": "Label", "name": "Label"}
    by = {c.name: c for c in info.columns}
    assert by["age"].unique == len({sample_row(i)[0] for i in range(60)})
    assert by["height"].unique == 50
    assert by["smoker"].unique == 2
    assert (by["city"].unique, by["city"].one_hot_width, by["city"].blocked) == (4, 4, False)
    assert (by["name"].unique, by["name"].one_hot_width, by["name"].blocked) == (60, 60, True)
    assert by["age"].one_hot_width == 0 and not by["age"].blocked
    assert not any(c.unique_capped for c in info.columns)


def test_examples_are_the_first_rows_as_text_with_quoted_commas_and_newlines(tmp_path: Path) -> None:
    info = inspect_csv_file(sample_csv(tmp_path / "s.csv", rows=20), examples=5)

    assert info.examples == [[str(v) for v in sample_row(i)] for i in range(5)]
    assert info.examples[1][3] == "New York, NY"
    assert info.examples[3][4] == "Person\n3"
    assert len(inspect_csv_file(tmp_path / "s.csv", examples=0).examples) == 0


def test_a_label_column_at_the_limit_is_not_blocked_one_over_is(tmp_path: Path) -> None:
    path = sample_csv(tmp_path / "s.csv", rows=10)
    assert not inspect_csv_file(path, label_limit=10).columns[4].blocked
    assert inspect_csv_file(path, label_limit=9).columns[4].blocked


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_each_delimiter_is_found(tmp_path: Path, delimiter: str) -> None:
    path = write_csv(tmp_path / "d.csv", ["a", "b", "c"], [[1, "x, y", 0.5], [2, "z", 1.5]], delimiter=delimiter)
    info = inspect_csv_file(path)
    assert info.delimiter == delimiter
    assert types(info) == {"a": "Int", "b": "Label", "c": "Float"}
    assert info.examples[0] == ["1", "x, y", "0.5"]


def test_semicolon_files_with_decimal_commas_keep_them_as_text() -> None:
    info = inspect_bytes(b"ville;taille\nParis;1,75\nLyon;1,80\n")
    assert info.delimiter == ";"
    assert types(info) == {"ville": "Label", "taille": "Label"}


def test_a_bom_is_dropped_from_the_first_column_name(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "b.csv", ["age", "x"], [[1, "a"]], bom=True)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    info = inspect_csv_file(path)
    assert info.columns[0].name == "age" and info.columns[0].type == "Binary"


@pytest.mark.parametrize("newline", ["\r\n", "\r", "\n"])
def test_every_line_ending_reads_the_same(newline: str) -> None:
    text = newline.join(["a,b", '1,"two', 'lines"', "0,x", ""])
    info = inspect_bytes(text.encode(), size=3)
    assert info.rows == 2
    assert info.examples[0] == ["1", f"two{newline}lines"]


def test_blank_lines_are_skipped() -> None:
    info = inspect_bytes(b"\n\na,b\n1,x\n\n2,y\n\n\n")
    assert info.rows == 2
    assert types(info) == {"a": "Int", "b": "Label"}


def test_results_do_not_depend_on_how_the_upload_is_chunked(tmp_path: Path) -> None:
    rows = [[i, f"{i / 7:.3f}", i % 2, ["Zürich", "東京", "naïve, \"quoted\"", "emoji 🙂\nline"][i % 4]]
            for i in range(3000)]
    data = write_csv(tmp_path / "u.csv", ["n", "f", "bit", "label"], rows, bom=True).read_bytes()

    results = [inspect_bytes(data, size) for size in (1, 7, 64 * 1024)]

    assert results[0] == results[1] == results[2]
    assert results[0].rows == 3000
    assert types(results[0]) == {"n": "Int", "f": "Float", "bit": "Binary", "label": "Label"}
    assert results[0].columns[3].unique == 4


@pytest.mark.parametrize(("values", "expected"), [
    (["0", "1", "1"], "Binary"),
    (["0", "1", "2"], "Int"),
    (["-3", "+4", "007", " 12 "], "Int"),
    (["1", "1.5"], "Float"),
    (["-.5", "2.", "3e8", "1E-3"], "Float"),
    (["0", "1.0"], "Float"),
    (["1", "nan"], "Label"),
    (["1", "inf"], "Label"),
    (["1_000", "2"], "Label"),
    (["0x1F", "2"], "Label"),
    (["١٢", "3"], "Label"),  # Arabic-Indic digits: int() takes them, a training pipeline would not
    (["yes", "no"], "Label"),
])
def test_column_types(values: list[str], expected: str) -> None:
    data = "v,k\n" + "".join(f'"{v}",{i}\n' for i, v in enumerate(values))
    assert inspect_bytes(data.encode()).columns[0].type == expected


def test_the_type_comes_from_every_row_not_the_first_batch() -> None:
    data = "n,k\n" + "".join(f"{i},x\n" for i in range(10_000)) + "oops,x\n"
    info = inspect_bytes(data.encode())
    assert info.columns[0].type == "Label"
    assert info.columns[0].unique == 10_001


def test_distinct_values_are_capped_and_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_inspect, "DISTINCT_CAP", 100)
    data = "n,k\n" + "".join(f"{i},{i % 3}\n" for i in range(9000)) + "2.5,1\n"

    info = inspect_bytes(data.encode())

    n, k = info.columns
    assert (n.unique, n.unique_capped, n.type) == (100, True, "Float")  # still typed over every row
    assert (k.unique, k.unique_capped, k.type) == (3, False, "Int")
    assert DISTINCT_CAP == 100_000


def test_a_capped_label_column_is_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_inspect, "DISTINCT_CAP", 10)
    info = inspect_bytes(("name,k\n" + "".join(f"p{i},1\n" for i in range(50))).encode(), label_limit=20)
    assert info.columns[0].unique == 10 and info.columns[0].unique_capped
    assert info.columns[0].one_hot_width == 10


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\n\n  \n", b"\r\n"])
def test_an_empty_file_is_refused(data: bytes) -> None:
    assert refusal(data) == "the file is empty."


def test_a_header_only_file_is_refused() -> None:
    assert "no data rows after the header" in refusal(b"a,b,c\n")
    assert "no data rows after the header" in refusal(b"a,b,c\n\n\n")


def test_an_empty_column_name_is_named_by_position() -> None:
    assert "empty column name (column 3)" in refusal(b"a,b,,d\n1,2,3,4\n")
    assert "empty column name (column 2)" in refusal(b'a," "\n1,2\n')


def test_a_duplicate_column_name_names_both_columns() -> None:
    assert "duplicate column name 'x' (columns 2 and 5)" in refusal(b"a,x,b,c,x\n1,2,3,4,5\n")


@pytest.mark.parametrize("size", [1, 7, 65536])
def test_a_short_or_long_row_is_named_by_its_line(size: int) -> None:
    assert refusal(b"a,b,c,d\n1,2,3,4\n\n1,2,3\n", size) == "row 4 has 3 fields; the header has 4."
    # A quoted field spanning lines: rows are counted as the file's lines.
    data = b'a,b\n1,"x\ny\nz"\n2,w,extra\n'
    assert refusal(data, size) == "row 5 has 3 fields; the header has 2."
    assert refusal(b'a,b\n1,"x\ny",3\n', size) == "row 2 has 3 fields; the header has 2."


@pytest.mark.parametrize("size", [1, 7, 65536])
def test_bad_utf8_names_the_byte_and_its_offset(size: int) -> None:
    data = "name,n\nZoé,1\n".encode() + b"Ren\xe9,2\n"
    offset = data.index(b"\xe9")
    assert f"not UTF-8 text (byte 0xE9 at offset {offset})" in refusal(data, size)


def test_a_file_ending_inside_a_character_is_refused() -> None:
    assert "ends inside a character at offset 8" in refusal(b"a,b\n1,2\n\xe2\x82")


@pytest.mark.parametrize("size", [1, 65536])
def test_a_nul_byte_means_binary_data(size: int) -> None:
    data = b"a,b\n1,2\n3,\x004\n"
    assert refusal(data, size).startswith("binary data (a NUL byte) at offset 10")


def test_a_png_is_not_a_table() -> None:
    assert refusal(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR").startswith("binary data (a NUL byte) at offset 8")
    assert "byte 0x89 at offset 0" in refusal(b"\x89PNG")


@pytest.mark.parametrize(("data", "message"), [
    (b"a,b\n1,2\n3,\n", "row 3, column 2 ('b') is empty"),
    (b"a,b\n,2\n", "row 2, column 1 ('a') is empty"),
    (b"a,b\nx,2\n  ,3\n", "row 3, column 1 ('a') is empty"),
    (b'a,b\n"multi\nline",1\n"",2\n', "row 4, column 1 ('a') is empty"),
    (b"a,b,c\n1,2,3\n1,2,\n1,,3\n", "row 3, column 3 ('c') is empty"),  # the first row, whatever the column
])
def test_an_empty_cell_is_named_by_row_and_column(data: bytes, message: str) -> None:
    assert message in refusal(data)


def test_an_empty_cell_far_down_is_named_by_its_row() -> None:
    rows = "".join(f"{i},x\n" for i in range(9999)) + "5,\n"
    assert "row 10001, column 2 ('b') is empty" in refusal(("a,b\n" + rows).encode(), 4096)


def test_broken_quoting_is_refused_with_its_row() -> None:
    assert refusal(b'a,b\n1,"x"y\n') == "row 2: ',' expected after '\"'."
    assert refusal(b'a,b\n1,2\n3,"never closed\n4,5\n') == "row 3: a quoted field is never closed."
    assert refusal(b'a,"b\n1,2\n') == "row 1: a quoted field is never closed."


def test_a_line_past_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_inspect, "MAX_LINE_BYTES", 1000)
    assert refusal(b"a,b\n1,2\n" + b"x" * 5000, 100).startswith("a line longer than 1,000 bytes ends past offset 1100")


# --- sniffing and pages -------------------------------------------------------------------


def test_sniffing_prefers_the_delimiter_that_keeps_rows_consistent() -> None:
    assert sniff_delimiter("a;b\n1,5;2,5\n3,1;4\n", complete=True) == ";"
    assert sniff_delimiter("a,b\n1;2,3\n", complete=True) == ","
    assert sniff_delimiter("only\n1\n2\n", complete=True) == ","
    assert sniff_delimiter('a|b\n"x|y"|1\n', complete=True) == "|"


def test_csv_page_reads_a_window_of_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", ["a", "b"], [[i, f"v{i}\nnext"] for i in range(100)], delimiter=";", bom=True)

    header, rows = csv_page(path, 10, 3)

    assert header == ["a", "b"]
    assert rows == [["10", "v10\nnext"], ["11", "v11\nnext"], ["12", "v12\nnext"]]
    assert csv_page(path, 98, 10)[1] == [["98", "v98\nnext"], ["99", "v99\nnext"]]
    assert csv_page(path, 500, 10)[1] == []
    assert csv_dialect_of(path).delimiter == ";"
    with pytest.raises(ValueError):
        csv_page(path, -1, 3)


# --- property -----------------------------------------------------------------------------

_TEXT = st.text(alphabet=st.sampled_from(list("ab zé東,;|\t\"'\n")), min_size=1, max_size=8).filter(
    lambda s: re.search(r"[abzé東]", s) is not None)
@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    width = draw(st.integers(2, 5))
    kinds = [draw(st.sampled_from(["int", "bit", "float", "text"])) for _ in range(width)]
    strategies = {kind: s for kind, s in [("int", st.integers(-10**12, 10**12).map(str)),
                                          ("bit", st.sampled_from(["0", "1"])),
                                          ("float", st.floats(allow_nan=False, allow_infinity=False).map(repr)),
                                          ("text", _TEXT)]}
    rows = draw(st.lists(st.tuples(*[strategies[k] for k in kinds]).map(list), min_size=1, max_size=30))
    return kinds, rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=tables(), delimiter=st.sampled_from(list(",;\t|")), size=st.sampled_from([1, 5, 4096]))
def test_any_written_table_reads_back(tmp_path: Path, table: tuple[list[str], list[list[str]]],
                                      delimiter: str, size: int) -> None:
    kinds, rows = table
    header = [f"c{i}" for i in range(len(kinds))]
    data = write_csv(tmp_path / "h.csv", header, rows, delimiter=delimiter).read_bytes()

    info = inspect_bytes(data, size, examples=30)

    assert (info.rows, info.delimiter, info.examples) == (len(rows), delimiter, rows)
    for i, (kind, column) in enumerate(zip(kinds, info.columns, strict=True)):
        values = {row[i] for row in rows}
        if kind in ("int", "bit"):
            expected = "Binary" if values <= {"0", "1"} else "Int"
        else:
            expected = {"float": "Float", "text": "Label"}[kind]
        assert column.type == expected
        assert column.unique == len(values)


@pytest.mark.parametrize("batch", [1, 2, 3, 1024])
def test_row_numbers_hold_across_batches_blank_lines_and_quoted_newlines(
        monkeypatch: pytest.MonkeyPatch, batch: int) -> None:
    monkeypatch.setattr(csv_inspect, "_BATCH_ROWS", batch)
    head = b'a,b\n1,"x\r\ny"\n\n2,"p\nq\nr"\n\n\n3,z\n'  # the data rows start on lines 2, 5 and 10
    assert inspect_bytes(head + b"4,w\n").rows == 4
    assert refusal(head + b"4,w,extra\n") == "row 11 has 3 fields; the header has 2."
    assert "row 11, column 2 ('b') is empty" in refusal(head + b"4,\n")
    assert "row 5, column 2 ('b') is empty" in refusal(head.replace(b'"p\nq\nr"', b'""'))
    assert refusal(head + b'4,"open\n5,6\n') == "row 11: a quoted field is never closed."
