"""The WebML pages of the web client in Chromium: datasets, the model editor, training.

Against the real webhook of ``secured`` (its datasets live in this module's own data dir): a CSV
uploaded through the page's file input with its progress bar, an images zip dropped on the page,
a refused file, and a network designed, checked and shaped in the editor.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.broker_auth.conftest import Login, Secured
from tests.datasets.generate import image_zip, sample_csv
from tests.web.conftest import Page

TOUCH_SIZED = """[...document.querySelectorAll('button, input, select, .tabs a')]
    .filter((el) => el.offsetParent !== null && el.type !== 'file' && !el.classList.contains('file-hidden'))
    .every((el) => el.getBoundingClientRect().height >= 44)"""
"""Every visible control is at least 44 px tall."""


@pytest.fixture(scope="module", autouse=True)
def own_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The webhook of ``secured`` keeps dataset files under the data dir's ``artifacts/``: this module's own."""
    before = os.environ.get("FITWIRE_DATA_DIR")
    os.environ["FITWIRE_DATA_DIR"] = str(tmp_path_factory.mktemp("web-pages-data"))
    yield
    if before is None:
        os.environ.pop("FITWIRE_DATA_DIR", None)
    else:
        os.environ["FITWIRE_DATA_DIR"] = before


def _fits_the_phone(page: Any) -> None:
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
    assert page.evaluate(TOUCH_SIZED)


def _until(page: Any, script: str, arg: Any = None, timeout: float = 20) -> None:
    """Polls ``script`` in the page until it is true (wait_for_function would eval, which the page's policy forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(script, arg):
        assert time.monotonic() < deadline, f"never true: {script}"
        page.wait_for_timeout(100)


def _upload(secured: Secured, login: Login, path: Path, name: str) -> dict[str, Any]:
    answer = secured.web.api("POST", f"/api/v1/datasets?name={name}", login.token, data=path.read_bytes(),
                             headers={"Content-Type": "application/octet-stream"})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_a_csv_uploads_with_its_progress_then_shows_its_columns_and_rows(
    pages: Callable[..., Page], secured: Secured, tmp_path: Path
) -> None:
    tab = pages(secured.alice)
    page = tab.page
    page.get_by_role("link", name="Datasets").click()
    page.get_by_role("heading", name="Upload a dataset").wait_for()
    # A slow uplink (about 300 KB/s), so the bar is seen between empty and full.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 20, "downloadThroughput": -1,
                                                  "uploadThroughput": 300_000})
    page.evaluate("""() => { window.seen = []; new MutationObserver(() => window.seen.push(
        Number(document.querySelector('#upload-progress').getAttribute('aria-valuenow')))).observe(
        document.querySelector('#upload-progress'), {attributes: true}); }""")
    csv = sample_csv(tmp_path / "people.csv", rows=20_000)
    page.locator("#f-dataset").set_input_files(str(csv))
    expect(page.locator("#f-dataset-name")).to_have_value("people")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-progress")).to_be_visible()
    expect(page.locator("#upload-status")).to_contain_text("Uploading:")
    tab.shot("dataset-upload-phone")
    expect(page.locator("#upload-status")).to_contain_text("Uploaded people", timeout=30_000)
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": -1})
    seen = page.evaluate("window.seen")
    assert any(0 < pct < 100 for pct in seen), seen
    assert seen[-1] == 100
    row = page.locator("#datasets li", has_text="people")
    expect(row).to_contain_text("20000 rows × 5 columns")
    row.get_by_role("link", name="people").click()
    columns = page.locator("#columns")
    expect(columns.locator("tr", has_text="city")).to_contain_text("Label")
    expect(columns.locator("tr", has_text="city")).to_contain_text("4")
    expect(columns.locator("tr", has_text="name")).to_contain_text("blocked")
    expect(columns.locator("tr", has_text="height")).to_contain_text("Float")
    expect(page.locator("#rows-range")).to_have_text("Rows 1–20 of 20000")
    expect(page.locator("#rows tbody tr").first).to_contain_text("Person 0")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#rows-range")).to_have_text("Rows 21–40 of 20000")
    expect(page.locator("#rows tbody tr").first).to_contain_text("Person 20")
    _fits_the_phone(page)
    tab.shot("dataset-csv-phone")
    assert tab.errors == []


def test_an_images_zip_dropped_on_the_page_shows_its_classes_with_thumbnails(
    pages: Callable[..., Page], secured: Secured, tmp_path: Path
) -> None:
    tab = pages(secured.bob, phone=False)
    page = tab.page
    page.get_by_role("link", name="Datasets").click()
    zipped = image_zip(tmp_path / "pets.zip", classes=("cat", "dog", "fox"), per_class=(6, 2), size=(32, 24))
    page.evaluate("""([data, name]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, {type: 'application/zip'}));
        document.querySelector('#dropzone').dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true}));
    }""", [base64.b64encode(zipped.read_bytes()).decode(), zipped.name])
    expect(page.locator("#f-dataset-name")).to_have_value("pets")
    expect(page.locator("#f-dataset-format")).to_have_value("images")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_contain_text("3 classes · 24 images")
    page.get_by_role("link", name="Inspect it").click()
    classes = page.locator("#classes")
    expect(classes.locator("[data-class]")).to_have_count(3)
    cat = classes.locator("[data-class='cat']")
    expect(cat).to_contain_text("6 training · 2 validation")
    for name in ("cat", "dog", "fox"):  # each thumbnail fetched with the token, shown as a data: URL
        _until(page, "(name) => { const img = document.querySelector(`[data-class='${name}'] img`);"
                     " return Boolean(img && img.src.startsWith('data:image/jpeg') && img.naturalWidth > 0); }", name)
    cat.click()
    expect(page.locator("#class-images figure")).to_have_count(6)
    _until(page, "() => [...document.querySelectorAll('#class-images img')].every((i) => i.naturalWidth > 0)")
    page.locator("#class-images select").select_option("validation")
    expect(page.locator("#class-images figure")).to_have_count(2)
    tab.shot("dataset-images-desktop")
    assert tab.errors == []


def test_a_refused_file_shows_the_servers_sentence(pages: Callable[..., Page], secured: Secured, tmp_path: Path) -> None:
    tab = pages(secured.alice)
    page = tab.page
    page.get_by_role("link", name="Datasets").click()
    bad = tmp_path / "broken.csv"
    bad.write_bytes(b"a,b\n1,\x00\x01\x02\n")
    page.locator("#f-dataset").set_input_files(str(bad))
    page.get_by_role("button", name="Upload").click()
    alert = page.locator("#upload-error")
    expect(alert).to_contain_text("Not a usable csv dataset:")
    expect(alert).to_contain_text("NUL byte")
    expect(page.locator("#datasets li", has_text="broken")).to_have_count(0)
    _fits_the_phone(page)
    tab.shot("dataset-refused-phone")
    assert tab.errors == []


def test_the_editor_shows_shapes_places_errors_and_shapes_the_model_to_a_csv_dataset(
    pages: Callable[..., Page], secured: Secured, tmp_path: Path
) -> None:
    login = secured.alice
    dataset = _upload(secured, login, sample_csv(tmp_path / "survey.csv", rows=120), "survey")
    key = secured.web.create_model(login.token, "designed")
    tab = pages(login)
    page = tab.page
    page.goto(f"{secured.web.url}/#/design/{key}")
    expect(page.locator("#state-badge")).to_have_text("no spec")
    page.locator("#f-format").select_option("csv")
    page.locator("#f-size").fill("8")
    shapes = page.locator("#shapes tbody tr")
    expect(shapes).to_have_count(2)
    expect(shapes.nth(0).locator(".shape")).to_have_text("16")
    expect(shapes.nth(1).locator(".shape")).to_have_text("?")  # the dataset's output size, open while dynamic
    page.locator("#l0-units").fill("32")
    expect(shapes.nth(0).locator(".shape")).to_have_text("32")
    expect(shapes.nth(0)).to_contain_text("288")  # 8 × 32 + 32 weights
    # A value out of range: the sentence goes to the layer and the field it names.
    page.locator("#l0-units").fill("0")
    layer0 = page.locator("li.layer[data-index='0']")
    expect(layer0.locator(".layer-error")).to_contain_text("Layer 0 (units): Input should be greater than or equal to 1")
    expect(page.locator("#l0-units")).to_have_attribute("aria-invalid", "true")
    page.locator("#l0-units").fill("32")
    expect(layer0.locator(".layer-error")).to_be_hidden()
    # A layer that cannot follow: Conv2D after a vector.
    page.locator("#f-add-type").select_option("Conv2D")
    page.get_by_role("button", name="Add layer").click()
    layer2 = page.locator("li.layer[data-index='2']")
    expect(layer2.locator(".layer-error")).to_contain_text("Layer 2 (type): Conv2D needs an input of height")
    expect(shapes.nth(2)).to_have_class("invalid")
    tab.shot("editor-error-phone")
    page.get_by_role("button", name="Move layer 2 up").click()  # reordered: now layer 1 is at fault
    expect(page.locator("li.layer[data-index='1'] .layer-error")).to_contain_text("Layer 1 (type)")
    page.get_by_role("button", name="Remove layer 1").click()
    expect(shapes).to_have_count(2)
    expect(page.locator(".layer-error:visible")).to_have_count(0)
    page.locator("#save-spec").click()
    expect(page.locator("#state-badge")).to_have_text("dynamic")
    _fits_the_phone(page)
    # Shaping: the blocked column cannot be picked; three inputs, one Label output of 4.
    shaping = page.locator("#shaping")
    shaping.locator("#f-shape-dataset").select_option("survey")
    expect(shaping.locator("#f-inputs input[value='name']")).to_be_disabled()
    for column in ("age", "height", "smoker"):
        shaping.locator(f"#f-inputs input[value='{column}']").check()
    shaping.locator("#f-outputs input[value='city']").check()
    shaping.get_by_role("button", name="Shape to this dataset").click()
    expect(page.locator("#state-badge")).to_have_text("shaped")
    expect(page.locator("#f-size")).to_have_value("3")
    expect(page.locator("#f-size")).to_be_disabled()
    expect(shapes.nth(1).locator(".shape")).to_have_text("4")
    expect(page.locator("#model-state")).to_contain_text("inputs age, height, smoker · outputs city")
    _fits_the_phone(page)
    tab.shot("editor-shaped-phone")
    stored = secured.web.api("GET", f"/api/v1/models/{key}", login.token).json()["design"]
    assert stored["state"] == "shaped" and stored["spec"]["size"] == [3] and stored["output_units"] == 4
    assert [layer["layer"].get("units") for layer in stored["spec"]["layers"]] == [32, None]

    # The dataset can't go while the model uses it: the page says why.
    page.goto(f"{secured.web.url}/#/datasets/{dataset['dataset_id']}")
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Delete for good").click()
    expect(page.get_by_role("alert").filter(has_text="is used by the model(s)")).to_be_visible()

    # Training: the form queues a job (no agent runs in this module) and waits for its run.
    page.goto(f"{secured.web.url}/#/train/{key}")
    expect(page.locator("#augmentation")).to_have_count(0)  # a CSV model has no image augmentation
    page.locator("#f-epochs").fill("2")
    page.locator("#f-batch").fill("16")
    page.get_by_role("button", name="Start training").click()
    expect(page.locator("#train-status")).to_contain_text("queued")
    jobs = secured.web.api("GET", "/api/v1/jobs", login.token).json()["jobs"]
    job = next(j for j in jobs if j["spec"]["model_key"] == key)
    assert job["spec"]["epochs"] == 2 and job["spec"]["batch_size"] == 16
    assert job["spec"]["train_spec"]["inputs"] == ["age", "height", "smoker"]
    expect(page.locator("#trained")).to_contain_text("No trained models yet")
    _fits_the_phone(page)
    tab.shot("train-phone")
    assert secured.web.api("POST", f"/api/v1/jobs/{job['job_id']}/cancel", login.token).status_code == 200
    assert tab.errors == []


def test_an_images_model_is_designed_with_its_augmentation_on_the_training_page(
    pages: Callable[..., Page], secured: Secured, tmp_path: Path
) -> None:
    login = secured.bob
    _upload(secured, login, image_zip(tmp_path / "shapes.zip", classes=("a", "b"), per_class=(4, 2)), "shapes")
    key = secured.web.create_model(login.token, "vision")
    tab = pages(login, phone=False)
    page = tab.page
    page.goto(f"{secured.web.url}/#/design/{key}")
    shapes = page.locator("#shapes tbody tr")
    expect(shapes).to_have_count(5)
    expect(shapes.nth(1).locator(".shape")).to_have_text("26 × 26 × 16")
    page.locator("#l1-kernel_size").fill("40")  # larger than the 28 × 28 input
    expect(page.locator("li.layer[data-index='1'] .layer-error")).to_contain_text("Layer 1 (kernel_size)")
    page.locator("#l1-padding").select_option("same")
    expect(shapes.nth(1).locator(".shape")).to_have_text("28 × 28 × 16")
    page.locator("#f-shape-dataset").select_option("shapes")
    page.get_by_role("button", name="Shape to this dataset").click()  # saves the spec first
    expect(page.locator("#state-badge")).to_have_text("shaped")
    expect(shapes.nth(4).locator(".shape")).to_have_text("2")
    page.get_by_role("link", name="Train").click()
    page.locator("#f-epochs").fill("1")
    page.locator("#f-rotation").fill("90")
    page.locator("#f-zoom").fill("0.5")
    page.locator("#f-flip").check()
    page.get_by_role("button", name="Start training").click()
    expect(page.locator("#train-status")).to_contain_text("queued")
    job = next(j for j in secured.web.api("GET", "/api/v1/jobs", login.token).json()["jobs"]
               if j["spec"]["model_key"] == key)
    assert job["spec"]["train_spec"]["augmentation"] == {"shear": 0.0, "zoom": 0.5, "rotation": 90.0,
                                                         "horizontal_flip": True}
    tab.shot("train-images-desktop")
    assert secured.web.api("POST", f"/api/v1/jobs/{job['job_id']}/cancel", login.token).status_code == 200
    page.get_by_role("link", name="Test").click()
    expect(page.get_by_text("No trained model to test yet")).to_be_visible()
    assert tab.errors == []
