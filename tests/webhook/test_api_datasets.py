"""Dataset routes: upload and inspection, bad input refused with nothing stored, names, tenancy.

Route level (Flask's client over a real SQLite store and real files); the live server and
the CLI are exercised in tests/cli/test_datasets.py, the agent's fetch in tests/agent.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fitwire.webhook import create_app
from fitwire.webhook.store import Store
from tests.datasets.generate import image_zip, sample_csv, write_csv
from tests.webhook.conftest import error_of

Login = Callable[..., dict[str, str]]


@pytest.fixture
def app(sqlite_store: Store, tmp_path: Path) -> Flask:
    return create_app({"STORE": sqlite_store, "AMQP_URL": "amqp://u:p@broker.example:5672/",
                       "DECLARE_TOPOLOGY": False, "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
                       "DATASET_MAX_BYTES": 4 * 1024 * 1024, "DATASET_LABEL_LIMIT": 10})


def upload(client: FlaskClient, auth: dict[str, str], data: bytes, name: str, fmt: str | None = None):  # type: ignore[no-untyped-def]
    query = f"?name={name}" + (f"&format={fmt}" if fmt else "")
    return client.post(f"/api/v1/datasets{query}", data=data, headers={**auth, "Content-Type": "application/octet-stream"})


def stored_files(tmp_path: Path) -> list[Path]:
    root = tmp_path / "artifacts"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_csv_upload_is_inspected_and_served(client: FlaskClient, login: Login, tmp_path: Path) -> None:
    alice = login("alice")
    data = sample_csv(tmp_path / "people.csv", rows=30).read_bytes()
    response = upload(client, alice, data, "people")
    assert response.status_code == 201, response.json
    body = response.json
    assert body["format"] == "csv" and body["size"] == len(data) and body["owner"] == "alice"
    assert body["sha256"] == hashlib.sha256(data).hexdigest() and body["public"] is False
    columns = {c["name"]: c for c in body["info"]["columns"]}
    assert body["info"]["rows"] == 30
    assert [columns[n]["type"] for n in ("age", "height", "smoker", "city", "name")] == \
        ["Int", "Float", "Binary", "Label", "Label"]
    assert columns["city"]["one_hot_width"] == 4 and not columns["city"]["blocked"]
    assert columns["name"]["blocked"]  # 30 distinct names over the limit of 10
    dataset_id = body["dataset_id"]
    assert client.get(f"/api/v1/datasets/{dataset_id}", headers=alice).json == body
    page = client.get(f"/api/v1/datasets/{dataset_id}/rows?offset=28&limit=5", headers=alice).json
    assert page["header"][0] == "age" and len(page["rows"]) == 2 and page["total"] == 30
    download = client.get(f"/api/v1/datasets/{dataset_id}/file", headers=alice)
    assert download.status_code == 200 and download.data == data
    assert "people.csv" in download.headers["Content-Disposition"]
    assert [d["name"] for d in client.get("/api/v1/datasets", headers=alice).json["datasets"]] == ["people"]


def test_images_upload_classes_pages_and_thumbnails(client: FlaskClient, login: Login, tmp_path: Path) -> None:
    alice = login("alice")
    data = image_zip(tmp_path / "pets.zip", classes=("cat", "dog"), per_class=(3, 2), size=(20, 10)).read_bytes()
    response = upload(client, alice, data, "pets")  # the format from the content: a zip
    assert response.status_code == 201, response.json
    info = response.json["info"]
    assert response.json["format"] == "images"
    assert [(c["name"], c["training"], c["validation"]) for c in info["classes"]] == [("cat", 3, 2), ("dog", 3, 2)]
    assert info["sizes"] == [[20, 10]] and info["channels"] == [3] and info["images"] == 10
    dataset_id = response.json["dataset_id"]
    page = client.get(f"/api/v1/datasets/{dataset_id}/images?class=dog&split=validation", headers=alice).json
    assert page["total"] == 2 and all(m.startswith("validation_data/dog/") for m in page["images"])
    thumb = client.get(f"/api/v1/datasets/{dataset_id}/thumbnail?class=cat&size=64", headers=alice)
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg" and thumb.data[:2] == b"\xff\xd8"
    member = client.get(f"/api/v1/datasets/{dataset_id}/thumbnail?member={page['images'][0]}", headers=alice)
    assert member.status_code == 200
    assert error_of(client.get(f"/api/v1/datasets/{dataset_id}/images?class=cow", headers=alice)) == \
        (404, "RESOURCE_DOES_NOT_EXIST")
    assert error_of(client.get(f"/api/v1/datasets/{dataset_id}/rows", headers=alice))[0] == 400


def _bad_zip(tmp_path: Path) -> bytes:
    return image_zip(tmp_path / "bad.zip", skip_validation={"dog"}).read_bytes()


def _non_image(tmp_path: Path) -> bytes:
    return image_zip(tmp_path / "text.zip", extra={"training_data/cat/notes.txt": b"hello"}).read_bytes()


def _traversal(tmp_path: Path) -> bytes:
    return image_zip(tmp_path / "evil.zip", extra={"training_data/cat/../../../etc/x.png": b"x"}).read_bytes()


BAD_INPUT: list[tuple[str, Callable[[Path], bytes], str | None, str]] = [
    ("empty", lambda p: b"", "csv", "empty"),
    ("ragged", lambda p: b"a,b,c\n1,2,3\n4,5\n", "csv", "row 3"),
    ("header only", lambda p: b"a,b\n", "csv", "no data rows"),
    ("binary junk", lambda p: bytes(range(256)) * 10, "csv", "offset"),
    ("latin-1", lambda p: write_csv(p / "l1.csv", ["name"], [["Zoë"]], encoding="latin-1").read_bytes(), "csv", "UTF-8"),
    ("missing class", _bad_zip, None, "dog"),
    ("non-image", _non_image, None, "notes.txt"),
    ("path traversal", _traversal, None, ".."),
    ("not a zip", lambda p: b"PK\x03\x04 this is not really a zip", None, "zip"),
]


@pytest.mark.parametrize(("data", "fmt", "named"), [case[1:] for case in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_a_400_naming_the_fault_and_nothing_is_stored(
        client: FlaskClient, login: Login, tmp_path: Path, data: Callable[[Path], bytes], fmt: str | None,
        named: str) -> None:
    alice = login("alice")
    good = upload(client, alice, b"x,y\n1,2\n", "kept")
    assert good.status_code == 201
    before = stored_files(tmp_path)
    response = upload(client, alice, data(tmp_path), "broken", fmt)
    assert error_of(response) == (400, "INVALID_REQUEST")
    assert named.lower() in response.json["error"]["message"].lower(), response.json
    assert stored_files(tmp_path) == before  # no staging file left, nothing new stored
    names = [d["name"] for d in client.get("/api/v1/datasets", headers=alice).json["datasets"]]
    assert names == ["kept"]
    assert client.get(f"/api/v1/datasets/{good.json['dataset_id']}/file", headers=alice).data == b"x,y\n1,2\n"


def test_oversized_upload_is_a_413_naming_the_limit(client: FlaskClient, login: Login, tmp_path: Path) -> None:
    alice = login("alice")
    rows = b"".join(b"%d,%d\n" % (i, i * 2) for i in range(600_000))  # ~7 MB over the 4 MiB limit
    response = upload(client, alice, b"a,b\n" + rows, "huge")
    assert error_of(response)[0] == 413 and "4 MiB" in response.json["error"]["message"]
    assert stored_files(tmp_path) == []


def test_names_follow_the_rules(client: FlaskClient, login: Login) -> None:
    alice, bob, admin = login("alice"), login("bob"), login("root", admin=True)
    for bad in ("", "has space", "../x", "-lead", "x" * 65, "é"):
        response = upload(client, alice, b"a\n1\n", bad)
        assert error_of(response) == (400, "INVALID_REQUEST"), bad
    first = upload(client, alice, b"a\n1\n", "iris")
    assert first.status_code == 201
    assert error_of(upload(client, alice, b"a\n2\n", "iris")) == (409, "RESOURCE_ALREADY_EXISTS")
    assert upload(client, bob, b"a\n3\n", "iris").status_code == 201  # private names may repeat
    # publishing alice's would make a public name equal to bob's private one
    refused = client.patch(f"/api/v1/datasets/{first.json['dataset_id']}", json={"public": True}, headers=admin)
    assert error_of(refused) == (409, "RESOURCE_ALREADY_EXISTS")
    other = upload(client, alice, b"a\n4\n", "setosa").json
    published = client.patch(f"/api/v1/datasets/{other['dataset_id']}", json={"public": True}, headers=admin)
    assert published.status_code == 200 and published.json["public"] is True
    assert error_of(upload(client, bob, b"a\n5\n", "setosa")) == (409, "RESOURCE_ALREADY_EXISTS")
    assert error_of(client.patch(f"/api/v1/datasets/{other['dataset_id']}", json={"public": False},
                                 headers=alice)) == (403, "PERMISSION_DENIED")


def test_another_user_sees_only_public_datasets_and_changes_none(client: FlaskClient, login: Login) -> None:
    alice, bob, admin = login("alice"), login("bob"), login("root", admin=True)
    mine = upload(client, alice, b"a,b\n1,2\n", "private-one").json["dataset_id"]
    shared = upload(client, alice, b"a,b\n3,4\n", "shared-one").json["dataset_id"]
    client.patch(f"/api/v1/datasets/{shared}", json={"public": True}, headers=admin)
    for path in ("", "/file", "/rows"):
        assert error_of(client.get(f"/api/v1/datasets/{mine}{path}", headers=bob)) == (404, "RESOURCE_DOES_NOT_EXIST")
        assert client.get(f"/api/v1/datasets/{shared}{path}", headers=bob).status_code == 200
    assert [d["name"] for d in client.get("/api/v1/datasets", headers=bob).json["datasets"]] == ["shared-one"]
    assert error_of(client.get("/api/v1/datasets?all=true", headers=bob)) == (403, "PERMISSION_DENIED")
    assert len(client.get("/api/v1/datasets?all=true", headers=admin).json["datasets"]) == 2
    assert error_of(client.delete(f"/api/v1/datasets/{mine}", headers=bob))[0] == 404
    assert error_of(client.delete(f"/api/v1/datasets/{shared}", headers=bob)) == (403, "PERMISSION_DENIED")
    assert client.get(f"/api/v1/datasets/{mine}/file", headers=admin).data == b"a,b\n1,2\n"
    assert error_of(client.get(f"/api/v1/datasets/{mine}")) == (401, "UNAUTHENTICATED")


def test_same_file_stored_once_and_removed_with_its_last_dataset(
        client: FlaskClient, login: Login, tmp_path: Path) -> None:
    alice, bob = login("alice"), login("bob")
    data = b"a,b\n1,2\n3,4\n"
    one = upload(client, alice, data, "one").json["dataset_id"]
    two = upload(client, bob, data, "two").json["dataset_id"]
    assert len(stored_files(tmp_path)) == 1
    assert client.delete(f"/api/v1/datasets/{one}", headers=alice).status_code == 204
    assert client.get(f"/api/v1/datasets/{two}/file", headers=bob).data == data
    assert client.delete(f"/api/v1/datasets/{two}", headers=bob).status_code == 204
    assert stored_files(tmp_path) == []


def test_a_zip_bomb_member_is_refused(client: FlaskClient, login: Login, tmp_path: Path) -> None:
    alice = login("alice")
    path = image_zip(tmp_path / "bomb.zip")
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("training_data/cat/huge.png", b"\0" * (3 * 1024 * 1024))  # compresses ~1000:1
    response = upload(client, alice, path.read_bytes(), "bomb")
    assert error_of(response) == (400, "INVALID_REQUEST") and "zip bomb" in response.json["error"]["message"]


def test_format_parameter_is_checked(client: FlaskClient, login: Login) -> None:
    alice = login("alice")
    response = upload(client, alice, b"a\n1\n", "x", "parquet")
    assert error_of(response) == (400, "INVALID_REQUEST") and "format" in response.json["error"]["message"]
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("a.csv", "a\n1\n")
    assert error_of(upload(client, alice, zipped.getvalue(), "y", "csv"))[0] == 400
