"""summary.json's ``run`` block: when the run started, how long it took, the resolved
config's hash, the tool's version and the git commit of the checkout it ran from."""

from __future__ import annotations

import hashlib
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import validator
from validator.config import Config
from validator.record.schema import RunInfo, RunRecord


def config_sha256(config: Config) -> str:
    """The config as resolved (defaults filled in), so the embedded default has one too."""
    return hashlib.sha256(config.model_dump_json().encode("utf-8")).hexdigest()


def checkout_commit() -> str | None:
    """HEAD of the git checkout holding the package, or None (an installed wheel)."""
    try:
        done = subprocess.run(["git", "-C", str(Path(validator.__file__).parent),
                               "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None


@dataclass
class Clock:
    """Started when the run starts; ``stamp`` adds the run block to the finished record."""
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    began: float = field(default_factory=time.monotonic)
    commit: str | None = field(default_factory=checkout_commit)  # the code as it started

    def stamp(self, summary: RunRecord, config: Config) -> RunRecord:
        config_hash = config_sha256(config)
        key = hashlib.sha256(f"{config_hash}:{summary.sample.sha256}".encode()).hexdigest()
        info = RunInfo(id=f"{self.started:%Y%m%dT%H%M%SZ}-{key[:8]}",
                       started_at=self.started.isoformat(timespec="seconds"),
                       duration_s=round(time.monotonic() - self.began, 1),
                       config_sha256=config_hash, tool_version=validator.__version__,
                       commit=self.commit)
        return summary.model_copy(update={"run": info})
