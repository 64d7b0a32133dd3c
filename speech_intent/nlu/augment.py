"""Speech-in-the-loop training data: labelled sentences -> TTS -> noise -> the pipeline's ASR -> labels.

An intent model trained on clean text only has never seen what the ASR makes of speech
("cap a chino" for "cappuccino", dropped words). :func:`asr_transcribed_examples`
synthesises each training sentence (:class:`EspeakSynthesizer`, or :class:`HibariSynthesizer`
when ``hibari-tts`` is installed), optionally mixes in *training* noise at a random SNR
(:func:`~speech_intent.nlu.train_noise.training_noise`: babble + pink/brown noise; never the
evaluation noise), transcribes everything with one batched ASR call and projects the slot
labels onto the transcripts (:func:`project_example`). Train on clean text *plus* these.

Projection rules (word alignment of the normalised clean text against the normalised
transcript, from ``jiwer``):

- substituted words of a slot stay in the slot; deleted ones shrink it;
- inserted words strictly inside a slot join it; inserted words at a slot's edge join it only
  when the slot's word next to them was itself misrecognised (a word the ASR split in two:
  "cappuccino" -> "cap a chino"), else they stay outside (a filler after a correct slot);
- when a slot loses *all* its words the whole transcript is dropped (``None``): it no longer
  says what its labels say (the command is incomplete), and keeping it with the slot removed
  would teach the model that such a transcript is a complete command. The intent is kept.
- :func:`asr_transcribed_examples` also drops transcripts with a word error rate above ``max_wer``
  (default 0.5): hallucinated loops and babble taken for speech, whose projected labels are guesses
  (on the coffee benchmark they taught the model that "of" can be a drink).
"""
from __future__ import annotations

import io
import logging
import math
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Protocol, Sequence, Set, Tuple, runtime_checkable

import numpy as np

from ..asr.base import ASRStage
from ..audio import SAMPLE_RATE, resample
from ..data.examples import Example, SlotSpan
from ..errors import SynthesizerUnavailable
from ..evaluate.noise import mix_at_snr
from ..normalize import TextNormalizer
from ..slots import normalize_example, word_bounds

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_SNRS", "EspeakSynthesizer", "EspeakVoice", "HibariSynthesizer", "Synthesizer",
           "SynthesizerUnavailable", "asr_transcribed_examples", "project_example", "project_examples",
           "speak_and_transcribe"]

#: Training SNRs in dB (peak-frame-energy SNR of :func:`mix_at_snr`); ``inf`` = no noise. Starts at
#: 5 dB: in a spot check at 0 dB babble, tiny.en often heard unrelated words in synthetic speech.
DEFAULT_SNRS: Tuple[float, ...] = (5.0, 10.0, 15.0, 20.0, 30.0, math.inf)


def project_example(example: Example, hypothesis: str, normalizer: Callable[[str], str]) -> Optional[Example]:
    """Project ``example``'s slot spans onto the ASR transcript ``hypothesis`` (see the module rules).

    Both texts are normalised with ``normalizer`` (the classifier's :class:`TextNormalizer`); the
    result's text is the normalised transcript, its intent ``example.intent``. Returns ``None``
    when the transcript is empty or a slot loses all its words.
    """
    import jiwer

    clean = normalize_example(example, normalizer)
    hyp_text = " ".join(normalizer(hypothesis or "").split())
    if not clean.text or not hyp_text:
        return None
    if not clean.slots:
        return Example(hyp_text, example.intent)
    ref_bounds, hyp_bounds = word_bounds(clean.text), word_bounds(hyp_text)
    n_ref = len(ref_bounds)
    owner: List[Optional[int]] = [None] * n_ref  # slot index owning each clean word
    for k, (start, end) in enumerate(ref_bounds):
        for s, slot in enumerate(clean.slots):
            if start < slot.end and slot.start < end:
                owner[k] = s
    aligned: List[Optional[int]] = [None] * n_ref  # hypothesis word of each clean word
    wrong = [False] * n_ref  # substituted or deleted
    insertions: List[Tuple[int, range]] = []
    for chunk in jiwer.process_words(clean.text, hyp_text).alignments[0]:
        if chunk.type == "insert":
            insertions.append((chunk.ref_start_idx, range(chunk.hyp_start_idx, chunk.hyp_end_idx)))
            continue
        for k in range(chunk.ref_start_idx, chunk.ref_end_idx):
            wrong[k] = chunk.type != "equal"
            j = chunk.hyp_start_idx + k - chunk.ref_start_idx
            aligned[k] = j if chunk.type != "delete" and j < chunk.hyp_end_idx else None
    words: List[Set[int]] = [set() for _ in clean.slots]
    for k in range(n_ref):
        if owner[k] is not None and aligned[k] is not None:
            words[owner[k]].add(aligned[k])  # type: ignore[index]
    for pos, inserted in insertions:  # inserted before clean word ``pos``
        left = owner[pos - 1] if pos > 0 else None
        right = owner[pos] if pos < n_ref else None
        if left is not None and (left == right or wrong[pos - 1]):
            words[left].update(inserted)
        elif right is not None and wrong[pos]:
            words[right].update(inserted)
    spans = []
    for slot, found in zip(clean.slots, words):
        if not found:
            logger.debug("slot %s=%r lost all its words in %r; transcript dropped", slot.name, slot.value, hyp_text)
            return None
        start, end = hyp_bounds[min(found)][0], hyp_bounds[max(found)][1]
        spans.append(SlotSpan(slot.name, start, end, hyp_text[start:end]))
    return Example(hyp_text, example.intent, tuple(spans))


@runtime_checkable
class Synthesizer(Protocol):
    """Text-to-speech: mono float32 audio at ``sampling_rate`` in one of ``num_voices`` voices."""

    sampling_rate: int
    num_voices: int

    def synthesize(self, text: str, *, voice: int = 0) -> np.ndarray:
        """Speak ``text`` with voice number ``voice`` (taken modulo ``num_voices``)."""
        ...


def _resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Mono float32 at ``target`` Hz (:func:`speech_intent.audio.resample`, soxr)."""
    audio = np.asarray(audio, dtype=np.float32)
    return resample(audio.mean(axis=1, dtype=np.float32) if audio.ndim > 1 else audio, rate, target)


def _finish(audio: np.ndarray, rate: int, target: int, peak: float, pad_s: float) -> np.ndarray:
    """Resampled to ``target``, trimmed of edge silence, peak-normalised and padded with silence."""
    audio = _resample(audio, rate, target)
    top = float(np.max(np.abs(audio))) if audio.size else 0.0
    if top == 0.0:
        return audio
    loud, margin, pad = np.flatnonzero(np.abs(audio) > top * 10 ** (-45 / 20)), int(0.05 * target), int(pad_s * target)
    audio = audio[max(0, loud[0] - margin) : loud[-1] + 1 + margin] * (peak / top)
    return np.pad(audio, (pad, pad)).astype(np.float32)


@dataclass(frozen=True)
class EspeakVoice:
    """An espeak-ng voice (``-v``), speaking rate in words per minute (``-s``), word gap in 10 ms (``-g``)."""

    name: str
    wpm: int = 145
    gap: int = 2


#: English voices and rates that tiny Whisper models still understand (some slowed down a little).
ESPEAK_VOICES: Tuple[EspeakVoice, ...] = (
    EspeakVoice("en-us", 140, 3), EspeakVoice("en-us+f3", 130, 3), EspeakVoice("en-gb", 145, 3),
    EspeakVoice("en-gb-x-rp", 145, 3), EspeakVoice("en+m1", 145, 3), EspeakVoice("en+m3", 130, 3),
    EspeakVoice("en-us", 175, 0), EspeakVoice("en+f2", 160, 1), EspeakVoice("en-gb-scotland", 150, 2),
    EspeakVoice("en-us-nyc", 150, 2), EspeakVoice("en-029", 140, 3), EspeakVoice("en+f4", 150, 2),
)


class EspeakSynthesizer:
    """espeak-ng (the system program, ``espeak-ng --stdout``): deterministic, fast, robotic; needs it on ``PATH``."""

    def __init__(self, voices: Sequence[EspeakVoice] = ESPEAK_VOICES, *, sampling_rate: int = SAMPLE_RATE,
                 executable: str = "espeak-ng", peak: float = 0.7, pad_s: float = 0.1) -> None:
        found = shutil.which(executable)
        if found is None:
            raise SynthesizerUnavailable(f"{executable!r} is not on PATH; install espeak-ng (apt-get install espeak-ng)")
        if not voices:
            raise ValueError("at least one voice is needed")
        self.executable, self.voices = found, tuple(voices)
        self.sampling_rate, self.num_voices, self.peak, self.pad_s = sampling_rate, len(self.voices), peak, pad_s

    def synthesize(self, text: str, *, voice: int = 0) -> np.ndarray:
        """Speak ``text``; raises :class:`SynthesizerUnavailable` if espeak-ng fails."""
        import soundfile as sf

        v = self.voices[voice % self.num_voices]
        cmd = [self.executable, "-v", v.name, "-s", str(v.wpm), "-g", str(v.gap), "--stdout", text]
        run = subprocess.run(cmd, capture_output=True, check=False)
        if run.returncode != 0 or not run.stdout:
            raise SynthesizerUnavailable(f"espeak-ng failed for voice {v.name!r}: {run.stderr.decode(errors='replace')}")
        audio, rate = sf.read(io.BytesIO(run.stdout), dtype="float32")
        return _finish(audio, rate, self.sampling_rate, self.peak, self.pad_s)


class HibariSynthesizer:
    """hibari-tts (``pip install hibari-tts``; optional, not a dependency): a neural voice at several speeds."""

    def __init__(self, voices: Sequence[str] = ("heart",), speeds: Sequence[float] = (0.9, 1.0, 1.1), *,
                 sampling_rate: int = SAMPLE_RATE, seed: int = 0, peak: float = 0.7, pad_s: float = 0.1) -> None:
        try:
            from hibari import Hibari
        except ImportError as error:
            raise SynthesizerUnavailable("hibari-tts is not installed (`pip install hibari-tts`)") from error
        self._engines = {name: Hibari(voice=name) for name in voices}
        self._variants = [(name, speed) for name in voices for speed in speeds]
        self.sampling_rate, self.num_voices = sampling_rate, len(self._variants)
        self.seed, self.peak, self.pad_s = seed, peak, pad_s

    def synthesize(self, text: str, *, voice: int = 0) -> np.ndarray:
        """Speak ``text`` (hibari's noise is seeded with ``seed``: deterministic)."""
        name, speed = self._variants[voice % self.num_voices]
        engine = self._engines[name]
        audio = engine(text, speed=speed, seed=self.seed)
        return _finish(np.asarray(audio), int(engine.sample_rate), self.sampling_rate, self.peak, self.pad_s)


def speak_and_transcribe(texts: Sequence[str], synthesizer: Synthesizer, asr: ASRStage, *,
                         noise: Optional[np.ndarray] = None, snrs: Sequence[float] = DEFAULT_SNRS, seed: int = 0,
                         batch_size: int = 8) -> List[str]:
    """The ASR's transcript of each text spoken by a random voice, with noise at a random SNR.

    Arguments as in :func:`asr_transcribed_examples`; one batched ``asr.transcribe`` call.
    """
    if not snrs:
        raise ValueError("snrs must not be empty")
    rng = np.random.default_rng(seed)
    voices = rng.integers(0, synthesizer.num_voices, size=len(texts))
    levels = rng.choice(np.asarray(snrs, dtype=np.float64), size=len(texts))
    rate = int(getattr(asr, "sampling_rate", SAMPLE_RATE))
    started = time.perf_counter()
    audio: List[np.ndarray] = []
    for index, (text, voice, snr) in enumerate(zip(texts, voices, levels)):
        clip = _resample(synthesizer.synthesize(text, voice=int(voice)), synthesizer.sampling_rate, rate)
        if noise is not None and math.isfinite(snr):
            clip = mix_at_snr(clip, noise, float(snr), seed=seed, index=index)
        audio.append(clip)
    seconds = sum(len(a) for a in audio) / rate
    logger.info("synthesised %d clips (%.0f s of audio) in %.1f s", len(audio), seconds, time.perf_counter() - started)
    started = time.perf_counter()
    transcripts = asr.transcribe(audio, batch_size=batch_size)
    logger.info("transcribed %d clips in %.1f s", len(audio), time.perf_counter() - started)
    return [t.text for t in transcripts]


def project_examples(examples: Sequence[Example], hypotheses: Sequence[str],
                     normalizer: Optional[Callable[[str], str]] = None, *,
                     max_wer: Optional[float] = None) -> List[Example]:
    """:func:`project_example` over pairs, without the transcripts that lost a slot or whose word error
    rate against the normalised clean text is above ``max_wer`` (too garbled to label)."""
    import jiwer

    normalizer = normalizer or TextNormalizer()
    kept: List[Example] = []
    lost = garbled = changed = 0
    for example, hypothesis in zip(examples, hypotheses):
        projected = project_example(example, hypothesis, normalizer)
        reference = " ".join(normalizer(example.text).split())
        if projected is None:
            lost += 1
        elif max_wer is not None and jiwer.wer(reference, projected.text) > max_wer:
            garbled += 1
        else:
            kept.append(projected)
            changed += projected.text != reference
    logger.info("speech-in-the-loop: %d transcripts kept (%d differ from the clean text); dropped: %d lost a slot, "
                "%d over the WER limit", len(kept), changed, lost, garbled)
    return kept


def asr_transcribed_examples(
    examples: Sequence[Example],
    synthesizer: Synthesizer,
    asr: ASRStage,
    *,
    noise: Optional[np.ndarray] = None,
    snrs: Sequence[float] = DEFAULT_SNRS,
    seed: int = 0,
    batch_size: int = 8,
    normalizer: Optional[Callable[[str], str]] = None,
    max_wer: Optional[float] = 0.5,
) -> List[Example]:
    """Speak, (optionally) add noise, transcribe and relabel ``examples`` (see the module docstring).
    Returns one projected Example per transcript kept (every slot kept, WER within ``max_wer``), in order.

    Args:
        examples: labelled clean sentences (e.g. from :func:`~speech_intent.data.expand_grammar`).
        synthesizer: TTS engine; each sentence gets a random voice.
        asr: the pipeline's ASR stage, set up as the pipeline uses it (e.g. with its domain prompt);
            called once, batched.
        noise: training noise at the ASR's sampling rate (not the evaluation noise!); ``None``: clean.
        snrs: each clip gets a random SNR from these (``inf``: no noise).
        seed: voices, SNRs and noise segments; the result is deterministic for a given seed.
        batch_size: ASR batch size.
        normalizer: the classifier's text normaliser (default ``TextNormalizer()``).
        max_wer: drop transcripts with a higher word error rate (hallucinations, babble taken for
            speech): their projected labels are guesses (``None``: keep all).
    """
    hypotheses = speak_and_transcribe([ex.text for ex in examples], synthesizer, asr, noise=noise, snrs=snrs,
                                      seed=seed, batch_size=batch_size)
    return project_examples(examples, hypotheses, normalizer, max_wer=max_wer)
