"""`contacts-api import` and `export`: parse arguments, run the job, print.

stdout carries only the summary (import) or the file (export); progress and hints go to stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from contacts_api import export_target
from contacts_api.bulk_export import export_contacts
from contacts_api.bulk_jobs import ImportSummary, import_file
from contacts_api.cli_run import fail, stderr, with_database
from contacts_api.errors import UserError
from contacts_api.settings import Settings
from contacts_api.storage.engine import Database

T = TypeVar("T")


class OutputFailed(Exception):
    """The export's output could not be written: its message says why."""


class _Output:
    """Where an export writes. Its failures are said as its own: a reader that stops reading
    (`export | head`) is not a broken connection to the database, though both are
    BrokenPipeError, and a full disk behind `> file` is named as standard output's."""

    def __init__(self, stream: Any, name: str) -> None:
        self.stream = stream
        self.name = name

    def write(self, text: str) -> int:
        try:
            written: int = self.stream.write(text)
        except OSError as exc:
            raise self._failed(exc) from None
        return written

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: OSError) -> OutputFailed:
        if isinstance(exc, BrokenPipeError):
            return OutputFailed(f"{self.name} was closed before the export finished")
        return OutputFailed(f"cannot write to {self.name}: {exc.strerror or exc}")


def _quiet_stdout() -> None:
    """Standard output to /dev/null, so that its flush at exit fails no more (what Python's
    documentation advises after a BrokenPipeError)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)


def _cannot_write(exc: OSError) -> str:
    """The error report or the export cannot be written: a full disk..."""
    where = f" {exc.filename}" if exc.filename else ""
    return f"cannot write{where}: {exc.strerror or exc}"


def _run(work: Callable[[Database], Awaitable[T]]) -> T:
    try:
        return with_database(work, other_os_error=_cannot_write)
    except OutputFailed as exc:
        _quiet_stdout()
        raise fail(str(exc)) from None


def import_command(
    # readable=False: click's own check is a usage error (exit 2); the import says "cannot
    # read FILE: Permission denied" in one line with exit 1, as the contract wants.
    file: Annotated[
        Path, typer.Argument(help="CSV (header row) or JSON Lines file", readable=False)
    ],
    account: Annotated[str, typer.Option(help="Account name")],
    emit_webhooks: Annotated[
        bool, typer.Option("--emit-webhooks", help="Send webhook events for imported contacts")
    ] = False,
) -> None:
    """Import contacts; prints `created N, updated N, failed N, unchanged N`."""
    settings = Settings()
    try:
        total = file.stat().st_size if file.is_file() else 0
    except OSError as exc:  # a name too long, say (the import itself says the rest)
        raise fail(f"cannot read {file}: {exc.strerror or exc}") from None
    # The bar measures bytes of the file read (rows are not known up front); it shows rows.
    progress, update = _progress_bar("importing", "rows", total, enabled=stderr.is_terminal)

    summary = ImportSummary()  # filled as batches commit: where an interrupted import stood
    try:
        with progress:
            _run(
                lambda db: import_file(
                    db,
                    file,
                    account,
                    duplicate_email=settings.duplicate_email,
                    emit_webhooks=emit_webhooks,
                    on_progress=update,
                    summary=summary,
                )
            )
    except KeyboardInterrupt:  # Ctrl-C: exit 130 (cli.main), and where the import stands
        _say(_interrupted(summary.rows, settings.duplicate_email), _rejected(summary))
        raise
    except BaseException:  # stopped on an error (said): where the rows it rejected went
        _say(_rejected(summary))
        raise
    print(summary.line())
    _say(_rejected(summary))


def _say(*lines: str | None) -> None:
    for line in lines:
        if line:
            stderr.print(line, markup=False, highlight=False, soft_wrap=True)


def _rejected(summary: ImportSummary) -> str | None:
    """Where the rejected rows are; or, with none rejected, that an earlier report beside
    FILE could not be removed (it is not this run's)."""
    if summary.report is None:
        if summary.report_in_the_way is None:
            return None
        return f"note: {summary.report_in_the_way} is not this run's: it cannot be removed"
    moved = f" ({summary.report_moved})" if summary.report_moved else ""
    return f"{summary.failed} row(s) rejected, see {summary.report}{moved}"


def _interrupted(rows: int, duplicate_email: str) -> str:
    """Where an interrupted import stands, and what running it again does in this mode."""
    if rows == 0:
        return "interrupted before its first batch was committed: nothing was imported"
    said = (
        f"interrupted after {rows:,} rows in committed batches (one committing as it stopped"
        " may be in too); "
    )
    if duplicate_email == "allow":  # nothing matches a row to a contact: all again
        return said + (
            "running the same file again would import those rows twice"
            " (CONTACTS_API_DUPLICATE_EMAIL=allow): run it without them"
        )
    if duplicate_email == "reject":
        return said + "run the same import again to finish (those rows then fail as existing)"
    return said + "run the same import again to finish (it finds those rows unchanged)"


def export_command(
    account: Annotated[str, typer.Option(help="Account name")],
    format_: Annotated[
        str, typer.Option("--format", help="csv or jsonl", case_sensitive=False)
    ] = "csv",
    output: Annotated[
        Path | None, typer.Option(help="File to write (default: stdout)", readable=False)
    ] = None,
) -> None:
    """Export every live contact (with tracking) as CSV or JSON Lines."""
    file_format = format_.lower()
    if file_format not in ("csv", "jsonl"):
        raise typer.BadParameter("expected csv or jsonl", param_hint="--format")
    # On a terminal, a bar on stderr; not when the contacts go to that same terminal.
    shown = stderr.is_terminal and not (output is None and sys.stdout.isatty())
    progress, update = _progress_bar("exporting", "contacts", None, enabled=shown)

    def on_progress(count: int, total: int) -> None:
        update(count, count, total)

    if output is None:
        if sys.stdout is None:  # started with stdout closed (`>&-`)
            raise fail("cannot write to standard output: it is closed")
        stdout = _Output(sys.stdout, "standard output")

        async def to_stdout(db: Database) -> None:
            await export_contacts(db, account, stdout, file_format, on_progress)  # type: ignore[arg-type]
            stdout.flush()

        with progress:
            _run(to_stdout)
        return
    try:
        if output.is_dir():
            raise fail(f"cannot write {output}: Is a directory")
        # A file is written beside PATH and renamed over it once complete: a failed or
        # interrupted export (an unknown account, Ctrl-C, a full disk) leaves a file already at
        # PATH as it was. What is not a file (/dev/stdout, a pipe) is written to as it is,
        # by the name given (/dev/stdout resolved to /proc/<pid>/fd/pipe:[...], no name at all).
        export_target.refuse_a_planted_link(output)  # (in place too: a FIFO a link leads to)
        in_place = output.exists() and not output.is_file()
        if not in_place:
            try:
                output = output.resolve()  # through a link to its file, which the rename replaces
            except RuntimeError as exc:  # "Symlink loop from ..." (typer.Exit is one too)
                raise fail(f"cannot write {output}: {exc}") from None
            export_target.refuse_the_database(output, Settings().database_url)
    except UserError as exc:  # a link planted on the way, the database itself
        raise fail(str(exc)) from None
    except OSError as exc:  # a name too long, say
        raise fail(f"cannot write {output}: {exc.strerror or exc}") from None
    try:
        out: IO[str]
        if in_place:
            out, partial = open(output, "w", newline="", encoding="utf-8"), output  # noqa: SIM115
        else:
            out, partial = export_target.open_to_replace(output)
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror or exc}") from None
    try:
        with out, progress:
            target = _Output(out, str(output))
            count = _run(lambda db: export_contacts(db, account, target, file_format, on_progress))  # type: ignore[arg-type]
            if not in_place:
                # On disk before it takes PATH's name: after a power cut, PATH is the old
                # file or the whole new one, never an empty one (ext4 and XFS may order it so).
                out.flush()
                os.fsync(out.fileno())
        if not in_place:
            os.replace(partial, output)
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror or exc}") from None
    finally:
        if not in_place:
            partial.unlink(missing_ok=True)
    stderr.print(
        f"exported {count} contacts to {output}", markup=False, highlight=False, soft_wrap=True
    )


def _progress_bar(
    label: str, unit: str, total: int | None, *, enabled: bool
) -> tuple[Progress, Callable[..., None]]:
    """A progress bar on stderr (drawn only when `enabled`): how much is done, at what rate,
    and the time left; and `update(completed, done, total=None)` to move it, `done` counting
    in `unit`."""
    progress = Progress(
        TextColumn(label),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[done]:,} " + unit + "  {task.fields[rate]:,.0f} " + unit + "/s"),
        TimeRemainingColumn(),
        console=stderr,
        disable=not enabled,
    )
    task = progress.add_task(label, total=total or None, done=0, rate=0.0)

    def update(completed: int, done: int, new_total: int | None = None) -> None:
        elapsed = progress.tasks[task].elapsed or 0.0
        rate = done / elapsed if elapsed else 0.0
        if new_total is not None:
            progress.update(task, total=new_total)
        progress.update(task, completed=completed, done=done, rate=rate)

    return progress, update


def register_bulk_commands(app: typer.Typer) -> None:
    """Add `import` and `export` to the CLI."""
    app.command("import")(import_command)
    app.command("export")(export_command)
