"""`python -m fitwire.cli` = the `fitwire` command."""

from fitwire.cli.main import app

app()
