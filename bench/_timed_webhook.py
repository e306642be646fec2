"""``fitwire webhook serve`` with each request's time inside the app recorded: ``python -m bench._timed_webhook serve OUT``.

The client sees queueing in waitress (all worker threads busy) plus the time in
the app; this server writes the app's share of each ``POST /api/v1/events``, in
seconds, one per line to OUT when it is terminated, so bench_scale can split the
two. The same app and waitress options as ``fitwire webhook serve``; bench only.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlparse


def main(out: str, threads: int) -> None:
    import waitress

    from fitwire.settings import Settings
    from fitwire.webhook import create_app

    settings = Settings.from_env()
    url = urlparse(settings.webhook_url)
    app = create_app()
    inner = app.wsgi_app
    times: list[float] = []

    def timed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        try:
            return inner(environ, start_response)  # type: ignore[no-any-return]
        finally:
            if environ.get("PATH_INFO") == "/api/v1/events" and environ.get("REQUEST_METHOD") == "POST":
                times.append(time.perf_counter() - started)

    app.wsgi_app = timed  # type: ignore[method-assign]

    def dump(*_: object) -> None:
        with open(out, "w") as f:
            f.write("".join(f"{t}\n" for t in times))
        sys.exit(0)

    signal.signal(signal.SIGTERM, dump)
    waitress.serve(app, host=url.hostname or "127.0.0.1", port=url.port or 80, threads=threads, ident="fitwire",
                   max_request_body_size=2 * settings.artifact_max_bytes)


if __name__ == "__main__":
    main(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 8)
