"""Image-zip inspection: what a good zip holds, and each refusal naming the member at fault."""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from fitwire.contract.datasets import DatasetInvalid
from fitwire.datasets import channels_of, class_members, extract_images, inspect_images, thumbnail
from tests.datasets.generate import add_symlink, image_zip, png_bytes

PNG = png_bytes()


def refusal(path: Path, **limits: float) -> str:
    with pytest.raises(DatasetInvalid) as caught:
        inspect_images(path, **limits)  # type: ignore[arg-type]
    return str(caught.value)


def zip_of(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


# --- good zips ------------------------------------------------------------------------------


def test_a_good_zip_gives_classes_counts_sizes_and_channels(tmp_path: Path) -> None:
    info = inspect_images(image_zip(tmp_path / "d.zip", classes=("dog", "cat", "bird"), per_class=(5, 3)))

    assert [c.name for c in info.classes] == ["bird", "cat", "dog"]
    assert [(c.training, c.validation) for c in info.classes] == [(5, 3)] * 3
    assert info.classes[1].sample == "training_data/cat/0.png"
    assert info.images == 24
    assert info.sizes == [(16, 16)]
    assert info.channels == [3]


def test_one_common_top_folder_is_accepted(tmp_path: Path) -> None:
    info = inspect_images(image_zip(tmp_path / "d.zip", top="mydata"))
    assert [c.name for c in info.classes] == ["cat", "dog"]
    assert info.classes[0].sample == "mydata/training_data/cat/0.png"


def test_a_zipped_folder_with_folder_entries_and_litter_is_accepted(tmp_path: Path) -> None:
    root = tmp_path / "tree" / "my data"
    for split, count in (("training_data", 3), ("validation_data", 1)):
        for cls in ("a", "b"):
            (root / split / cls / "sub").mkdir(parents=True)
            for i in range(count):
                (root / split / cls / f"{i}.png").write_bytes(png_bytes(seed=i))
            (root / split / cls / "sub" / "deep.png").write_bytes(PNG)  # sub-folders count for the class
            (root / split / cls / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "training_data" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    archive = Path(shutil.make_archive(str(tmp_path / "folder"), "zip", root_dir=root.parent, base_dir="my data"))
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("__MACOSX/my data/._whatever", b"\0\5\26\7 junk")
    assert any(n.endswith("/") for n in zipfile.ZipFile(archive).namelist())

    info = inspect_images(archive)

    assert [(c.name, c.training, c.validation) for c in info.classes] == [("a", 4, 2), ("b", 4, 2)]


@pytest.mark.parametrize(("mode", "channels"), [
    ("1", 1), ("L", 1), ("I;16", 1), ("LA", 2), ("P", 3), ("RGB", 3), ("RGBA", 4),
])
def test_channels_follow_the_image_mode(tmp_path: Path, mode: str, channels: int) -> None:
    assert inspect_images(image_zip(tmp_path / "d.zip", mode=mode)).channels == [channels]


def test_channels_of_other_modes() -> None:
    assert [channels_of(m) for m in ("CMYK", "YCbCr", "PA", "F", "I", "I;16B")] == [3, 3, 4, 1, 1, 1]


def test_sizes_are_most_frequent_first_and_channels_sorted(tmp_path: Path) -> None:
    extra = {f"training_data/cat/big{i}.png": png_bytes((32, 8), "L", i) for i in range(6)}
    extra["validation_data/dog/x.png"] = png_bytes((5, 7), "RGBA")
    info = inspect_images(image_zip(tmp_path / "d.zip", extra=extra))
    assert info.sizes == [(16, 16), (32, 8), (5, 7)]
    assert info.channels == [1, 3, 4]


def encoded(fmt: str, size: tuple[int, int] = (20, 10), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, "red").save(buf, format=fmt)
    return buf.getvalue()


def test_jpeg_gif_and_bmp_are_read_whatever_the_case_of_the_name(tmp_path: Path) -> None:
    extra = {"training_data/cat/photo.JPG": encoded("JPEG"), "training_data/cat/a.jpeg": encoded("JPEG"),
             "training_data/dog/anim.gif": encoded("GIF", (3, 4), "P"), "validation_data/dog/b.bmp": encoded("BMP")}
    info = inspect_images(image_zip(tmp_path / "d.zip", extra=extra))
    assert info.sizes[1:] == [(20, 10), (3, 4)]
    assert [(c.training, c.validation) for c in info.classes] == [(6, 2), (5, 3)]


@pytest.mark.parametrize(("name", "fmt"), [("x.webp", "WEBP"), ("x.tif", "TIFF"), ("x.png", "TIFF"), ("x", "PNG")])
def test_images_training_cannot_read_are_refused(tmp_path: Path, name: str, fmt: str) -> None:
    path = image_zip(tmp_path / "d.zip", extra={f"training_data/cat/{name}": encoded(fmt)})
    message = refusal(path)
    assert message.startswith(f"'training_data/cat/{name}' is not an image")
    assert "PNG, JPEG, GIF or BMP" in message


# --- refusals: layout ---------------------------------------------------------------------------


def test_a_class_missing_from_validation_is_named(tmp_path: Path) -> None:
    message = refusal(image_zip(tmp_path / "d.zip", skip_validation={"dog"}))
    assert message == ("class 'dog' is in training_data/ but missing from validation_data/; "
                       "both need the same classes.")


def test_a_class_missing_from_training_is_named(tmp_path: Path) -> None:
    path = image_zip(tmp_path / "d.zip", extra={"validation_data/bird/0.png": PNG})
    assert "class 'bird' is in validation_data/ but missing from training_data/" in refusal(path)


def test_a_missing_validation_folder_is_refused(tmp_path: Path) -> None:
    assert "no validation_data/<class>/ folders" in refusal(image_zip(tmp_path / "d.zip", per_class=(3, 0)))


def test_a_class_without_images_on_one_side_is_refused(tmp_path: Path) -> None:
    path = image_zip(tmp_path / "d.zip", skip_validation={"dog"}, extra={"validation_data/dog/": b""})
    assert "class 'dog' has no images in validation_data/" in refusal(path)


def test_no_training_folder_is_refused(tmp_path: Path) -> None:
    assert "no training_data/ folder at its top" in refusal(zip_of(tmp_path / "d.zip", {"pics/cat/1.png": PNG}))
    two_tops = {"a/training_data/c/1.png": PNG, "b/validation_data/c/1.png": PNG}
    assert "no training_data/ folder" in refusal(zip_of(tmp_path / "e.zip", two_tops))


@pytest.mark.parametrize("top", ["", "mydata"])
def test_a_file_beside_the_splits_is_named(tmp_path: Path, top: str) -> None:
    name = f"{top}/README.txt" if top else "README.txt"
    path = image_zip(tmp_path / "d.zip", top=top, extra={name: b"hello"})
    assert f"'{name}' is outside training_data/ and validation_data/" in refusal(path)


def test_a_file_loose_in_a_split_is_named(tmp_path: Path) -> None:
    path = image_zip(tmp_path / "d.zip", extra={"training_data/stray.png": PNG})
    assert "'training_data/stray.png' is not inside a class folder" in refusal(path)


def test_a_non_image_in_a_class_is_named(tmp_path: Path) -> None:
    path = image_zip(tmp_path / "d.zip", extra={"training_data/cat/notes.txt": b"good cats"})
    message = refusal(path)
    assert message.startswith("'training_data/cat/notes.txt' is not an image")


def test_corrupt_image_bytes_under_a_png_name_are_named(tmp_path: Path) -> None:
    path = image_zip(tmp_path / "d.zip", extra={"validation_data/dog/bad.png": b"\x89PNG\r\n\x1a\n" + b"x" * 50})
    assert refusal(path).startswith("'validation_data/dog/bad.png' is not")


def test_a_truncated_image_is_caught_past_its_header(tmp_path: Path) -> None:
    big = png_bytes((64, 64), seed=9)
    path = image_zip(tmp_path / "d.zip", extra={"training_data/cat/cut.png": big[: len(big) // 2]})
    assert refusal(path).startswith("'training_data/cat/cut.png' is not a readable image")


# --- refusals: safety -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../evil.png", "training_data/cat/../../../evil.png", "training_data\\..\\x.png"])
def test_path_traversal_is_named(tmp_path: Path, name: str) -> None:
    path = image_zip(tmp_path / "d.zip", extra={name: PNG})
    assert refusal(path) == f"{name!r} climbs out of the archive (a '..' in its path)."


@pytest.mark.parametrize("name", ["/etc/evil.png", "C:/evil.png", "c:evil.png", "\\evil.png"])
def test_an_absolute_path_is_named(tmp_path: Path, name: str) -> None:
    path = image_zip(tmp_path / "d.zip")
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(zipfile.ZipInfo(name), PNG)  # ZipInfo keeps the name as given
    assert zipfile.ZipFile(path).namelist()[-1] == name
    assert refusal(path).startswith(f"{name!r} is an absolute path")


def test_a_symlink_is_named(tmp_path: Path) -> None:
    path = add_symlink(image_zip(tmp_path / "d.zip"), "training_data/cat/link.png", "/etc/passwd")
    assert refusal(path) == "'training_data/cat/link.png' is a symbolic link; a dataset holds only plain files."


def test_a_nested_archive_is_named_by_name_and_by_content(tmp_path: Path) -> None:
    inner = zip_of(tmp_path / "inner.zip", {"x.png": PNG}).read_bytes()
    by_name = image_zip(tmp_path / "a.zip", extra={"training_data/cat/more.zip": inner})
    assert refusal(by_name).startswith("'training_data/cat/more.zip' is an archive inside the archive")
    by_magic = image_zip(tmp_path / "b.zip", extra={"training_data/cat/sneaky.png": inner})
    assert refusal(by_magic).startswith("'training_data/cat/sneaky.png' is an archive inside the archive")
    gz = image_zip(tmp_path / "c.zip", extra={"training_data/cat/t.tar.gz": b"\x1f\x8b\x08\0"})
    assert "is an archive inside the archive" in refusal(gz)


def test_a_highly_compressible_member_is_a_bomb(tmp_path: Path) -> None:
    noise = os.urandom(3 * 2**20)  # keeps the zip as a whole under the ratio
    path = image_zip(tmp_path / "d.zip", extra={"training_data/cat/noise.bin": noise,
                                                "training_data/cat/zeros.png": bytes(2 * 2**20)})
    message = refusal(path, max_ratio=50)
    assert message.startswith("'training_data/cat/zeros.png' expands")
    assert "at most 50 accepted" in message


def test_a_zip_expanding_too_much_as_a_whole_is_refused(tmp_path: Path) -> None:
    path = image_zip(tmp_path / "d.zip", extra={"training_data/cat/zeros.png": bytes(4 * 2**20)})
    assert refusal(path, max_ratio=50).startswith("the zip expands")


def test_too_many_bytes_unpacked_is_refused(tmp_path: Path) -> None:
    path = image_zip(tmp_path / "d.zip")
    assert refusal(path, max_total_bytes=1000).startswith("the zip unpacks to")


def test_too_many_files_is_refused(tmp_path: Path) -> None:
    path = image_zip(tmp_path / "d.zip")
    assert refusal(path, max_files=5) == "the zip holds 12 entries; at most 5 are accepted."


def test_an_encrypted_member_is_named(tmp_path: Path) -> None:
    path = image_zip(tmp_path / "d.zip", extra={"training_data/cat/secret.png": PNG})
    name = b"training_data/cat/secret.png"
    data = bytearray(path.read_bytes())  # zipfile cannot write encrypted members: set the flag by hand
    central = data.rfind(name) - 46
    assert data[central:central + 4] == b"PK\x01\x02"
    data[central + 8] |= 0x1
    with zipfile.ZipFile(path) as zf:
        data[zf.getinfo(name.decode()).header_offset + 6] |= 0x1
    path.write_bytes(bytes(data))
    assert refusal(path).startswith("'training_data/cat/secret.png' is encrypted")


def test_a_duplicate_member_is_named(tmp_path: Path) -> None:
    path = image_zip(tmp_path / "d.zip")
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "a") as zf:
        zf.writestr("training_data/cat/0.png", PNG)
    assert refusal(path) == "'training_data/cat/0.png' appears twice in the zip."


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_bytes(b"name,age\nbob,3\n")
    assert refusal(tmp_path / "x.zip").startswith("the file is not a zip archive")


def test_a_truncated_zip_is_refused(tmp_path: Path) -> None:
    data = image_zip(tmp_path / "d.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    assert refusal(tmp_path / "cut.zip").startswith("the file is not a zip archive, or a corrupt one")


def test_a_member_with_a_bad_checksum_is_named(tmp_path: Path) -> None:
    path = image_zip(tmp_path / "d.zip", per_class=(1, 1), classes=("c",))
    with zipfile.ZipFile(path) as zf:
        victim = zf.getinfo("training_data/c/0.png")
    data = bytearray(path.read_bytes())
    start = victim.header_offset + 30 + len(victim.filename) + 20
    data[start] ^= 0xFF
    path.write_bytes(bytes(data))
    message = refusal(path)
    assert message.startswith("'training_data/c/0.png' ")


# --- pages, thumbnails, extraction ---------------------------------------------------------------


def test_class_members_pages_sorted_paths(tmp_path: Path) -> None:
    path = image_zip(tmp_path / "d.zip", per_class=(12, 2), top="t")

    total, page = class_members(path, "training_data", "cat", 2, 3)

    assert total == 12
    assert page == ["t/training_data/cat/10.png", "t/training_data/cat/11.png", "t/training_data/cat/2.png"]
    assert class_members(path, "validation_data", "dog", 0, 50) == (2, ["t/validation_data/dog/0.png",
                                                                         "t/validation_data/dog/1.png"])
    assert class_members(path, "training_data", "zebra", 0, 5) == (0, [])
    with pytest.raises(ValueError):
        class_members(path, "test_data", "cat", 0, 5)


def test_thumbnail_is_a_small_jpeg(tmp_path: Path) -> None:
    path = image_zip(tmp_path / "d.zip", size=(300, 200), mode="RGBA")

    data = thumbnail(path, "training_data/cat/1.png", size=128)

    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG"
        assert img.size == (128, 85)


@pytest.mark.parametrize("member", ["training_data/cat/nope.png", "__MACOSX/x.png", "training_data/cat/"])
def test_thumbnail_refuses_what_is_not_an_image_of_the_dataset(tmp_path: Path, member: str) -> None:
    path = image_zip(tmp_path / "d.zip", extra={"__MACOSX/x.png": PNG, "training_data/cat/": b""})
    with pytest.raises(DatasetInvalid, match="is not one of the dataset's images"):
        thumbnail(path, member)


def test_extract_writes_only_the_images_without_the_top_folder(tmp_path: Path) -> None:
    path = image_zip(tmp_path / "d.zip", top="mydata", extra={"mydata/training_data/cat/.DS_Store": b"x",
                                                              "__MACOSX/mydata/._a": b"y"})
    dest = tmp_path / "out"

    assert extract_images(path, dest) == dest

    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == [f"training_data/{c}/{i}.png" for c in ("cat", "dog") for i in range(4)] + \
                    [f"validation_data/{c}/{i}.png" for c in ("cat", "dog") for i in range(2)]
    assert (dest / "training_data/cat/0.png").read_bytes() == zipfile.ZipFile(path).read(
        "mydata/training_data/cat/0.png")


def test_extract_refuses_a_bad_zip_before_writing_anything(tmp_path: Path) -> None:
    path = image_zip(tmp_path / "d.zip", extra={"../escape.png": PNG})
    with pytest.raises(DatasetInvalid, match="climbs out"):
        extract_images(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "escape.png").exists()


def test_extract_never_writes_through_an_existing_link(tmp_path: Path) -> None:
    path = image_zip(tmp_path / "d.zip")
    dest = tmp_path / "out"
    (dest / "training_data" / "cat").mkdir(parents=True)
    outside = tmp_path / "victim.txt"
    outside.write_text("keep me")
    (dest / "training_data" / "cat" / "0.png").symlink_to(outside)

    with pytest.raises(DatasetInvalid, match="0.png"):
        extract_images(path, dest)
    assert outside.read_text() == "keep me"
