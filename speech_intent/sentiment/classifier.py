"""The text sentiment / emotion stage: a fine-tuned BERT-style model over the transcript.

:class:`SentimentClassifier` loads a :class:`~speech_intent.sentiment.model.SentimentModel` checkpoint
(safetensors, no remote code) and gives each text a :class:`Sentiment`: a sentiment
:class:`~speech_intent.results.LabelScores` and an emotion one (``None`` where the model has no such head).
All texts of a call are tokenised at once, sorted by token count and cut into batches padded to their
longest text. A best score under ``threshold`` reads ``"uncertain"``; an empty text gets no answer
(``None`` for both). :func:`train_sentiment` trains and saves one.

The default stage (:meth:`SentimentClassifier.default`, offline after ``pip install``): the bundled
all-MiniLM-L6-v2 fine-tuned on ``speech_intent/resources/sentiment_en.csv``, about ninety short English
sentences in a voice assistant's register written for this package (MIT, like the rest of it), each with a
sentiment (positive / negative / neutral) and an emotion (Ekman's anger, disgust, fear, joy, sadness,
surprise, or neutral). No public data set ships with it: GoEmotions (CC BY 4.0) asks for attribution in
whatever is trained on it, and the shared data is not the users'. It is trained on first use (about 25 s on
one CPU thread) and cached under :func:`speech_intent.bundled.cache_dir`, keyed by the data and the training
settings. It tells "thanks, that's perfect" from "this is useless" and a command from a complaint; for
anything finer, train on your own data (``speech-intent train-sentiment``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from ..bundled import cache_dir
from ..device import DeviceLike, DTypeLike, resolve_device, resolve_dtype
from ..errors import ConfigError, ModelLoadError, check_int
from ..quiet import quiet_transformers
from ..results import LabelScores
from ..text_encoder import pad_rows
from ..validation import check_model_path, read_json_object
from .data import SentimentExample, read_table
from .model import HEADS, SentimentModel, is_sentiment_config
from .training import SentimentTrainingOptions, fit_sentiment

logger = logging.getLogger(__name__)

STAGE_CONFIG = "speech_intent.json"
#: Tokenizer outputs passed to the model (those the tokenizer gives).
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
DEFAULT_DATA = "sentiment_en.csv"
DEFAULT_TRAINING = SentimentTrainingOptions(epochs=8, learning_rate=2e-4, batch_size=16, seed=0, threshold=0.5)
_DEFAULT_FORMAT = 1


@dataclass
class Sentiment:
    """The text stage's answer for one text.

    Attributes:
        text: the text that was classified.
        sentiment: positive / negative / neutral (and ambiguous, where the model's labels have it), or
            ``None`` when the text is empty or the model has no sentiment head.
        emotion: the emotion labels of the training data, or ``None`` likewise.
    """

    text: str
    sentiment: Optional[LabelScores] = None
    emotion: Optional[LabelScores] = None

    def to_dict(self) -> Dict[str, Any]:
        return {"text": self.text, "sentiment": self.sentiment.to_dict() if self.sentiment else None,
                "emotion": self.emotion.to_dict() if self.emotion else None}


class SentimentClassifier:
    """Texts -> :class:`Sentiment` (sentiment and emotion, each ``{label, score, scores}``).

    Args:
        model: a :class:`SentimentModel`.
        tokenizer: its tokenizer.
        device / dtype: explicit placement and precision (``None`` = auto).
        threshold: a best score under it reads ``"uncertain"`` (0: never).
        max_length: tokenizer truncation length.
        batch_size: texts per forward pass.
        training: what training recorded (dev scores, settings); saved with the stage.
    """

    def __init__(self, model: SentimentModel, tokenizer: Any, *, device: DeviceLike = None, dtype: DTypeLike = None,
                 threshold: float = 0.5, max_length: int = 64, batch_size: int = 64,
                 training: Optional[Dict[str, Any]] = None) -> None:
        if not 0.0 <= float(threshold) <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], not {threshold}")
        check_int("max_length", max_length, minimum=8)
        check_int("batch_size", batch_size)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.tokenizer = tokenizer
        self.threshold = float(threshold)
        self.max_length = max_length
        self.batch_size = batch_size
        self.training = training
        self.labels: Dict[str, List[str]] = {head: model.config.labels_of(head) for head in HEADS
                                             if model.config.labels_of(head)}

    @classmethod
    def from_pretrained(cls, name_or_path: Union[str, Path], *, device: DeviceLike = None, dtype: DTypeLike = None,
                        **kwargs: Any) -> "SentimentClassifier":
        """Load a sentiment stage saved by :meth:`save_pretrained` (safetensors only, no remote code).

        ``kwargs`` are the constructor's (``threshold``, ``batch_size``, ...), over the saved settings.
        """
        from transformers import AutoConfig, AutoTokenizer

        check_model_path(name_or_path)
        path = Path(name_or_path).expanduser() if str(name_or_path).startswith("~") else name_or_path
        try:
            with quiet_transformers():
                if not is_sentiment_config(AutoConfig.from_pretrained(str(path))):
                    raise ModelLoadError(path, "not a sentiment model (config model_type is not "
                                               "'speech-intent-sentiment'; train one with speech-intent train-sentiment)")
                tokenizer = AutoTokenizer.from_pretrained(str(path))
                model = SentimentModel.from_pretrained(str(path), use_safetensors=True)
        except (OSError, ValueError) as error:
            raise ModelLoadError(path, f"cannot load a sentiment model with safetensors weights: {error}") from error
        settings = _read_stage_config(Path(path))
        for key in ("threshold", "max_length", "training"):
            if key in settings and key not in kwargs:
                kwargs[key] = settings[key]
        return cls(model, tokenizer, device=device, dtype=dtype, **kwargs)

    @classmethod
    def default(cls, *, device: DeviceLike = None, progress: bool = True, **kwargs: Any) -> "SentimentClassifier":
        """The default English stage (see the module's notes), fine-tuned first when it is not cached yet;
        ``kwargs`` are the constructor's (``threshold``, ...)."""
        data_path = default_data_path()
        digest = hashlib.sha256(data_path.read_bytes())
        digest.update(json.dumps(asdict(DEFAULT_TRAINING), sort_keys=True).encode() + b"%d" % _DEFAULT_FORMAT)
        target = cache_dir() / f"sentiment-{digest.hexdigest()[:16]}"
        if not (target / "model.safetensors").is_file():
            examples = read_table(data_path)
            logger.warning("fine-tuning the default sentiment model on %d sentences (first run only; cached in %s)",
                           len(examples), target)
            scratch = Path(tempfile.mkdtemp(prefix=".training-", dir=target.parent))
            try:
                train_sentiment(examples, scratch, options=DEFAULT_TRAINING, device=device, progress=progress)
                try:
                    os.replace(scratch, target)  # atomic: a crash never leaves a half-written cache
                except OSError:  # another process finished first
                    logger.info("default sentiment model already cached by another process")
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        return cls.from_pretrained(target, device=device, **kwargs)

    def save_pretrained(self, save_directory: Union[str, Path]) -> None:
        """Write weights (safetensors), tokenizer and the stage settings."""
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.model.save_pretrained(str(out), safe_serialization=True)
            self.tokenizer.save_pretrained(str(out))
        settings: Dict[str, Any] = {"threshold": self.threshold, "max_length": self.max_length}
        if self.training is not None:
            settings["training"] = self.training
        (out / STAGE_CONFIG).write_text(json.dumps(settings, indent=2) + "\n")

    def predict(self, texts: Union[str, Sequence[str]], *, batch_size: Optional[int] = None) -> List[Sentiment]:
        """One :class:`Sentiment` per text, in order; empty texts (or ``None``) get ``None`` answers."""
        if isinstance(texts, str):
            texts = [texts]
        texts = [_text(t, i) for i, t in enumerate(texts)]
        probabilities = self.predict_proba(texts, batch_size=batch_size)
        results = []
        for row, text in enumerate(texts):
            answers = {head: None if not text else LabelScores.from_scores(
                dict(zip(self.labels[head], probabilities[head][row].tolist())), self.threshold)
                for head in self.labels}
            results.append(Sentiment(text=text, sentiment=answers.get("sentiment"), emotion=answers.get("emotion")))
        return results

    __call__ = predict

    @torch.inference_mode()
    def predict_proba(self, texts: Sequence[str], *, batch_size: Optional[int] = None) -> Dict[str, np.ndarray]:
        """Per head: probabilities ``(len(texts), labels)`` (softmax, or sigmoid for a multi-label head), input
        order. A text's result does not depend on the others in its call, up to float rounding."""
        batch_size = batch_size or self.batch_size
        out = {head: np.zeros((len(texts), len(names)), dtype=np.float32) for head, names in self.labels.items()}
        if not len(texts):
            return out
        enc = self.tokenizer([t or "" for t in texts], truncation=True, max_length=self.max_length)
        names = [n for n in INPUTS if n in enc]
        order = sorted(range(len(texts)), key=lambda i: len(enc["input_ids"][i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            output = self.model(**pad_rows(enc, idx, names, self.tokenizer, self.device))
            for head in self.labels:
                out[head][idx] = self.model.probabilities(head, getattr(output, f"{head}_logits")).cpu().numpy()
        return out


def default_data_path() -> Path:
    """Path of the default stage's sentences (CSV: text, sentiment, emotion) shipped with the package."""
    return Path(str(resources.files("speech_intent") / "resources" / DEFAULT_DATA))


def train_sentiment(
    examples: Sequence[SentimentExample],
    output_dir: Union[str, Path],
    *,
    base: Union[str, Path, None] = None,
    options: Optional[SentimentTrainingOptions] = None,
    dev_examples: Optional[Sequence[SentimentExample]] = None,
    device: DeviceLike = None,
    progress: bool = True,
) -> SentimentClassifier:
    """Train a sentiment / emotion model (:func:`~speech_intent.sentiment.training.fit_sentiment`: ``base``
    default the bundled MiniLM, ``options``, ``dev_examples`` for per-epoch macro-F1 and the best epoch, one
    progress bar) and save it as a sentiment stage in ``output_dir``.

    Returns:
        The trained :class:`SentimentClassifier`, loaded from ``output_dir``; ``training`` holds the dev scores.
    """
    options = options or SentimentTrainingOptions()
    model, tokenizer, info = fit_sentiment(examples, base=base, options=options, dev_examples=dev_examples,
                                           device=device, progress=progress)
    classifier = SentimentClassifier(model, tokenizer, device="cpu", threshold=options.threshold,
                                     max_length=options.max_length, training=info)
    classifier.save_pretrained(output_dir)
    return SentimentClassifier.from_pretrained(output_dir, device=device)


def _text(value: object, index: int) -> str:
    """A text to classify (``None`` -> empty); ConfigError naming the input for anything else."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"text #{index} must be a string, not {type(value).__name__}")
    return value.strip()


def _read_stage_config(path: Path) -> Dict[str, Any]:
    file = path / STAGE_CONFIG
    return read_json_object(file) if file.is_file() else {}
