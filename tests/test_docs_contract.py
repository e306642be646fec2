"""The HTTP API document lists exactly the fields the contract's entities show: no more, no fewer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from fitwire.contract.entities import (
    Dataset,
    Epoch,
    Job,
    ListedNode,
    ListedTrained,
    Login,
    Model,
    Run,
    Session,
    User,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "http-api.md"


def documented_fields(name: str) -> set[str]:
    """The quoted names in the ``Name = {…}`` line, leaving out example values (after ``: ``)."""
    found = re.search(rf"^`{name} = \{{(.*?)\}}`", DOC.read_text(), re.MULTILINE)
    assert found, f"docs/http-api.md has no `{name} = {{…}}` line"
    fields = re.sub(r':\s*("[^"]*"(\|"[^"]*")*|\w+)', "", found.group(1))
    return set(re.findall(r'"(\w+)"', fields))


def shown_fields(model: type[BaseModel]) -> set[str]:
    return {name for name, info in model.model_fields.items() if not info.exclude} | set(model.model_computed_fields)


@pytest.mark.parametrize("model", [User, Model, Run, Epoch, Job, Dataset, Session, Login, ListedTrained, ListedNode])
def test_documented_shape_equals_the_entity(model: type[BaseModel]) -> None:
    assert documented_fields(model.__name__) == shown_fields(model)


def test_example_values_are_not_taken_for_fields() -> None:
    assert documented_fields("Run") >= {"name", "status", "reason"}
    assert "training_001" not in documented_fields("Run") and "failed" not in documented_fields("Run")
