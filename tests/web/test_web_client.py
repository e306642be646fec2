"""The web client as its users see it: a phone (390×844, dark) and a desktop (1280×800), in Chromium.

Everything is real: the webhook serving the page, RabbitMQ checking every login with the webhook,
Web STOMP carrying the live data, and Keras fits tracked by the Tracker.
"""

from __future__ import annotations

import os
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


TOUCH_SIZED = """[...document.querySelectorAll('button, input')]
    .filter((el) => el.offsetParent !== null && el.type !== 'file')
    .every((el) => el.getBoundingClientRect().height >= 44)"""
"""Every visible button and field is at least 44 px tall: a finger can hit it."""


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


def test_the_app_is_installable_and_its_policy_lets_it_reach_only_the_broker(
    browser: Any, secured: Secured
) -> None:
    import requests

    page_answer = requests.get(secured.web.url + "/", timeout=10)
    policy = page_answer.headers["Content-Security-Policy"]
    assert f"connect-src 'self' ws://127.0.0.1:{secured.node.stomp_port}" in policy
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    manifest = requests.get(secured.web.url + "/manifest.webmanifest", timeout=10)
    assert manifest.headers["Content-Type"].startswith("application/manifest+json")
    for icon in manifest.json()["icons"]:
        served = requests.get(secured.web.url + icon["src"], timeout=10)
        assert served.status_code == 200 and served.headers["Content-Type"].startswith(icon["type"])
    context = browser.new_context(viewport={"width": 390, "height": 844})  # service workers allowed here
    try:
        page = context.new_page()
        page.goto(secured.web.url + "/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        scope = page.evaluate("navigator.serviceWorker.ready.then((registration) => registration.scope)")
        assert scope == secured.web.url + "/"
    finally:
        context.close()


def test_an_expired_session_goes_back_to_sign_in_with_one_sentence(
    pages: Callable[..., Page], secured: Secured
) -> None:
    page = pages(secured.bob).page
    token = page.evaluate("localStorage.getItem('fitwire.token')")
    assert secured.web.api("POST", "/api/v1/auth/logout", token).status_code == 204  # signed out elsewhere
    page.reload()
    expect(page.get_by_role("alert").filter(has_text="Your session has expired")).to_be_visible()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_an_admins_invitation_link_signs_a_new_user_up(pages: Callable[..., Page], secured: Secured) -> None:
    admin = pages(secured.root).page
    admin.get_by_role("link", name="root", exact=True).click()
    admin.get_by_role("button", name="Create an invitation link").click()
    link = admin.locator("pre.invite-link").inner_text().strip()
    assert "#/signup?invitation=" in link
    page = pages(None).page
    page.goto(link)
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill("carol's long password")
    page.get_by_role("button", name="Create my account").click()
    expect(page.get_by_role("heading", name="Your models")).to_be_visible()
    expect(page.get_by_text("No models yet")).to_be_visible()
    expect(page.locator("#conn")).to_have_text("live")


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
    expect(page.locator("li", has_text="renamed model")).to_have_count(0)  # the list, reloaded after the delete
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
    # (expect, never wait_for_function: its polling evaluates strings, which the page's CSP forbids)
    expect(page.locator("#epoch-progress")).not_to_have_attribute("aria-valuenow", "0")
    first = _value(page, "#epoch-progress"), page.inner_text("#epoch-label")
    page.wait_for_timeout(600)
    assert (_value(page, "#epoch-progress"), page.inner_text("#epoch-label")) != first

    # The network drops: the page says so, reconnects by itself and goes on live.
    page.evaluate("fitwire.app.live.client.forceDisconnect()")
    expect(page.get_by_role("alert").filter(has_text="Can't reach the broker")).to_be_visible()
    expect(page.locator("#conn")).to_have_text("live", timeout=15_000)
    expect(page.locator("#banner")).to_be_hidden()
    before = page.inner_text("#epoch-label")
    expect(page.locator("#epoch-label")).not_to_have_text(before)  # batches flow again

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
    assert page.evaluate(TOUCH_SIZED), "a visible control is smaller than 44 px"
    shot = tab.shot("run-phone")
    if os.environ.get("FITWIRE_UPDATE_SCREENSHOTS"):  # the README's picture, renewed on request only
        shutil.copyfile(shot, DOCS_SCREENSHOT)
    page.set_viewport_size({"width": 360, "height": 740})  # the narrowest phone we promise
    assert _no_horizontal_scroll(page)

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
    # Deleted elsewhere while open: the page says so when the user comes back to it.
    assert secured.web.api("DELETE", f"/api/v1/runs/{fit.run_id}", alice.token).status_code == 204
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    expect(page.get_by_role("alert").filter(has_text="This run does not exist")).to_be_visible()
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


def test_a_job_is_submitted_listed_and_cancelled_from_the_page(
    pages: Callable[..., Page], secured: Secured, tmp_path: Path
) -> None:
    page = pages(secured.bob).page
    page.get_by_role("link", name="Jobs").click()
    bundle = tmp_path / "job_bundle.py"
    bundle.write_text("def build():\n    raise NotImplementedError('never runs: no agent takes it here')\n")
    page.set_input_files("#f-bundle", str(bundle))
    page.get_by_label("Model key").fill(secured.bob.model)
    page.get_by_role("button", name="Submit").click()
    row = page.locator("li[data-job]").first
    expect(row.locator(".status")).to_have_text("queued")
    row.get_by_role("button", name="Cancel").click()
    expect(row.locator(".status")).to_have_text("cancelled")


def test_an_admin_sees_every_training_and_each_nodes_telemetry_live(
    pages: Callable[..., Page], secured: Secured, tmp_path: Path
) -> None:
    from fitwire.agent.telemetry import AGENT_VERSION
    from fitwire.broker.topology import TELEMETRY, telemetry_key
    from fitwire.contract import NodeTelemetry, encode

    tab = pages(secured.root, phone=False)
    page = tab.page
    page.get_by_role("link", name="Admin").click()
    node_id = secured.agent.username.removeprefix("node.")
    node = page.locator(f"li[data-node='{node_id}']")
    expect(node).to_contain_text("gpu-box")
    expect(page.locator("#conn")).to_have_text("live")
    # The agent reports on fitwire.telemetry with its own login; the page shows it as it comes.
    report = NodeTelemetry(node_id=node_id, hostname="box", agent_version=AGENT_VERSION, pools=["default"],
                           cpu_threads=8, cpu_percent=42.5, memory_total_mb=16000, memory_available_mb=9000,
                           disk_free_mb=12345)
    agent = secured.connect(secured.agent)
    try:
        deadline = time.monotonic() + 20
        while "CPU 42.5%" not in node.inner_text():  # until the page's subscription is bound
            assert time.monotonic() < deadline, node.inner_text()
            agent.channel().basic_publish(TELEMETRY.name, telemetry_key(node_id), encode(report))
            page.wait_for_timeout(300)
    finally:
        agent.close()
    expect(node).to_contain_text("disk 12345 MB free")
    expect(page.locator(f"li[data-user='{secured.alice.username}']")).to_be_visible()  # the users list
    expect(page.locator(f"li[data-user='{secured.root.username}']")).to_contain_text("admin")

    fit = start_fit(secured, secured.alice, tmp_path, epochs=1, steps=50, delay=0.01)
    alices = page.locator(f"li[data-key$='.{fit.run_id}']")
    expect(alices).to_contain_text("alice")
    expect(alices.locator(".status")).to_have_text("completed", timeout=60_000)
    fit.join()
    tab.shot("admin-desktop")
    assert tab.errors == []
