"""The JSON Schema of a contract model as an API document embeds it.

Both API documents, the webhook's OpenAPI (``/openapi.json``) and the broker's AsyncAPI
(``fitwire.client_api.asyncapi``), describe bodies by the pydantic models themselves, so
neither can drift from what the code accepts. A model's schema carries its nested models
in ``$defs``; a document wants them once, under ``components.schemas``, with every
``$ref`` pointing there. :func:`model_ref` does that hoisting for both.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

COMPONENTS_TEMPLATE = "#/components/schemas/{model}"
"""Where OpenAPI and AsyncAPI both keep reusable schemas."""


def model_ref(model: type[BaseModel], schemas: dict[str, Any], mode: JsonSchemaMode = "validation",
              ref_template: str = COMPONENTS_TEMPLATE) -> dict[str, Any]:
    """A ``$ref`` to ``model``'s JSON Schema, which joins ``schemas`` with its definitions.

    ``mode="serialization"`` for what a server returns (computed fields in, excluded ones
    out), ``"validation"`` for what it accepts. A definition already in ``schemas`` is
    replaced: pydantic names definitions after their classes, so the same name is the
    same class (and the later mode wins, as the documents have always done).
    """
    schema = model.model_json_schema(ref_template=ref_template, mode=mode)
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return {"$ref": ref_template.format(model=model.__name__)}


__all__ = ["COMPONENTS_TEMPLATE", "model_ref"]
