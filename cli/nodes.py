"""`fitwire nodes`: trainer nodes and their GPUs, CPU, memory and disk (admins).

From the webhook (each node's last report and last-seen time), or with
`--broker`, live from the `fitwire.telemetry` exchange for a few seconds.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fitwire.cli import display
from fitwire.cli.common import (
    CliError,
    JsonOption,
    ServerOption,
    TokenOption,
    api,
    io,
    print_json,
    reports_errors,
    settings,
)
from fitwire.contract.entities import dump

app = typer.Typer(no_args_is_help=True, help="See trainer nodes (admins).")

BrokerOption = Annotated[bool, typer.Option("--broker", help="Listen to fitwire.telemetry instead of asking the webhook.")]
SecondsOption = Annotated[float, typer.Option(min=1, help="With --broker: how long to listen.")]


def listen(amqp_url: str, seconds: float) -> list[dict[str, Any]]:
    """The nodes heard on ``fitwire.telemetry`` within ``seconds``, in the API's Node shape."""
    from fitwire.broker.adapter import Broker
    from fitwire.broker.topology import TELEMETRY, TELEMETRY_WATCH, telemetry_key
    from fitwire.contract import NodeTelemetry, decode
    from fitwire.contract.errors import DecodeError

    heard: dict[str, dict[str, Any]] = {}

    def on_message(body: bytes) -> None:
        try:
            t = decode(body, NodeTelemetry)
        except DecodeError:
            return  # a foreign message on the exchange: not ours to judge
        heard[t.node_id] = node_from_telemetry(t.model_dump(mode="json"), t.ts)

    # Before any agent ran, the exchange may not exist yet: the watcher declares it.
    broker = Broker(amqp_url, name="fitwire-nodes", uses=TELEMETRY_WATCH)
    with broker.watching(TELEMETRY.name, [telemetry_key("*")], on_message=on_message) as watcher:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            watcher.poll(min(left, 0.2))
    return sorted(heard.values(), key=lambda n: n["node_id"])


def node_from_telemetry(telemetry: dict[str, Any], ts: float) -> dict[str, Any]:
    return {
        "node_id": telemetry["node_id"], "name": telemetry["hostname"],
        "last_seen": datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z"),
        "agent_version": telemetry["agent_version"], "protocol_version": telemetry["protocol_version"],
        "telemetry": telemetry,
    }


def _ago(iso: Any) -> str:
    try:
        seen = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return "never"
    seconds = max(0, int((datetime.now(UTC) - seen).total_seconds()))
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"


def _mb(value: Any) -> str:
    return f"{int(value) / 1024:.1f} GiB" if value else "—"


def nodes_table(nodes: list[dict[str, Any]]) -> Table:
    table = Table("node", "host", "pools", "job", "CPU", "memory free", "disk free", "GPUs (free/total)",
                  "seen", box=None, header_style="bold")
    for n in nodes:
        t = n.get("telemetry") or {}
        gpus = ", ".join(f"{g['index']}: {_mb(g['memory_free_mb'])}/{_mb(g['memory_total_mb'])}"
                         for g in t.get("gpus", [])) or "CPU only"
        cpu = f"{t.get('cpu_threads', 0)} thr" + (f" {t['cpu_percent']:.0f}%" if t.get("cpu_percent") is not None else "")
        # node-reported text as Text, never markup (a hostname is whatever the node says)
        table.add_row(display.remote(n["node_id"]), display.remote(t.get("hostname", n.get("name", ""))),
                      display.remote(",".join(t.get("pools", []))), display.remote((t.get("job_id") or "idle")[:12]),
                      display.remote(cpu), _mb(t.get("memory_available_mb")),
                      _mb(t.get("disk_free_mb")), gpus, _ago(n.get("last_seen")))
    return table


def node_view(n: dict[str, Any]) -> Group:
    t = n.get("telemetry") or {}
    facts = Table(box=None, show_header=False)
    for label, value in (("node", n["node_id"]), ("host", t.get("hostname", "")),
                         ("agent", f"{n.get('agent_version', '')} (wire contract v{n.get('protocol_version', '?')})"),
                         ("pools", ", ".join(t.get("pools", []))), ("job", t.get("job_id") or "idle"),
                         ("CPU", f"{t.get('cpu_model', '')} — {t.get('cpu_threads', 0)} threads"),
                         ("memory", f"{_mb(t.get('memory_available_mb'))} free of {_mb(t.get('memory_total_mb'))}"),
                         ("disk free", _mb(t.get("disk_free_mb"))), ("last seen", _ago(n.get("last_seen")))):
        facts.add_row(Text(label, style="bold"), display.remote(value))
    gpus = Table("GPU", "name", "memory used", "free", "total", "util", "temp", box=None, header_style="bold")
    for g in t.get("gpus", []):
        gpus.add_row(str(g["index"]), display.remote(g["name"]), _mb(g["memory_used_mb"]), _mb(g["memory_free_mb"]),
                     _mb(g["memory_total_mb"]),
                     "—" if g.get("utilization_pct") is None else f"{g['utilization_pct']:.0f}%",
                     "—" if g.get("temperature_c") is None else f"{g['temperature_c']:.0f}°C")
    parts: list[Any] = [facts]
    parts.append(Panel(gpus, title="GPUs") if t.get("gpus") else Text("CPU-only node (no NVIDIA driver).", style="dim"))
    return Group(*parts)


@app.command("list")
@reports_errors
def list_(broker: BrokerOption = False, seconds: SecondsOption = 6.0, server: ServerOption = None,
          token: TokenOption = None, as_json: JsonOption = False) -> None:
    """Every node with its last report."""
    # Drawn from the API's JSON: a node heard on the broker has only what its report says.
    nodes = listen(settings().amqp_url, seconds) if broker else [dump(n) for n in api(server, token).nodes()]
    if as_json:
        print_json({"nodes": nodes})
        return
    if not nodes:
        io().out.print("No nodes have reported yet; start one with `fitwire agent start --pool NAME`.", markup=False)
        return
    io().out.print(nodes_table(nodes))


@app.command()
@reports_errors
def show(node: Annotated[str, typer.Argument(help="Node id.")], broker: BrokerOption = False,
         seconds: SecondsOption = 6.0, server: ServerOption = None, token: TokenOption = None,
         as_json: JsonOption = False) -> None:
    """One node in detail, GPU by GPU."""
    if broker:
        found = [n for n in listen(settings().amqp_url, seconds) if n["node_id"] == node]
        if not found:
            raise CliError(f"Node {node!r} did not report within {seconds:g} s")
        record = found[0]
    else:
        record = dump(api(server, token).node(node))
    if as_json:
        print_json(record)
        return
    io().out.print(node_view(record))


@app.command()
@reports_errors
def token(name: Annotated[str, typer.Argument(help="A name for the machine.")], server: ServerOption = None,
          token: TokenOption = None, as_json: JsonOption = False) -> None:
    """Create a node token (admins): the agent on that machine starts with it. Shown once."""
    created = dict(api(server, token).create_node(name))
    if as_json:
        print_json(created)
        return
    io().out.print(
        f"Node [bold]{created['node_id']}[/] ({name}). Its token, shown only now:\n{created['token']}\n"
        f"On that machine: FITWIRE_TOKEN=<token> fitwire agent start --pool default", highlight=False,
    )


@app.command()
@reports_errors
def tokens(server: ServerOption = None, token: TokenOption = None, as_json: JsonOption = False) -> None:
    """Every node token (admins): its node, last use, when it lapses unused, and whether it is revoked."""
    nodes = [dump(n) for n in api(server, token).nodes()]  # times as the API writes them
    rows = [{k: n.get(k) for k in ("node_id", "name", "last_seen", "token_expires_at", "revoked_at")} for n in nodes]
    if as_json:
        print_json({"tokens": rows})
        return
    table = Table("node", "name", "last used", "lapses", "revoked")
    for row in rows:
        table.add_row(*(Text(str(row[k] or "—")) for k in ("node_id", "name", "last_seen", "token_expires_at",
                                                           "revoked_at")))
    io().out.print(table)


@app.command()
@reports_errors
def revoke(node: Annotated[str, typer.Argument(help="Node id.")], server: ServerOption = None,
           token: TokenOption = None, as_json: JsonOption = False) -> None:
    """Revoke a node's token (admins): its HTTP calls fail at once, its broker logins within 30 s."""
    record = api(server, token).revoke_node(node)
    if as_json:
        print_json(record)
        return
    revoked_at = dump(record)["revoked_at"]  # as the API writes it
    io().out.print(Text(f"Node {record.node_id} ({record.name}) revoked at {revoked_at}; "
                        "its agent is refused from now on (the broker within 30 s)."))
