"""Events in, always through ingest: `load seeds` and `import gdelt|icews`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from services.cli import settings as cli_settings
from services.cli.errors import reported
from services.cli.options import IngestUrl, KeyFile

if TYPE_CHECKING:
    from services.cli.importers.datasets import DatasetName

load_app = typer.Typer(help="Load events through ingest.", no_args_is_help=True)
import_app = typer.Typer(
    help="Import GDELT 2.0 or ICEWS event files through ingest (idempotent).",
    no_args_is_help=True,
)


@load_app.command("seeds")
@reported
def load_seeds_command(
    *,
    ingest_url: IngestUrl = None,
    key_file: KeyFile = None,
    folder: Annotated[Path, typer.Option(help="Folder of *.jsonl seed files.")] = Path("seeds"),
) -> None:
    """Load seeds/*.jsonl through ingest (loading twice changes nothing)."""
    from services.cli.seeds import load_seeds

    url = cli_settings.ingest_url(ingest_url)
    report = load_seeds(url, cli_settings.api_key(key_file), folder)
    typer.echo(f"{report.events} events from {report.files} file(s); position {report.position}")


Files = Annotated[
    list[Path],
    typer.Argument(
        help="Files to import (plain, or a .zip holding one file).",
        exists=True,
        dir_okay=False,
        readable=True,
        show_default=False,
    ),
]
BatchSize = Annotated[
    int, typer.Option(min=2, max=1000, help="Events per request to ingest (at most 1000).")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Map and count the rows; send nothing.")]
SkipsFile = Annotated[
    Path | None,
    typer.Option(
        "--skips",
        help="Write each skipped row (file, line, reason, detail) to this TSV file.",
        dir_okay=False,
        show_default=False,
    ),
]
RetryFor = Annotated[
    float,
    typer.Option(
        min=0, help="How long to keep retrying while ingest is unavailable (503), in seconds."
    ),
]


def _importer(dataset: DatasetName, doc: str) -> None:
    """`chancery import DATASET FILE...`: one command per dataset, the same options."""

    def command(
        files: Files,
        *,
        ingest_url: IngestUrl = None,
        key_file: KeyFile = None,
        batch_size: BatchSize = 1000,
        dry_run: DryRun = False,
        skips: SkipsFile = None,
        retry_for: RetryFor = 120.0,
    ) -> None:
        from services.cli.importing import run_import

        run_import(
            dataset,
            files,
            ingest_url=ingest_url,
            key_file=key_file,
            batch_size=batch_size,
            dry_run=dry_run,
            skips=skips,
            retry_for=retry_for,
        )

    command.__name__ = f"import_{dataset}"
    command.__doc__ = doc
    import_app.command(dataset)(reported(command))


_importer(
    "gdelt",
    """Import GDELT 2.0 export files (61 columns; GDELT 1.0 files are refused).

    Each row becomes a diplomacy.event.coded (id = GLOBALEVENTID); 040/041/044/046 rows also
    a diplomacy.meeting.held. Rows naming no state or known organisation on either side, the
    same one on both, an unknown CAMEO code or a bad date are skipped and counted.
    """,
)
_importer(
    "icews",
    """Import ICEWS event files (.tab with its header line; NA for missing values).

    Each row becomes a diplomacy.event.coded (id = Event ID); 040/041/044/046 rows also a
    diplomacy.meeting.held, and 042/043 rows whose traveller is a named person a
    diplomacy.visit.leg.started. Skipped rows are counted by reason.
    """,
)
