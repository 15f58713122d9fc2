"""Package data, so that an installed wheel runs anywhere: the default config
(``default.yaml``), the shipped synthetic sample (``sample.csv``), the default slice
pack (``slices/``), the default scorer's trained head (``default_scorer/``) and the
templates ``validator init`` writes (``init/``).

The repository's ``slices/`` and ``fixtures/`` stay the editable sources of these
copies; ``tests/test_assets.py`` fails when a copy differs from its source.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def asset(*parts: str) -> Path:
    """The path of a packaged file or folder (the package is installed unzipped)."""
    return Path(str(files(__name__).joinpath(*parts)))
