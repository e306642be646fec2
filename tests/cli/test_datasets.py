"""`fitwire datasets upload|list|show|download|publish|delete` against a live webhook (real HTTP, streamed)."""

from __future__ import annotations

import json
from pathlib import Path

from fitwire.cli.common import EXIT_ERROR
from tests.cli.conftest import PASSWORD, Cli, User
from tests.datasets.generate import image_zip, sample_csv


def test_upload_show_download_delete_a_csv(cli: Cli, user: User, tmp_path: Path) -> None:
    source = sample_csv(tmp_path / "people.csv", rows=40)
    result = cli("datasets", "upload", str(source), "--name", "people")
    assert result.exit_code == 0, result.output
    assert "40 rows × 5 columns" in cli.drawn and "Label" in cli.drawn

    result = cli("datasets", "show", "people", "--rows", "3")
    assert result.exit_code == 0, result.output
    assert "city" in cli.drawn and "Binary" in cli.drawn and "Oslo" in cli.drawn

    shown = json.loads(cli("datasets", "show", "people", "--json").stdout)
    assert shown["info"]["rows"] == 40 and shown["format"] == "csv"

    target = tmp_path / "copy.csv"
    result = cli("datasets", "download", "people", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == source.read_bytes()

    result = cli("datasets", "delete", "people", "--yes")
    assert result.exit_code == 0, result.output
    assert json.loads(cli("datasets", "list", "--json").stdout)["datasets"] == []


def test_upload_an_images_zip_and_list_it(cli: Cli, user: User, tmp_path: Path) -> None:
    source = image_zip(tmp_path / "pets.zip", classes=("cat", "dog", "eel"), per_class=(2, 1))
    result = cli("datasets", "upload", str(source))  # the name from the file, the format from .zip
    assert result.exit_code == 0, result.output
    assert "9 images, 3 classes" in cli.drawn and "eel" in cli.drawn
    result = cli("datasets", "list")
    assert result.exit_code == 0 and "pets" in cli.drawn and "images" in cli.drawn


def test_a_bad_csv_is_one_sentence_naming_the_row(cli: Cli, user: User, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3\n")
    result = cli("datasets", "upload", str(bad))
    assert result.exit_code == EXIT_ERROR
    assert "row 3" in result.stderr and "Traceback" not in result.output
    assert json.loads(cli("datasets", "list", "--json").stdout)["datasets"] == []


def test_publish_needs_an_admin_and_shows_the_dataset_to_others(cli: Cli, user: User, tmp_path: Path) -> None:
    cli("datasets", "upload", str(sample_csv(tmp_path / "shared.csv", rows=5)))
    result = cli("datasets", "publish", "shared")
    assert result.exit_code == EXIT_ERROR and "admin" in result.stderr
    admin = user.webhook.create_user("boss", PASSWORD, admin=True)
    result = cli("datasets", "publish", "shared", "--token", admin)
    assert result.exit_code == 0, result.output
    other = user.webhook.create_user("grace", PASSWORD)
    listed = json.loads(cli("datasets", "list", "--json", "--token", other).stdout)["datasets"]
    assert [(d["name"], d["public"]) for d in listed] == [("shared", True)]
    result = cli("datasets", "delete", "shared", "--yes", "--token", other)
    assert result.exit_code == EXIT_ERROR and "only they or an admin" in result.stderr
