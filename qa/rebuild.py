"""The rebuild runner: `python -m qa build` in a child process at a lower CPU priority, one at a time, its progress
read from the JSON lines it prints, and the child ended when the server stops.

A build in the server's own process held its interpreter and both cores for tens of seconds (answer p95 from
68 ms to 3.3 s while the evaluation corpus rebuilt: docs/reliability.md). The child runs at `NICENESS`, on
part of the CPUs (`build_cpus`), with one thread per library pool; the server switches to the new generation
once the child has written it and exited successfully. A failed, killed or stopped child leaves `CURRENT`
and the served generation as they were: the build switches `CURRENT` only at its very end.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

from qa.build import BuildReport
from qa.embed import INT8_SUFFIX, Embedder
from qa.errors import QAError
from qa.types import Skipped

log = logging.getLogger(__name__)

NICENESS = 10  # added to the server's: the scheduler runs questions first whenever both want a core
STOP_GRACE_SECONDS = 5.0  # after SIGTERM, before SIGKILL
# One thread per library pool in the child (torch, FAISS, BLAS, tokenizers): it gets part of the CPUs only.
THREAD_LIMITS = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None  # loaded before any fork


class RebuildRunning(QAError):
    def __init__(self) -> None:
        super().__init__("a rebuild is already running; wait for it to finish before starting another")


@dataclass(frozen=True)
class BuildStatus:
    """Where the latest rebuild stands; `report` is set when it has finished (also for most failures)."""

    running: bool = False
    phase: str = "idle"  # reading, chunking, embedding, writing (the build's stages), then done or failed
    done: int = 0
    total: int = 0
    report: BuildReport | None = None
    error: str = ""
    swapped_to: str = ""
    pid: int | None = None  # of the build process, while it runs

    @property
    def fraction(self) -> float | None:
        return self.done / self.total if self.phase in ("chunking", "embedding") and self.total else None

    def describe(self) -> str:
        if self.phase == "reading":
            return "reading and chunking articles"
        if self.phase == "chunking":
            return f"chunking articles {self.done}/{self.total}" if self.total else "chunking articles"
        if self.phase == "embedding":
            return f"embedding passages {self.done}/{self.total}"
        if self.phase == "writing":
            return "writing the new index generation"
        return self.phase


def build_command(corpus: str | Path, index_dir: str | Path, embedder: Embedder) -> list[str]:
    """The child's command line: this interpreter's `python -m qa build` with the kind of embedder the server
    uses (the model folder comes with the environment: $QA_MODEL), progress as JSON lines."""
    kind = "int8" if embedder.model_id.endswith(INT8_SUFFIX) else "fp32"
    return [
        sys.executable,
        "-m",
        "qa",
        "build",
        "--corpus",
        str(corpus),
        "--index",
        str(index_dir),
        "--embedder",
        kind,
        "--progress-json",
    ]


def progress_line(stage: str, done: int, total: int) -> str:
    """One progress event as the child prints it."""
    return json.dumps({"stage": stage, "done": done, "total": total})


def report_line(report: BuildReport) -> str:
    """The child's last line on success."""
    return json.dumps({"report": report.as_dict()}, ensure_ascii=False)


def failure_line(error: str, report: BuildReport | None) -> str:
    """The child's last line when the build failed with a message for the user (and what it read, when known)."""
    return json.dumps({"error": error, "report": report.as_dict() if report is not None else None}, ensure_ascii=False)


def report_from(data: dict | None) -> BuildReport | None:
    """A BuildReport from its `as_dict()` form (None stays None)."""
    if data is None:
        return None
    names = {f.name for f in fields(BuildReport)} - {"skipped"}
    skipped = [Skipped(s["origin"], s["reason"]) for s in data.get("skipped", [])]
    return BuildReport(**{k: v for k, v in data.items() if k in names}, skipped=skipped)


def build_cpus() -> set[int] | None:
    """The CPUs the child may use: the upper half of this process's (at least one), so that a multi-threaded
    embedder in the child sizes itself to them and a core stays the server's; None on a single CPU."""
    if not hasattr(os, "sched_getaffinity"):  # not Linux: the child shares the CPUs, at its lower priority
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return set(cpus[len(cpus) // 2 :]) if len(cpus) > 1 else None


def _lowered(niceness: int, cpus: set[int] | None, parent: int) -> Callable[[], None]:
    """What the child runs between fork and exec: a lower priority, fewer CPUs, and SIGTERM when the server's
    thread that started it ends (the server killed outright: no orphan build)."""

    def lower() -> None:
        os.nice(niceness)
        if cpus:
            os.sched_setaffinity(0, cpus)
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            if os.getppid() != parent:  # the server went before the line above: nobody to build for
                os._exit(1)

    return lower


class RebuildRunner:
    """Runs one build process at a time and keeps its status; `on_built(report)` (the service's switch to the
    new generation, returning its name) runs before the status says done, so that a caller waiting for the
    rebuild asks the new generation."""

    def __init__(
        self,
        command: Sequence[str],
        on_built: Callable[[BuildReport], str],
        niceness: int = NICENESS,
        grace: float = STOP_GRACE_SECONDS,
    ):
        self.command, self.on_built, self.niceness, self.grace = list(command), on_built, niceness, grace
        self._status = BuildStatus()
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._finished.set()
        self._process: subprocess.Popen | None = None
        self._stopping = False
        _RUNNERS.add(self)

    @property
    def running(self) -> bool:
        return not self._finished.is_set()

    def status(self) -> BuildStatus:
        return self._status

    def start(self) -> None:
        """Start the build process; RebuildRunning while one runs."""
        with self._lock:
            if self.running:
                raise RebuildRunning()
            if self._stopping:
                raise QAError("the server is stopping; no rebuild can start")
            self._finished.clear()
            self._status = BuildStatus(running=True, phase="reading")
        # The child is started by this thread, which lives as long as the child: its death signal is tied to it.
        threading.Thread(target=self._run, name="qa-rebuild", daemon=True).start()

    def wait(self, timeout: float | None = None) -> BuildStatus:
        """Block until no build runs (or `timeout` seconds pass); the status then."""
        self._finished.wait(timeout)
        return self._status

    def stop(self, grace: float | None = None) -> None:
        """End a running build: SIGTERM, then SIGKILL after `grace` seconds; no build starts afterwards."""
        with self._lock:
            self._stopping = True
            process = self._process
        if process is not None and process.poll() is None:
            log.info("stopping the rebuild process %d", process.pid)
            process.terminate()
            try:
                process.wait(self.grace if grace is None else grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._finished.wait(self.grace)

    def _run(self) -> None:
        report: BuildReport | None = None
        error = ""
        try:
            with tempfile.TemporaryFile() as errors:  # the child's stderr: the end of it says why it failed
                process = self._spawn(errors)
                if process is None:
                    return
                assert process.stdout is not None  # _spawn pipes it
                for line in process.stdout:
                    event = _event(line)
                    if "stage" in event:
                        self._update(
                            phase=str(event["stage"]), done=int(event.get("done", 0)), total=int(event.get("total", 0))
                        )
                    elif "report" in event or "error" in event:
                        report, error = report_from(event.get("report")), str(event.get("error") or "")
                code = process.wait()
                errors.seek(0)
                tail = errors.read()[-4000:].decode("utf-8", "replace")
            if code == 0 and report is not None and not error:
                self._finish(BuildStatus(phase="done", report=report, swapped_to=self._switch(report)))
            else:
                self._finish(BuildStatus(phase="failed", report=report, error=error or self._why(code, tail)))
        except QAError as failure:
            self._finish(BuildStatus(phase="failed", report=report, error=str(failure)))
        except Exception as failure:  # the runner must never take the server down; the old index stays
            log.exception("rebuild failed")
            self._finish(
                BuildStatus(
                    phase="failed", report=report, error=f"the build failed: {type(failure).__name__}: {failure}"
                )
            )
        finally:
            with self._lock:
                self._process = None
            self._finished.set()

    def _spawn(self, errors) -> subprocess.Popen | None:
        # the child imports this very `qa`, wherever the server was started from
        path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, **THREAD_LIMITS, "PYTHONPATH": path}
        with self._lock:
            if self._stopping:
                self._finish(BuildStatus(phase="failed", error="the server is stopping; the rebuild did not start"))
                return None
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
                text=True,
                encoding="utf-8",
                errors="replace",
                close_fds=True,
                # between fork and exec it takes no lock another thread could hold: system calls only
                preexec_fn=_lowered(self.niceness, build_cpus(), os.getpid()),
            )
            self._update(pid=self._process.pid)
        log.info("rebuild started: process %d, %s", self._process.pid, " ".join(self.command[1:4]))
        return self._process

    def _switch(self, report: BuildReport) -> str:
        try:
            return self.on_built(report)
        except QAError as error:  # the new generation does not load: the one served stays
            raise QAError(
                f"the new generation {report.generation} was written but cannot be served: {error}"
            ) from error

    def _why(self, code: int, stderr: str) -> str:
        if self._stopping:
            return "the rebuild was stopped because the server is stopping"
        if code < 0:
            return f"the build process was ended by {signal.Signals(-code).name}"
        last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "")
        return f"the build process exited with status {code}" + (f": {last.strip()[:300]}" if last else "")

    def _update(self, **changes) -> None:
        self._status = replace(self._status, **changes)

    def _finish(self, status: BuildStatus) -> None:
        self._status = status
        if status.phase == "failed":
            log.warning("rebuild failed: %s", status.error)
        else:
            log.info("rebuild finished: generation %s", status.report.generation if status.report else "")


def _event(line: str) -> dict:
    """A JSON object line of the child's stdout; {} for anything else (a library's stray print)."""
    try:
        event = json.loads(line)
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}


_RUNNERS: weakref.WeakSet[RebuildRunner] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """The server's interpreter exits: no build process outlives it."""
    for runner in list(_RUNNERS):
        runner.stop()
