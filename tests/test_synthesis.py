"""Speech-in-the-loop training data: label projection onto ASR transcripts, TTS, training noise, and
mixing noise into speech at a peak-frame-energy SNR."""
from __future__ import annotations

import shutil
from typing import List, Optional, Sequence

import numpy as np
import pytest

from speech_intent.data.examples import Example, spans_from_values
from speech_intent.errors import SynthesizerUnavailable
from speech_intent.normalize import TextNormalizer
from speech_intent.results import Transcript
from speech_intent.speech_in_the_loop import asr_transcribed_examples, project_example, project_examples
from speech_intent.synthesis import EspeakSynthesizer
from speech_intent.synthesis.noise import (
    colored_noise,
    max_frame_energy,
    mix_at_snr,
    peak_snr_db,
    scale_noise,
    training_noise,
)

NORM = TextNormalizer()
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not on PATH (apt-get install espeak-ng)")


def order(text: str, **slots: str) -> Example:
    return Example(text, "orderDrink", spans_from_values(text, slots.items()))


def slots_of(example: Optional[Example]) -> dict:
    assert example is not None
    for span in example.slots:
        assert example.text[span.start : span.end] == span.value
    return {span.name: span.value for span in example.slots}


# ---------------------------------------------------------------- projection

def test_substitution_inside_a_slot_stays_in_the_slot():
    clean = order("a light roast latte please", roast="light roast", coffeeDrink="latte")
    out = project_example(clean, "A light rose latte, please.", NORM)
    assert out.text == "a light rose latte please" and out.intent == "orderDrink"
    assert slots_of(out) == {"roast": "light rose", "coffeeDrink": "latte"}


def test_insertion_at_the_edge_of_a_misrecognised_slot_joins_it():
    clean = order("I want a large cappuccino please", size="large", coffeeDrink="cappuccino")
    out = project_example(clean, "I want a large cap a chino, please.", NORM)
    assert slots_of(out) == {"size": "large", "coffeeDrink": "cap a chino"}


def test_insertion_next_to_a_correct_slot_stays_outside():
    clean = order("a large latte please", size="large", coffeeDrink="latte")
    out = project_example(clean, "a large latte uh please", NORM)
    assert slots_of(out) == {"size": "large", "coffeeDrink": "latte"}
    inside = project_example(order("some skim milk", milkAmount="some skim milk"), "some uh skim milk", NORM)
    assert slots_of(inside) == {"milkAmount": "some uh skim milk"}


def test_deletion_shrinks_the_slot():
    clean = order("a latte with a little bit of sugar", coffeeDrink="latte", sugarAmount="a little bit of sugar")
    assert slots_of(project_example(clean, "a latte with a bit of sugar", NORM))["sugarAmount"] == "a bit of sugar"
    edge = order("a double shot latte", numberOfShots="double shot", coffeeDrink="latte")
    assert slots_of(project_example(edge, "a shot latte", NORM)) == {"numberOfShots": "shot", "coffeeDrink": "latte"}


def test_a_slot_deleted_entirely_drops_the_transcript():
    clean = order("a large latte with sugar", size="large", coffeeDrink="latte", sugarAmount="sugar")
    assert project_example(clean, "a large latte with", NORM) is None
    assert project_example(clean, "", NORM) is None


def test_hypothesis_is_normalised_like_the_classifier_input():
    clean = order("I'd like a 12 ounce latte", size="12 ounce", coffeeDrink="latte")
    out = project_example(clean, "I'd like a 12-ounce Latte.", NORM)
    assert out.text == "i'd like a twelve ounce latte"
    assert slots_of(out) == {"size": "twelve ounce", "coffeeDrink": "latte"}
    assert project_example(Example("cancel that", "cancel"), "Cancel that!", NORM) == Example("cancel that", "cancel")


# ---------------------------------------------------------------- the loop, with stand-ins

class ToneSynth:
    """A stand-in TTS: a tone whose pitch depends on the voice and length on the text."""

    sampling_rate = 8000
    num_voices = 3

    def synthesize(self, text: str, *, voice: int = 0) -> np.ndarray:
        t = np.arange(len(text) * 80) / self.sampling_rate
        return (0.5 * np.sin(2 * np.pi * (200 + 100 * voice) * t)).astype(np.float32)


class RecordingASR:
    """A stand-in ASR that records its calls and 'recognises' by a lookup on the clip length."""

    sampling_rate = 16000

    def __init__(self, answers: dict) -> None:
        self.answers, self.calls = answers, []

    def transcribe(self, audio: Sequence[np.ndarray], *, batch_size: Optional[int] = None) -> List[Transcript]:
        self.calls.append(([np.array(a) for a in audio], batch_size))
        return [Transcript(self.answers[len(a) // 160], 1.0) for a in audio]


def test_loop_batches_once_resamples_mixes_noise_and_is_deterministic():
    clean = [order("a large latte", size="large", coffeeDrink="latte"),
             order("a small mocha with sugar", size="small", coffeeDrink="mocha", sugarAmount="sugar")]
    answers = {len(ex.text): hyp for ex, hyp in zip(clean, ["a large lot a", "a small mocha with"])}
    noise = colored_noise(16000, 1.0, np.random.default_rng(0))
    runs = []
    for _ in range(2):
        asr = RecordingASR(answers)
        out = asr_transcribed_examples(clean, ToneSynth(), asr, noise=noise, snrs=(10.0,), seed=3, batch_size=4,
                                       max_wer=None)
        runs.append((out, asr.calls))
    (out, calls), (out2, calls2) = runs
    assert len(calls) == 1 and calls[0][1] == 4 and len(calls[0][0]) == 2  # one batched call
    assert all(len(a) == len(ex.text) * 160 and a.dtype == np.float32 for a, ex in zip(calls[0][0], clean))
    clip = calls[0][0][0]
    assert np.abs(clip).max() == pytest.approx(0.5, abs=1e-6)  # mix_at_snr's peak level: noise was mixed in
    assert all(np.array_equal(a, b) for a, b in zip(calls[0][0], calls2[0][0])) and out == out2
    assert len(out) == 1 and slots_of(out[0]) == {"size": "large", "coffeeDrink": "lot a"}  # mocha lost its sugar


def test_transcripts_over_the_wer_limit_are_dropped():
    clean = [order("a large latte please", size="large", coffeeDrink="latte")] * 2
    hyps = ["a large lot a please", "a large lot a leaves me"]  # WER 0.5 and 1.0
    assert [ex.text for ex in project_examples(clean, hyps, NORM, max_wer=0.5)] == ["a large lot a please"]
    assert len(project_examples(clean, hyps, NORM)) == 2


def test_training_noise_is_deterministic_and_colored():
    a, b = training_noise(seconds=2.0, seed=1), training_noise(seconds=2.0, seed=1)
    assert a.dtype == np.float32 and len(a) == 32000 and np.array_equal(a, b)
    assert np.abs(a).max() == pytest.approx(0.5) and not np.array_equal(a, training_noise(seconds=2.0, seed=2))
    brown = colored_noise(1 << 15, 2.0, np.random.default_rng(0))
    power = np.abs(np.fft.rfft(brown)) ** 2
    assert power[10:200].mean() > 100 * power[-2000:].mean()  # energy falls with frequency


def test_missing_espeak_is_a_clear_error():
    with pytest.raises(SynthesizerUnavailable, match="not on PATH"):
        EspeakSynthesizer(executable="no-such-espeak-ng-binary")


# ---------------------------------------------------------------- real TTS + tiny.en

@needs_espeak
def test_espeak_babble_noise_and_tiny_whisper_round_trip():
    from speech_intent import FasterWhisperASR

    synth = EspeakSynthesizer()
    speech = synth.synthesize("can I get a large latte", voice=0)
    assert speech.dtype == np.float32 and 1.0 < len(speech) / 16000 < 4.0
    assert np.abs(speech).max() == pytest.approx(0.7, abs=1e-3)
    noise = training_noise(synth, seconds=10.0, talkers=3, seed=0)
    assert np.array_equal(noise, training_noise(synth, seconds=10.0, talkers=3, seed=0))
    assert np.isfinite(peak_snr_db(speech, noise))

    asr = FasterWhisperASR.from_pretrained(None, device="cpu", cpu_threads=1)
    asr.configure(prompt="small, medium, large; latte, mocha, cappuccino.")
    clean = [order("can I get a large latte", size="large", coffeeDrink="latte"),
             order("give me a small mocha", size="small", coffeeDrink="mocha")]
    out = asr_transcribed_examples(clean, synth, asr, noise=noise, snrs=(20.0,), seed=0, batch_size=2)
    assert [ex.intent for ex in out] == ["orderDrink"] * len(out) and len(out) >= 1
    values = [slots_of(ex) for ex in out]
    assert {"large", "latte"} <= {v for slots in values for v in slots.values()} or \
        {"small", "mocha"} <= {v for slots in values for v in slots.values()}


def test_hibari_synthesizer_when_installed():
    pytest.importorskip("hibari", reason="hibari-tts is not installed (optional: pip install hibari-tts)")
    from speech_intent.synthesis.tts import HibariSynthesizer, Synthesizer

    synth = HibariSynthesizer(speeds=(0.9, 1.1))
    assert isinstance(synth, Synthesizer) and synth.num_voices == 2
    slow, fast = synth.synthesize("a large latte", voice=0), synth.synthesize("a large latte", voice=1)
    assert slow.dtype == np.float32 and len(slow) > len(fast) > 0.5 * 16000
    assert np.array_equal(fast, synth.synthesize("a large latte", voice=1))


def test_fine_tune_keeps_the_clean_canonical_values(tiny_bert_dir, tmp_path):
    """Transcripts add misrecognised values; ``closed_values`` keeps the canonicaliser on the clean ones."""
    from speech_intent import TrainingOptions, fine_tune

    drinks = ["latte", "mocha", "cappuccino"]
    clean = [order(f"{verb} a {d}", coffeeDrink=d) for verb in ("get me", "i want", "make me", "brew") for d in drinks]
    spoken = [project_example(clean[0], "get me a lot a", NORM), project_example(clean[2], "get me a cap a chino", NORM)]
    config = TrainingOptions(epochs=1, learning_rate=5e-3, batch_size=16, seed=0)
    clf = fine_tune(clean + spoken, tmp_path / "m", base=tiny_bert_dir, options=config, device="cpu", progress=False,
                    closed_values={"coffeeDrink": ["Latte", "mocha", "cappuccino"]})
    assert clf.canonicalizer.values == {"coffeeDrink": ["cappuccino", "latte", "mocha"]}
    from speech_intent.nlu.canonical import infer_closed_values

    assert "coffeeDrink" not in infer_closed_values(clean + spoken, NORM)  # inferred: rare variants make it open


def test_babble_refuses_silent_synthesizers_and_empty_lengths():
    """A synthesizer that returns no audio used to loop forever."""
    from speech_intent.synthesis.noise import babble

    class Silent:
        num_voices, sampling_rate = 2, 16000

        def synthesize(self, text: str, voice: int = 0) -> np.ndarray:
            return np.zeros(0, np.float32)

    class Tone(Silent):
        def synthesize(self, text: str, voice: int = 0) -> np.ndarray:
            return np.sin(np.arange(800, dtype=np.float32) * (0.05 + 0.01 * voice))

    with pytest.raises(ValueError, match="no audio"):
        babble(Silent(), 16000)
    with pytest.raises(ValueError, match="positive"):
        babble(Tone(), 0)
    mix = babble(Tone(), 4000, talkers=3)
    assert mix.shape == (4000,) and np.isclose(np.sqrt(np.mean(mix.astype(np.float64) ** 2)), 1.0, atol=1e-3)


# ---------------------------------------------------------------- noise mixing at an SNR
def test_max_frame_energy_uses_non_overlapping_2048_frames():
    x = np.zeros(2048 * 3 + 100, dtype=np.float32)
    x[2048:4096] = 0.5           # frame 1: 2048 * 0.25 = 512
    x[-100:] = 10.0              # trailing partial frame is ignored
    assert max_frame_energy(x) == pytest.approx(512.0)
    assert max_frame_energy(np.full(100, 2.0)) == pytest.approx(400.0)  # shorter than a frame


@pytest.mark.parametrize("snr", [-3.0, 6.0, 15.0, 24.0])
def test_noise_is_scaled_to_the_peak_frame_energy_snr(snr):
    rng = np.random.default_rng(1)
    speech = (rng.standard_normal(40000) * np.hanning(40000)).astype(np.float32) * 0.2
    noise = rng.standard_normal(100000).astype(np.float32) * 0.05
    scaled = scale_noise(speech, noise[:40000], snr)
    assert peak_snr_db(speech, scaled) == pytest.approx(snr, abs=1e-4)
    raw = mix_at_snr(speech, noise, snr, seed=3, index=7, peak=None)
    assert peak_snr_db(speech, raw - speech) == pytest.approx(snr, abs=1e-3)
    mixed = mix_at_snr(speech, noise, snr, seed=3, index=7)
    assert mixed.dtype == np.float32 and mixed.shape == speech.shape
    assert np.max(np.abs(mixed)) == pytest.approx(0.5, abs=1e-6)
    np.testing.assert_allclose(mixed, raw * (0.5 / np.max(np.abs(raw))), atol=1e-6)


def test_mixing_is_deterministic_and_loops_short_noise():
    rng = np.random.default_rng(2)
    speech = rng.standard_normal(20000).astype(np.float32) * 0.1
    noise = rng.standard_normal(50000).astype(np.float32)
    a = mix_at_snr(speech, noise, 9.0, seed=0, index=1)
    np.testing.assert_array_equal(a, mix_at_snr(speech, noise, 9.0, seed=0, index=1))
    assert not np.allclose(a, mix_at_snr(speech, noise, 9.0, seed=0, index=2))
    assert not np.allclose(a, mix_at_snr(speech, noise, 9.0, seed=1, index=1))
    short = rng.standard_normal(3000).astype(np.float32)
    looped = mix_at_snr(speech, short, 12.0, seed=0, index=0, peak=None)
    assert looped.shape == speech.shape
    assert peak_snr_db(speech, looped - speech) == pytest.approx(12.0, abs=1e-3)
