"""The `fitwire` command: one Typer sub-app per file, every command registered here.

Every command draws on the injected consoles (``common.io()``) and reports failures through
``common.reports_errors``, the one path from an error to its sentence and exit code
(``common.EXIT_*``).
"""

from __future__ import annotations

import typer

from fitwire.cli import (
    agent_cmd,
    control,
    datasets,
    designs,
    dev,
    experiment,
    jobs,
    models,
    nodes,
    outbox,
    predict,
    runs,
    session,
    webhook_cmd,
)
from fitwire.cli.extras import add_typer_needing

app = typer.Typer(
    no_args_is_help=True,
    help="fitwire: watch and steer deep-learning training from anywhere.",
    pretty_exceptions_enable=False,
)

# Every command is registered here, and nowhere else.
app.command()(session.login)
app.command()(session.logout)
app.command()(session.whoami)
app.command()(runs.watch)
app.command()(control.stop)
app.command()(control.lr)
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
models.app.add_typer(designs.spec_app, name="spec")
models.app.add_typer(designs.weights_app, name="weights")
designs.spec_app.command("validate")(designs.validate)
models.app.command("shape")(designs.shape)
models.app.command("clone")(designs.clone)
models.app.command("export")(experiment.export)
app.command("train")(designs.train)
app.command("predict")(predict.predict)
app.add_typer(datasets.app, name="datasets")
app.add_typer(jobs.app, name="jobs")
app.add_typer(nodes.app, name="nodes")
# Without their extra these say which one to install, instead of failing on an import.
add_typer_needing(app, agent_cmd.app, name="agent", extra="agent")
add_typer_needing(app, webhook_cmd.app, name="webhook", extra="server")
app.add_typer(outbox.app, name="outbox")
app.add_typer(dev.app, name="dev")
