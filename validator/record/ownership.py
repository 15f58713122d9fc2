"""Which files of a run folder the tool wrote, and the lock a run holds on its folder.

A run folder carries a manifest (``MANIFEST_NAME``: the sha256 of every file the tool
wrote there: the run's outputs, and what ``report``, ``recommend``, ``discover``,
``diagnose`` and ``repair`` wrote beside them later). A run never deletes or replaces
a file that is not in it:

- ``--out`` must be absent or empty, or, with ``--force``, hold only files of the
  manifest, each unchanged since the tool wrote it; otherwise exit 2 naming the
  files that are not the tool's.
- A run holds an exclusive lock (``fcntl.flock`` on ``.NAME.lock`` beside the folder,
  holding the run's pid) from before scoring until its outputs are in place. A second
  run into the same folder exits 2 naming the lock file and the pid holding it. A lock
  file left by a process that ended is not a lock (the kernel released it): the run
  takes it over and says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from validator.errors import ValidatorError

MANIFEST_NAME = ".slice-validator-run.json"
SHOWN = 5  # foreign files named in a refusal before "and N more"


def file_sha256(path: Path) -> str:
    from validator.cache import file_sha256 as digest

    return digest(path)


def read_manifest(folder: Path) -> dict[str, str] | None:
    """name -> sha256 of the files the tool wrote in ``folder``; None when it has none."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValidatorError(f"{path}: unreadable run manifest ({exc}); the folder's files "
                             f"cannot be told apart from yours") from exc
    return {str(name): str(digest) for name, digest in dict(files).items()}


def manifest_text(files: dict[str, str]) -> str:
    return json.dumps({"written_by": "slice-validator", "files": dict(sorted(files.items()))},
                      indent=2) + "\n"


def write_manifest(folder: Path, files: dict[str, str]) -> None:
    """The folder's manifest, signed when ``SLICE_VALIDATOR_CACHE_KEY`` is set."""
    from validator.cache import sign_file

    (folder / MANIFEST_NAME).write_text(manifest_text(files), encoding="utf-8")
    sign_file(folder / MANIFEST_NAME)


def manifest_signed(folder: Path) -> bool:
    """Whether the manifest carries a valid signature (True without a key)."""
    from validator.cache import signed

    path = folder / MANIFEST_NAME
    return signed(path, path.read_bytes()) if path.is_file() else True


def claim(paths: list[Path]) -> None:
    """Record files the tool just wrote into a run folder (one holding a manifest), so
    a later ``--force`` may replace them and ``RunDir`` accepts re-rendered reports."""
    for folder in {p.parent for p in paths}:
        files = read_manifest(folder)
        if files is None:
            continue
        files.update({p.name: file_sha256(p) for p in paths if p.parent == folder})
        write_manifest(folder, files)


RUN_RECORDS = ("summary.json", "predictions.parquet", "report.html", "junit.xml",
               "summary.md")  # what an after-the-verdict command's --out never replaces


def check_replaceable(paths: list[Path]) -> None:
    """Before ``recommend``, ``discover`` or ``plan-ratings`` write: each path is new, or
    a file the tool wrote (in its folder's manifest, unchanged), and never one of a
    run's own records. ValidatorError naming the first path that is not."""
    for path in paths:
        if not (path.exists() or path.is_symlink()):
            continue
        check_not_a_record(path)
        files = read_manifest(path.parent) or {}
        if path.is_symlink() or not path.is_file() or path.name not in files or \
                file_sha256(path) != files[path.name]:
            raise ValidatorError(f"{path}: exists and was not written by slice-validator "
                                 f"(or changed since); choose another --out or remove it")


def check_not_a_record(path: Path) -> None:
    """ValidatorError when ``path`` is one of a run folder's own records."""
    files = read_manifest(path.parent) or {}
    if path.name in (*RUN_RECORDS, MANIFEST_NAME) and path.name in files:
        raise ValidatorError(f"{path}: is a record of the run in {path.parent}; "
                             f"choose another --out")


def foreign_files(folder: Path) -> list[str]:
    """Entries of ``folder`` the tool did not write (or that changed since it did)."""
    files = read_manifest(folder) or {}
    foreign = []
    for entry in sorted(folder.iterdir()):
        if entry.name in (MANIFEST_NAME, MANIFEST_NAME + ".sig"):
            continue
        if not entry.is_file() or entry.name not in files or \
                file_sha256(entry) != files[entry.name]:
            foreign.append(entry.name)
    return foreign


def canonical_out(path: Path | None) -> Path | None:
    """An --out with its parent folders resolved (links, '..'): after a folder that does
    not exist yet, '..' makes the kernel name another folder than the checks looked at
    (``new/../mine`` looked absent, then the run created ``new`` and replaced files in
    ``mine``). The last component stays as given, so a link there is still refused."""
    if path is None or path.name == "":  # '.' or '/': refused by name where it matters
        return path
    if path.name == "..":
        return path.resolve()
    return path.parent.resolve() / path.name


def check_inputs_outside(out_dir: Path, inputs: list[Path]) -> None:
    """Refuse (exit 2) an --out that holds one of the run's own inputs (its sample, rating
    plan, a slice file, a model): with --force the run replaces the folder's files the
    tool wrote, which can include a plan ``plan-ratings`` wrote there."""
    folder = out_dir.resolve()
    for path in inputs:
        if path.resolve().is_relative_to(folder):
            raise ValidatorError(f"{out_dir}: holds {path}, an input of this run, which the "
                                 f"run could replace; move it out or choose another --out")


def check_out_dir(out_dir: Path, force: bool) -> None:
    """Refuse (exit 2) an --out the run may not write into; see the module docstring."""
    if Path.cwd().resolve().is_relative_to(out_dir.resolve()):
        raise ValidatorError(f"{out_dir}: is the current folder (or holds it), which the run "
                             f"would replace when done; give a new or empty folder, e.g. "
                             f"--out run")
    if out_dir.is_symlink():  # the run replaces the folder by renaming: not through a link
        raise ValidatorError(f"{out_dir}: is a symbolic link (to {os.readlink(out_dir)}); "
                             f"give the folder itself as --out")
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ValidatorError(f"{out_dir}: exists and is not a folder; choose another --out")
    if not any(out_dir.iterdir()):
        return
    if read_manifest(out_dir) is None:
        names = sorted(p.name for p in out_dir.iterdir())
        raise ValidatorError(f"{out_dir}: not empty and not a run folder of this tool "
                             f"(holds {shown(names)}); choose an empty or new --out")
    if not force:
        raise ValidatorError(f"{out_dir}: already holds a run; choose another --out or "
                             f"pass --force to replace it")
    foreign = foreign_files(out_dir)
    if foreign:
        raise ValidatorError(f"{out_dir}: --force replaces only the previous run's own "
                             f"files, but it also holds {shown(foreign)} (not written by "
                             f"this tool, or changed since); move them first")


def shown(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def lock_path(out_dir: Path) -> Path:
    """``.NAME.lock`` beside the folder (``--out .`` names the current folder: its lock
    is beside it, not inside it)."""
    folder = Path(os.path.abspath(out_dir))
    return folder.parent / f".{folder.name}.lock"


def check_lock_file(path: Path) -> None:
    """The lock path is free or holds a lock file of this tool (a pid, or nothing): a
    symbolic link, a folder, or a file with other content there is the user's, never
    written through, truncated or removed."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ValidatorError(f"{path}: the run's lock file, but it is a "
                             f"{'symbolic link' if path.is_symlink() else 'folder'}; "
                             f"move it or choose another --out")
    if path.is_file():
        with open(path, "rb") as handle:
            content = handle.read(64)
        if content.strip() and not content.strip().isdigit():
            raise ValidatorError(f"{path}: the run's lock file, but it holds something "
                                 f"else than a pid (not written by this tool); move it or "
                                 f"choose another --out")


def _holder(handle) -> str:
    handle.seek(0)
    return handle.read().strip()


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _acquire(path: Path, out_dir: Path):
    """The open, exclusively locked lock file (retried when the file it locked was
    removed meanwhile by the run that held it)."""
    import fcntl

    while True:
        check_lock_file(path)
        try:  # O_NOFOLLOW: a link planted after the check is refused here too
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW,
                                 0o644)
        except OSError as exc:
            raise ValidatorError(f"{path}: cannot open the run's lock file "
                                 f"({exc.strerror}); move it or choose another --out") from exc
        handle = os.fdopen(descriptor, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = _holder(handle) or "?"
            handle.close()
            raise ValidatorError(f"{path}: another run (pid {holder}) is writing "
                                 f"{out_dir}; wait for it or choose another --out") from exc
        if path.exists() and os.fstat(handle.fileno()).st_ino == path.stat().st_ino:
            return handle
        handle.close()


@contextlib.contextmanager
def folder_lock(out_dir: Path):
    """Hold the run folder's lock for the block; exit 2 naming the lock when another
    live run holds it."""
    path = lock_path(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _acquire(path, out_dir) as handle:
        previous = _holder(handle)
        if previous and not _alive(previous):
            print(f"note: {path}: stale lock of pid {previous} (process ended); taken over",
                  file=sys.stderr)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)  # ours: written above, still held


@contextlib.contextmanager
def run_folder(out_dir: Path, force: bool):
    """The run's hold on ``out_dir``: its lock, then the check that the run may write
    there (both before any scoring)."""
    with folder_lock(out_dir):
        check_out_dir(out_dir, force)
        yield
