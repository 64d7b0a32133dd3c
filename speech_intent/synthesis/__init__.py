"""Synthesised and noisy audio: text-to-speech voices and noise mixing.

- :mod:`.tts`: text-to-speech (:class:`EspeakSynthesizer`, :class:`HibariSynthesizer`).
- :mod:`.speaker`: speech out for the assistant's responses (:class:`ResponseSynthesizer`: hibari-tts, espeak-ng
  fallback; sentence by sentence).
- :mod:`.noise`: mixing at a target SNR (used by training and by evaluation) and training noise
  (babble + pink/brown noise, never the evaluation noise).

Speech-in-the-loop training data (synthesised sentences transcribed by the pipeline's ASR) is
:mod:`speech_intent.speech_in_the_loop`.
"""
from .noise import babble, colored_noise, max_frame_energy, mix_at_snr, peak_snr_db, training_noise
from .speaker import ResponseSynthesizer, SpeakerOptions, SpeechChunk
from .tts import EspeakSynthesizer, EspeakVoice, HibariSynthesizer, Synthesizer

__all__ = [
    "EspeakSynthesizer", "EspeakVoice", "HibariSynthesizer", "ResponseSynthesizer", "SpeakerOptions", "SpeechChunk",
    "Synthesizer", "babble", "colored_noise",
    "training_noise", "mix_at_snr", "max_frame_energy", "peak_snr_db",
]
