"""Write files of a run directory so that a reader never sees half of one: a single
file is replaced atomically (``write_text``), and a whole run is written into a
temporary sibling folder that is renamed into place only once every expected file
exists (``write_run_dir``), so a run directory is either complete or absent. Every
file written into a run folder joins its manifest (validator.record.ownership), and a
folder replaced under ``--force`` loses only the files the tool wrote there."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

from validator.errors import ValidatorError
from validator.record.ownership import claim, foreign_files

T = TypeVar("T")


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
    claim([path])


def write_text(path: Path, text: str) -> None:
    """Write atomically; in a run folder, the file joins the folder's manifest."""
    _atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename the staged run to ``out_dir``. A previous run there (``--force``, checked
    by ``ownership.check_out_dir``) is set aside; its own files (listed in its manifest
    and unchanged) are removed, any other entry moves into the new run, or, when the
    new run wrote the same name, stays set aside and the run says where."""
    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        os.replace(staging, out_dir)  # atomic, also onto an empty folder
        return
    previous = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.replaced-", dir=out_dir.parent))
    os.replace(out_dir, previous / "run")
    os.replace(staging, out_dir)
    foreign = set(foreign_files(previous / "run"))
    for entry in (previous / "run").iterdir():
        if entry.name not in foreign:
            entry.unlink()
        elif not (out_dir / entry.name).exists():
            os.replace(entry, out_dir / entry.name)
    kept = sorted(p.name for p in (previous / "run").iterdir())
    if kept:
        print(f"note: kept {', '.join(kept)} of the replaced folder in {previous / 'run'} "
              f"(not written by this tool)", file=sys.stderr)
        return
    shutil.rmtree(previous)


def write_run_dir(out_dir: Path, stage: Callable[[Path], T],
                  names: tuple[str, ...]) -> T:
    """``stage(folder)`` writes the run's files into a temporary folder; once every one
    of ``names`` exists there, the folder becomes ``out_dir`` in one rename. Returns
    what ``stage`` returned."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValidatorError(f"{out_dir}: exists and is not a folder; choose another --out")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        _shareable(staging, 0o777)
        staged = stage(staging)
        missing = [name for name in names if not (staging / name).is_file()]
        if missing:
            raise OSError(f"{staging}: {', '.join(missing)} not written")
        _move_into_place(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return staged
