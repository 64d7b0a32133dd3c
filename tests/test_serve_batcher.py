"""The micro-batcher (``speech_intent/serve/batcher.py``): worker threads, their torch threads, batching
of concurrent requests, waiting only for requests on their way, a bounded queue, failures, cancellation
and shutdown; on a stand-in pipeline, and through an in-process app with one and two workers."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from speech_intent.errors import OverloadedError
from tests.compare import assert_rows_match
from tests.serving import LOCAL, uploads


class _StubPipeline:
    """A stand-in for the pipeline behind the micro-batcher: records each batch's size and the torch
    threads it ran with; ``delay`` seconds per batch; with ``gate``, each batch first waits (up to 10 s)
    for it to be set; a batch holding a 3-sample clip raises. Each result is named as asked."""

    max_duration = 30.0

    def __init__(self, delay: float = 0.0, gate=None) -> None:
        self.delay, self.gate, self.calls, self.threads = delay, gate, [], []

    def recognise(self, items, names=None, batch_size=8):
        import torch

        if self.gate is not None:
            self.gate.wait(10)
        self.calls.append(len(items))
        self.threads.append(torch.get_num_threads())
        time.sleep(self.delay)
        if any(len(x) == 3 for x in items):
            raise RuntimeError("boom")
        names = list(names) if names is not None else [f"<array #{i}>" for i in range(len(items))]
        return [type("R", (), {"error": None, "path": name})() for name in names]


def test_the_worker_pins_its_torch_threads():
    import torch

    from speech_intent.serve.batcher import MicroBatcher

    probe = _StubPipeline()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for threads in (None, 1):  # unset: what a new thread gets (here 2); pinned in the worker: 1
            batcher = MicroBatcher(probe, threads=threads).start()  # type: ignore[arg-type]
            try:
                batcher.submit_audio([np.zeros(5)]).result(5)
            finally:
                batcher.stop()
    finally:
        torch.set_num_threads(before)
    assert probe.threads == [2, 1]


def test_several_workers_run_batches_at_once_each_on_its_share_of_the_threads():
    import threading

    from speech_intent.serve.batcher import MicroBatcher

    class Meeting(_StubPipeline):  # each batch waits until two batches run at once
        def __init__(self) -> None:
            super().__init__()
            self.meet = threading.Barrier(2, timeout=3)

        def recognise(self, items, names=None, batch_size=8):
            self.meet.wait()
            return super().recognise(items, names, batch_size)

    for workers in (2, 1):
        pipe = Meeting()
        batcher = MicroBatcher(pipe, max_batch=1, threads=2, workers=workers).start()  # type: ignore[arg-type]
        try:
            jobs = [batcher.submit_audio([np.zeros(5)]) for _ in range(2)]
            if workers == 2:
                assert all(len(job.result(10)) == 1 for job in jobs)
                assert pipe.threads == [1, 1] and batcher.stats.batches == 2  # 2 threads shared by 2 workers
            else:  # one worker: the first batch waits alone for a second that cannot start
                with pytest.raises(threading.BrokenBarrierError):
                    jobs[0].result(10)
        finally:
            batcher.stop()
        assert not [t for t in threading.enumerate() if t.name.startswith("speech-intent-worker")]


def test_requests_go_to_idle_workers_first_and_are_batched_when_all_are_busy():
    from speech_intent.serve.batcher import MicroBatcher

    slow = _StubPipeline(delay=0.4)
    batcher = MicroBatcher(slow, max_batch=4, max_wait=1.0, workers=2).start()  # type: ignore[arg-type]
    try:
        coming = batcher.arrival()  # on its way: a lone worker would wait for it (up to max_wait) ...
        first = batcher.submit_audio([np.zeros(5)])
        time.sleep(0.2)
        assert slow.calls == [1]  # ... but the other worker is idle: the batch ran at once, alone
        second = batcher.submit_audio([np.zeros(5)], arrival=coming)
        time.sleep(0.1)  # both workers busy now
        queued = [batcher.submit_audio([np.zeros(5)]) for _ in range(4)]
        assert all(len(job.result(10)) == 1 for job in [first, second, *queued])
        assert slow.calls == [1, 1, 4]  # the four that queued while both were busy: one batch
    finally:
        batcher.stop()


def test_a_service_with_two_workers_answers_concurrent_requests_as_one_does(tiny_pipe):
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from speech_intent.serve import ServeOptions, create_app

    names = ["001_set_alarm.wav", "007_get_weather.wav", "002_set_alarm.wav"] * 2
    answers = {}
    for workers in (1, 2):
        with TestClient(create_app(tiny_pipe, ServeOptions(workers=workers, threads=2)), base_url=LOCAL) as client:
            with ThreadPoolExecutor(6) as pool:
                responses = list(pool.map(lambda name: client.post("/v1/predict", files=uploads(name)), names))
            assert all(r.status_code == 200 for r in responses)
            answers[workers] = [r.json()["results"][0] for r in responses]
            assert client.get("/v1/info").json()["batching"]["workers"] == workers
    # each answer is its own request's (paths, durations, errors exactly); batches formed by the concurrency
    # and each worker's thread count differ between the runs: model outputs to a tolerance (tests/compare.py)
    assert [row["path"] for row in answers[2]] == names
    assert_rows_match(answers[2], answers[1])


def test_the_batcher_queue_is_bounded_and_a_failing_batch_fails_only_its_jobs(tiny_pipe):
    from speech_intent.serve.batcher import MicroBatcher

    slow = _StubPipeline(delay=0.3)
    batcher = MicroBatcher(slow, max_batch=4, max_wait=0.05, queue_size=2).start()  # type: ignore[arg-type]
    try:
        first = batcher.submit_audio([np.zeros(5)])
        time.sleep(0.1)  # the worker is busy with it
        waiting = [batcher.submit_audio([np.zeros(5)]), batcher.submit_audio([np.zeros(5)])]
        with pytest.raises(OverloadedError) as full:
            batcher.submit_audio([np.zeros(5)])
        assert full.value.retry_after >= 1
        assert len(first.result(5)) == 1 and all(len(f.result(5)) == 1 for f in waiting)
        assert slow.calls == [1, 2]  # the two waiting requests shared a batch
        bad = batcher.submit_audio([np.zeros(3)])
        with pytest.raises(RuntimeError):
            bad.result(5)
        assert len(batcher.submit_audio([np.zeros(5)]).result(5)) == 1  # the worker survived
    finally:
        batcher.stop()


def test_a_batch_waits_only_for_requests_on_their_way():
    from speech_intent.serve.batcher import MicroBatcher

    record = _StubPipeline()
    batcher = MicroBatcher(record, max_batch=4, max_wait=30.0).start()  # type: ignore[arg-type]
    try:
        lone = batcher.submit_audio([np.zeros(5)])
        assert len(lone.result(10)) == 1  # nothing else on its way: no 30 s wait
        coming = batcher.arrival()  # a request still being received ...
        first = batcher.submit_audio([np.zeros(5)], arrival=batcher.arrival())
        time.sleep(0.3)
        assert not first.done() and batcher.arriving == 1  # ... so the batch waits for it
        second = batcher.submit_audio([np.zeros(5)], arrival=coming)
        assert len(first.result(10)) == 1 and len(second.result(10)) == 1 and batcher.arriving == 0
        assert record.calls == [1, 2]  # the second joined the first's batch
        gone = batcher.arrival()
        late = batcher.submit_audio([np.zeros(5)])
        time.sleep(0.1)
        gone.done()  # a request that ended without a job (e.g. undecodable audio) stops the wait
        assert len(late.result(10)) == 1 and record.calls == [1, 2, 1]
    finally:
        batcher.stop()


def test_a_cancelled_request_does_not_kill_the_worker():
    import threading

    from speech_intent.serve.batcher import MicroBatcher

    gate = threading.Event()
    held = _StubPipeline(gate=gate)
    batcher = MicroBatcher(held, max_batch=1).start()  # type: ignore[arg-type]
    try:
        running = batcher.submit_audio([np.zeros(5)])
        gone = batcher.submit_audio([np.zeros(5)])
        assert gone.cancel()  # its client went away (asyncio.wrap_future cancels it with the request's task)
        gate.set()
        assert len(running.result(10)) == 1
        assert len(batcher.submit_audio([np.zeros(5)]).result(10)) == 1  # the worker still runs
        assert held.calls == [1, 1]  # the cancelled job was not run
    finally:
        batcher.stop()


def test_a_job_submitted_while_the_worker_stops_is_answered():
    import threading

    from speech_intent.serve.batcher import MicroBatcher

    gate = threading.Event()
    batcher = MicroBatcher(_StubPipeline(gate=gate), max_batch=1).start()  # type: ignore[arg-type]
    running = batcher.submit_audio([np.zeros(5)])
    for _ in range(1000):  # until the worker holds it
        if batcher.depth == 0:
            break
        time.sleep(0.01)
    stopping = threading.Thread(target=batcher.stop)
    stopping.start()  # a server shutting down while a request (e.g. a segmented file) still submits
    for _ in range(1000):
        if batcher.depth == 1:  # the stop is queued
            break
        time.sleep(0.01)
    try:
        late = batcher.submit_audio([np.zeros(5)])
    except OverloadedError:
        late = None  # refused at once: fine
    gate.set()
    stopping.join(20)
    assert len(running.result(10)) == 1
    assert late is None or late.done()  # never a future nobody will resolve (its caller would wait forever)


def test_a_text_the_classifier_cannot_take_fails_only_its_own_request(tiny_pipe):
    from speech_intent.serve.batcher import MicroBatcher

    batcher = MicroBatcher(tiny_pipe, max_batch=4, max_wait=30.0).start()
    try:
        coming = batcher.arrival()  # the good request is on its way: the bad one's batch waits for it
        bad = batcher.submit_texts(["play \ud800 jazz"], arrival=batcher.arrival())  # a lone surrogate
        good = batcher.submit_texts(["play some jazz"], arrival=coming)
        assert good.result(30)[0].text == "play some jazz"  # not failed with its batch-mate
        with pytest.raises(Exception):
            bad.result(30)
    finally:
        batcher.stop()


def test_a_request_that_does_not_fit_a_batch_goes_to_the_next_free_worker():
    from speech_intent.serve.batcher import MicroBatcher

    class Timed(_StubPipeline):  # a batch takes (its longest clip's samples) / 100 seconds
        def recognise(self, items, names=None, batch_size=8):
            self.delay = max(len(x) for x in items) / 100
            return super().recognise(items, names, batch_size)

    batcher = MicroBatcher(Timed(), max_batch=2, max_wait=3.0, workers=2).start()  # type: ignore[arg-type]
    try:
        short = batcher.submit_audio([np.zeros(30)])  # one worker busy for 0.3 s
        time.sleep(0.1)
        coming = batcher.arrival()
        long = batcher.submit_audio([np.zeros(200)])  # the other waits for what is on its way ...
        time.sleep(0.1)
        pair = batcher.submit_audio([np.zeros(5), np.zeros(5)], arrival=coming)  # ... which does not fit: 1 + 2 > 2
        assert len(pair.result(10)) == 2
        assert short.done() and not long.done()  # run by the first worker once free, not after the 2 s batch
        assert len(long.result(10)) == 1
    finally:
        batcher.stop()
