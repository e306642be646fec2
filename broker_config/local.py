"""A RabbitMQ for development and tests: use the one that answers, else start one.

``ensure_broker`` is what ``fitwire dev broker up``, ``make run`` and ``make test``
call. In order it:

1. uses the broker at ``FITWIRE_AMQP_URL`` when one answers there;
2. reuses a project-local node it started earlier (state in ``<data_dir>/rabbitmq``);
3. installs Debian's ``rabbitmq-server`` when it is missing and we are root with apt;
4. starts a project-local node (its own node name, data dir and ``rabbitmq.conf``,
   on the URL's port, or a free one when that port is taken) and waits for it.

The node fitwire starts listens on loopback only (AMQP, Web STOMP, Erlang distribution,
epmd) unless ``FITWIRE_BROKER_BIND`` says otherwise, and the webhook checks every login
on it (``fitwire.broker.node_config``): it has no ``guest``, and its URL is the webhook's
internal account.

When none of that is possible it raises :class:`LocalBrokerError` with one
sentence saying what to install.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from fitwire.broker.connection import answers
from fitwire.broker.node_config import (
    CONFIG_FILE,
    PLUGINS_FILE,
    Accounts,
    ensure_accounts,
    write_node_files,
)
from fitwire.contract.errors import LocalBrokerError

log = logging.getLogger(__name__)

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
_STATE_FILE = "node.json"
# Debian's /usr/sbin/rabbitmq-server is a wrapper that `su`s to the rabbitmq
# user and drops our environment; the real script sits here.
_DEBIAN_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
DIST_PORT_OFFSET = 20_000
"""Erlang distribution listens this far above the AMQP port."""
NODE_PORT_FLOOR = 10_000
"""Lowest AMQP port :func:`free_port` picks."""
STOMP_PORT_OFFSET = 10_002
"""Web STOMP listens this far above the AMQP port (5672 → 15674, RabbitMQ's own default)."""
LOOPBACK = "127.0.0.1"
DEFAULT_WEBHOOK_URL = "http://127.0.0.1:8765"


def _server_script() -> Path | None:
    if _DEBIAN_SCRIPT.exists():
        return _DEBIAN_SCRIPT
    found = shutil.which("rabbitmq-server")
    return Path(found) if found else None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands to outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; other systems start higher


def free_port() -> int:
    """An AMQP port for a new node: it, its Web STOMP port and its distribution port free now.

    All three lie below the kernel's ephemeral range when it leaves room, so no outgoing
    connection (a test opens hundreds) can take one of them while the node boots.
    """
    top = _ephemeral_floor() - DIST_PORT_OFFSET
    for _ in range(200):
        if top > NODE_PORT_FLOOR + 100:
            port = random.randrange(NODE_PORT_FLOOR, top)
        else:  # an ephemeral range that starts low: ask the kernel, as any free port will do
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            if port + DIST_PORT_OFFSET > 65535:
                continue
        if all(_port_free(p) for p in (port, port + STOMP_PORT_OFFSET, port + DIST_PORT_OFFSET)):
            return port
    raise LocalBrokerError("could not find a free TCP port for a local RabbitMQ node")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _erl_ip(address: str) -> str:
    """``127.0.0.1`` as Erlang's ``{127,0,0,1}``."""
    return "{" + ",".join(address.split(".")) + "}"


@dataclass
class LocalNode:
    """A private RabbitMQ node: own node name, data dir and port; nothing shared with a system broker.

    ``bind`` is the one address it listens on (AMQP, Web STOMP, Erlang distribution);
    ``webhook_url`` is the webhook that checks users' and agents' logins.
    """

    data_dir: Path
    port: int = 5672
    bind: str = LOOPBACK
    webhook_url: str = DEFAULT_WEBHOOK_URL

    @property
    def accounts(self) -> Accounts:
        """The node's internal accounts (generated, 0600, on first use)."""
        return ensure_accounts(self.data_dir)

    @property
    def _host(self) -> str:
        return LOOPBACK if self.bind in (LOOPBACK, "0.0.0.0") else self.bind

    @property
    def url(self) -> str:
        """The webhook's internal account: what ``FITWIRE_AMQP_URL`` of the webhook (and of tests) is."""
        return self.accounts.webhook.url(self._host, self.port)

    @property
    def admin_url(self) -> str:
        """The broker administrator: for operators and ``rabbitmqctl``-like tools, never for clients."""
        return self.accounts.admin.url(self._host, self.port)

    @property
    def stomp_port(self) -> int:
        return self.port + STOMP_PORT_OFFSET

    @property
    def stomp_url(self) -> str:
        return f"ws://{self._host}:{self.stomp_port}/ws"

    @property
    def nodename(self) -> str:
        return f"fitwire{self.port}@localhost"

    @property
    def _state_path(self) -> Path:
        return self.data_dir / _STATE_FILE

    def pid(self) -> int | None:
        """The pid of this node when it was started by us and still runs."""
        try:
            state = json.loads(self._state_path.read_text())
        except (OSError, ValueError):
            return None
        pid = state.get("pid")
        return pid if isinstance(pid, int) and state.get("port") == self.port and _pid_alive(pid) else None

    def _erl_args(self) -> str:
        # Erlang distribution listens on every interface unless told which one.
        return "" if self.bind == "0.0.0.0" else f"-kernel inet_dist_use_interface {_erl_ip(self.bind)}"

    def _environment(self) -> dict[str, str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # An empty env file keeps a system-wide rabbitmq-env.conf (node name, listeners)
        # from leaking into our node; plugins and config are this node's own.
        env_file = self.data_dir / "rabbitmq-env.conf"
        env_file.touch()
        write_node_files(self.data_dir, webhook_url=self.webhook_url, bind=self.bind, stomp_port=self.stomp_port)
        env = {
            **os.environ,
            "HOME": str(self.data_dir),  # the Erlang cookie lives here
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": self.bind,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.port + DIST_PORT_OFFSET),
            "RABBITMQ_MNESIA_BASE": str(self.data_dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.data_dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.data_dir / CONFIG_FILE),
            "RABBITMQ_CONF_ENV_FILE": str(env_file),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.data_dir / PLUGINS_FILE),
            "RABBITMQ_PID_FILE": str(self.data_dir / "rabbitmq.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": self._erl_args(),
            # rabbitmqctl is an Erlang node too, with its own distribution listener.
            "RABBITMQ_CTL_ERL_ARGS": self._erl_args(),
        }
        # epmd (started by the first node that needs it) always listens on loopback too;
        # a system epmd that already runs is shared, with whatever addresses it has.
        if self.bind == "0.0.0.0":
            env.pop("ERL_EPMD_ADDRESS", None)
        else:
            env["ERL_EPMD_ADDRESS"] = self.bind
        return env

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the node (a no-op when it already runs) and wait until it accepts AMQP connections."""
        if self.pid() is not None and answers(self.url):
            return
        script = _server_script()
        if script is None:
            raise LocalBrokerError("rabbitmq-server is not installed")
        for port in (self.port, self.stomp_port, self.port + DIST_PORT_OFFSET):
            if not _port_free(port):
                raise LocalBrokerError(f"port {port} is already taken; cannot start a RabbitMQ node on {self.port}")
        log_path = self.data_dir / "server.log"
        env = self._environment()
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                [str(script)],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl+C in the terminal must not kill the broker mid-test
            )
        # No URL here: it holds the webhook's secret, which lives in accounts.json (0600) only.
        self._state_path.write_text(json.dumps({"pid": proc.pid, "port": self.port, "bind": self.bind}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-1500:]
                raise LocalBrokerError(f"rabbitmq-server exited with code {proc.returncode}:\n{tail}")
            if answers(self.url, timeout=1.0):
                return
            time.sleep(0.5)
        self.stop()
        raise LocalBrokerError(f"rabbitmq-server did not accept connections within {timeout:.0f} s (log: {log_path})")

    def ctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``rabbitmqctl`` against this node (e.g. ``ctl("import_definitions", path)``)."""
        script = _server_script()
        if script is None:
            raise LocalBrokerError("rabbitmq-server is not installed")
        return subprocess.run(
            [str(script.with_name("rabbitmqctl")), "-n", self.nodename, *args],
            env=self._environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Stop the node if we started it; True when a node was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            # The whole process group: the start script, beam and its port helpers.
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            _reap(pid)
            time.sleep(0.2)
        if _pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
            _reap(pid)
        self._state_path.unlink(missing_ok=True)
        return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _install_rabbitmq() -> bool:
    """Install Debian's rabbitmq-server when we are root on a machine with apt; True on success."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("fitwire: installing rabbitmq-server with apt-get …", flush=True)
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "rabbitmq-server"]):
        if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=False).returncode != 0:
            return False
    return _server_script() is not None


def broker_dir(data_dir: Path) -> Path:
    return data_dir / "rabbitmq"


def ensure_broker(
    amqp_url: str, data_dir: Path, *, bind: str = LOOPBACK, webhook_url: str = DEFAULT_WEBHOOK_URL
) -> tuple[str, bool]:
    """Make a broker available; returns ``(url, started)`` where ``started`` says we started a node.

    A node started here listens on ``bind`` and asks the webhook at ``webhook_url`` about
    every login that is not one of its internal accounts; the URL returned is the
    webhook's internal account.
    """
    if answers(amqp_url):
        return amqp_url, False
    home = broker_dir(data_dir)
    try:
        previous = json.loads((home / _STATE_FILE).read_text())
        node = LocalNode(home, int(previous["port"]), bind, webhook_url)
        if node.pid() is not None and answers(node.url):
            return node.url, False
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if _server_script() is None and not _install_rabbitmq():
        raise LocalBrokerError(
            "No RabbitMQ answers at "
            f"{urlparse(amqp_url).hostname}:{urlparse(amqp_url).port or 5672} and rabbitmq-server is not "
            "installed: install it (Debian/Ubuntu: apt-get install rabbitmq-server; macOS: brew install "
            "rabbitmq) or set FITWIRE_AMQP_URL to a running broker."
        )
    if answers(amqp_url):  # the package's post-install may have started the system broker
        return amqp_url, False
    wanted = urlparse(amqp_url).port or 5672
    taken = not all(_port_free(p) for p in (wanted, wanted + DIST_PORT_OFFSET, wanted + STOMP_PORT_OFFSET))
    node = LocalNode(home, free_port() if taken else wanted, bind, webhook_url)
    node.start()
    return node.url, True


def stop_local(data_dir: Path) -> bool:
    """Stop the project-local node started by ``ensure_broker``, if any."""
    home = broker_dir(data_dir)
    try:
        port = int(json.loads((home / _STATE_FILE).read_text())["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return LocalNode(home, port).stop()


def local_status(data_dir: Path) -> dict[str, object] | None:
    """``{"url", "stomp_url", "pid"}`` of the project-local node when it runs, else None."""
    home = broker_dir(data_dir)
    try:
        state = json.loads((home / _STATE_FILE).read_text())
        node = LocalNode(home, int(state["port"]), str(state.get("bind", LOOPBACK)))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    pid = node.pid()
    return {"url": node.url, "stomp_url": node.stomp_url, "pid": pid} if pid is not None else None
