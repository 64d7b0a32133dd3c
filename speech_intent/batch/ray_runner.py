"""Batch inference on a Ray cluster: the same rows as ``speech-intent predict``, from many workers.

How a run goes:

- The driver lists the inputs (:func:`~speech_intent.batch.inputs.expand_inputs`) and runs the same
  resumable loop as a local run (:func:`~speech_intent.batch.run.run_batch`) with a :class:`RayEngine`:
  files whose latest row succeeded (same size and mtime) are skipped, exactly as a local rerun skips them.
- Only the paths of the rest go into a Ray Dataset. ``map_batches`` runs them on a pool of actors
  (:class:`PipelineWorker`): each loads the pipeline once, then reads, decodes and predicts its
  batches; ``num_cpus`` / ``num_gpus`` per actor come from :class:`RayOptions`.
- Rows stream back to the driver, which appends each (flushed) to the JSONL/CSV; once every input
  has its row the JSONL is also written as Parquet (:func:`~speech_intent.batch.parquet.jsonl_to_parquet`).
  Through Ray Client (``ray://``) the Ray Data job runs in a :class:`ClusterDriver` actor inside the
  cluster, and the rows come back from it.
- Reaching a running cluster, and its token authentication: :mod:`speech_intent.batch.ray_cluster`.

Nothing is lost or written twice: a killed worker process is restarted and its batch retried
(``max_restarts`` / ``max_task_retries``), and only the successful attempt's rows reach the driver
(which also drops a path it has already written in this run); a killed driver leaves a resumable
file, and rerunning the same command finishes it; a bad file gets an error row, and a batch whose
processing raises gets error rows, so the job itself does not fail on an input.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterable, Iterator, List, Optional, Union

from ..device import DeviceLike, default_workers
from ..errors import ConfigError, DistributedError, check_int
from ..results import PipelineResult
from . import ray_cluster
from .inputs import expand_inputs
from .run import Rows, RunSummary, run_batch
from .writer import RedactRow, ResultWriter, file_key, result_row

if TYPE_CHECKING:  # the pipeline (torch, the model libraries) is imported by the workers only
    from ..pipeline import SpeechIntentPipeline

logger = logging.getLogger(__name__)

#: a saved pipeline directory, ``None`` for :meth:`SpeechIntentPipeline.default`, or a picklable
#: callable that builds the pipeline (it is called once in each worker)
PipelineSource = Union[None, str, Path, Callable[[], "SpeechIntentPipeline"]]

#: how long a run waits for its whole actor pool to load the pipeline (a cluster too small for the
#: pool fails after this)
WAIT_FOR_WORKERS_S = 900
#: More tries of a Ray Client (``ray://``) connection whose server the cluster's proxy failed to start.
CLIENT_SERVER_RETRIES = 2
#: Pipeline batches per Ray task unless ``files_per_task`` is set (a task's scheduling round trip
#: costs about as much as a small model's batch; ``benchmarks/distributed.py`` measures it).
TASK_BATCHES = 8


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a run goes.

    Attributes:
        address: ``None`` = start a local Ray for this run (stopped at the end); ``"auto"`` = the
            cluster this machine belongs to; ``"ray://host:port"`` = a remote cluster (Ray Client);
            ``"host:port"`` = a cluster's GCS. When the process is already connected, that is used.
            A cluster that requires a token: see :mod:`speech_intent.batch.ray_cluster`.
        workers: actors in the pool (each loads the pipeline once).
        cpus_per_worker / gpus_per_worker: Ray resources each actor reserves (fractions allowed);
            the models use that many threads (Ray sets ``OMP_NUM_THREADS``). ``cpus_per_worker=None``:
            a local Ray's CPUs (this machine's, or those of the Ray this process has joined already)
            shared among the workers; 1 on a cluster given by ``address``.
        batch_size: the pipeline's batch size in each actor.
        files_per_task: inputs per Ray task (one ``map_batches`` batch, run by the actor as pipeline
            batches of ``batch_size``); ``None`` = ``TASK_BATCHES`` pipeline batches, fewer when a
            small job would otherwise give a worker under 4 tasks. Each task costs a scheduling round
            trip, and a killed worker's task in flight is run again.
        worker_info: add a ``worker`` field to each row (``node_id hostname:pid`` of its actor).
        progress: show Ray Data's progress bars.
    """

    address: Optional[str] = None
    workers: int = 1
    cpus_per_worker: Optional[float] = None
    gpus_per_worker: float = 0.0
    batch_size: int = 8
    files_per_task: Optional[int] = None
    worker_info: bool = False
    progress: bool = False

    def task_size(self, inputs: int) -> int:
        """Inputs per Ray task for a job of ``inputs`` files."""
        if self.files_per_task is not None:
            return self.files_per_task
        spread = math.ceil(inputs / (4 * self.workers))  # at least 4 tasks per worker
        return max(self.batch_size, min(TASK_BATCHES * self.batch_size, spread))

    def cpus(self) -> float:
        """CPUs each actor reserves: ``cpus_per_worker``, or its default for where the run goes."""
        if self.cpus_per_worker is not None:
            return self.cpus_per_worker
        if self.address is not None:
            return 1.0
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():  # a Ray this process had joined already: its CPUs
            total = int(ray.cluster_resources().get("CPU", 1))
        else:  # a local Ray for the run: the whole machine, as a local run uses it
            total = os.cpu_count() or 1
        return float(max(1, total // self.workers))

    def check(self) -> None:
        check_int("workers", self.workers)
        check_int("batch_size", self.batch_size)
        check_int("files_per_task", self.files_per_task, optional=True)
        if (self.cpus_per_worker is not None and not self.cpus_per_worker > 0) or self.gpus_per_worker < 0:
            raise ConfigError(f"cpus_per_worker must be > 0 and gpus_per_worker >= 0, got "
                              f"{self.cpus_per_worker!r} and {self.gpus_per_worker!r}")


def load_pipeline(source: PipelineSource, device: DeviceLike = None, num_workers: int = 1) -> SpeechIntentPipeline:
    """The pipeline a worker runs: a saved directory, the default (``None``) or a builder's (given
    ``num_workers`` when it names that parameter; a builder's ``**kwargs`` may not take it)."""
    from ..pipeline import SpeechIntentPipeline

    if source is None:
        return SpeechIntentPipeline.default(device=device, progress=False, num_workers=num_workers)
    if isinstance(source, (str, Path)):
        return SpeechIntentPipeline.from_pretrained(source, device=device, num_workers=num_workers)
    return source(num_workers=num_workers) if _takes(source, "num_workers") else source()


def _takes(function: Callable, keyword: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable
        return False
    keywords = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return any(p.name == keyword and p.kind in keywords for p in parameters)


class PipelineWorker:
    """A ``map_batches`` actor: loads the pipeline once, then turns batches of paths into result rows.

    A batch is ``{"path": [as given], "source": [absolute path to read]}``; the answer is
    ``{"path": [...], "row": [JSON row]}`` (JSON text, so rows with different slot names share one
    Arrow schema). Results and their errors name the path as given (the pipeline is given those names).
    """

    def __init__(self, source: PipelineSource, device: DeviceLike, batch_size: int, worker_info: bool) -> None:
        self.workers = default_workers(device)  # 2 batches at once on an actor of 2 or more CPUs
        self.pipe = load_pipeline(source, device, self.workers)
        self.batch_size = batch_size
        self.worker = None
        if worker_info:
            import ray

            self.worker = f"{ray.get_runtime_context().get_node_id()} {socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: Dict[str, object]) -> Dict[str, List[str]]:
        paths = [str(p) for p in batch["path"]]  # type: ignore[attr-defined]
        sources = [str(p) for p in batch["source"]]  # type: ignore[attr-defined]
        return {"path": paths, "row": [json.dumps(row, ensure_ascii=False) for row in self.rows(paths, sources)]}

    def rows(self, paths: List[str], sources: List[str]) -> List[dict]:
        """The rows of ``sources`` (the files read), named by ``paths`` (as given to the driver)."""
        keys = [file_key(s) for s in sources]  # before reading: the row describes the file as it was read
        try:
            results = list(self.pipe.stream(sources, names=paths, batch_size=self.batch_size, workers=self.workers))
        except Exception as error:  # the pipeline isolates bad inputs itself; this is a last guard
            logger.error("a batch of %d failed", len(paths), exc_info=error)
            results = list(self.pipe.affect.mark(PipelineResult.failed(path, error) for path in paths))
        rows = []
        for key, result in zip(keys, results):
            row = result_row(result, key)
            if self.worker is not None:
                row["worker"] = self.worker
            rows.append(row)
        return rows


def _worker_env() -> Dict[str, str]:
    """Workers import the driver's copy of speech_intent (a checkout or an install) when it is there."""
    package_root = str(Path(__file__).resolve().parents[2])
    path = [package_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"PYTHONPATH": os.pathsep.join(dict.fromkeys(path)), "TOKENIZERS_PARALLELISM": "false"}


@contextlib.contextmanager
def _environment(values: Dict[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` for the block (what processes started in it inherit), then restored."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def connect(options: RayOptions) -> bool:
    """Connect to (or start) Ray; ``True`` if this call started it (then the caller shuts it down)."""
    try:
        import ray
    except ImportError as error:
        raise DistributedError("Ray is not installed: pip install 'speech-intent[distributed]'") from error
    if ray.is_initialized():
        return False
    kwargs: dict = {"logging_level": logging.WARNING, "log_to_driver": True}
    state = None
    if options.address is None:  # a local Ray for this run, sized so that the pool fits
        need = options.workers * options.cpus()
        # "local": a new Ray even where a cluster was started on this machine before (Ray would
        # otherwise join the one ray_current_cluster names, or fail when that one is gone)
        kwargs.update(address="local", num_cpus=max(os.cpu_count() or 1, int(need + 0.999)), include_dashboard=False)
        # its processes inherit this one's environment: the workers' settings go there, not into a
        # runtime_env, so that the worker processes Ray starts ahead (one per CPU) can host the actors
        # (a job's runtime_env needs worker processes of its own, started only when asked: ~1 s later)
        environment = _environment(_worker_env())
    else:
        kwargs.update(address=options.address, runtime_env={"env_vars": _worker_env()})
        environment = contextlib.nullcontext()
        if options.address != "auto":  # "auto": Ray finds the local cluster and its token itself
            state = ray_cluster.prepare(options.address)
    attempts = 1 + (CLIENT_SERVER_RETRIES if str(options.address).startswith("ray://") else 0)
    for attempt in range(1, attempts + 1):
        try:
            with environment:
                ray.init(**kwargs)
            return True
        except Exception as error:  # ConnectionError, AuthenticationError, ValueError... from ray.init
            if attempt < attempts and _client_server_failed(error):
                logger.warning("Ray Client could not start this connection's server (%s); trying again", error)
                continue
            raise ray_cluster.failure(options.address, error, state) from error
    return True  # not reached: the last attempt returns or raises


def _client_server_failed(error: BaseException) -> bool:
    """Ray Client's proxy failed to start the server of this one connection (it allows the new process half
    a second; on a busy machine it can miss that): a new connection gets a new server."""
    return isinstance(error, ConnectionError) and "Starting Ray client server failed" in str(error)


def _stream_batches(todo: List[str], source: PipelineSource, device: DeviceLike,
                    options: RayOptions) -> Iterator[List[dict]]:
    """Result rows of ``todo`` from the actor pool, a Ray Data batch at a time, in completion order."""
    import ray
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = options.progress
    context.print_on_execution_start = options.progress
    # start only once every actor has loaded the pipeline: otherwise the first one ready takes the
    # queued batches, and a pipeline that fails to load fails the job here, before any batch runs
    context.wait_for_min_actors_s = WAIT_FOR_WORKERS_S
    if not options.progress:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    items = [{"path": p, "source": os.path.abspath(p)} for p in todo]
    dataset = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 4 * options.workers)))
    del items
    rows = dataset.map_batches(
        PipelineWorker,
        fn_constructor_kwargs={"source": source, "device": device, "batch_size": options.batch_size,
                               "worker_info": options.worker_info},
        batch_size=options.task_size(len(todo)),
        compute=ray.data.ActorPoolStrategy(size=options.workers),
        num_cpus=options.cpus(),
        num_gpus=options.gpus_per_worker or None,
        # Ray Data gives actor pools max_restarts=-1 and max_task_retries=-1: a killed worker process
        # is restarted and its batch retried; only the successful attempt's rows come back
    )
    # prefetch_batches=0: a task's rows are handed over (and written) as soon as it ends; with Ray's
    # default the driver holds each task's rows until the next task's are ready too
    for batch in rows.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
        yield [json.loads(str(text)) for text in batch["row"]]


class ClusterDriver:
    """The job's Ray Data driver inside the cluster, for a process connected through Ray Client
    (``ray://``): Ray Data runs only in a process with a Ray core worker, which a Ray Client
    process is not. An actor of this class (no CPU) runs the job; the client pulls its rows a Ray
    Data batch at a time (:meth:`next_rows`) and writes them as usual."""

    def __init__(self, todo: List[str], source: PipelineSource, device: DeviceLike, options: RayOptions) -> None:
        self.batches = _stream_batches(todo, source, device, options)

    def next_rows(self) -> Optional[List[dict]]:
        """The next batch's rows; ``None`` once every input has its row."""
        return next(self.batches, None)


def _through_ray_client() -> bool:
    try:
        from ray.util.client import ray as client
    except ImportError:
        return False
    return bool(client.is_connected())


def _stream_rows(todo: List[str], source: PipelineSource, device: DeviceLike, options: RayOptions) -> Iterator[dict]:
    """Result rows of ``todo`` from the actor pool, in completion order."""
    if not _through_ray_client():
        for rows in _stream_batches(todo, source, device, options):
            yield from rows
        return
    import ray

    driver = ray.remote(num_cpus=0, max_restarts=0)(ClusterDriver).remote(todo, source, device, options)
    try:
        while (rows := ray.get(driver.next_rows.remote())) is not None:
            yield from rows
    finally:
        ray.kill(driver)


class RayEngine:
    """The :class:`~speech_intent.batch.run.Engine` of a Ray run: :meth:`start` connects (or starts a
    local Ray, shut down by :meth:`stop`); :meth:`results` streams the actor pool's rows, each input once
    whatever Ray's retries did, and raises :class:`DistributedError` when the job itself fails or an input
    got no row."""

    def __init__(self, pipeline: PipelineSource, device: DeviceLike, options: RayOptions) -> None:
        self.pipeline, self.device, self.options = pipeline, device, options
        self.started = False

    def start(self) -> None:
        self.started = connect(self.options)

    def stop(self) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False

    def results(self, todo: List[str], writer: ResultWriter) -> Iterator[Rows]:
        seen: set = set()
        try:
            for row in _stream_rows(todo, self.pipeline, self.device, self.options):
                path = row.get("path")
                if path in seen:  # never twice, whatever the retries did
                    continue
                seen.add(path)
                yield path, (row,)
        except DistributedError:
            raise
        except Exception as error:  # the job (not an input) failed: e.g. the pipeline does not load on the workers
            if type(error).__module__.startswith("ray"):
                raise DistributedError(f"the Ray job failed: {error}") from error
            raise
        missing = len(todo) - len(seen)
        if missing:  # cannot happen with Ray's retries; said loudly rather than written as a complete run
            raise DistributedError(f"{missing} input(s) got no row; rerun the same command to finish them")


def predict_distributed(
    inputs: Iterable[str],
    output: Optional[str],
    *,
    pipeline: PipelineSource = None,
    device: DeviceLike = None,
    options: RayOptions = RayOptions(),
    fmt: Optional[str] = None,
    overwrite: bool = False,
    parquet: Optional[str] = None,
    redact: Optional[RedactRow] = None,
) -> RunSummary:
    """Predict every input on Ray into a resumable JSONL/CSV ``output`` (``None``: stdout), one row each.

    ``parquet``: also write the complete results there (needs a JSONL ``output``); written once every
    input has its row. ``redact``: each row redacted (on the driver) before it is written. Raises :class:`DistributedError` when the job cannot run (Ray missing, no
    cluster, workers that cannot load the pipeline); a bad input is an error row, never an exception.
    Ctrl-C while the rows come in returns the summary with ``interrupted`` set; rerunning resumes.
    """
    options.check()
    files = expand_inputs(inputs)
    if not files:
        raise ConfigError("no input files found")
    return run_batch(files, RayEngine(pipeline, device, options), output, fmt=fmt, overwrite=overwrite,
                     parquet=parquet, redact=redact)


def default_parquet_path(output: Optional[str]) -> Optional[str]:
    """``results.jsonl`` -> ``results.parquet``; ``None`` for stdout or a CSV output."""
    if output is None or not output.lower().endswith((".jsonl", ".json", ".ndjson")):
        return None
    return str(Path(output).with_suffix(".parquet"))
