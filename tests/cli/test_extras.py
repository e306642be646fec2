"""Commands of an extra that is not installed say which extra to install, in one sentence, exit 2.

A module is made "not installed" the way Python itself reports it: ``sys.modules[name] = None``
makes both ``import name`` and ``importlib.util.find_spec(name)`` fail. The clean-venv
version of this (a real ``pip install fitwire`` without extras) is in tests/test_packaging.py.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

from fitwire.cli.common import EXIT_USAGE
from fitwire.cli.extras import EXTRA_MODULES
from tests.cli.conftest import Cli

ROOT = Path(__file__).resolve().parents[2]


def hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text and "ModuleNotFoundError" not in text, text
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [["webhook", "serve"], ["webhook", "create-admin", "root", "-p", "password-1"],
     ["webhook", "upgrade"], ["webhook", "invite", "--admin", "root"]],
)
def test_webhook_commands_without_the_server_extra_name_it(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    hide(monkeypatch, *EXTRA_MODULES["server"])
    result = cli(*args)
    assert result.exit_code == EXIT_USAGE
    line = one_line(result.stderr)
    assert f"{' '.join(args[:2])} needs the server extra, which is not installed here" in line
    assert "pip install 'fitwire[server]'" in line


def test_a_partly_installed_extra_names_what_is_missing(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "waitress")
    result = cli("webhook", "serve")
    assert result.exit_code == EXIT_USAGE
    line = one_line(result.stderr)
    assert "needs the server extra, which is only partly installed here (missing: waitress)" in line


def test_agent_start_without_the_agent_extra_names_it_before_touching_the_broker(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing answers here: an agent that started anyway would retry this broker until the test times out.
    monkeypatch.setenv("FITWIRE_AMQP_URL", "amqp://guest:guest@127.0.0.1:9/")
    hide(monkeypatch, "keras", "tensorflow")
    result = cli("agent", "start", "--local", "--pool", "extras-test")
    assert result.exit_code == EXIT_USAGE
    line = one_line(result.stderr)
    assert "agent start needs the agent extra" in line
    assert "missing: keras, tensorflow" in line
    assert "pip install 'fitwire[agent]'" in line


def test_help_needs_no_extra(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, *EXTRA_MODULES["server"])
    result = cli("webhook", "serve", "--help")
    assert result.exit_code == 0
    assert "--threads" in result.stdout


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    assert match, requirement
    return match.group(0).lower().replace("_", "-")


@pytest.mark.parametrize("extra", sorted(EXTRA_MODULES))
def test_the_modules_checked_are_those_the_extra_installs(extra: str) -> None:
    """EXTRA_MODULES and setup.cfg's extras name the same packages (checked where [all] is installed)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    requirements = [_requirement_name(r) for r in config["options.extras_require"][extra].split("\n") if r.strip()]
    provides: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            provides.setdefault(dist.lower().replace("_", "-"), set()).add(module)
    checked = set(EXTRA_MODULES[extra])
    for requirement in requirements:
        assert requirement in provides, f"{requirement} (fitwire[{extra}]) is not installed in this venv"
        assert provides[requirement] & checked, f"no module of {requirement} is in EXTRA_MODULES[{extra!r}]"
    from_extra = set().union(*(provides[r] for r in requirements))
    assert checked <= from_extra, f"EXTRA_MODULES[{extra!r}] names modules fitwire[{extra}] does not install"
