"""`fitwire models spec set|show|validate`, `models shape|clone` against a live webhook."""

from __future__ import annotations

import json
from pathlib import Path

from fitwire.cli.common import EXIT_ERROR
from tests.cli.conftest import Cli, User
from tests.datasets.generate import sample_csv

SPEC = {"format": "csv", "layers": [
    {"type": "Dense", "layer": {"units": 16, "activation": "relu"}},
    {"type": "Dropout", "layer": {"rate": 0.1}},
    {"type": "Dense", "layer": {"units": None, "activation": "sigmoid"}},
]}


def _file(tmp_path: Path, spec: object, name: str = "net.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(spec))
    return str(path)


def test_validate_prints_each_layers_shape_and_parameters(cli: Cli, user: User, tmp_path: Path) -> None:
    result = cli("models", "spec", "validate", _file(tmp_path, SPEC), "--size", "5", "--output-units", "1")
    assert result.exit_code == 0, result.output
    assert "(16)" in cli.drawn and "96" in cli.drawn and "113 parameters" in cli.drawn  # 5·16+16, 16+1
    open_units = cli("models", "spec", "validate", _file(tmp_path, SPEC), "--size", "5")
    assert open_units.exit_code == 0 and "96 + ? parameters" in cli.drawn


def test_a_bad_spec_names_the_layer_and_field(cli: Cli, user: User, tmp_path: Path) -> None:
    bad = {"format": "images", "size": [4, 4, 1], "layers": [
        {"type": "Conv2D", "layer": {"filters": 2, "kernel_size": 5}}, {"type": "Flatten"}]}
    result = cli("models", "spec", "validate", _file(tmp_path, bad))
    assert result.exit_code == EXIT_ERROR
    assert "layer 0 (kernel_size)" in result.stderr and "Traceback" not in result.output
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = cli("models", "spec", "validate", str(broken))
    assert result.exit_code == EXIT_ERROR and "not a JSON file" in result.stderr


def test_set_shape_show_and_clone(cli: Cli, user: User, tmp_path: Path) -> None:
    key = user.model("smoker-net")
    assert cli("models", "spec", "set", key, _file(tmp_path, SPEC)).exit_code == 0
    assert "dynamic" in cli.drawn
    assert cli("datasets", "upload", str(sample_csv(tmp_path / "people.csv", rows=60))).exit_code == 0
    result = cli("models", "shape", "smoker-net", "--dataset", "people", "--inputs", "age,height,city",
                 "--outputs", "smoker")
    assert result.exit_code == 0, result.output
    assert "shaped, shaped to people" in cli.drawn and "(1)" in cli.drawn
    shown = json.loads(cli("models", "spec", "show", key, "--json").stdout)
    assert shown["state"] == "shaped" and shown["spec"]["size"] == [6] and shown["output_units"] == 1
    result = cli("models", "clone", key, "smoker-net-2")
    assert result.exit_code == 0, result.output
    models = {m["name"]: m for m in json.loads(cli("models", "list", "--json").stdout)["models"]}
    assert models["smoker-net-2"]["design"]["state"] == "editable"
    blocked = cli("models", "shape", key, "--dataset", "people", "--inputs", "name", "--outputs", "smoker")
    assert blocked.exit_code == EXIT_ERROR and "blocked" in blocked.stderr
