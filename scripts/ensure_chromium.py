"""Make a Chromium available for the web client's browser tests (``tests/web``) and its benchmark.

Playwright's own browser download does not work everywhere (and fetches a second copy of a
browser the system can provide), so fitwire uses the system's: ``chromium`` on the PATH, else
Debian's package installed with apt-get when we are root. Called by ``scripts/with_broker.py``,
so ``make test`` and ``make bench`` need nothing more.
"""

from __future__ import annotations

import os
import shutil
import subprocess

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    """The system Chromium's executable, or None."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def ensure_chromium() -> str | None:
    """The Chromium executable, installing Debian's ``chromium`` first when missing and possible."""
    found = chromium_path()
    if found or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("fitwire: installing chromium with apt-get (for the web client's tests) …", flush=True)
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode:
        # A fresh machine's package lists may be empty or stale: update them once and retry.
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, check=False)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=False)
    return chromium_path()


if __name__ == "__main__":
    print(ensure_chromium() or "chromium is not installed")
