"""The voice activity detector (``speech_intent/vad.py``): Silero probabilities independent of how the
signal is cut, the model run without importing faster-whisper, utterances of a long recording, and the
endpointer's handling of a trigger that never becomes speech."""
from __future__ import annotations

import numpy as np

from speech_intent.vad import WINDOW, Endpointer, SileroVAD, VADOptions, split_utterances
from tests.serving import chunks, near, recording, with_silences

TWO = ("001_set_alarm.wav", "007_get_weather.wav")


def test_vad_probabilities_do_not_depend_on_chunking():
    audio = recording("001_set_alarm.wav")
    whole = SileroVAD().probabilities(audio)
    vad = SileroVAD()
    pieces = np.concatenate([vad.probabilities(c) for c in chunks(audio, high=900)])
    assert len(whole) == len(audio) // WINDOW == len(pieces)
    np.testing.assert_allclose(whole, pieces, atol=1e-5)
    assert whole.max() > 0.9 and whole[:3].max() < 0.5  # speech found; the leading samples are quiet


def test_the_vad_runs_without_importing_faster_whisper():
    """Only its ONNX file is needed: a machine without CTranslate2 and PyAV (faster-whisper installed
    without its dependencies) still streams."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from speech_intent.vad import SileroVAD; "
            "p = SileroVAD().probabilities(np.zeros(2048, np.float32)); "
            "print(len(p), sorted(m for m in ('faster_whisper', 'ctranslate2', 'av') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[0] == "4" and run.stdout.strip().endswith("[]"), run.stdout


def test_split_utterances_on_a_long_recording():
    audio, spans = with_silences(TWO + ("014_lights_on.wav",))
    found = split_utterances(audio)
    assert len(found) == 3
    for got, want in zip(found, spans):
        assert near(got, want)


def test_a_trigger_that_never_becomes_speech_is_dropped_after_max_utterance():
    """Probabilities that stay between the silence and speech thresholds after one speech window neither
    confirm an utterance nor end it: the trigger is dropped once it is as old as the longest utterance,
    so the samples kept for it stay bounded, and later speech starts an utterance of its own."""
    options = VADOptions(max_utterance=3.0)
    endpointer = Endpointer(options)
    assert endpointer.update(0.9) is None and endpointer.triggered
    limit = int(options.max_utterance * 16000) // WINDOW
    for _ in range(limit + 1):
        assert endpointer.update(0.4) is None
    assert not endpointer.triggered  # forgotten, not kept for ever
    for _ in range(2 * limit):
        endpointer.update(0.4)
    events = [endpointer.update(0.9) for _ in range(10)]
    assert "start" in events
    began = endpointer.position - 10 * WINDOW
    segment = next(e for e in (endpointer.update(0.0) for _ in range(40)) if e is not None)
    assert segment.reason == "silence" and segment.start >= began - int(options.pad * 16000)
    assert segment.end - segment.start <= options.max_utterance * 16000
