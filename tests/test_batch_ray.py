"""Distributed predict on a real two-node Ray cluster on this machine (``ray start --head`` plus a second
node joined with ``ray start --address``, one CPU each, custom resources ``node_a`` / ``node_b``):
work runs on both nodes, the answers equal the local pipeline's, a bad file is an error row, and every
input gets exactly one row when a worker process or the driver is killed mid-run.

The cluster requires a token (``RAY_AUTH_MODE=token``, as ``ray start --head`` does once the user has
a Ray token), kept in a file of the test's own (``RAY_AUTH_TOKEN_PATH``, so ``~/.ray`` is left alone).
Drivers get the token file but not ``RAY_AUTH_MODE``: an explicit ``HOST:PORT`` / ``ray://`` address
of this machine must find the token by itself, as a user's ``--address`` after ``ray start --head`` does.

The cluster's processes are started in their own process groups and stopped by those groups
(``ray stop`` would stop every Ray on the machine, not only this one)."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speech_intent import SpeechIntentPipeline
from speech_intent.batch.ray_cluster import prepare
from speech_intent.batch.ray_runner import RayOptions, connect, predict_distributed
from speech_intent.errors import ConfigError, DistributedError

from .compare import assert_rows_match
from .conftest import REPO
from .processes import free_ports, ray_node_port_args, stop_group

ray = pytest.importorskip("ray")

RAY = str(Path(sys.executable).with_name("ray"))
ENV = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
       "RAY_USAGE_STATS_ENABLED": "0"}


def _driver_env(**extra: str) -> dict:
    """A driver's environment: the token file, no ``RAY_AUTH_MODE`` (the code under test sets it)."""
    env = dict(os.environ, **ENV, **extra)
    env.pop("RAY_AUTH_MODE", None)
    return env


def _start_node(args: list, env: dict) -> int:
    """Run ``ray start ARGS`` in a new session; its daemons stay in that process group (returned)."""
    proc = subprocess.Popen([RAY, "start", *args, "--disable-usage-stats"], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=180)
    if proc.returncode != 0:
        stop_group(proc.pid)
        raise RuntimeError(f"ray start {' '.join(args)} failed:\n{out.decode()[-3000:]}")
    return proc.pid


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``(address, {node_id: "node_a" | "node_b"}, ray_client_address)`` of a 2-node, 2-CPU cluster
    that requires a token; stopped afterwards."""
    temp = tmp_path_factory.mktemp("ray")
    token = temp / "auth_token"
    token.write_text(secrets.token_hex(32))
    saved = {k: os.environ.get(k) for k in [*ENV, "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"]}
    os.environ.update(ENV, RAY_AUTH_TOKEN_PATH=str(token))  # this process connects to the cluster too
    os.environ.pop("RAY_AUTH_MODE", None)
    env = dict(os.environ, RAY_AUTH_MODE="token")
    gcs_port, client_port = free_ports(2)
    address = f"127.0.0.1:{gcs_port}"
    groups = []
    try:
        groups.append(_start_node(["--head", f"--port={gcs_port}", f"--ray-client-server-port={client_port}",
                                   "--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0",
                                   '--resources={"node_a": 1}', "--include-dashboard=false",
                                   f"--temp-dir={temp}", *ray_node_port_args()], env))
        groups.append(_start_node([f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                                   "--num-gpus=0", '--resources={"node_b": 1}', *ray_node_port_args()], env))
        assert connect(RayOptions(address=address))  # an explicit address: the token is found by connect
        try:
            deadline = time.monotonic() + 60
            while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
                time.sleep(0.5)
            names = {n["NodeID"]: ("node_a" if "node_a" in n["Resources"] else "node_b")
                     for n in ray.nodes() if n["Alive"]}
        finally:
            ray.shutdown()
        assert sorted(names.values()) == ["node_a", "node_b"], names
        yield address, names, f"ray://127.0.0.1:{client_port}"
    finally:
        for pgid in reversed(groups):
            stop_group(pgid)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _clips(folder: Path, n: int, seconds: float = 1.0) -> list:
    """``n`` distinct clips of the same length (same-length batches: no padding differences)."""
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    paths = []
    for i in range(n):
        noise = 0.05 * np.random.default_rng(i).standard_normal(len(t))
        path = folder / f"clip_{i:03d}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * (180 + 7 * i) * t) + noise).astype(np.float32), 16000)
        paths.append(str(path))
    return paths


def _rows(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _cli(address: str, folder: Path, pipeline: Path, out: Path, *extra: str) -> list:
    return [sys.executable, "-m", "speech_intent", "predict", str(folder), "--engine", "ray", "--address", address,
            "--pipeline", str(pipeline), "--device", "cpu", "--workers", "2", "-q", "-o", str(out), *extra]


def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 180.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and (lines := path.read_bytes().count(b"\n")) >= n:
            return lines
        time.sleep(0.01)
    return -1


def test_both_nodes_same_answers_as_local_and_bad_files_get_error_rows(cluster, tiny_pipeline_dir, tmp_path):
    address, names, _ = cluster
    files = _clips(tmp_path / "in", 24)
    (tmp_path / "in" / "broken.wav").write_bytes(b"not audio at all")
    missing = str(tmp_path / "in" / "missing.wav")
    out = tmp_path / "out.jsonl"
    summary = predict_distributed([str(tmp_path / "in"), missing], str(out), pipeline=tiny_pipeline_dir,
                                  device="cpu", parquet=str(tmp_path / "out.parquet"),
                                  options=RayOptions(address=address, workers=2, batch_size=4, worker_info=True))
    rows = {r["path"]: r for r in _rows(out)}
    assert len(rows) == len(_rows(out)) == 26
    assert (summary.done, summary.failed, summary.skipped) == (24, 2, 0)
    broken = rows[str(tmp_path / "in" / "broken.wav")]
    assert broken["error"].startswith(str(tmp_path / "in" / "broken.wav")) and broken["intent"] is None
    assert "not found" in rows[missing]["error"] or "No such file" in rows[missing]["error"]
    # work ran on both nodes
    assert {rows[f]["worker"].split()[0] for f in files} == set(names)
    # the same answers as the local pipeline, and the same fields as local predict (+ the debug field)
    # (the actors' processes run other thread counts: model outputs to a tolerance, tests/compare.py)
    local = SpeechIntentPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")(files, batch_size=4)
    assert all(set(rows[r.path]) == set(r.to_dict()) | {"file_key", "worker"} for r in local)
    assert_rows_match([rows[r.path] for r in local], local, atol=1e-4, ignore=("file_key", "worker"))
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 26 and sorted(table.column("path").to_pylist()) == sorted(rows)


def test_worker_killed_mid_run_every_input_exactly_once(cluster, tiny_pipeline_dir, tmp_path):
    address, _, _ = cluster
    files = _clips(tmp_path / "in", 100)
    out = tmp_path / "out.jsonl"
    env = _driver_env()
    proc = subprocess.Popen(_cli(address, tmp_path / "in", tiny_pipeline_dir, out, "--batch-size", "2",
                                 "--worker-info"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        lines = _wait_for_lines(out, 4, proc)
        assert lines > 0, f"no rows before the run ended: {proc.stderr.read().decode()[-3000:]}"
        victim = int(_rows(out)[-1]["worker"].rsplit(":", 1)[1])
        os.kill(victim, signal.SIGKILL)  # an actor process of this test's cluster
        assert proc.poll() is None, "the run ended before the kill"
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0, err.decode()[-3000:]
    rows = _rows(out)
    assert sorted(r["path"] for r in rows) == sorted(files)  # every input exactly once
    assert not [r for r in rows if r["error"]]
    assert lines < len(files), "the kill landed after the last row"
    # the killed actor's rows are kept; its batch in flight was redone by a restarted or the other actor
    assert victim in {int(r["worker"].rsplit(":", 1)[1]) for r in rows}


def test_driver_killed_then_rerun_every_input_exactly_once(cluster, tiny_pipeline_dir, tmp_path):
    address, _, _ = cluster
    files = _clips(tmp_path / "in", 80)
    out = tmp_path / "out.jsonl"
    env = _driver_env()
    cmd = _cli(address, tmp_path / "in", tiny_pipeline_dir, out, "--batch-size", "2")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines = _wait_for_lines(out, 6, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lines > 0, f"the run ended before it could be killed: {proc.stderr.read().decode()[-3000:]}"
    before = _rows(out)
    assert 0 < len(before) < 80, "the kill landed after the last file"
    with open(out, "a") as handle:  # a torn row, wherever the kill landed
        handle.write('{"path": "' + files[-1] + '", "transcr')
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"skipped: {len({r['path'] for r in before})}," in rerun.stderr
    rows = _rows(out)
    assert sorted(r["path"] for r in rows) == sorted(files)  # every input exactly once
    assert not [r for r in rows if r["error"]]
    import pyarrow.parquet as pq

    assert pq.read_table(out.with_suffix(".parquet")).num_rows == 80


def test_task_size_spreads_small_jobs_and_batches_large_ones():
    options = RayOptions(workers=2, batch_size=4)
    assert options.task_size(26) == 4  # 7 tasks: both workers get several
    assert options.task_size(200) == 25
    assert options.task_size(10_000) == 32  # 8 pipeline batches per task
    assert RayOptions(batch_size=8).task_size(3) == 8  # never below one pipeline batch
    assert RayOptions(files_per_task=5).task_size(10_000) == 5
    with pytest.raises(ConfigError, match="files_per_task"):
        RayOptions(files_per_task=0).check()


def test_actors_default_to_the_machine_on_a_local_ray_and_one_cpu_on_a_cluster(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert RayOptions().cpus() == 8.0  # one actor: the whole machine, as a local run
    assert RayOptions(workers=3).cpus() == 2.0 and RayOptions(workers=16).cpus() == 1.0
    assert RayOptions(address="auto").cpus() == 1.0 and RayOptions(address="auto", workers=4).cpus() == 1.0
    assert RayOptions(cpus_per_worker=0.5).cpus() == 0.5
    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # a Ray this process joined before: its CPUs
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 3.0})
    assert RayOptions().cpus() == 3.0 and RayOptions(workers=2).cpus() == 1.0
    with pytest.raises(ConfigError, match="cpus_per_worker"):
        RayOptions(cpus_per_worker=0).check()


def test_an_actor_of_two_cpus_runs_two_batches_at_once_with_the_rows_of_one(monkeypatch, tiny_pipeline_dir, tmp_path):
    """Ray sets OMP_NUM_THREADS to an actor's CPUs: with two, the actor loads the pipeline for two
    batches at once and runs them so (as local ``predict`` does), with the same rows."""
    import speech_intent.device
    from speech_intent.batch.ray_runner import PipelineWorker, load_pipeline

    paths = []
    for i in range(5):
        paths.append(str(tmp_path / f"clip_{i}.wav"))
        sf.write(paths[-1], np.sin(np.arange(8000 + 1000 * i) / (3.0 + i)).astype(np.float32) * 0.3, 16000)
    asked = []

    def builder(num_workers=1):
        asked.append(num_workers)
        return SpeechIntentPipeline.from_pretrained(tiny_pipeline_dir, device="cpu", num_workers=num_workers)

    monkeypatch.setattr(speech_intent.device, "available_cpus", lambda: 2)
    rows = {}
    for cpus in ("1", "2"):
        monkeypatch.setenv("OMP_NUM_THREADS", cpus)
        worker = PipelineWorker(builder, "cpu", batch_size=2, worker_info=False)
        assert worker.workers == int(cpus)
        rows[cpus] = worker.rows(paths, paths)
    assert asked == [1, 2] and len(rows["1"]) == 5
    assert_rows_match(rows["2"], rows["1"])  # one thread a batch vs two: model outputs to a tolerance
    assert load_pipeline(lambda: "built") == "built"  # a builder without the keyword is called as it is
    # a builder of no arguments that passes on **options (to a pipeline constructor without num_workers)
    assert load_pipeline(lambda **options: ("built", options), num_workers=2) == ("built", {})


def test_ray_client_address_same_answers_as_local(cluster, tiny_pipeline_dir, tmp_path):
    """``ray://``: Ray Data cannot run in a Ray Client process; the job runs in a driver actor in the
    cluster and the rows come back to the CLI, token found as for ``HOST:PORT``."""
    _, _, client_address = cluster
    files = _clips(tmp_path / "in", 6)
    (tmp_path / "in" / "broken.wav").write_bytes(b"not audio at all")
    out = tmp_path / "out.jsonl"
    run = subprocess.run(_cli(client_address, tmp_path / "in", tiny_pipeline_dir, out, "--batch-size", "2"),
                         env=_driver_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "done: 6, skipped: 0, failed: 1" in run.stderr
    rows = {r["path"]: r for r in _rows(out)}
    assert len(rows) == len(_rows(out)) == 7
    assert rows[str(tmp_path / "in" / "broken.wav")]["error"]
    local = SpeechIntentPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")(files, batch_size=2)
    assert_rows_match([rows[r.path] for r in local], local, atol=1e-4, ignore=("file_key", "worker"))


def test_token_required_but_none_found_is_a_typed_error_naming_what_to_do(cluster, tiny_pipeline_dir, tmp_path):
    address, _, _ = cluster
    _clips(tmp_path / "in", 1)
    home = tmp_path / "home"  # no ~/.ray/auth_token there, and no RAY_AUTH_TOKEN(_PATH)
    home.mkdir()
    env = _driver_env(HOME=str(home))
    env.pop("RAY_AUTH_TOKEN_PATH")
    env.pop("RAY_AUTH_TOKEN", None)
    run = subprocess.run(_cli(address, tmp_path / "in", tiny_pipeline_dir, tmp_path / "out.jsonl"),
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert f"the Ray cluster at {address} requires token authentication and no token was found" in run.stderr
    assert "RAY_AUTH_MODE=token" in run.stderr and "ray get-auth-token" in run.stderr
    assert not (tmp_path / "out.jsonl").exists() or not _rows(tmp_path / "out.jsonl")


def test_explicit_address_checks_fail_fast_with_typed_errors(cluster, monkeypatch):
    address, _, _ = cluster
    (free,) = free_ports(1)
    with pytest.raises(DistributedError, match=f"no Ray cluster \\(GCS\\) answers at 127.0.0.1:{free}"):
        prepare(f"127.0.0.1:{free}")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # respected, never overridden: the error says so
    with pytest.raises(DistributedError, match="requires token authentication, but RAY_AUTH_MODE=disabled"):
        prepare(address)
    with pytest.raises(DistributedError, match="not auto, HOST:PORT or ray://HOST:PORT"):
        prepare("head-without-port")


def test_a_local_ray_gets_the_worker_settings_through_its_environment_and_the_drivers_is_restored(monkeypatch):
    """No runtime_env for a local Ray (its prestarted workers can then host the actors): its processes
    inherit the settings from the driver's environment during ``ray.init``, and only then."""
    calls = []

    def fake_init(**kwargs):
        calls.append((kwargs, {key: os.environ.get(key) for key in ("PYTHONPATH", "TOKENIZERS_PARALLELISM")}))
        if len(calls) == 2:
            raise ValueError("could not start")

    monkeypatch.setattr(ray, "init", fake_init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    assert connect(RayOptions()) is True
    with pytest.raises(DistributedError, match="could not start"):
        connect(RayOptions())
    worker_env = {"PYTHONPATH": os.pathsep.join([str(REPO), "/elsewhere"]), "TOKENIZERS_PARALLELISM": "false"}
    for kwargs, env in calls:
        assert kwargs["address"] == "local" and "runtime_env" not in kwargs and env == worker_env
        assert kwargs["num_cpus"] == max(os.cpu_count() or 1, 1)  # room for the default actor
    assert os.environ["PYTHONPATH"] == "/elsewhere" and "TOKENIZERS_PARALLELISM" not in os.environ
    connect(RayOptions(address="auto"))  # a cluster of its own: the settings travel in a runtime_env
    kwargs, env = calls[-1]
    assert kwargs["runtime_env"] == {"env_vars": worker_env} and env["TOKENIZERS_PARALLELISM"] is None


def test_a_ray_client_connection_whose_server_failed_to_start_is_tried_again(monkeypatch):
    """Ray Client's proxy gives each connection's server half a second to start; on a busy machine it can
    miss that. Such a ``ray://`` connection is made again (twice at most); any other failure is not."""
    import speech_intent.batch.ray_runner as runner

    failures: list = []

    def fake_init(**kwargs):
        if failures:
            raise failures.pop(0)

    server_failed = ConnectionAbortedError("Initialization failure from server: RuntimeError: Starting Ray client "
                                           "server failed. See ray_client_server_23000.err for detailed logs.")
    monkeypatch.setattr(ray, "init", fake_init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(runner.ray_cluster, "prepare", lambda address: None)
    failures[:] = [server_failed, server_failed]
    assert connect(RayOptions(address="ray://127.0.0.1:10001")) is True and not failures
    failures[:] = [server_failed] * 3  # three in a row: the error, naming the address
    with pytest.raises(DistributedError, match="ray://127.0.0.1:10001.*Starting Ray client server failed"):
        connect(RayOptions(address="ray://127.0.0.1:10001"))
    failures[:] = [server_failed, server_failed]  # not a Ray Client address: no second try
    with pytest.raises(DistributedError):
        connect(RayOptions(address="127.0.0.1:6379"))
    assert len(failures) == 1
    failures[:] = [ConnectionRefusedError("nothing there"), server_failed]  # another failure: no second try
    with pytest.raises(DistributedError, match="nothing there"):
        connect(RayOptions(address="ray://127.0.0.1:10001"))
    assert len(failures) == 1


def test_without_an_address_a_local_ray_is_started_even_after_a_cluster_that_died(tiny_pipeline_dir, tmp_path):
    """No ``--address``: a Ray of its own for the run, stopped afterwards. Ray itself would join the cluster
    that ``ray_current_cluster`` names (left behind by a ``ray start --head`` killed without ``ray stop``)."""
    import tempfile

    import psutil

    files = _clips(tmp_path / "in", 6)
    ray_tmp = Path(tempfile.mkdtemp(prefix="si-rt-"))  # short: Ray's socket paths live under it

    def ray_processes() -> list:
        """The processes of a Ray started under ``ray_tmp``."""
        return [proc for proc in psutil.process_iter(["cmdline"]) if str(ray_tmp) in " ".join(proc.info["cmdline"] or [])]

    try:
        (ray_tmp / "ray").mkdir()
        (dead,) = free_ports(1)
        (ray_tmp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{dead}")
        env = _driver_env(RAY_TMPDIR=str(ray_tmp))
        env.pop("RAY_AUTH_TOKEN_PATH", None)
        cmd = [sys.executable, "-m", "speech_intent", "predict", str(tmp_path / "in"), "--engine", "ray",
               "--pipeline", str(tiny_pipeline_dir), "--device", "cpu", "--workers", "1", "-q",
               "-o", str(tmp_path / "out.jsonl")]
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        assert run.returncode == 0, run.stderr[-3000:]
        rows = _rows(tmp_path / "out.jsonl")
        assert sorted(r["path"] for r in rows) == sorted(files) and not any(r["error"] for r in rows)
        assert "done: 6, skipped: 0, failed: 0" in run.stderr
        left = [proc.pid for proc in ray_processes()]
        assert not left, f"Ray processes of the run still alive: {left}"
    finally:
        for proc in ray_processes():  # never leave a Ray behind, even when the test fails
            proc.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
