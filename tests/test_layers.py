"""Layers point one way: contract ← {core, broker adapter, client} ← {callback, webhook, agent} ← cli.

Every import in the source tree counts, including the lazy ones inside functions: a
dependency is a dependency whenever it is loaded.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SOURCE_DIRS = {
    "contract": "fitwire.contract",
    "fitwire": "fitwire",
    "broker_config": "fitwire.broker",
    "android_client_api": "fitwire.client_api",
    "callback": "fitwire.callback",
    "webhook": "fitwire.webhook",
    "trainer_agent": "fitwire.agent",
    "cli": "fitwire.cli",
}

CORE = "fitwire.core"
"""The modules directly in ``fitwire/`` (settings, credentials, artifacts)."""

MAY_IMPORT: dict[str, set[str]] = {
    "fitwire.contract": set(),
    CORE: {"fitwire.contract"},
    "fitwire.broker": {"fitwire.contract", CORE},
    "fitwire.client_api": {"fitwire.contract", CORE},
    "fitwire.callback": {"fitwire.contract", CORE, "fitwire.broker", "fitwire.client_api"},
    "fitwire.webhook": {"fitwire.contract", CORE, "fitwire.broker", "fitwire.client_api"},
    # An agent runs each job wrapped in the Tracker.
    "fitwire.agent": {"fitwire.contract", CORE, "fitwire.broker", "fitwire.client_api", "fitwire.callback"},
    # The CLI starts webhooks and agents and administers their stores.
    "fitwire.cli": {"fitwire.contract", CORE, "fitwire.broker", "fitwire.client_api", "fitwire.callback",
                    "fitwire.webhook", "fitwire.agent"},
}

LAYERS = sorted({name for name in MAY_IMPORT if name != CORE}, key=len, reverse=True)


def layer_of(module: str) -> str | None:
    """The layer a ``fitwire…`` module belongs to; None for anything outside fitwire."""
    if module != "fitwire" and not module.startswith("fitwire."):
        return None
    for layer in LAYERS:
        if module == layer or module.startswith(layer + "."):
            return layer
    return CORE


def imported_modules(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """Every module an AST imports, absolute, with its line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # ``from fitwire import broker`` imports the subpackage fitwire.broker.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names
                      if module == "fitwire" and alias.name != "*"]
    return found


def violations(source: str, where: str, own: str, package: str) -> list[str]:
    allowed = MAY_IMPORT[own] | {own}
    problems = []
    for line, module in imported_modules(ast.parse(source, where), package):
        target = layer_of(module)
        if target is not None and target not in allowed:
            problems.append(f"{where}:{line}: {own} imports {module} ({target})")
    return problems


def all_violations() -> list[str]:
    problems: list[str] = []
    for folder, package in SOURCE_DIRS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            own = CORE if folder == "fitwire" else package
            relative = path.relative_to(ROOT / folder).with_suffix("")
            module_package = ".".join([package, *relative.parts[:-1]])
            problems += violations(path.read_text(), str(path.relative_to(ROOT)), own, module_package)
    return problems


def test_every_import_points_down_the_layers() -> None:
    assert all_violations() == []


def test_the_tree_was_read() -> None:
    # The check above would pass on an empty tree; make sure it saw the imports it judges.
    source = (ROOT / "webhook" / "api" / "jobs.py").read_text()
    modules = {module for _, module in imported_modules(ast.parse(source), "fitwire.webhook.api")}
    assert "fitwire.broker.jobs" in modules and "fitwire.contract.artifacts" in modules


@pytest.mark.parametrize(("folder", "source", "expected"), [
    ("webhook", "from fitwire.agent.backends import LocalArtifacts\n", "x.py:1: fitwire.webhook imports fitwire.agent.backends"),
    ("contract", "def f():\n    import fitwire.broker.topology\n", "x.py:2: fitwire.contract imports fitwire.broker.topology"),
    ("trainer_agent", "from fitwire import webhook\n", "x.py:1: fitwire.agent imports fitwire.webhook"),
    ("callback", "from ..cli import main\n", "x.py:1: fitwire.callback imports fitwire.cli"),
    ("fitwire", "from fitwire.broker import connect\n", "x.py:1: fitwire.core imports fitwire.broker"),
])
def test_a_wrong_import_is_named(folder: str, source: str, expected: str) -> None:
    package = SOURCE_DIRS[folder]
    own = CORE if folder == "fitwire" else package
    assert [p.split(" (")[0] for p in violations(source, "x.py", own, package)] == [expected]
