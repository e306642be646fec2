"""`make run`: a live training in your terminal within a minute, on a fresh machine.

In order: a RabbitMQ (`fitwire dev broker up`), the webhook on SQLite under
$FITWIRE_DATA_DIR (default ./.fitwire), a local `demo` account (created once,
its password kept in $FITWIRE_DATA_DIR/demo-password), a `demo` model, the
sample training (examples/demo_train.py) in the background, and `fitwire watch`
on it in the foreground. Ctrl+C ends everything this script started (the
training is sent STOP first, so its run ends as "stopped", not lost).

The demo keeps its login in $FITWIRE_DATA_DIR/config, not in your own
~/.config/fitwire: trying fitwire must not log you out of a real server.

    python scripts/run_demo.py [--once] [--timeout S] [--epochs N --steps N --delay S]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FITWIRE = str(BIN / "fitwire")
DEMO_USER = "demo"
DEMO_MODEL = "demo"
DEFAULT_PORT = 8765
WEBHOOK_START_S = 60.0
TRAIN_END_GRACE_S = 20.0
"""How long a STOPped training may take to end before it is terminated."""


def say(text: str) -> None:
    print(f"\033[1;36m›\033[0m {text}" if sys.stdout.isatty() else f"> {text}", flush=True)


class Demo:
    """The processes the demo started, so that every exit path ends them."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.logs = data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.env.update(
            FITWIRE_DATA_DIR=str(data_dir),
            FITWIRE_CONFIG_DIR=str(data_dir / "config"),
            FITWIRE_STORE="",  # the SQLite default, inside the data dir
            PYTHONUNBUFFERED="1",
        )
        self.env.pop("FITWIRE_TOKEN", None)  # the demo account's own token comes from the login
        self.webhook: subprocess.Popen[bytes] | None = None
        self.trainer: subprocess.Popen[bytes] | None = None
        self.broker_started = False

    def fitwire(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([FITWIRE, *args], env=self.env, input=stdin, capture_output=True, text=True)
        if check and done.returncode != 0:
            message = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise SystemExit(f"`fitwire {' '.join(args[:2])}` failed: {message[-1] if message else done.returncode}")
        return done

    # --- the stack ----------------------------------------------------------------

    def broker(self) -> str:
        done = self.fitwire("dev", "broker", "up")
        url = done.stdout.strip().splitlines()[-1]
        self.broker_started = "started" in done.stderr
        self.env["FITWIRE_AMQP_URL"] = url
        say(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"broker at {url}")
        return url

    def serve(self) -> str:
        port = DEFAULT_PORT if _port_free(DEFAULT_PORT) else _free_port()
        url = f"http://127.0.0.1:{port}"
        self.env["FITWIRE_WEBHOOK_URL"] = url
        self.fitwire("webhook", "upgrade")
        log = open(self.logs / "webhook.log", "ab")  # noqa: SIM115  (kept open for the child's life)
        # A session of its own: the terminal's Ctrl+C goes to `watch`, and we end the webhook last.
        self.webhook = subprocess.Popen(
            [FITWIRE, "webhook", "serve"], env=self.env, stdout=log, stderr=log, start_new_session=True
        )
        deadline = time.monotonic() + WEBHOOK_START_S
        while time.monotonic() < deadline:
            if self.webhook.poll() is not None:
                raise SystemExit(f"the webhook did not start; see {self.logs / 'webhook.log'}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        say(f"webhook on {url} (SQLite in {self.data_dir})")
                        return url
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        raise SystemExit(f"the webhook did not answer within {WEBHOOK_START_S:.0f} s; see {self.logs / 'webhook.log'}")

    def account(self) -> None:
        secret = self.data_dir / "demo-password"
        if not secret.exists():
            fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(18))
        password = secret.read_text().strip()
        login = ("login", DEMO_USER, "--password-stdin")
        if self.fitwire(*login, stdin=password + "\n", check=False).returncode != 0:
            created = self.fitwire("webhook", "create-admin", DEMO_USER, "--password", password, check=False)
            if created.returncode != 0:
                raise SystemExit(
                    f"could not create or log in the {DEMO_USER!r} account "
                    f"({created.stderr.strip()}); remove {self.data_dir} to start afresh"
                )
            self.fitwire(*login, stdin=password + "\n")
        say(f"logged in as {DEMO_USER!r} (login kept in {self.env['FITWIRE_CONFIG_DIR']})")

    def model(self) -> str:
        models = json.loads(self.fitwire("models", "list", "--json").stdout)["models"]
        found = [m for m in models if m["name"] == DEMO_MODEL]
        model: dict[str, Any] = found[0] if found else json.loads(
            self.fitwire("models", "create", DEMO_MODEL, "--json").stdout
        )
        say(f"model {DEMO_MODEL!r} has key {model['key']}")
        return str(model["key"])

    def train(self, model_key: str, run_id: str, extra: list[str]) -> None:
        log = open(self.logs / "demo_train.log", "ab")  # noqa: SIM115
        self.trainer = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "demo_train.py"), "--model-key", model_key,
             "--run-id", run_id, *extra],
            env=self.env, stdout=log, stderr=log, start_new_session=True,
        )
        say(f"training started in the background; TensorFlow takes a few seconds to load "
            f"(run {run_id}; log {self.logs / 'demo_train.log'})")

    def watch(self, model_key: str, watch_args: list[str]) -> int:
        watcher = subprocess.Popen([FITWIRE, "watch", model_key, "--stop-on-exit", *watch_args], env=self.env)
        # `watch` owns Ctrl+C (it sends STOP); this process just waits for it, and for a crashed trainer.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            while watcher.poll() is None:
                time.sleep(0.3)
                if self.trainer is not None and self.trainer.poll() not in (None, 0):
                    print(f"The training failed; the end of {self.logs / 'demo_train.log'}:", file=sys.stderr)
                    print(_tail(self.logs / "demo_train.log"), file=sys.stderr)
                    watcher.terminate()
                    watcher.wait()
                    return 1
            return watcher.returncode
        finally:
            signal.signal(signal.SIGINT, previous)

    def shutdown(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl+C must not leave orphans
        if self.trainer is not None and self.trainer.poll() is None:
            say("waiting for the training to end…")
            _end(self.trainer, grace=TRAIN_END_GRACE_S)
        if self.webhook is not None and self.webhook.poll() is None:
            _end(self.webhook, grace=0)
        if self.broker_started:
            self.fitwire("dev", "broker", "down", check=False)
            say("stopped the local RabbitMQ node")
        say("everything the demo started has ended")


def _end(process: subprocess.Popen[bytes], *, grace: float) -> None:
    try:
        process.wait(timeout=grace) if grace else None
    except subprocess.TimeoutExpired:
        pass
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no owner
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _terminated(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(143)  # SIGTERM: unwind through `finally`, so the children end too


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start the local stack and watch a demo training live.")
    parser.add_argument("--once", action="store_true", help="end when the demo training ends")
    parser.add_argument("--timeout", type=float, help="stop watching after this many seconds")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.1)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)

    data_dir = Path(os.environ.get("FITWIRE_DATA_DIR") or ROOT / ".fitwire").resolve()
    demo = Demo(data_dir)
    try:
        demo.broker()
        demo.serve()
        demo.account()
        key = demo.model()
        run_id = secrets.token_hex(16)
        demo.train(key, run_id, ["--epochs", str(args.epochs), "--steps", str(args.steps),
                                 "--delay", str(args.delay)])
        here = os.path.relpath(BIN / "fitwire", Path.cwd())
        say("to stop the training from a second terminal, run (in this directory):")
        print(f"    FITWIRE_CONFIG_DIR={demo.env['FITWIRE_CONFIG_DIR']} {here} stop {run_id}\n", flush=True)
        watch_args = (["--once"] if args.once else []) + (["--timeout", str(args.timeout)] if args.timeout else [])
        code = demo.watch(key, watch_args)
        return 0 if code in (0, 130) else code
    except KeyboardInterrupt:
        return 130
    finally:
        demo.shutdown()


if __name__ == "__main__":
    sys.exit(main())
