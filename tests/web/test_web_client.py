"""The web client as its users see it: a phone (390×844, dark) and a desktop (1280×800), in Chromium.

Everything is real: the webhook serving the page, RabbitMQ checking every login with the webhook,
Web STOMP carrying the live data, and Keras fits tracked by the Tracker.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from fitwire.broker.topology import PROGRESS
from tests.broker_auth.conftest import Secured
from tests.web.conftest import PASSWORD, Page, sign_in, start_fit

DOCS_SCREENSHOT = Path(__file__).parents[2] / "docs" / "img" / "run-phone.png"


def _value(page: Any, selector: str) -> int:
    return int(page.get_attribute(selector, "aria-valuenow") or 0)


def _no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth"))


def test_sign_in_says_what_went_wrong_then_lets_the_user_in(pages: Callable[..., Page], secured: Secured) -> None:
    tab = pages(None)
    page = tab.page
    sign_in(page, "alice", "not her password")
    expect(page.get_by_role("alert").filter(has_text="Wrong username or password.")).to_be_visible()
    sign_in(page, "alice", PASSWORD)
    page.get_by_role("heading", name="Your models").wait_for()
    expect(page.get_by_text("alice's model")).to_be_visible()
    assert _no_horizontal_scroll(page)
    assert tab.errors == []


def test_models_are_created_with_their_key_and_snippet_renamed_and_deleted(
    pages: Callable[..., Page], secured: Secured
) -> None:
    page = pages(secured.bob).page
    page.get_by_label("New model's name").fill("phone model")
    page.get_by_role("button", name="Create model").click()
    key = page.locator("pre.model-key").inner_text().strip()
    assert f'Tracker("{key}")' in page.locator("pre.snippet").inner_text()
    row = page.locator("li", has_text=key)
    row.get_by_role("button", name="Rename").click()
    page.get_by_label("New name for phone model").fill("renamed model")
    page.get_by_role("button", name="Save").click()
    page.locator("li", has_text="renamed model").wait_for()
    page.locator("li", has_text=key).get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Delete for good").click()
    page.locator("li", has_text=key).wait_for(state="detached")
    assert secured.web.api("GET", f"/api/v1/models/{key}", secured.bob.token).status_code == 404


def test_a_live_run_advances_takes_a_new_learning_rate_and_stops_from_the_phone(
    pages: Callable[..., Page], secured: Secured, tmp_path: Path
) -> None:
    alice = secured.alice
    fit = start_fit(secured, alice, tmp_path, epochs=3, steps=200, delay=0.02)
    tab = pages(alice)
    page = tab.page
    page.goto(f"{secured.web.url}/#/runs/{fit.run_id}")
    page.get_by_text("live", exact=True).wait_for()
    # The bars advance at batch rate, straight from the broker.
    page.wait_for_function("Number(document.querySelector('#epoch-progress').getAttribute('aria-valuenow')) > 0")
    first = _value(page, "#epoch-progress"), page.inner_text("#epoch-label")
    page.wait_for_timeout(600)
    assert (_value(page, "#epoch-progress"), page.inner_text("#epoch-label")) != first

    page.get_by_label("new learning rate").fill("0.005")
    page.get_by_role("button", name="Set learning rate").click()
    lr = page.locator("#signal-log li[data-action=set_lr]")
    lr.locator(".ack", has_text="acknowledged after").wait_for()

    page.get_by_role("button", name="Stop training").click()
    page.get_by_role("button", name="Yes, stop it").click()
    stop = page.locator("#signal-log li[data-action=stop]")
    stop.locator(".ack", has_text="acknowledged after").wait_for()
    stop.locator(".halt", has_text="halted").wait_for()
    page.locator("#ended", has_text="Training stopped").wait_for()
    expect(page.locator(".status.stopped").first).to_be_visible()
    assert _no_horizontal_scroll(page)
    DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tab.shot("run-phone"), DOCS_SCREENSHOT)

    fit.join()
    assert fit.epochs_done and fit.epochs_done[0] < 3  # the STOP halted it early
    stored = secured.web.api("GET", f"/api/v1/runs/{fit.run_id}", alice.token).json()
    assert stored["status"] == "stopped"
    assert tab.errors == []


def test_a_desktop_joining_a_finished_run_draws_its_stored_epochs_and_charts(
    pages: Callable[..., Page], secured: Secured, tmp_path: Path
) -> None:
    alice = secured.alice
    fit = start_fit(secured, alice, tmp_path, epochs=2, steps=20, delay=0.0)
    fit.join()
    tab = pages(alice, phone=False)
    page = tab.page
    page.goto(f"{secured.web.url}/#/models/{alice.model}")
    page.locator("li", has_text="completed").first.wait_for()
    page.goto(f"{secured.web.url}/#/runs/{fit.run_id}")
    page.locator("#ended", has_text="Training completed").wait_for()
    expect(page.locator("#epochs tbody tr")).to_have_count(2)
    expect(page.locator(".chart[data-metric=loss] canvas")).to_have_count(1)
    tab.shot("run-desktop")
    assert tab.errors == []


def test_bob_never_sees_alices_runs_and_the_broker_refuses_his_peek(
    pages: Callable[..., Page], secured: Secured, tmp_path: Path
) -> None:
    alice, bob = secured.alice, secured.bob
    fit = start_fit(secured, alice, tmp_path, epochs=1, steps=20, delay=0.0)
    tab = pages(bob)
    page = tab.page
    assert page.get_by_text("alice's model").count() == 0
    page.goto(f"{secured.web.url}/#/runs/{fit.run_id}")
    page.get_by_role("alert").filter(has_text="This run does not exist").wait_for()
    page.goto(f"{secured.web.url}/#/")
    page.get_by_text("live", exact=True).wait_for()
    peek = page.evaluate("d => fitwire.probe(d)", f"/exchange/{PROGRESS.name}/alice.#")
    assert peek.startswith("refused"), peek
    own = page.evaluate("d => fitwire.probe(d)", f"/exchange/{PROGRESS.name}/bob.#")
    assert own == "bound"
    fit.join()
    time.sleep(0.2)
    assert page.get_by_text(fit.run_id).count() == 0
