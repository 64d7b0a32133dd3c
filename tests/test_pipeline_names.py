"""Result names given once: ``names=`` of the pipeline's calls (each result's ``path`` and the name in its
error), :meth:`SpeechIntentPipeline.recognise` on audio decoded already, and the Ray worker naming its rows
by the path as given without rewriting them."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from speech_intent import SpeechIntentPipeline
from speech_intent.errors import ConfigError

from .conftest import _signal

EXPLODES = 12345  # samples: an input of this length makes the ASR raise


@pytest.fixture(scope="module")
def pipe(tiny_pipeline_dir) -> SpeechIntentPipeline:
    pipe = SpeechIntentPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
    transcribe = pipe.asr.transcribe

    def fragile(arrays, **kwargs):
        if any(len(a) == EXPLODES for a in arrays):
            raise RuntimeError("model exploded")
        return transcribe(arrays, **kwargs)

    pipe.asr.transcribe = fragile  # type: ignore[method-assign]
    return pipe


def test_given_names_are_the_results_paths_and_their_errors_name_them(pipe, tmp_path):
    inputs = [_signal(16000, 0.5), b"not audio", _signal(16000, EXPLODES / 16000), str(tmp_path / "missing.wav"),
              _signal(16000, 0.7)]
    names = ["first", "second", "third", "fourth", "fifth"]
    results = pipe(inputs, names=names, batch_size=5)
    assert [r.path for r in results] == names
    assert [r.error is None for r in results] == [True, False, False, False, True]
    assert results[1].error.startswith("second: cannot decode audio")
    assert results[2].error == "third: processing failed (RuntimeError: model exploded)"
    assert results[3].error == "fourth: file not found"
    # any iterable in step with the inputs, e.g. a generator beside a generator
    streamed = list(pipe.stream(iter(inputs), names=(n for n in names), batch_size=2, workers=2))
    assert [(r.path, r.error) for r in streamed] == [(r.path, r.error) for r in results]
    assert [r.path for r in pipe(inputs[:2])] == ["<array #0>", "<bytes #1>"]  # none given: as before


def test_names_that_do_not_match_the_inputs_are_a_config_error(pipe):
    inputs = [_signal(16000, 0.5), _signal(16000, 0.6)]
    with pytest.raises(ConfigError, match="1 names for 2 inputs"):
        pipe(inputs, names=["one"])
    with pytest.raises(ConfigError, match="fewer names than inputs"):
        list(pipe.stream(iter(inputs), names=iter(["one"])))
    with pytest.raises(ConfigError, match="more names than inputs"):
        list(pipe.stream(iter(inputs), names=iter(["one", "two", "three"])))
    with pytest.raises(ConfigError, match="not one string"):
        pipe(inputs[0], names="one")


def test_recognise_on_decoded_arrays_gives_what_a_call_on_the_same_arrays_gives(pipe):
    arrays = [_signal(16000, 0.5, seed=1), np.zeros(8000, np.float32),  # speech-like noise, digital silence
              _signal(16000, 0.01), np.full(8000, np.nan, np.float32),  # too short, not finite
              _signal(16000, EXPLODES / 16000), _signal(16000, 31.0), _signal(16000, 1.2, seed=2)]  # raises, too long
    names = [f"clip {i}" for i in range(len(arrays))]
    called = pipe(arrays, names=names, batch_size=3)
    recognised = pipe.recognise(arrays, names, batch_size=3)
    # the same batches of the same arrays in one process: the same rows
    assert [r.to_dict() for r in recognised] == [r.to_dict() for r in called]
    assert [r.error is None for r in recognised] == [True, True, False, False, False, False, True]
    assert recognised[1].transcript == "" and recognised[1].intent is None  # silence: no ASR, no intent
    assert recognised[4].error == "clip 4: processing failed (RuntimeError: model exploded)"
    assert [r.path for r in pipe.recognise(arrays[:2])] == ["<array #0>", "<array #1>"]
    odd = pipe.recognise([b"RIFF...."], ["bytes"])[0]  # decoded audio only: nothing is read or decoded
    assert odd.error == "bytes: expected a decoded sample array, got bytes"


def test_the_ray_worker_names_rows_by_the_path_as_given(tiny_pipeline_dir, tmp_path, monkeypatch):
    import speech_intent.device
    from speech_intent.batch.ray_runner import PipelineWorker

    monkeypatch.setattr(speech_intent.device, "available_cpus", lambda: 1)
    sf.write(tmp_path / "a.wav", _signal(16000, 0.6), 16000)
    (tmp_path / "b.wav").write_bytes(b"not audio")
    monkeypatch.chdir(tmp_path)
    worker = PipelineWorker(str(tiny_pipeline_dir), "cpu", batch_size=2, worker_info=False)
    paths = ["a.wav", "b.wav"]
    rows = worker.rows(paths, [str(tmp_path / p) for p in paths])  # read by absolute path, named as given
    assert [row["path"] for row in rows] == paths and rows[0]["error"] is None
    assert rows[1]["error"].startswith("b.wav: cannot decode audio") and str(tmp_path) not in rows[1]["error"]

    def broken(*args, **kwargs):
        raise RuntimeError("lost the device")

    monkeypatch.setattr(worker.pipe, "stream", broken)  # the worker's last guard: every row of the batch fails
    rows = worker.rows(paths, [str(tmp_path / p) for p in paths])
    assert [row["error"] for row in rows] == [f"{p}: processing failed (RuntimeError: lost the device)" for p in paths]
    assert all(row["file_key"] for row in rows)
