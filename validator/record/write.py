"""Write files of a run directory so that a reader never sees half of one: a single
file is replaced atomically (``write_text``), and a whole run is written into a
temporary sibling folder that is renamed into place only once every expected file
exists (``write_run_dir``), so a run directory is either complete or absent."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from validator.errors import ValidatorError


def _shareable(path: str | Path, mode: int) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)  # mkstemp/mkdtemp make 0600/0700; outputs are for sharing


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    _shareable(temporary, 0o666)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def _move_into_place(staging: Path, out_dir: Path, names: tuple[str, ...]) -> None:
    """Rename the staged run to ``out_dir``. A folder already there (``--force``) is set
    aside and its entries that are not run outputs (``names``), nor written anew, are
    moved into the new run."""
    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        os.replace(staging, out_dir)  # atomic, also onto an empty folder
        return
    previous = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.replaced-", dir=out_dir.parent))
    os.replace(out_dir, previous / "run")
    os.replace(staging, out_dir)
    for entry in (previous / "run").iterdir():
        if entry.name not in names and not (out_dir / entry.name).exists():
            os.replace(entry, out_dir / entry.name)
    shutil.rmtree(previous, ignore_errors=True)


def write_run_dir(out_dir: Path, stage: Callable[[Path], None],
                  names: tuple[str, ...]) -> None:
    """``stage(folder)`` writes the run's files into a temporary folder; once every one
    of ``names`` exists there, the folder becomes ``out_dir`` in one rename."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValidatorError(f"{out_dir}: exists and is not a folder; choose another --out")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        _shareable(staging, 0o777)
        stage(staging)
        missing = [name for name in names if not (staging / name).is_file()]
        if missing:
            raise OSError(f"{staging}: {', '.join(missing)} not written")
        _move_into_place(staging, out_dir, names)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
