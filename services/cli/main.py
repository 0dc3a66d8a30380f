"""`chancery`: run the services, and operate the system.

This module only assembles the command; each family of commands is a module of
services/cli/commands/. Operator commands find the services through flags, `CHANCERY_*`
variables or the local defaults (see services/cli/settings.py) and send the key from
`.chancery/dev-key` unless told otherwise. Any failure an operator can act on (a service
down, a key refused, a file of the wrong layout) is printed as one line naming what failed
and where, and the command exits non-zero; set CHANCERY_DEBUG=1 to see a traceback for
anything unexpected.
"""

from __future__ import annotations

import logging
import sys

import typer

from .commands import data, keys, ops, read, serve

app = typer.Typer(
    name="chancery",
    help="Chancery: diplomatic events in a Kafka log, read models in Redis, an HTTP API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# The order of `chancery --help`: the services, then the operator commands, then the groups.
for command in (
    serve.ingest,
    serve.projector,
    serve.api,
    serve.deliver,
    serve.up,
    ops.rebuild,
    read.relation,
    read.itinerary,
    read.tail,
    ops.status,
):
    app.command()(command)
app.add_typer(keys.app, name="keys")
app.add_typer(data.load_app, name="load")
app.add_typer(data.import_app, name="import")
app.add_typer(ops.dlq_app, name="dlq")


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
