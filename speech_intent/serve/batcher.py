"""Micro-batching: worker threads run concurrent requests as pipeline batches.

Requests put a job (a few decoded audio arrays, or a few texts) into a bounded queue and get a
:class:`concurrent.futures.Future`. The worker takes the first waiting job and every job queued
behind it, up to ``max_batch`` inputs of the same kind; it waits for more (at most ``max_wait``
seconds) only while other requests are on their way (an :class:`Arrival`: received, still being
read or decoded), so a lone request never waits. It runs the batch as one pipeline (or classifier)
call and resolves each job's future with its own results. With ``workers`` > 1 that many worker
threads take batches from the one queue and run them at once (the models are shared; on CPU each
worker runs them on its share of the threads: two batches on one thread each beat one batch on two
threads, as each batch's serial work overlaps the other's model time); a batch stops growing while
another worker is idle, so requests are spread over the workers first and batched when all are busy. A
full queue raises :class:`~speech_intent.errors.OverloadedError` at once; a bad input only gets an
``error`` in its own result (the pipeline isolates failures), so one request never disturbs another.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..device import set_torch_threads
from ..errors import OverloadedError
from ..pipeline import SpeechIntentPipeline

logger = logging.getLogger(__name__)

_STOP = object()
#: where a request's :class:`Arrival` is kept in its ASGI scope
ARRIVAL_KEY = "speech_intent.arrival"
_POLL = 0.002  # seconds between looks at the requests on their way while a batch waits for them


@dataclass
class _Job:
    kind: str  # "audio" or "text"
    items: list
    names: List[str]
    top_k: int = 3
    future: Future = field(default_factory=Future)


@dataclass
class BatcherStats:
    """What the worker has done: ``batches`` run, ``items`` processed, the ``largest_batch``."""

    batches: int = 0
    items: int = 0
    largest_batch: int = 0
    busy_seconds: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        mean = self.items / self.batches if self.batches else 0.0
        return {"batches": self.batches, "items": self.items, "largest_batch": self.largest_batch,
                "mean_batch": round(mean, 3), "busy_seconds": round(self.busy_seconds, 3)}


class Arrival:
    """A request on its way to the worker: counted from :meth:`MicroBatcher.arrival` until it submits
    its job or ends (``done()``, idempotent), so a batch waits for it."""

    def __init__(self, batcher: "MicroBatcher") -> None:
        self._batcher, self._open = batcher, True

    def done(self) -> None:
        if self._open:
            self._open = False
            self._batcher._count_arrival(-1)


class MicroBatcher:
    """Run pipeline calls from many threads on ``workers`` worker threads, in batches.

    Args:
        pipeline: the models (used only by the worker threads; with several, at once: its stages must
            take concurrent calls, as the library's do).
        max_batch: most inputs in one batch (1: each request runs alone).
        max_wait: seconds a batch may wait for requests still on their way (:meth:`arrival`).
        queue_size: most requests waiting; more raise :class:`OverloadedError`.
        threads: torch intra-op threads the workers share: each pins ``threads // workers`` (at least 1)
            for itself when it starts (``None``: torch's setting for a new thread).
        workers: batches run at once (one worker thread each).
    """

    def __init__(self, pipeline: SpeechIntentPipeline, *, max_batch: int = 8, max_wait: float = 0.05,
                 queue_size: int = 64, threads: Optional[int] = None, workers: int = 1) -> None:
        self.pipeline = pipeline
        self.threads = threads
        self.workers = max(1, int(workers))
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=queue_size)
        self._threads: List[threading.Thread] = []
        self._arriving = 0
        self._idle = 0  # workers waiting for a job
        self._lock = threading.Lock()
        self.stats = BatcherStats()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "MicroBatcher":
        with self._lock:
            if not self._threads:
                self._threads = [threading.Thread(target=self._work, name=f"speech-intent-worker-{i}", daemon=True)
                                 for i in range(self.workers)]
                for thread in self._threads:
                    thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:  # no job is queued after the stop, where nobody would run it
            threads, self._threads = self._threads, []
        for _ in threads:  # each worker ends at the first stop it takes
            self._queue.put(_STOP)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def depth(self) -> int:
        """Requests waiting for the worker."""
        return self._queue.qsize()

    @property
    def arriving(self) -> int:
        """Requests on their way (:meth:`arrival` not yet done)."""
        return self._arriving

    def arrival(self) -> Arrival:
        """Count a request on its way until its ``done()`` (its submit calls it)."""
        self._count_arrival(1)
        return Arrival(self)

    def _count_arrival(self, step: int) -> None:
        with self._lock:
            self._arriving += step

    # ------------------------------------------------------------------ submitting
    def submit_audio(self, arrays: Sequence[np.ndarray], names: Optional[Sequence[str]] = None,
                     arrival: Optional[Arrival] = None) -> Future:
        """Recognise 16 kHz arrays: a future of one :class:`PipelineResult` each (``path`` = its name).
        ``arrival``: the request's :class:`Arrival`, done once the job is queued."""
        names = list(names) if names is not None else [f"<array #{i}>" for i in range(len(arrays))]
        return self._submit(_Job("audio", list(arrays), names), arrival)

    def submit_texts(self, texts: Sequence[str], top_k: int = 3, arrival: Optional[Arrival] = None) -> Future:
        """Classify texts: a future of one :class:`IntentPrediction` each."""
        return self._submit(_Job("text", list(texts), [], top_k=top_k), arrival)

    def _submit(self, job: _Job, arrival: Optional[Arrival] = None) -> Future:
        try:
            return self._enqueue(job)
        finally:
            if arrival is not None:
                arrival.done()

    def _enqueue(self, job: _Job) -> Future:
        with self._lock:  # the check and the put together: no job lands behind the stop
            if not self._threads:
                raise OverloadedError("the worker is not running")
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                retry = max(1.0, round(self.depth * self._seconds_per_job(), 1))
                raise OverloadedError(f"the queue is full ({self.depth} requests waiting); try again later",
                                      retry_after=retry) from None
        return job.future

    def _seconds_per_job(self) -> float:
        per_batch = self.stats.busy_seconds / self.stats.batches if self.stats.batches else 0.5
        return per_batch / self.workers

    # ------------------------------------------------------------------ the workers
    def _work(self) -> None:
        if self.threads is not None:  # per thread: torch's OpenMP setting is not inherited
            set_torch_threads(max(1, self.threads // self.workers))
        while True:
            first = self._take_first()
            if first is _STOP:
                return
            batch, count = [first], len(first.items)
            deadline = time.monotonic() + self.max_wait
            stop = False
            while count < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self._queue.empty() and self._arriving == 0) or self._idle:
                    break  # the wait is over, nothing else is queued or on its way, or an idle worker takes it
                try:
                    job = self._take_fitting(first, count, min(remaining, _POLL))
                except queue.Empty:
                    continue
                if job is None:  # the next job does not fit: it stays first in line, for the next free worker
                    break
                if job is _STOP:
                    stop = True
                    break
                batch.append(job)
                count += len(job.items)
            self._run(batch)
            if stop:
                return

    def _take_fitting(self, first: _Job, count: int, timeout: float) -> Any:
        """The next queued job (or stop) if it joins ``first``'s batch of ``count`` inputs, else ``None``,
        leaving it queued (a worker that kept it aside would hold it through its batch while another is
        free); :class:`queue.Empty` after ``timeout`` seconds without one."""
        pending = self._queue
        with pending.not_empty:
            if not pending.queue:
                pending.not_empty.wait(timeout)
                if not pending.queue:
                    raise queue.Empty
            job = pending.queue[0]
            if job is not _STOP and (job.kind != first.kind or (job.kind == "text" and job.top_k != first.top_k)
                                     or count + len(job.items) > self.max_batch):
                pending.not_empty.notify()  # this wake-up was for a worker that can take it
                return None
            pending.queue.popleft()
            pending.not_full.notify()
            return job

    def _take_first(self) -> Any:
        """The next job, waiting as an idle worker: batches being formed leave what is queued to idle
        workers (two batches at once beat one twice the size)."""
        self._count_idle(1)
        try:
            return self._queue.get()
        finally:
            self._count_idle(-1)

    def _count_idle(self, step: int) -> None:
        with self._lock:
            self._idle += step

    def _run(self, jobs: List[_Job]) -> None:
        jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]  # a cancelled job is dropped
        if jobs:
            self._execute(jobs)

    def _execute(self, jobs: List[_Job]) -> None:
        items = [item for job in jobs for item in job.items]
        began = time.perf_counter()
        failed: Optional[BaseException] = None
        try:
            if jobs[0].kind == "audio":
                names = [name for job in jobs for name in job.names]
                outputs = self.pipeline.recognise(items, names, batch_size=max(1, len(items))) if items else []
            else:
                outputs = self.pipeline.intent(items, top_k=jobs[0].top_k) if items else []
        except BaseException as error:  # never lose the worker: fail these jobs only
            logger.exception("a batch of %d inputs failed", len(items))
            failed = error
        finally:
            with self._lock:
                self.stats.busy_seconds += time.perf_counter() - began
        if failed is not None:
            for job in jobs:
                if len(jobs) > 1:  # one request's input must not fail the others: each job again, alone
                    self._execute([job])
                else:
                    job.future.set_exception(failed)
            return
        with self._lock:
            self.stats.batches += 1
            self.stats.items += len(items)
            self.stats.largest_batch = max(self.stats.largest_batch, len(items))
        start = 0
        for job in jobs:
            job.future.set_result(outputs[start: start + len(job.items)])
            start += len(job.items)
