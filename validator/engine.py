"""Where model scoring runs: in this process (``local``) or on a Ray cluster (``ray``).

An engine predicts a scorer's texts and reports each batch as it is done; the caller
(scoring.score_cached) keeps the prediction cache and the progress bar, so cached rows
are shared whichever engine scored them. With ``ray``, scoring is Ray Data
``map_batches`` over one actor pool per scorer; everything else stays in this process
(the driver):

    driver: rows in the scorer's own batch order (Scorer.batch_order), cut into calls of
            whole batches (execution.batch_size rows, rounded to batches)
        -> object store: the scorer, put once (recipe artefacts included: a quantized
           torch model, an ONNX file's bytes), and the calls
        -> actors (num_workers): each deserializes the scorer once, predicts its calls
        -> driver: predictions streamed back in, into the cache and the progress bar

Each call is a run of whole batches of the order a local run uses, so every padded
batch, and so every dynamic-INT8 activation range, is the one a local run computes.
An actor that dies (a killed process, a lost node) is restarted and its calls retried,
up to ``RETRIES`` times.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from validator.config import Config, ExecutionConfig
from validator.errors import ConfigError, ScoringError, first_line
from validator.scorers import BatchCallback, Scorer

INSTALL = "pip install 'slice-validator[ray]'"
RETRIES = 3             # restarts of a dead actor, and retries of its calls
CONNECT_TIMEOUT_S = 5   # the reachability check of a remote address
RAY_LOG = Path(tempfile.gettempdir()) / "slice-validator-ray.log"  # Ray's native log lines

Predict = Callable[[Scorer, list[str], BatchCallback], np.ndarray]


def local_predict(scorer: Scorer, texts: list[str], on_batch: BatchCallback) -> np.ndarray:
    return scorer.predict(texts, on_batch)


def _host_port(address: str, where: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{where}: expected null, auto, ray://host:port or host:port, "
                          f"got {address!r}")
    return host.strip("[]"), int(port)


def check_execution(config: Config) -> None:
    """The plan step's checks: Ray is installed, a remote address answers (exit 2)."""
    execution = config.execution
    if execution.engine != "ray":
        return
    try:
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"{config.source}: execution.engine: 'ray' needs Ray Data, which is "
                          f"not installed; install it with: {INSTALL}") from exc
    if execution.address in (None, "auto"):
        return
    where = f"{config.source}: execution.address"
    host, port = _host_port(execution.address, where)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot reach a Ray cluster at {execution.address!r} "
                          f"({exc.strerror or first_line(exc)})") from exc


class ScoringActor:
    """One actor of a scorer's pool: the scorer, deserialized once, predicting calls."""

    def __init__(self, scorer_ref: list):
        import ray

        self.scorer: Scorer = ray.get(scorer_ref[0])
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        self.scorer.threads = max(1, int(cpus))  # this actor's share, not the node's cores
        self.scorer.set_threads(self.scorer.threads)
        self.fingerprint = self.scorer.fingerprint() or ""

    def __call__(self, batch: dict) -> dict:
        values = [self.scorer.predict(list(texts)).ravel() for texts in batch["texts"]]
        return {"call": batch["call"], "values": np.array(values, dtype=object),
                "fingerprint": np.array([self.fingerprint] * len(values))}


class RayEngine:
    """Scores on Ray; connects (or starts a Ray instance here) on first use."""

    def __init__(self, execution: ExecutionConfig, source: str):
        self.execution, self.source = execution, source
        self.started = False  # whether this run started Ray (and so shuts it down)
        self._stderr = None  # Python's stderr while Ray's native logs go to RAY_LOG
        self._stderr_fd = -1

    def _connect(self):
        import ray

        if not ray.is_initialized():
            self._init(ray)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # our own progress goes to stderr
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        return ray

    def _init(self, ray) -> None:
        address = self.execution.address
        local = {"num_cpus": self.execution.num_workers, "include_dashboard": False} \
            if address is None else {}
        self._quiet_native_logs()
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                     configure_logging=True, **local)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            raise ConfigError(f"{self.source}: execution.address: cannot connect to Ray at "
                              f"{address or 'a new local instance'!r} "
                              f"({first_line(exc)})") from exc
        self.started = True

    def _quiet_native_logs(self) -> None:
        """Ray's C++ core writes its log lines to file descriptor 2 (one, about restartable
        actors' constructor arguments, on every run); they go to RAY_LOG while Ray is
        connected, and Python's stderr (progress, errors) stays on the terminal."""
        sys.stderr.flush()
        self._stderr_fd = os.dup(2)
        with RAY_LOG.open("ab") as log:
            os.dup2(log.fileno(), 2)
        self._stderr = sys.stderr
        sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(self._stderr_fd), "wb"),
                                      line_buffering=True, errors="backslashreplace")

    def calls(self, scorer: Scorer, texts: list[str]) -> list[np.ndarray]:
        """Row positions of each call: runs of whole batches of the scorer's own order."""
        order, batch = scorer.batch_order(texts)
        rows = max(1, self.execution.batch_size // batch) * batch
        return [order[start:start + rows] for start in range(0, len(order), rows)]

    def predict(self, scorer: Scorer, texts: list[str], on_batch: BatchCallback) -> np.ndarray:
        ray = self._connect()
        calls = self.calls(scorer, texts)
        dataset = ray.data.from_items([{"call": i, "texts": [texts[j] for j in rows]}
                                       for i, rows in enumerate(calls)])
        scored = dataset.map_batches(
            ScoringActor, fn_constructor_args=([ray.put(scorer)],), batch_size=1,
            concurrency=self.execution.num_workers, num_cpus=1, batch_format="numpy",
            max_restarts=RETRIES, max_task_retries=RETRIES)
        values = np.full((len(texts), len(scorer.dimensions)), np.nan)
        expected = scorer.fingerprint() or ""
        for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
            for call, flat, fingerprint in zip(batch["call"], batch["values"],
                                               batch["fingerprint"]):
                if fingerprint != expected:
                    raise ScoringError(f"scorer {scorer.name!r}: a Ray worker runs it "
                                       f"differently from this machine (another device or "
                                       f"library version); install the same versions there")
                rows = calls[int(call)]
                values[rows] = np.asarray(flat, dtype=np.float64).reshape(len(rows), -1)
                on_batch(rows, values[rows])
        return values

    def close(self) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False
        if self._stderr is not None:
            sys.stderr.flush()
            sys.stderr = self._stderr
            os.dup2(self._stderr_fd, 2)
            os.close(self._stderr_fd)
            self._stderr = None


@contextlib.contextmanager
def open_engine(config: Config) -> Iterator[Predict]:
    """The configured engine's predict function, for the duration of the scoring stage."""
    if config.execution.engine == "local":
        yield local_predict
        return
    engine = RayEngine(config.execution, config.source)
    try:
        yield engine.predict
    finally:
        engine.close()
