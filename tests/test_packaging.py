"""`pip install .` gives fitwire.* modules only, a base install imports without keras or flask,
its server and agent commands name the extra they need, and every place that states the
Python version states the one CI runs."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pip_install_into_a_clean_venv(tmp_path: Path) -> None:
    venv.create(tmp_path / "v", with_pip=True)
    python = tmp_path / "v" / "bin" / "python"
    build = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(ROOT)], capture_output=True, text=True, timeout=600
    )
    assert build.returncode == 0, build.stderr[-2000:]
    check = subprocess.run(
        [str(python), "-c", "import fitwire.broker, fitwire.callback, fitwire.cli.main, sys; "
         "print(sorted(m for m in ('keras', 'flask', 'tensorflow') if m in sys.modules))"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "[]"  # the light install pulls in no framework
    site = Path(subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
    ).strip())
    top = {p.name for p in site.iterdir()}
    for generic in ("callback", "cli", "webhook", "broker_config", "trainer_agent", "android_client_api"):
        assert generic not in top
    assert (site / "fitwire" / "py.typed").exists()
    assert (site / "fitwire" / "broker" / "definitions.json").exists()
    assert (site / "fitwire" / "broker" / "rabbitmq.conf").exists()
    assert (site / "fitwire" / "webhook" / "migrations" / "script.py.mako").exists()
    assert (site / "fitwire" / "webhook" / "migrations" / "versions" / "0001_users_tokens.py").exists()
    fitwire_cmd = tmp_path / "v" / "bin" / "fitwire"
    assert subprocess.run([str(fitwire_cmd), "--help"], capture_output=True, timeout=60).returncode == 0

    # Commands of an extra the light install lacks: one sentence naming it, exit 2, nothing started.
    env = {**os.environ, "FITWIRE_DATA_DIR": str(tmp_path / "data"),
           # nothing answers there: an agent that started anyway could not take anyone's jobs
           "FITWIRE_AMQP_URL": "amqp://guest:guest@127.0.0.1:9/"}
    gated = (
        (["webhook", "serve"], "server"),
        (["webhook", "create-admin", "root", "-p", "password-1"], "server"),
        (["agent", "start", "--local"], "agent"),
    )
    for args, extra in gated:
        result = subprocess.run([str(fitwire_cmd), *args], capture_output=True, text=True, cwd=tmp_path, env=env,
                                timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and result.stdout == "", (args, result.stderr)
        assert result.stderr.strip().splitlines() == [
            f"fitwire {' '.join(args[:2])} needs the {extra} extra, which is not installed here; "
            f"install it with `pip install 'fitwire[{extra}]'`."
        ]


def _minimum(python_requires: str) -> tuple[int, int]:
    match = re.fullmatch(r">=\s*3\.(\d+)", python_requires.strip())
    assert match, f"python_requires {python_requires!r} is not of the form >=3.N"
    return 3, int(match.group(1))


def test_every_stated_python_version_is_the_declared_minimum() -> None:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    major, minor = _minimum(setup["options"]["python_requires"])
    classifiers = {c.strip() for c in setup["metadata"]["classifiers"].splitlines() if c.strip()}
    stated = r"Programming Language :: Python :: 3\.\d+"
    versions = {c.rsplit(" :: ", 1)[1] for c in classifiers if re.fullmatch(stated, c)}
    assert versions == {f"{major}.{minor}"}, "the classifiers must name exactly the Python CI runs"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["ruff"]["target-version"] == f"py{major}{minor}"
    assert pyproject["tool"]["mypy"]["python_version"] == f"{major}.{minor}"
    assert sys.version_info[:2] >= (major, minor), "this Python is older than the one fitwire declares"


@pytest.mark.skipif(os.environ.get("CI", "").lower() not in ("1", "true", "yes"), reason="only CI proves a version")
def test_ci_runs_the_declared_minimum_python() -> None:
    """The minimum declared is the version the suite passed on: if CI moves on, the declaration must follow."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert sys.version_info[:2] == _minimum(setup["options"]["python_requires"])
