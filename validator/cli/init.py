"""``validator init``: write a starter project for a gate of one's own."""

from __future__ import annotations

from pathlib import Path

import typer

from validator.cli.options import DEBUG, guarded


def init(
    folder: Path = typer.Argument(Path("."), help="Folder for the starter project "
                                                  "(default: the current one)."),
    force: bool = typer.Option(False, "--force", help="Replace starter files that exist."),
    debug: bool = DEBUG,
) -> None:
    """Write a starter project for your own gate.

    It holds a commented gate.yaml (every config key), slices/, ci/ jobs for GitHub
    Actions and GitLab CI, and the shipped synthetic sample in data/.

    Example: validator init release-gate && validator run --config release-gate/gate.yaml

    Point sample.path and reference.model at your own data and model, then run it.
    Refuses to replace existing files without --force (exit 2).
    """
    from validator.scaffold import write_scaffold

    with guarded(debug):
        for path in write_scaffold(folder, force):
            typer.echo(f"wrote {path}")
        typer.echo(f"next: validator run --config {folder / 'gate.yaml'}")
