"""`chancery import gdelt|icews`: the importer wired to ingest, a progress bar and a summary.

The mapping and batching live in `services.cli.importers`; this module only chooses the sink
(ingest, or nothing for `--dry-run`), draws progress on stderr and prints the summary on
stdout, so a script can read the counts.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from . import settings as cli_settings
from .errors import CliError
from .importers.datasets import DATASETS, LayoutError
from .importers.events import Skipped
from .importers.reading import FileProblem
from .importers.run import DryRun, Importer, Sink
from .ingest_client import IngestClient
from .render import import_summary


def run_import(
    dataset_name: Literal["gdelt", "icews"],
    files: list[Path],
    *,
    ingest_url: str | None,
    key_file: Path | None,
    batch_size: int,
    dry_run: bool,
    skips: Path | None,
    retry_for: float,
) -> None:
    err = Console(stderr=True, highlight=False)
    dataset = DATASETS[dataset_name]
    try:
        for path in files:  # every file's layout, before anything is sent
            dataset.check(path)
    except (LayoutError, FileProblem) as exc:
        raise CliError(str(exc)) from None
    with ExitStack() as stack:
        sink: Sink
        if dry_run:
            sink = DryRun()
        else:
            client = stack.enter_context(
                IngestClient(
                    cli_settings.ingest_url(ingest_url),
                    cli_settings.api_key(key_file),
                    retry_for_s=retry_for,
                    on_wait=lambda message: err.print(f"[yellow]{message}[/]"),
                )
            )
            sink = client
        skip_out = (
            stack.enter_context(skips.open("w", encoding="utf-8")) if skips is not None else None
        )

        def on_skip(file_name: str, line: int, skipped: Skipped) -> None:
            if skip_out is not None:
                detail = skipped.detail.replace("\t", " ")
                skip_out.write(f"{file_name}\t{line}\t{skipped.reason}\t{detail}\n")

        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[rows]:,} rows"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        tasks: dict[str, Any] = {}

        def on_progress(file_name: str, done: int, total: int, rows: int) -> None:
            if file_name not in tasks:
                tasks[file_name] = progress.add_task(file_name, total=total, rows=0)
            progress.update(tasks[file_name], completed=done, rows=rows)

        importer = Importer(
            dataset,
            sink,
            dry_run=dry_run,
            max_events=batch_size,
            on_progress=on_progress,
            on_skip=on_skip,
        )
        if not dry_run:
            client.check_reachable()
        try:
            with progress:
                report = importer.run(files)
        except FileProblem as exc:
            typer.echo(import_summary(importer.report) + "\n  (stopped early)")
            raise CliError(str(exc)) from None
        except CliError:
            typer.echo(import_summary(importer.report) + "\n  (stopped early)")
            raise
    typer.echo(import_summary(report))
    if report.refusals:
        raise CliError(f"ingest refused {len(report.refusals)} batch(es): see REFUSED above")
