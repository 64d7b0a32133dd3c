"""Speech-in-the-loop training data: labelled sentences -> TTS -> noise -> the pipeline's ASR -> labels.

An intent model trained on clean text only has never seen what the ASR makes of speech
("cap a chino" for "cappuccino", dropped words). :func:`asr_transcribed_examples`
synthesises each training sentence (:class:`~.synthesis.tts.EspeakSynthesizer`, or :class:`~.synthesis.tts.HibariSynthesizer`
when ``hibari-tts`` is installed), optionally mixes in *training* noise at a random SNR
(:func:`~speech_intent.synthesis.noise.training_noise`: babble + pink/brown noise; never the
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

import logging
import math
import time
from typing import Callable, List, Optional, Sequence, Set, Tuple

import numpy as np

from .asr.base import ASRStage
from .audio import SAMPLE_RATE
from .data.examples import Example, SlotSpan
from .errors import ConfigError
from .normalize import TextNormalizer
from .slots import normalize_example, word_bounds
from .synthesis.noise import mix_at_snr
from .synthesis.tts import Synthesizer, as_mono

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_SNRS", "asr_transcribed_examples", "project_example", "project_examples",
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


def speak_and_transcribe(texts: Sequence[str], synthesizer: Synthesizer, asr: ASRStage, *,
                         noise: Optional[np.ndarray] = None, snrs: Sequence[float] = DEFAULT_SNRS, seed: int = 0,
                         batch_size: int = 8) -> List[str]:
    """The ASR's transcript of each text spoken by a random voice, with noise at a random SNR.

    Arguments as in :func:`asr_transcribed_examples`; one batched ``asr.transcribe`` call.
    """
    if not snrs:
        raise ConfigError("snrs must not be empty")
    rng = np.random.default_rng(seed)
    voices = rng.integers(0, synthesizer.num_voices, size=len(texts))
    levels = rng.choice(np.asarray(snrs, dtype=np.float64), size=len(texts))
    rate = int(getattr(asr, "sampling_rate", SAMPLE_RATE))
    started = time.perf_counter()
    audio: List[np.ndarray] = []
    for index, (text, voice, snr) in enumerate(zip(texts, voices, levels)):
        clip = as_mono(synthesizer.synthesize(text, voice=int(voice)), synthesizer.sampling_rate, rate)
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
