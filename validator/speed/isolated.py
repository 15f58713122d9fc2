"""Each model scorer measured alone, in a fresh process, as one serving instance sees it.

The harness process holds every scorer of the run (and their tokenisations, caches and
freed arenas), so its memory grows with each scorer loaded and its timings share the
cores with whatever else it keeps alive. Here a fresh process (a ``ScorerProcess``,
forked from a forkserver that imported the runtimes and nothing else, started at the
beginning of the run: ``start_forkserver``) loads the scorer's tokenizer, records its
resident memory outside shared libraries, loads the scorer from what the run built
(the model directory, or the recipe's ONNX artefact; a torch recipe is re-applied to
the reference, which is then freed and its pages returned), runs one warm batch at the
configured batch size and records that memory again: ``memory_bytes`` is the
difference (weights plus runtime arenas for this model; library code is shared by every
replica and not counted; on a GPU, ``device_memory_bytes`` is the CUDA allocator's
peak). It then runs every shape the timing will see (``warm_up``). Asked for its
measurement alone, it times the probe texts at the configured batch size (throughput:
the median of three passes, each serving the probe as ``serve`` does with its
tokenising and its forward pass timed apart, each part bounded by a device
synchronisation, so queued GPU work is counted) and runs the closed-loop load test
(validator.speed.capacity) for ``capacity_rps`` at the SLO, whose first level, one
client sending each probe text once, gives the batch-1 latency. CPU and GPU scorers go
through the same code: on the CPU, synchronising is a no-op.

The process stays up, loaded and warm, until the run closes it: the interleaved rounds
(validator.speed.rounds) ask each scorer's own process for its timings in turn, so no
scorer is loaded or warmed twice and each is timed in a process that holds only itself.
Only one process works at a time; the others wait on their input.

The process answers requests (dicts) on a pipe; what it prints goes to a log whose
last line names a failure.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from multiprocessing import forkserver
from pathlib import Path
from typing import Callable

import numpy as np

from validator.errors import ScoringError


REQUEST_TIMEOUT_S = 1800  # one request (load and warm up, a measurement, a round)
FORKSERVER_GONE = 255     # the exit code multiprocessing reports when it lost the forkserver


# What the forkserver imports once (``start_forkserver``): the runtimes and both backends,
# so a scorer's process starts with them imported.
PRELOAD = ["validator.speed.isolated", "validator.speed.capacity",
           "validator.scorers.transformers_backend", "validator.scorers.onnx_backend",
           "transformers.models.auto.modeling_auto", "transformers.models.auto.tokenization_auto"]


def process_context():
    """Scorer processes are forked from the forkserver, which imports ``PRELOAD``."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def start_forkserver() -> None:
    """Start now (unless it is running) the process that every scorer process is forked
    from: it imports the runtimes (``PRELOAD``, about 2 s of one core) while the run
    reads and validates its inputs on the other, instead of each scorer process
    importing them in turn. Its stderr is the null device: a Ctrl-C while it imports
    would print its traceback among the run's messages, and what it could say goes
    nowhere useful (each scorer process writes to a log of its own)."""
    process_context()
    ours = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)  # inherited by the forkserver (and the resource tracker beside it)
    try:
        forkserver.ensure_running()
    finally:
        os.dup2(ours, 2)
        os.close(ours)
        os.close(null)


class ScorerProcess:
    """One scorer (Scorer.serving_spec) loaded and warmed over the probe ``texts`` in a
    fresh process that stays up for more requests until ``close``; ScoringError saying
    what failed, with the last line the process wrote to its log."""

    def __init__(self, spec: dict, texts: list[str]):
        self.name = spec["name"]
        self._log = tempfile.NamedTemporaryFile(mode="w+", prefix="slice-validator-scorer-")
        self._scratch = tempfile.TemporaryDirectory(prefix="slice-validator-isolated-")
        context = process_context()
        self._requests, theirs = context.Pipe()
        self._process = context.Process(target=serve,
                                        args=(theirs, self._log.name, self._scratch.name),
                                        name=f"slice-validator {self.name}", daemon=True)
        try:
            start_forkserver()
            self._process.start()
        except (OSError, EOFError) as exc:  # the forkserver could not start or fork
            raise ScoringError(f"starting the process for {self.name!r} failed: {exc}") from exc
        finally:
            theirs.close()
        self.loaded = self._ask({"spec": spec, "texts": texts}, f"loading {self.name!r}")

    def alone(self, slo_ms: float) -> dict:
        """Memory, throughput, batch-1 latency and capacity of this scorer alone."""
        return {**self.loaded, **self._ask({"do": "alone", "slo_ms": slo_ms},
                                           f"measuring {self.name!r} alone")}

    def timings(self) -> tuple[float, float]:
        """One round's (seconds serving the probe, median batch-1 latency in seconds)."""
        found = self._ask({"do": "round"}, f"timing {self.name!r}")
        return found["probe_seconds"], found["latency_seconds"]

    def _ask(self, request: dict, what: str) -> dict:
        """The process's answer to ``request``; on an interrupt it is killed at once."""
        answer, timed_out = None, False
        try:
            self._requests.send(request)
            if self._requests.poll(REQUEST_TIMEOUT_S):
                answer = self._requests.recv()
            else:
                timed_out = True
                self._process.kill()
        except (OSError, EOFError):
            pass
        except BaseException:  # Ctrl-C, SIGTERM: do not wait for the request to finish
            self._process.kill()
            self.close()
            raise
        if answer is None:
            why = f"timed out after {REQUEST_TIMEOUT_S} s" if timed_out else self._why()
            self.close()
            raise ScoringError(f"{what} failed: {why}")
        return answer

    def _why(self) -> str:
        """Why the process gave no answer: the signal that killed it, else the last line
        it wrote to its log, else its exit status."""
        self._process.join(timeout=30)
        code = self._process.exitcode
        if code is not None and code < 0:
            return f"the process was killed (signal {-code})"
        self._log.seek(0)
        lines = self._log.read().strip().splitlines()
        if lines:
            return lines[-1]
        if code == FORKSERVER_GONE:
            return "the forkserver it was forked from ended (killed?), and the process with it"
        return f"the process stopped (exit {code})"

    def hang_up(self) -> None:
        """Close the process's requests: it exits (``close`` waits for it)."""
        self._requests.close()

    def close(self) -> None:
        """End the process (its requests closed, it exits; killed if it does not)."""
        self.hang_up()
        self._process.join(timeout=30)
        if self._process.exitcode is None:
            self._process.kill()
            self._process.join()
        self._log.close()
        self._scratch.cleanup()  # here, not in the process: a killed one leaves its files


class ServingProcesses:
    """A run's scorer processes by name, started on first use and closed together."""

    def __init__(self, texts: list[str]):
        self.texts, self._running = texts, {}

    def of(self, spec: dict) -> ScorerProcess:
        if spec["name"] not in self._running:
            self._running[spec["name"]] = ScorerProcess(spec, self.texts)
        return self._running[spec["name"]]

    def __enter__(self) -> "ServingProcesses":
        return self

    def __exit__(self, *exc) -> None:
        for process in self._running.values():  # all told first: they exit side by side
            process.hang_up()
        for process in self._running.values():
            process.close()


def measure(spec: dict, texts: list[str], slo_ms: float) -> dict:
    """The isolated measurement of the scorer ``spec`` (Scorer.serving_spec) in a fresh
    process of its own; ScoringError if it fails."""
    with ServingProcesses(texts) as processes:
        return processes.of(spec).alone(slo_ms)


def _resident_outside_libraries() -> int:
    """Resident bytes of this process not counting the pages of shared libraries (code
    that every process on the host shares, and that a process forked from the
    forkserver maps only as it touches it, so a forked process would count it where a
    freshly started one does not): heap, anonymous arenas, mapped model files."""
    import psutil

    gc.collect()
    try:  # hand freed heap pages back, so freed models do not count (glibc only)
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return sum(mapped.rss for mapped in psutil.Process().memory_maps(grouped=True)
               if ".so" not in Path(mapped.path).name)


def import_runtime(spec: dict) -> None:
    """Import the runtime and load the scorer's tokenizer once, so that the memory
    baseline holds the libraries (transformers imports torch lazily, ~200 MB) and only
    the model's weights and arenas are measured above it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: F401

    if spec["backend"] == "onnxruntime":
        import onnxruntime  # noqa: F401
        folder = Path(spec["path"]).parent
    else:
        import torch  # noqa: F401
        folder = Path(spec["path"])
    AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)


def load_serving(spec: dict, scratch: Path):
    """The scorer of ``spec``, loaded from disk as a serving process would load it."""
    if spec["backend"] == "onnxruntime":
        from validator.scorers.onnx_backend import OnnxScorer, load_side_files, open_session

        onnx_file = Path(spec["path"])
        _, tokenizer = load_side_files(onnx_file)
        session = open_session(onnx_file, spec["graph_optimization"], "cpu")
        return OnnxScorer(spec["name"], [], session, tokenizer, None, spec["batch_size"],
                          spec["max_length"], onnx_file, spec["graph_optimization"], "")
    from validator.scorers import RecipeContext, get_recipe, no_progress
    from validator.scorers.transformers_backend import TransformersScorer, load_model_dir

    _, tokenizer, model = load_model_dir(Path(spec["path"]))
    recipe = spec.get("recipe")
    scorer = TransformersScorer(spec["name"], [], model.to(spec["device"]), tokenizer, None,
                                spec["batch_size"], spec["max_length"], path=Path(spec["path"]),
                                device=spec["device"],
                                runtime="eager" if recipe else spec["runtime"])
    if recipe:
        context = RecipeContext(spec["name"], list, scratch, no_progress, spec["runtime"])
        scorer = get_recipe(recipe)(spec["name"], scorer, context)
    return scorer


REPEATS = 3          # timed passes over the probe; the median is reported
SINGLE_WARMUP = 32   # probe texts also sent alone before timing (batch-1 shapes)
LATENCY_TEXTS = 16   # probe texts sent alone in each interleaved round


def warm_up(scorer, texts: list[str]) -> None:
    """Run every shape the timed passes will see before timing them: the probe at the
    batch size, twice for a TorchScript scorer (its profiling executor specialises a
    trace on a shape's second run), once for the others (CUDA and the CPU runtimes pick
    kernels and grow their arenas on a shape's first run), and some texts alone (the
    load test's first level)."""
    for _ in range(2 if getattr(scorer, "runtime", None) == "torchscript" else 1):
        scorer.serve(texts)
    for text in texts[:SINGLE_WARMUP]:
        scorer.serve([text])
    scorer.synchronize()


def timed(scorer, work, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds ``work()`` takes, the device's queue drained before and after."""
    scorer.synchronize()
    start = clock()
    work()
    scorer.synchronize()
    return clock() - start


def rates(scorer, texts: list[str]) -> dict:
    """Rows/s of serving the probe (tokenising included), and of its two parts apart:
    tokenising and padding, and the forward pass on the prepared batches. Each of
    ``REPEATS`` passes serves the probe as ``serve`` does (prepare, then forward),
    timing the two parts, each bounded by a synchronisation; a pass's serving time is
    their sum. Medians over the passes."""
    parts = []
    for _ in range(REPEATS):
        prepared = []
        tokenize = timed(scorer, lambda: prepared.append(scorer.prepare(texts)))
        parts.append((tokenize, timed(scorer, lambda: scorer.forward(prepared[0]))))

    def rate(seconds) -> float:
        return len(texts) / float(np.median(seconds))

    return {"throughput_rows_per_s": rate([a + b for a, b in parts]),
            "tokenize_rows_per_s": rate([a for a, _ in parts]),
            "forward_rows_per_s": rate([b for _, b in parts])}


def round_timings(scorer, texts: list[str],
                  clock: Callable[[], float] = time.perf_counter) -> tuple[float, float]:
    """A warmed scorer's (seconds serving the probe at the batch size, median seconds of
    ``LATENCY_TEXTS`` probe texts served one at a time), each bounded by device
    synchronisations (anything with ``serve`` and ``synchronize``)."""
    whole = timed(scorer, lambda: scorer.serve(texts), clock)
    single = float(np.median([timed(scorer, lambda t=t: scorer.serve([t]), clock)
                              for t in texts[:LATENCY_TEXTS]]))
    return whole, single


def device_memory(scorer) -> int | None:
    """Peak bytes the CUDA allocator held for this scorer (None on the CPU)."""
    if not str(getattr(scorer, "device", "cpu")).startswith("cuda"):
        return None
    import torch

    return int(torch.cuda.max_memory_allocated(scorer.device))


def alone(scorer, texts: list[str], slo_ms: float) -> dict:
    """Throughput, batch-1 latency and capacity of a loaded, warmed scorer."""
    from validator.speed.capacity import capacity

    measured = rates(scorer, texts)
    rps, levels = capacity(scorer.serve, texts, scorer.batch_size, slo_ms)
    single = levels[0]  # one client sending each probe text once: batch-1 latency
    return {"latency_ms_p50": single.latency_ms_p50,
            "latency_ms_p95": single.latency_ms_p95, "latency_ms_mean": single.latency_ms_mean,
            **measured, "capacity_rps": rps,
            "capacity_levels": [asdict(level) for level in levels]}


def loaded(spec: dict, texts: list[str], scratch: Path):
    """(the scorer loaded as serving loads it and warmed over the probe, its memory)."""
    import_runtime(spec)
    before = _resident_outside_libraries()
    scorer = load_serving(spec, scratch)
    scorer.set_threads(os.cpu_count() or 1)
    scorer.serve(texts[:scorer.batch_size])  # the warm batch
    memory = _resident_outside_libraries() - before
    warm_up(scorer, texts)
    return scorer, {"memory_bytes": max(memory, 0), "device_memory_bytes": device_memory(scorer)}


def _serve_requests(requests, answer, scratch: Path) -> None:
    first = next(requests)
    texts = first["texts"]
    scorer, memory = loaded(first["spec"], texts, scratch)
    answer(memory)
    for request in requests:
        if request["do"] == "alone":
            answer(alone(scorer, texts, request["slo_ms"]))
        else:
            whole, single = round_timings(scorer, texts)
            answer({"probe_seconds": whole, "latency_seconds": single})


def _received(connection):
    """The requests on ``connection`` until the run closes it."""
    while True:
        try:
            yield connection.recv()
        except EOFError:
            return


def serve(connection, log: str, scratch: str) -> None:
    """A scorer process (forked from the forkserver): its output goes to ``log``, it
    ends with the forkserver (which ends with the run), and it answers the requests on
    ``connection`` until the run closes it; a torch recipe re-applied to the reference
    works in ``scratch``, a folder the run removes."""
    die_with(os.getppid())
    written = os.open(log, os.O_WRONLY | os.O_APPEND)
    os.dup2(written, 1)  # libraries printing to stdout or stderr write to the log
    os.dup2(written, 2)
    _serve_requests(_received(connection), connection.send, Path(scratch))


def die_with(parent: int) -> None:
    """End this process when its ``parent`` dies without closing it (for a scorer
    process, the forkserver, which ends when the run ends, killed or not): Linux's
    parent-death signal; elsewhere the closed pipe ends it after its current request."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the signal was armed
        sys.exit(1)

