"""Speech in the loop: synthesise labelled sentences, add noise, transcribe them with the pipeline's ASR.

- :mod:`.tts`: text-to-speech (:class:`EspeakSynthesizer`, :class:`HibariSynthesizer`).
- :mod:`.noise`: mixing at a target SNR (used by training and by evaluation) and training noise
  (babble + pink/brown noise, never the evaluation noise).
- :mod:`.transcribe`: ASR transcripts of synthesised speech with the slot labels projected onto them.
"""
from .noise import babble, colored_noise, max_frame_energy, mix_at_snr, peak_snr_db, training_noise
from .transcribe import DEFAULT_SNRS, asr_transcribed_examples, project_example, project_examples, speak_and_transcribe
from .tts import EspeakSynthesizer, EspeakVoice, HibariSynthesizer, Synthesizer

__all__ = [
    "EspeakSynthesizer", "EspeakVoice", "HibariSynthesizer", "Synthesizer", "babble", "colored_noise",
    "training_noise", "mix_at_snr", "max_frame_energy", "peak_snr_db", "DEFAULT_SNRS", "speak_and_transcribe",
    "project_example", "project_examples", "asr_transcribed_examples",
]
