"""``validator slices check``: validate slice files and count their rows."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from validator.cli.options import DEBUG, guarded
from validator.errors import ValidatorError


def slices_check(
    paths: Optional[list[Path]] = typer.Argument(None, help="Slice files or folders "
                                                            "(default: the shipped slice pack)."),
    sample: Optional[Path] = typer.Option(None, "--sample", "-s",
                                          help="Sample file to count rows in (default: the "
                                               "shipped sample)."),
    text_column: str = typer.Option("text", help="Text column of the sample (for "
                                                 "word_count / char_count)."),
    debug: bool = DEBUG,
) -> None:
    """Validate slice files and print each slice's row count in the sample.

    Example: validator slices check slices/ --sample fixtures/sample.csv
    """
    from validator.config import default_config
    from validator.data.sample import read_table
    from validator.data.slices import assign_slices, load_slices
    from validator.data.slices.dsl import with_derived_columns

    with guarded(debug):
        defaults = default_config()
        frame = read_table(sample or defaults.sample.path, (text_column,))
        if text_column not in frame.columns:
            raise ValidatorError(f"{sample or defaults.sample.path}: missing column "
                                 f"{text_column!r} (--text-column)")
        frame = with_derived_columns(frame, text_column)
        slice_set = load_slices(paths or defaults.slices)
        counts = assign_slices(slice_set, frame).sum()
        width = max(len(name) for name in slice_set.names)
        for definition in slice_set.slices:
            typer.echo(f"{definition.name:<{width}}  {int(counts[definition.name]):>7} rows"
                       f"  {definition.file}")
        typer.echo(f"ok: {len(slice_set.slices) - 1} slices (plus 'all') in {len(frame)} rows")
