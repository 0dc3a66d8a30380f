"""`chancery keys`: API keys."""

from __future__ import annotations

from typing import Annotated

import typer

from chancery.auth import Scope
from chancery.settings import AuthSettings
from services.cli.errors import CliError, reported

app = typer.Typer(help="API keys.", no_args_is_help=True)


@app.command("create")
@reported
def keys_create(
    name: Annotated[str, typer.Argument(help="Who the key is for.")],
    scope: Annotated[list[Scope], typer.Option("--scope", "-s", help="Repeat for several.")],
) -> None:
    """Create an API key; it is shown once, only its digest is stored."""
    from services.cli.devkeys import create_key

    keys_file = AuthSettings().api_keys_file
    try:
        key = create_key(keys_file, name, scope)
    except OSError as exc:
        raise CliError(f"cannot write the keys file {keys_file}: {exc.strerror}") from None
    typer.echo(key)


@app.command("dev")
@reported
def keys_dev() -> None:
    """The development key, with every scope: made once, then reused while it is valid.

    Written to CHANCERY_KEY_FILE (.chancery/dev-key), where the other commands find it, and
    its digest to CHANCERY_API_KEYS_FILE; printed. `chancery up` does the same.
    """
    from services.cli.devkeys import ensure_dev_key
    from services.cli.settings import CliSettings

    keys_file = AuthSettings().api_keys_file
    try:
        key = ensure_dev_key(keys_file, CliSettings().key_file)
    except OSError as exc:
        raise CliError(f"cannot write the development key: {exc}") from None
    typer.echo(key)
