"""Settings: typed, documented, a bad value names its variable; the README's table is this module's."""

from __future__ import annotations

from pathlib import Path

import pytest

from fitwire.contract.errors import SettingsError
from fitwire.settings import Settings, settings_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_need_no_environment(tmp_path: Path) -> None:
    s = Settings.from_env({"FITWIRE_DATA_DIR": str(tmp_path)})
    assert s.amqp_url.startswith("amqp://")
    assert s.store_url == f"sqlite:///{tmp_path / 'fitwire.db'}"


def test_environment_values_are_typed() -> None:
    s = Settings.from_env({"FITWIRE_OUTBOX_WAIT": "0.5", "FITWIRE_STORE": "postgresql://db/x"})
    assert s.outbox_wait == 0.5 and s.store_url == "postgresql://db/x"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FITWIRE_AMQP_URL", "http://localhost"),
        ("FITWIRE_WEBHOOK_URL", "localhost:8765"),
        ("FITWIRE_STORE", "mysql://x"),
        ("FITWIRE_OUTBOX_WAIT", "soon"),
        ("FITWIRE_OUTBOX_WAIT", "-1"),
        ("FITWIRE_SIGNUP", "everyone"),
        ("FITWIRE_LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


def test_every_setting_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, name


def test_readme_configuration_table_is_the_settings_module() -> None:
    assert settings_table() in README.read_text(), (
        "README's configuration table is stale: paste the output of "
        "`python -c 'from fitwire.settings import settings_table; print(settings_table())'`"
    )
