"""The web client in a real browser against the real webhook, the auth-configured broker and real fits.

* ``secured`` — the private RabbitMQ node whose logins the webhook checks, with Web STOMP
  (``tests/broker_auth/conftest.py``; one per module). Users ``alice`` and ``bob`` each own a model.
* ``browser`` — headless system Chromium driven by Playwright (its own download is not used);
  missing, it skips, and fails under ``CI=true``.
* ``phone(login)`` / ``desktop(login)`` — a page at 390×844 (touch) or 1280×800, signed in as ``login``
  through the sign-in form, as a user would.
* ``start_fit(login, …)`` — a real Keras fit with the Tracker on a thread, paced so the page can act.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fitwire.contract import new_id
from tests.broker_auth import conftest as broker_auth
from tests.broker_auth.conftest import Login, Secured
from tests.fixtures.services import service_missing

secured = broker_auth.secured
"""The broker-auth tests' fixture itself (a private node + webhook per module), not a copy."""

SCREENSHOTS = Path(__file__).parent / "screenshots"
PASSWORD = "correct horse battery"
"""What ``secured`` gives every user."""
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def chromium_executable() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = chromium_executable()
    if executable is None:
        service_missing("chromium (the browser; `make test` installs Debian's)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("playwright (the Python package)")
        return
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


@dataclass
class Page:
    """A signed-in page and what it logged (console errors: CSP violations, exceptions)."""

    page: Any
    errors: list[str] = field(default_factory=list)

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path


def open_page(browser: Any, secured: Secured, viewport: dict[str, int], login: Login | None,
              *, touch: bool) -> Page:
    context = browser.new_context(viewport=viewport, has_touch=touch, is_mobile=touch,
                                  device_scale_factor=2 if touch else 1, color_scheme="dark" if touch else "light",
                                  service_workers="block")
    page = Page(context.new_page())
    page.page.set_default_timeout(20_000)
    # Script errors and CSP violations; an HTTP error status the page handled (a wrong password's
    # 401) is logged by Chromium as "Failed to load resource" and is not one.
    page.page.on("console", lambda m: page.errors.append(m.text)
                 if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.page.goto(secured.web.url + "/")
    if login is not None:
        sign_in(page.page, login.username, PASSWORD)
        page.page.get_by_role("heading", name="Your models").wait_for()
    return page


def sign_in(page: Any, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def pages(browser: Any, secured: Secured) -> Iterator[Callable[..., Page]]:
    """``pages(login, phone=True)``: a fresh browser context signed in as ``login``; closed after the test."""
    opened: list[Page] = []

    def make(login: Login | None, phone: bool = True) -> Page:
        page = open_page(browser, secured, PHONE if phone else DESKTOP, login, touch=phone)
        opened.append(page)
        return page

    yield make
    for page in opened:
        page.page.context.close()


@dataclass
class Fit:
    """A real Keras fit with the Tracker, on a thread of this process."""

    run_id: str
    thread: threading.Thread
    epochs_done: list[int] = field(default_factory=list)
    error: list[BaseException] = field(default_factory=list)

    def join(self, timeout: float = 120) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the fit did not end"
        assert not self.error, self.error


def start_fit(secured: Secured, login: Login, tmp_path: Path, *, epochs: int = 3, steps: int = 200,
              delay: float = 0.01) -> Fit:
    """A 2-layer MLP fit of ``epochs`` × ``steps`` batches, ``delay`` s per batch, tracked as ``login``.

    The Tracker uses only what the webhook announces to ``login`` (``GET /api/v1/session``); the
    call returns once the webhook has stored the run, so a page can open it at once.
    """
    import keras

    from fitwire.callback import Tracker
    from fitwire.settings import Settings
    from tests.callback.helpers import tiny_data, tiny_model

    class Paced(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            time.sleep(delay)

    settings = Settings.from_env(environ={}, data_dir=tmp_path / f"fit-{login.username}",
                                 config_dir=tmp_path / "config", outbox_wait=10.0)
    run_id = new_id()
    tracker = Tracker(login.model, token=login.token, webhook_url=secured.web.url, settings=settings, run_id=run_id)
    fit = Fit(run_id, threading.Thread())

    def train() -> None:
        try:
            x, y = tiny_data(steps * 4)
            history = tiny_model().fit(x, y, batch_size=4, epochs=epochs, validation_split=0.0,
                                       validation_data=tiny_data(32, seed=1), verbose=0,
                                       callbacks=[tracker, Paced()])
            fit.epochs_done.append(len(history.history["loss"]))
        except BaseException as exc:  # reported by join, on the test's thread
            fit.error.append(exc)

    fit.thread = threading.Thread(target=train, name=f"web-fit-{login.username}", daemon=True)
    fit.thread.start()
    deadline = time.monotonic() + 60
    while secured.web.api("GET", f"/api/v1/runs/{run_id}", login.token).status_code != 200:
        assert time.monotonic() < deadline and not fit.error, fit.error or "the run was never stored"
        time.sleep(0.05)
    return fit
