"""`chancery keys`: API keys, created, listed and revoked in the keys file. Running ingest
and API processes follow the file: a key works, or stops working, within seconds."""

from __future__ import annotations

from typing import Annotated

import typer

from chancery.auth import Scope
from chancery.settings import AuthSettings
from services.cli.errors import BadInput, CliError, reported
from services.cli.options import JsonOut

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


@app.command("list")
@reported
def keys_list(json_out: JsonOut = False) -> None:
    """List the keys (id, name, scopes, created, expires); the keys themselves are not kept."""
    import json

    from services.cli.devkeys import list_keys

    keys_file = AuthSettings().api_keys_file
    try:
        keys = list_keys(keys_file)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the keys file {keys_file}: {exc}") from None
    if json_out:
        typer.echo(json.dumps([k.model_dump(mode="json") for k in keys], indent=2))
        return
    for key in keys:
        scopes = ",".join(sorted(s.value for s in key.scopes))
        expires = f"  expires {key.expires:%Y-%m-%d %H:%M}" if key.expires else ""
        typer.echo(
            f"{key.key_id}  {key.name:<24} {scopes:<30} created {key.created:%Y-%m-%d %H:%M}"
            + expires
        )


@app.command("revoke")
@reported
def keys_revoke(
    key: Annotated[
        str, typer.Argument(help="The key's id (see `chancery keys list`), or the key.")
    ],
) -> None:
    """Revoke a key: running ingest and API processes refuse it within seconds, and the
    Atlas sessions it opened end with it."""
    from chancery.auth import key_id_of
    from services.cli.devkeys import revoke_key

    if key_id_of(key) is None:
        raise BadInput(f"{key!r} is neither a key id (12 hex digits) nor an API key")
    keys_file = AuthSettings().api_keys_file
    try:
        removed = revoke_key(keys_file, key)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot update the keys file {keys_file}: {exc}") from None
    if removed is None:
        raise CliError(f"no key {key_id_of(key)} in {keys_file}")
    typer.echo(f"revoked {removed.key_id} ({removed.name})")
