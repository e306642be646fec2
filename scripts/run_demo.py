"""`make run`: a live training in your terminal within a minute, on a fresh machine.

In order: a RabbitMQ (`fitwire dev broker up`), the webhook on SQLite under
$FITWIRE_DATA_DIR (default ./.fitwire), a local `demo` account (created once,
its password kept in $FITWIRE_DATA_DIR/demo-password), a `demo` model, ONE
trainer agent in the background (`fitwire agent start --pool default`, with a
node token kept in $FITWIRE_DATA_DIR/node-token), the sample job
(examples/jobs/tiny_mlp.py) submitted through the queue, and `fitwire watch`
on it in the foreground. Ctrl+C ends everything this script started (the
training is sent STOP first, so its run ends as "stopped", not lost; the agent
is ended after its job, before the webhook).

When something fails it says at once what failed and which log holds the
traceback ($FITWIRE_DATA_DIR/logs/agent.log or webhook.log): the agent dying or
logging an error stops the demo then, not after a wait.

--epochs is the job's epochs, --steps its training batches per epoch, --delay
the pause after each batch (the job's sleep_per_batch).

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

from fitwire.broker.adapter import Broker
from fitwire.broker.connection import login_name
from fitwire.broker.node_config import WEBHOOK_USER
from fitwire.broker.topology import job_queue
from fitwire.contract import BrokerError
from fitwire.contract.enums import JOB_ENDED

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FITWIRE = str(BIN / "fitwire")
DEMO_USER = "demo"
DEMO_MODEL = "demo"
DEFAULT_PORT = 8765
WEBHOOK_START_S = 60.0
TRAIN_END_GRACE_S = 20.0
"""How long a STOPped training may take to end before it is terminated."""
AGENT_START_S = 60.0
JOB_BUNDLE = ROOT / "examples" / "jobs" / "tiny_mlp.py"
JOB_POOL = "default"
BATCH_SIZE = 32
FAILED_JOB_STATES = JOB_ENDED - {"succeeded", "stopped"}
ERROR_MARKS = (" ERROR ", "Traceback (most recent call last)", " CRITICAL ")
"""What an agent's log shows when it fails: its logging format's level, or a Python traceback."""


def say(text: str) -> None:
    print(f"\033[1;36m›\033[0m {text}" if sys.stdout.isatty() else f"> {text}", flush=True)


class Demo:
    """The processes the demo started, so that every exit path ends them."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
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
        self.agent: subprocess.Popen[bytes] | None = None
        self.agent_log_offset = 0
        self.job_id: str | None = None
        self.run_id: str | None = None
        self.watch_ended = False
        """`watch` ended on its own (the run ended, or Ctrl+C, on which it sends STOP itself)."""
        self.broker_started = False

    def fitwire(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([FITWIRE, *args], env=self.env, input=stdin, capture_output=True, text=True)
        if check and done.returncode != 0:
            message = (done.stderr.strip() or done.stdout.strip()).splitlines()
            where = f"; the webhook's log: {self.logs / 'webhook.log'}" if self.webhook is not None else ""
            raise SystemExit(
                f"`fitwire {' '.join(args[:2])}` failed: {message[-1] if message else done.returncode}{where}"
            )
        return done

    def agent_failure(self, offset: int = 0) -> str | None:
        """What went wrong with the agent (it ended, or logged an error), with its log's path; None if nothing."""
        log_path = self.logs / "agent.log"
        if self.agent is not None and self.agent.poll() is not None:
            return f"the agent ended (exit status {self.agent.returncode}); the end of {log_path}:\n{_tail(log_path)}"
        text = _read_from(log_path, offset)
        errors = [line for line in text.splitlines() if any(mark in line for mark in ERROR_MARKS)]
        if errors:
            return f"the agent failed: {errors[0].strip()}\nthe agent's log (with any traceback): {log_path}; its end:\n{_tail(log_path)}"
        return None

    # --- the stack ----------------------------------------------------------------

    def broker(self) -> str:
        # The webhook's port first: a node `broker up` starts asks that URL about every login.
        port = self.port or (DEFAULT_PORT if _port_free(DEFAULT_PORT) else _free_port())
        self.env["FITWIRE_WEBHOOK_URL"] = f"http://127.0.0.1:{port}"
        done = self.fitwire("dev", "broker", "up")
        url = done.stdout.strip().splitlines()[-1]
        self.broker_started = "started" in done.stderr
        self.env["FITWIRE_AMQP_URL"] = url
        say(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"broker at {url}")
        if login_name(url) != WEBHOOK_USER:
            # A broker that answered already (e.g. a system RabbitMQ with guest) does not ask the
            # webhook about logins: everyone shares its URL (the developer mode), else the agent's
            # `node.<id>` and the job's `job.<id>` logins would be refused there.
            self.env["FITWIRE_BROKER_LOGINS"] = "shared"
            say("that broker does not check logins with the webhook: the demo shares its login "
                "(FITWIRE_BROKER_LOGINS=shared)")
        return url

    def serve(self) -> str:
        url = self.env["FITWIRE_WEBHOOK_URL"]
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

    def node_token(self) -> Path:
        """A node token for the demo's agents, created once (as the demo admin) and kept 0600."""
        path = self.data_dir / "node-token"
        if not path.exists() or not path.read_text().strip():
            created = json.loads(self.fitwire("nodes", "token", "demo-agent", "--json").stdout)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(str(created["token"]))
        return path

    def start_agent(self) -> None:
        token_file = self.node_token()
        log_path = self.logs / "agent.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        log = open(log_path, "ab")  # noqa: SIM115
        env = {**self.env, "FITWIRE_TOKEN": token_file.read_text().strip()}
        # A session of its own, like the webhook: Ctrl+C goes to `watch`; the agent is ended after its job.
        self.agent = subprocess.Popen(
            [FITWIRE, "agent", "start", "--pool", JOB_POOL], env=env, stdout=log, stderr=log, start_new_session=True
        )
        self.agent_log_offset = offset
        deadline = time.monotonic() + AGENT_START_S
        while time.monotonic() < deadline:
            failure = self.agent_failure(offset)
            if failure:
                raise SystemExit(failure)
            if _consumers(self.env["FITWIRE_AMQP_URL"], JOB_POOL) > 0:  # up = taking jobs, not merely started
                say(f"trainer agent up, taking jobs from pool {JOB_POOL!r} (log {log_path})")
                return
            time.sleep(0.3)
        raise SystemExit(f"the agent did not take jobs from pool {JOB_POOL!r} within {AGENT_START_S:.0f} s; "
                         f"see {log_path}")

    def submit(self, model_key: str, epochs: int, steps: int, delay: float) -> str:
        # tiny_mlp trains on 3/4 of `samples`: this many samples give exactly `steps` batches per epoch.
        samples = (steps * BATCH_SIZE * 4 + 2) // 3
        job = json.loads(self.fitwire(
            "jobs", "submit", str(JOB_BUNDLE), "--model", model_key, "--epochs", str(epochs),
            "--batch-size", str(BATCH_SIZE), "--pool", JOB_POOL, "--param", f"samples={samples}",
            "--param", f"sleep_per_batch={delay}", "--json",
        ).stdout)
        self.job_id = str(job["job_id"])
        self.run_id = str(job["run_id"])
        say(f"job {self.job_id} queued on pool {JOB_POOL!r} (run {job['run_id']}); "
            f"the agent picks it up, TensorFlow takes a few seconds to load")
        return str(job["run_id"])

    def job_state(self) -> str | None:
        if self.job_id is None:
            return None
        done = self.fitwire("jobs", "show", self.job_id, "--json", check=False)
        try:
            return str(json.loads(done.stdout)["state"]) if done.returncode == 0 else None
        except (ValueError, KeyError):
            return None

    def watch(self, model_key: str, watch_args: list[str]) -> int:
        watcher = subprocess.Popen([FITWIRE, "watch", model_key, "--stop-on-exit", *watch_args], env=self.env)
        # `watch` owns Ctrl+C (it sends STOP); this process just waits for it, and for a crashed agent or job.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        next_check = time.monotonic() + 2.0
        try:
            while watcher.poll() is None:
                time.sleep(0.3)
                failed = self.agent_failure(self.agent_log_offset)
                if failed is None and time.monotonic() >= next_check:
                    next_check = time.monotonic() + 2.0
                    state = self.job_state()
                    if state in FAILED_JOB_STATES:
                        failed = (f"the job ended {state}; the agent's log is {self.logs / 'agent.log'}, "
                                  f"its end:\n{_tail(self.logs / 'agent.log')}")
                if failed:
                    watcher.terminate()
                    watcher.wait()
                    print(f"fitwire demo: {failed}", file=sys.stderr)
                    return 1
            self.watch_ended = True
            return watcher.returncode
        finally:
            signal.signal(signal.SIGINT, previous)
            if watcher.poll() is None:  # SIGTERM to this script: `watch` must not outlive it
                watcher.terminate()
                watcher.wait()

    def shutdown(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl+C must not leave orphans
        if self.agent is not None and self.agent.poll() is None:
            # Let the job end (STOPped or done) and be reported first: SIGTERM mid-job would requeue it.
            # No job, or one that ended: nothing to wait for.
            deadline = time.monotonic() + TRAIN_END_GRACE_S
            state = self.job_state()
            if self.job_id is not None and state not in JOB_ENDED:
                say("waiting for the job to end…")
                if self.run_id is not None and not self.watch_ended:  # e.g. this script got SIGTERM
                    self.fitwire("stop", self.run_id, "--no-wait", check=False)
                while state not in JOB_ENDED and time.monotonic() < deadline and self.agent.poll() is None:
                    time.sleep(0.5)
                    state = self.job_state()
            _end(self.agent, grace=0)
            job = f" (job {self.job_id}: {state or 'state unknown'})" if self.job_id else ""
            say(f"stopped the trainer agent{job}")
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


def _consumers(amqp_url: str, pool: str) -> int:
    """How many agents consume the pool's queue now; 0 while nothing has declared it."""
    broker = Broker(amqp_url, name="fitwire-demo", attempts=1)
    try:
        return int(broker.run(lambda ch: ch.queue_declare(job_queue(pool).name, passive=True)).method.consumer_count)
    except BrokerError:  # no broker, or 404: the agent has not declared its queue yet
        return 0
    finally:
        broker.close()


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


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
    parser.add_argument("--once", action="store_true", help="end when the demo job's training ends")
    parser.add_argument("--timeout", type=float, help="stop watching after this many seconds")
    parser.add_argument("--epochs", type=int, default=8, help="the job's epochs")
    parser.add_argument("--steps", type=int, default=50, help="training batches per epoch")
    parser.add_argument("--delay", type=float, default=0.1, help="seconds slept after each batch")
    parser.add_argument("--port", type=int, help=f"the webhook's port (default {DEFAULT_PORT} when free, else any "
                                                 "free one; name one when several demos start at once)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)

    data_dir = Path(os.environ.get("FITWIRE_DATA_DIR") or ROOT / ".fitwire").resolve()
    demo = Demo(data_dir, args.port)
    try:
        demo.broker()
        demo.serve()
        demo.account()
        key = demo.model()
        demo.start_agent()
        run_id = demo.submit(key, max(1, args.epochs), max(1, args.steps), max(0.0, args.delay))
        here = os.path.relpath(BIN / "fitwire", Path.cwd())
        say("to start a second agent (jobs then spread across agents), run in a second terminal (in this directory):")
        print(f"    FITWIRE_DATA_DIR={demo.data_dir} FITWIRE_AMQP_URL={demo.env['FITWIRE_AMQP_URL']} "
              f"FITWIRE_WEBHOOK_URL={demo.env['FITWIRE_WEBHOOK_URL']} "
              f"FITWIRE_TOKEN=$(cat {demo.data_dir / 'node-token'}) {here} agent start --pool {JOB_POOL}", flush=True)
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
