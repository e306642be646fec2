"""`pip install .` gives fitwire.* modules only, and a base install imports without keras or flask."""

from __future__ import annotations

import subprocess
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
    fitwire_cmd = tmp_path / "v" / "bin" / "fitwire"
    assert subprocess.run([str(fitwire_cmd), "--help"], capture_output=True, timeout=60).returncode == 0
