"""The embedded default intent model, used by :meth:`SpeechIntentPipeline.default`: offline, after ``pip install``.

ASR: the bundled Whisper tiny.en through faster-whisper (int8 on CPU).
Intent + slots: all-MiniLM-L6-v2 fine-tuned as a joint intent + slot model
(:class:`~speech_intent.nlu.joint.JointIntentSlotModel`) on the demo assistant domain
shipped in ``speech_intent/resources/demo_domain.yaml`` (also at ``assets/demo_domain.yaml``;
its ``[value](slot)`` markup gives the slot labels).
The model is trained on first use (about a minute or two on 2 CPU cores)
and cached under :func:`speech_intent.bundled.cache_dir` (``$SPEECH_INTENT_CACHE``);
the cache key covers the data, the training settings and the library version,
so a change to any of them retrains.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Sequence

from .bundled import cache_dir
from .data import Example, read_rasa
from .device import DeviceLike
from .nlu import IntentClassifier, TrainingOptions, fine_tune
from .normalize import TextNormalizer

logger = logging.getLogger(__name__)

DEMO_DATA = "demo_domain.yaml"
DEMO_TRAINING = TrainingOptions(epochs=10, learning_rate=3e-4, batch_size=16, seed=0)
_FORMAT = 2  # 2: joint intent + slot model


def demo_domain_path() -> Path:
    """Path of the demo assistant domain (Rasa NLU YAML) shipped with the package."""
    return Path(str(resources.files("speech_intent") / "resources" / DEMO_DATA))


def _cache_key(examples: Sequence[Example]) -> str:
    """What the model is trained from: the domain's ``nlu:`` examples (its dialogue blocks do not change the
    model), the training options, the normaliser and the cache format."""
    digest = hashlib.sha256(json.dumps([(e.text, e.intent, [(s.name, s.start, s.end, s.value) for s in e.slots])
                                        for e in examples]).encode())
    digest.update(json.dumps(asdict(DEMO_TRAINING), sort_keys=True).encode())
    digest.update(json.dumps(TextNormalizer().to_dict(), sort_keys=True).encode())
    digest.update(f"format={_FORMAT}".encode())
    return digest.hexdigest()[:16]


def default_intent_model(device: DeviceLike = None, *, progress: bool = True, **options) -> IntentClassifier:
    """Load the cached demo-domain intent + slot model, fine-tuning it first if it is not cached.

    ``options``: keyword arguments of :class:`IntentClassifier` (e.g. ``runtime="onnx-int8"``).
    """
    data_path = demo_domain_path()
    examples = read_rasa(data_path)
    target = cache_dir() / f"demo-intent-{_cache_key(examples)}"
    if (target / "model.safetensors").is_file():
        logger.info("loading cached demo intent model from %s", target)
        return IntentClassifier.from_pretrained(target, device=device, **options)
    logger.warning("fine-tuning the demo intent model on %d utterances (first run only; cached in %s)",
                   len(examples), target)
    scratch = Path(tempfile.mkdtemp(prefix=".training-", dir=target.parent))
    try:
        fine_tune(examples, scratch, options=DEMO_TRAINING, normalizer=TextNormalizer(), device=device,
                  progress=progress)
        try:
            os.replace(scratch, target)  # atomic: a crash never leaves a half-written cache
        except OSError:  # another process finished first
            logger.info("demo intent model already cached by another process")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return IntentClassifier.from_pretrained(target, device=device, **options)
