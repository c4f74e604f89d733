"""The model worker: one thread runs the pipeline, jobs wait in a bounded queue.

``Engine.submit`` puts a job in the queue or raises :class:`Busy` (the queue is full: HTTP 429)
or :class:`Unavailable` (the engine is not running: 503). The worker routes the instruction
(unless a task is given), runs :class:`~pixwizard.pipeline.PixWizardPipeline`, writes the image
and its typed outputs into ``results_dir/<job id>/`` and resolves the job's future. Progress is
the sampler's time ``t`` in [0, 1] (read in the velocity function, so any sampler reports it);
a cancelled job stops at its next model evaluation. Only the newest ``keep`` result folders stay.
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from pixwizard.outputs import write_output_set
from pixwizard.pipeline import PixWizardPipeline, PixWizardResult, check_tile
from pixwizard.tasks.registry import get_task
from pixwizard.tasks.routing import Route
from pixwizard.tiles import default_overlap, tile_boxes

RouteFn = Callable[[str], Route]
RESULT_NAME = "result.png"


class Busy(Exception):
    """The queue is full; ``retry_after`` is a suggested wait in seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(Exception):
    """The engine is not running (starting or shut down)."""


class Cancelled(Exception):
    """The job was cancelled (its request timed out or went away)."""


@dataclass
class JobOptions:
    """What to run; ``None`` means the model's default."""

    instruction: str
    task: str | None = None
    steps: int | None = None
    text_guidance: float | None = None
    image_guidance: float | None = None
    seed: int = 0
    size: int | None = None
    shifts: int | None = None
    tile: int | None = None  # run in overlapping tiles of this side at the image's own resolution


def _tiles(job: "Job") -> int:
    """How many tiles the job's image runs in (1 without ``tile``): progress counts passes."""
    tile = job.options.tile
    if tile is None:
        return 1
    h, w = job.image.shape[:2]
    return len(tile_boxes(h, w, tile, default_overlap(tile)))


@dataclass
class JobResult:
    id: str
    result: PixWizardResult
    route: Route | None  # None when the task was given
    files: dict[str, Path]  # "image" and every typed output kind -> path
    queued_s: float
    run_s: float

    @property
    def task(self) -> str | None:
        """The task the output was decoded as; None when the instruction matched no task."""
        return self.result.task


@dataclass
class Job:
    image: np.ndarray
    options: JobOptions
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    future: Future = field(default_factory=Future)
    progress: float = 0.0  # sampler time in [0, 1], over all shifted passes
    passes_started: int = 0  # sampler passes begun (a shift ensemble runs several)
    passes: int = 1  # sampler passes the job runs in all (shifts x tiles), set when it starts
    submitted: float = field(default_factory=time.perf_counter)
    cancelled: threading.Event = field(default_factory=threading.Event)

    unqueue: Callable[["Job"], bool] = field(default=lambda job: False, repr=False)

    def cancel(self) -> None:
        """Stop this job: a waiting one leaves the queue (its place is free at once), a running
        one stops at its next model evaluation; either way its future raises Cancelled."""
        self.cancelled.set()
        if self.unqueue(self):
            _fail(self, Cancelled("cancelled before it ran"))


class JobQueue:
    """A bounded FIFO of jobs from which a cancelled job can be taken out."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[Job | None] = deque()
        self._cv = threading.Condition()

    def put_nowait(self, job: Job | None) -> None:
        """Add a job (queue.Full at capacity); ``None``, the stop signal, always goes in."""
        with self._cv:
            if job is not None and self.qsize() >= self.capacity:
                raise queue.Full
            self._items.append(job)
            self._cv.notify()

    def get(self) -> Job | None:
        with self._cv:
            while not self._items:
                self._cv.wait()
            return self._items.popleft()

    def remove(self, job: Job) -> bool:
        with self._cv:
            try:
                self._items.remove(job)
                return True
            except ValueError:
                return False

    def drain(self) -> list[Job]:
        with self._cv:
            items, self._items = [j for j in self._items if j is not None], deque()
            return items

    def qsize(self) -> int:
        return sum(j is not None for j in self._items)


class Engine:
    """Runs jobs one at a time on ``pipe`` in a worker thread.

    ``route_fn`` maps an instruction to a :class:`Route` (default: ``pipe.route``). The engine
    owns ``pipe`` from then on: it wraps its velocity function (progress, cancellation) and its
    text encoder's ``encode`` (one call at a time).
    """

    def __init__(self, pipe: PixWizardPipeline, *, route_fn: RouteFn | None = None, queue_size: int = 16,
                 results_dir: str | Path | None = None, keep: int = 200) -> None:
        self.pipe = pipe
        self.route_fn: RouteFn = route_fn or pipe.route
        self.queue_size = queue_size
        self._queue = JobQueue(queue_size)
        self._own_dir = results_dir is None
        self.results_dir = Path(tempfile.mkdtemp(prefix="pixwizard-serve-")) if results_dir is None else Path(results_dir)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._kept: deque[Path] = deque()
        self._thread: threading.Thread | None = None
        self._current: Job | None = None
        self._route_lock = threading.Lock()
        self.completed = 0
        self.failed = 0
        self.started_at = time.time()
        self._run_times: deque[float] = deque(maxlen=20)
        self._wrap_velocity()
        self._lock_text_encoder()

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "Engine":
        if not self.running:
            self._thread = threading.Thread(target=self._work, name="pixwizard-engine", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking jobs, cancel the waiting ones and stop the worker."""
        thread, self._thread = self._thread, None
        for job in self._queue.drain():
            job.cancelled.set()
            _fail(job, Unavailable("the server is shutting down"))
        if self._current is not None:
            self._current.cancel()
        if thread is not None:
            self._queue.put_nowait(None)
            thread.join(timeout)
        if self._own_dir:
            shutil.rmtree(self.results_dir, ignore_errors=True)

    def __enter__(self) -> "Engine":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ state
    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def current_progress(self) -> float | None:
        job = self._current
        return None if job is None else job.progress

    def mean_run_s(self) -> float:
        return sum(self._run_times) / len(self._run_times) if self._run_times else 1.0

    def route(self, instruction: str) -> Route:
        """Route an instruction (serialised: the first call may fit the router)."""
        if not instruction.strip():
            raise ValueError("the instruction is empty: say what to do with the image")
        with self._route_lock:
            return self.route_fn(instruction.strip())

    # ------------------------------------------------------------------ jobs
    def submit(self, image: np.ndarray, options: JobOptions) -> Job:
        """Queue a job; raises ValueError for bad options, Busy when full, Unavailable when stopped."""
        if not options.instruction.strip():
            raise ValueError("the instruction is empty: say what to do with the image")
        if options.task is not None:
            get_task(options.task)
        if options.shifts is not None and options.shifts not in (1, 2, 4):
            raise ValueError(f"shifts must be 1, 2 or 4, got {options.shifts}")
        if options.tile is not None:
            check_tile(options.tile, None, self.pipe.config.pixel_multiple)
        if not self.running:
            raise Unavailable("the model worker is not running")
        job = Job(image=image, options=options, unqueue=self._queue.remove)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            wait = max(1, round(self.mean_run_s() * (self.waiting + 1)))
            raise Busy(f"the queue is full ({self.queue_size} requests waiting); retry in about {wait} s",
                       retry_after=wait) from None
        return job

    def run(self, image: np.ndarray, options: JobOptions, timeout: float | None = None) -> JobResult:
        """Submit and wait; on timeout the job is cancelled and TimeoutError raised."""
        job = self.submit(image, options)
        return self.wait(job, timeout)

    def wait(self, job: Job, timeout: float | None) -> JobResult:
        from concurrent.futures import TimeoutError as FutureTimeout

        try:
            return job.future.result(timeout)
        except FutureTimeout:
            job.cancel()
            raise TimeoutError(f"the request did not finish within {timeout:g} s and was cancelled") from None

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if job.cancelled.is_set():
                _fail(job, Cancelled("cancelled before it ran"))
                continue
            if not job.future.set_running_or_notify_cancel():
                continue
            self._current = job
            try:
                job.future.set_result(self._run(job))
                self.completed += 1
            except BaseException as e:  # the worker must survive any one job
                self.failed += not isinstance(e, (Cancelled, ValueError))  # ValueError: the input's fault
                _fail(job, e)
            finally:
                self._current = None

    def _run(self, job: Job) -> JobResult:
        o = job.options
        start = time.perf_counter()
        route = None
        task = o.task
        if task is None:
            route = self.route(o.instruction)
            task = route.task
        no_match = route is not None and route.no_match  # fits no task well: no guess, no typed outputs
        job.passes = (o.shifts or self.pipe.config.flow.sampling_for(task)[1]) * _tiles(job)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the untrained notice is reported in the result
            result = self.pipe(job.image, o.instruction, steps=o.steps, text_guidance=o.text_guidance,
                               image_guidance=o.image_guidance, seed=o.seed, size=o.size, task=task,
                               decode=not no_match, shifts=o.shifts, tile=o.tile)
        result.route = route
        if no_match:
            result.notes.insert(0, f"{route.message()}; choose the task for typed outputs")
        elif route is not None and route.low_confidence:
            result.notes.insert(0, f"the instruction was routed with low confidence: {route.message()}")
        folder = self.results_dir / job.id
        files = write_output_set(folder / RESULT_NAME, result.image, result.decoded, result.task)
        self._remember(folder)
        run_s = time.perf_counter() - start
        self._run_times.append(run_s)
        job.progress = 1.0
        return JobResult(job.id, result, route, files, queued_s=start - job.submitted, run_s=run_s)

    def _remember(self, folder: Path) -> None:
        self._kept.append(folder)
        while len(self._kept) > self.keep:
            shutil.rmtree(self._kept.popleft(), ignore_errors=True)

    def result_file(self, job_id: str, name: str) -> Path | None:
        """A file of a kept result, or None (ids and names are checked, no path escapes)."""
        if not (job_id.isalnum() and len(job_id) <= 32) or "/" in name or "\\" in name or name.startswith("."):
            return None
        path = self.results_dir / job_id / name
        return path if path.is_file() else None

    def _lock_text_encoder(self) -> None:
        """One text encoding at a time: the UI routes instructions (through the shared text
        encoder) while the worker encodes, and Hugging Face fast tokenizers are not thread-safe."""
        encoder = self.pipe.text_encoder
        encode = encoder.encode
        lock = threading.Lock()

        def locked(texts):
            with lock:
                return encode(texts)

        encoder.encode = locked

    def _wrap_velocity(self) -> None:
        """Report sampler progress and honour cancellation at every model evaluation."""
        make = self.pipe.velocity_fn

        def velocity_fn(*args, **kw):
            v = make(*args, **kw)  # one call per sampler pass
            job = self._current
            done, passes = 0, 1
            if job is not None:
                done, job.passes_started = job.passes_started, job.passes_started + 1
                passes = max(job.passes, done + 1)

            def tracked(x, t):
                job = self._current
                if job is not None:
                    if job.cancelled.is_set():
                        raise Cancelled("cancelled")
                    job.progress = max(job.progress, min(1.0, (done + float(t.max())) / passes))
                return v(x, t)

            return tracked

        self.pipe.velocity_fn = velocity_fn


def _fail(job: Job, error: BaseException) -> None:
    if not job.future.done():
        try:
            job.future.set_exception(error)
        except Exception:  # already resolved or cancelled meanwhile
            pass
