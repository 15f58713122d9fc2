"""What every command of the CLI shares, declared once: the ``--quiet``, ``--debug``
and ``--out`` options, the run directory argument of the commands that read one, the
mapping of any failure to one line and exit 2, and the progress bars."""

from __future__ import annotations

import contextlib
import traceback

import typer

from validator.errors import ValidatorError
from validator.record.ownership import canonical_out

EXIT_COULD_NOT_RUN = 2

QUIET = typer.Option(False, "--quiet", "-q", help="No progress on stderr.")
DEBUG = typer.Option(False, "--debug", help="Show tracebacks of errors.")
def out_option(help: str, default=None):
    """The ``--out`` / ``-o`` of the commands that write somewhere (optional unless a
    default of ``...``), its parent folders resolved (record.ownership.canonical_out)."""
    return typer.Option(default, "--out", "-o", help=help, callback=canonical_out)


REPORT_URL = typer.Option(None, "--report-url",
                          help="Where CI publishes report.html (an artifact URL): "
                               "summary.md links there instead of the relative report.html.")

RUN_DIR = typer.Argument(..., help="A finished run directory (summary.json and "
                                   "predictions.parquet).")


def fail(message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_COULD_NOT_RUN)


@contextlib.contextmanager
def guarded(debug: bool):
    """Map every failure to one line and exit 2; never a traceback unless --debug."""
    try:
        yield
    except (typer.Exit, BrokenPipeError):  # stdout closed (`| head`): click exits 1 quietly
        raise
    except ValidatorError as exc:
        fail(str(exc), debug)
    except KeyboardInterrupt:
        fail("interrupted", debug)
    except MemoryError:
        fail("out of memory; try a smaller batch_size or sample", debug)
    except Exception as exc:  # fail closed: an unexpected error is still exit 2
        fail(f"internal error: {exc.__class__.__name__}: {exc} (rerun with --debug)", debug)


def rich_progress(quiet: bool):
    """A progress factory drawing bars on stderr, or a silent one."""
    from validator.scorers import no_progress

    if quiet:
        return no_progress
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    @contextlib.contextmanager
    def factory(description: str, total: int):
        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=False) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)

    return factory
