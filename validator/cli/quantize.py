"""``validator quantize``: write a recipe's artefact (the logic is validator.quantize)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from validator.cli.options import DEBUG, QUIET, guarded, out_option, rich_progress
from validator.scorers import recipes_that


def quantize(
    recipe: str = typer.Option(..., "--recipe", "-r",
                               help="A recipe that writes an artefact: "
                                    f"{', '.join(recipes_that('writable'))}."),
    out: Path = out_option("Folder to write the artefact to.", ...),
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                          help="Config whose reference (and sample, for "
                                               "calibration) to use. Default: the embedded "
                                               "default."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out folder."),
    quiet: bool = QUIET,
    debug: bool = DEBUG,
) -> None:
    """Apply a recipe to the reference and write the artefact you will ship and gate.

    Example: validator quantize --recipe onnx-int8-static --out models/scorer-int8

    Gate the written folder with a candidate {backend: onnxruntime, model: DIR}
    (or {backend: transformers, model: DIR} for torch-bf16 and torch-fp16).
    """
    from validator.config import default_config, load_config
    from validator.quantize import write_artefact

    with guarded(debug):
        cfg = load_config(config) if config else default_config()
        written = write_artefact(cfg, recipe, out, force, rich_progress(quiet))
        typer.echo(f"wrote {recipe} artefact to {written}")
