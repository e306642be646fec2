"""``fitwire webhook serve`` with each ``POST /api/v1/events`` timed in parts: ``python -m bench._timed_webhook serve OUT [THREADS]``.

The client sees its own process getting the CPU, the network, waitress's queue
(all worker threads busy) and the time in the app. This server writes, for each
``POST /api/v1/events``, one JSON line to OUT when it is terminated, with in
seconds:

- ``queue``: from waitress having the whole request to a worker thread starting it;
- ``app``: inside the WSGI app (Flask, auth, decoding, the store, the response);
- ``cpu``: the worker thread's own CPU time in the app (``app`` minus ``cpu`` is
  waiting: for the interpreter lock, for a core, for the disk);
- ``auth``: looking the token up in the store;
- ``lock_wait`` / ``lock_held``: waiting for, then holding, the SQLite store's writer
  lock (the write transaction, its commit included);
- ``sockets``: waitress's open sockets (client connections, its listener and its
  trigger) when the request started: at ``connection_limit`` waitress stops accepting,
  and a new connection waits, unseen by any of the times above.

The same app and waitress options as ``fitwire webhook serve``; bench only. With
``FITWIRE_BENCH_STORE=FILE.py:CLASS`` the app runs on that store class instead (built
from ``FITWIRE_STORE``'s URL): a prototype, or the code before a change, measured
side by side without touching the repo.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlparse

_request = threading.local()  # the parts of the request this worker thread is serving


def _add(part: str, seconds: float) -> None:
    parts = getattr(_request, "parts", None)
    if parts is not None:
        parts[part] = parts.get(part, 0.0) + seconds


class _TimedLock:
    """The store's writer lock, timing the wait for it and the hold of it (re-entrant like the original)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._depth = threading.local()

    def __enter__(self) -> None:
        asked = time.perf_counter()
        self._inner.__enter__()
        depth = getattr(self._depth, "n", 0)
        if depth == 0:
            self._depth.since = time.perf_counter()
            _add("lock_wait", self._depth.since - asked)
        self._depth.n = depth + 1

    def __exit__(self, *exc: object) -> None:
        self._depth.n -= 1
        if self._depth.n == 0:
            _add("lock_held", time.perf_counter() - self._depth.since)
        self._inner.__exit__(*exc)


def _timed(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            _add(name, time.perf_counter() - started)

    return wrapper


def _store_from_file(spec: str, url: str) -> Any:
    path, _, name = spec.rpartition(":")
    module_spec = importlib.util.spec_from_file_location("bench_timed_webhook_store", path)
    if module_spec is None or module_spec.loader is None:
        raise SystemExit(f"FITWIRE_BENCH_STORE: cannot load {path!r}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, name)(url)


def main(out: str, threads: int) -> None:
    import waitress
    from waitress.task import ThreadedTaskDispatcher

    from fitwire.cli.webhook_cmd import waitress_options
    from fitwire.settings import Settings
    from fitwire.webhook import create_app

    settings = Settings.from_env()
    url = urlparse(settings.webhook_url)
    variant = os.environ.get("FITWIRE_BENCH_STORE")
    app = create_app({"STORE": _store_from_file(variant, settings.store_url)} if variant else None)
    store = app.extensions["fitwire_store"]
    if hasattr(store, "_writer_lock"):
        store._writer_lock = _TimedLock(store._writer_lock)
    for name in ("user_for_token", "job_for_token"):
        setattr(store, name, _timed("auth", getattr(store, name)))
    inner = app.wsgi_app
    records: list[dict[str, float]] = []

    add_task = ThreadedTaskDispatcher.add_task

    def stamped_add_task(self: ThreadedTaskDispatcher, task: Any) -> None:
        task.fitwire_queued = time.perf_counter()  # the channel: it has a whole request
        add_task(self, task)

    ThreadedTaskDispatcher.add_task = stamped_add_task  # type: ignore[method-assign]

    def timed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started, cpu = time.perf_counter(), time.thread_time()
        events = environ.get("PATH_INFO") == "/api/v1/events" and environ.get("REQUEST_METHOD") == "POST"
        _request.parts = {} if events else None
        try:
            return inner(environ, start_response)  # type: ignore[no-any-return]
        finally:
            if events:
                channel = getattr(environ.get("waitress.client_disconnected"), "__self__", None)
                queued = getattr(channel, "fitwire_queued", started)
                records.append({**_request.parts, "t": started, "app": time.perf_counter() - started,
                                "cpu": time.thread_time() - cpu, "queue": max(0.0, started - queued),
                                "sockets": len(getattr(channel, "_map", ()))})
            _request.parts = None

    app.wsgi_app = timed  # type: ignore[method-assign]

    def dump(*_: object) -> None:
        with open(out, "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in records))
        sys.exit(0)

    signal.signal(signal.SIGTERM, dump)
    if os.environ.get("FITWIRE_BENCH_SWITCH_INTERVAL"):  # how soon a thread waiting for the GIL gets it
        sys.setswitchinterval(float(os.environ["FITWIRE_BENCH_SWITCH_INTERVAL"]))
    options = waitress_options(settings, threads)
    if os.environ.get("FITWIRE_BENCH_CONNECTION_LIMIT"):  # the code before a change
        options["connection_limit"] = int(os.environ["FITWIRE_BENCH_CONNECTION_LIMIT"])
    waitress.serve(app, host=url.hostname or "127.0.0.1", port=url.port or 80, **options)


if __name__ == "__main__":
    main(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 8)
