"""The typer app: every command module registered on it, the ``--version`` option and
``main`` (the console script). Commands live one group per module beside this one and
import only the library and validator.cli.options, never this module."""

from __future__ import annotations

import os
import signal
import sys

import typer

from validator.cli.diagnose_repair import diagnose, repair
from validator.cli.init import init
from validator.cli.plan_ratings import plan_ratings
from validator.cli.quantize import quantize
from validator.cli.recommend_discover import discover, recommend
from validator.cli.report import report
from validator.cli.run import run
from validator.cli.slices import slices_check

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  no_args_is_help=True)
slices_app = typer.Typer(help="Work with slice definition files.\n\n"
                              "Example: validator slices check slices/",
                         no_args_is_help=True)
app.add_typer(slices_app, name="slices")
for command in (run, quantize, report, init, recommend, discover, diagnose, repair):
    app.command()(command)
app.command("plan-ratings")(plan_ratings)
slices_app.command("check")(slices_check)


def show_version(value: bool) -> None:
    if value:
        from validator import __version__

        typer.echo(f"slice-validator {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=show_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """A release gate for quantized text scorers, slice by slice.

    Example: validator run --config gate.yaml
    """


def interrupt(signum, frame) -> None:
    """SIGTERM (a CI job cancelled) ends a command as Ctrl-C does: its folders, locks
    and measuring processes cleaned up, exit 2."""
    raise KeyboardInterrupt


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    signal.signal(signal.SIGTERM, interrupt)
    sys.exit(app())
