"""``validator init``: write a starter project for a team's own gate.

A commented ``gate.yaml`` (every key of config schema v1), ``slices/`` (headline,
subject-line and long-copy slices and the data expectations), ``ci/`` (GitHub Actions
and GitLab CI jobs that run the gate and publish its outputs) and ``data/sample.csv``
(the shipped synthetic sample), so that ``validator run --config DIR/gate.yaml`` runs
as written. Existing files are never replaced without ``force``; nothing is written
unless every file can be.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from validator.assets import asset
from validator.errors import ValidatorError

SCAFFOLD = {  # file in the project -> packaged source
    "gate.yaml": "init/gate.yaml",
    "slices/slices.yaml": "init/slices/slices.yaml",
    "slices/expectations.yaml": "slices/expectations.yaml",
    "ci/github-actions.yml": "init/ci/github-actions.yml",
    "ci/gitlab-ci.yml": "init/ci/gitlab-ci.yml",
    "data/sample.csv": "sample.csv",
}


def write_scaffold(folder: Path, force: bool = False) -> list[Path]:
    """Write the starter project into ``folder``; returns the files written."""
    targets = {folder / name: asset(source) for name, source in SCAFFOLD.items()}
    if not force:
        existing = [path for path in targets if path.exists()]
        if existing:
            raise ValidatorError(f"{existing[0]}: already exists; pass --force to replace the "
                                 f"starter files")
    for target, source in targets.items():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        except OSError as exc:
            raise ValidatorError(f"{target}: cannot write ({exc.strerror or exc})") from exc
    return list(targets)
