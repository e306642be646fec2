"""The webhook's HTTP API: one blueprint per resource, registered by :func:`fitwire.webhook.create_app`.

A new resource group (jobs, nodes, artifacts) is a new module here with a
``bp`` blueprint, added to ``BLUEPRINTS`` and to ``fitwire.webhook.openapi``.
"""

from __future__ import annotations

from flask import Blueprint

from fitwire.webhook.api import (
    artifacts,
    auth,
    datasets,
    designs,
    events,
    experiment,
    health,
    jobs,
    models,
    nodes,
    predictions,
    runs,
    trained,
    web_client,
)

BLUEPRINTS: tuple[Blueprint, ...] = (
    health.bp, auth.bp, models.bp, runs.bp, events.bp, jobs.bp, nodes.bp, artifacts.bp, datasets.bp,
    designs.bp, trained.bp, predictions.bp,
    experiment.bp,
    web_client.bp,  # the web and phone client at /
)
