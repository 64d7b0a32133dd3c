"""``EmotionRecognizer``: the acoustic emotion stage (frozen Whisper encoder + :class:`~.head.EmotionHead`).

A model directory holds ``config.json`` (labels, threshold, head shape, encoder window, the Whisper
encoder's config), ``model.safetensors`` (``encoder.*`` and ``head.*`` weights) and the Whisper feature
extractor's ``preprocessor_config.json``: it loads offline with :meth:`EmotionRecognizer.from_pretrained`.

No model ships as a default: a recogniser is trained on the user's labelled clips
(``speech-intent train-emotion``). RAVDESS (CC BY-NC-SA 4.0) serves the library's recipes, tests and
benchmarks only; a model trained on it inherits its non-commercial licence.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from ..audio import is_silent
from ..device import DeviceLike, DTypeLike, resolve_device, resolve_dtype
from ..errors import ConfigError, ModelLoadError
from ..results import LabelScores
from .encoder import build_encoder, encoder_fingerprint, encoder_states, load_whisper_encoder
from .head import EmotionHead, pad_states
from .options import DEFAULT_CONTEXT_MARGIN, HeadConfig

logger = logging.getLogger(__name__)

__all__ = ["CONFIG_FILE", "DEFAULT_CONTEXT_MARGIN", "EmotionRecognizer", "WEIGHTS_FILE"]

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
#: ``config.json``'s ``format`` value.
FORMAT = "speech-intent-emotion"


class EmotionRecognizer:
    """The emotion of each clip's voice, as :class:`~speech_intent.results.LabelScores`.

    Args:
        encoder: a transformers ``WhisperEncoder`` (frozen: put in eval mode, no gradients).
        feature_extractor: its ``WhisperFeatureExtractor``.
        head: an :class:`~.head.EmotionHead` with one output per label.
        labels: the emotion names, in the head's output order.
        threshold: a best score under it reads as ``"uncertain"`` (0: never).
        context_margin: encoder window = clip + this many seconds (``None``: 30 s), as in training.
        device / dtype: where and in which precision the encoder runs (``None``: auto); the head runs
            in float32 on the same device.
        batch_size: clips per encoder call.
    """

    def __init__(self, encoder: torch.nn.Module, feature_extractor: Any, head: EmotionHead, labels: Sequence[str], *,
                 threshold: float = 0.0, context_margin: Optional[float] = DEFAULT_CONTEXT_MARGIN,
                 device: DeviceLike = None, dtype: DTypeLike = None, batch_size: int = 16) -> None:
        labels = [str(label) for label in labels]
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ConfigError(f"an emotion recogniser needs at least 2 distinct labels, got {labels}")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {threshold!r}")
        if context_margin is not None and context_margin < 0:
            raise ConfigError(f"context_margin must be >= 0 seconds or None, got {context_margin!r}")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.encoder = encoder.to(device=self.device, dtype=self.dtype).eval().requires_grad_(False)
        self.feature_extractor = feature_extractor
        self.head = head.to(self.device).eval()
        self._labels = labels
        self.threshold, self.context_margin, self.batch_size = float(threshold), context_margin, int(batch_size)

    @property
    def labels(self) -> List[str]:
        """The emotion names, in the head's output order."""
        return list(self._labels)

    @classmethod
    def build(cls, encoder: Union[str, Path], labels: Sequence[str], head: HeadConfig = HeadConfig(), *,
              seed: int = 0, **kwargs: Any) -> "EmotionRecognizer":
        """A recogniser with an untrained head on the encoder of the Whisper checkpoint ``encoder`` (a
        transformers folder or hub name; the CLI passes the bundled tiny.en converted). ``kwargs`` go to
        the constructor."""
        whisper, extractor = load_whisper_encoder(encoder)
        torch.manual_seed(seed)
        emotion_head = EmotionHead(len(whisper.layers) + 1, int(whisper.config.d_model), len(labels), head)
        return cls(whisper, extractor, emotion_head, labels, **kwargs)

    # ------------------------------------------------------------------ inference
    def _usable(self, audios: Sequence[np.ndarray]) -> List[Optional[np.ndarray]]:
        """Each clip as float32 mono, or ``None`` for one there is nothing to recognise in (empty or
        silent) or that is not a finite 1-D signal (logged; the batch goes on)."""
        usable: List[Optional[np.ndarray]] = []
        for index, audio in enumerate(audios):
            samples = np.asarray(audio, dtype=np.float32) if audio is not None else np.zeros(0, np.float32)
            if samples.ndim != 1 or not np.all(np.isfinite(samples)):
                logger.warning("emotion: clip #%d is not a finite 1-D signal (shape %s); no emotion for it",
                               index, samples.shape)
                usable.append(None)
            else:
                usable.append(None if is_silent(samples) else samples)
        return usable

    def features(self, audios: Sequence[np.ndarray]) -> List[torch.Tensor]:
        """Per clip, the encoder's hidden states over its real frames (``(layers + 1, frames, d_model)``,
        float32 CPU): what the head reads, and what training caches."""
        return encoder_states(self.encoder, self.feature_extractor, audios, margin=self.context_margin,
                              device=self.device, dtype=self.dtype, batch_size=self.batch_size)

    def probabilities(self, states: Sequence[torch.Tensor]) -> np.ndarray:
        """``(clips, labels)`` softmax probabilities of the head over per-clip hidden states."""
        if not states:
            return np.zeros((0, len(self._labels)), dtype=np.float32)
        self.head.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(states), 64):
                batch, mask = pad_states(self.head.prepare(states[start : start + 64]))
                logits = self.head(batch.to(self.device), mask.to(self.device))
                out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
        return np.concatenate(out)

    def recognise_states(self, states: Sequence[torch.Tensor]) -> List[LabelScores]:
        """The emotion of each clip from its hidden states (:meth:`features`' form): the head only.
        A pipeline whose ASR stage ran this same encoder can pass that pass's states instead of running
        the encoder again."""
        return [LabelScores.from_scores(dict(zip(self._labels, map(float, row))), self.threshold)
                for row in self.probabilities(states)]

    def encoder_fingerprint(self) -> str:
        """The encoder weights' SHA-256 (:func:`~.encoder.encoder_fingerprint`): when the ASR stage's encoder
        has the same, its pass can feed :meth:`recognise_states` (cut with :func:`~.encoder.crop_states`)."""
        return encoder_fingerprint(self.encoder)

    def recognise(self, audios: Sequence[np.ndarray]) -> List[Optional[LabelScores]]:
        """The emotion of each 16 kHz float32 mono clip; ``None`` for an empty or silent clip (or one
        that is not a finite 1-D signal). Batched: clips of similar length share an encoder call."""
        usable = self._usable(audios)
        keep = [i for i, samples in enumerate(usable) if samples is not None]
        out: List[Optional[LabelScores]] = [None] * len(usable)
        if keep:
            for i, result in zip(keep, self.recognise_states(self.features([usable[i] for i in keep]))):
                out[i] = result
        return out

    # ------------------------------------------------------------------ saving and loading
    def config(self) -> Dict[str, Any]:
        """What ``config.json`` holds."""
        return {"format": FORMAT, "labels": self.labels, "threshold": self.threshold,
                "context_margin": self.context_margin, "head": self.head.config.to_dict(),
                "num_states": self.head.num_states, "whisper": self.encoder.config.to_dict(),
                "licence_note": "trained on the data given to train-emotion; that data's licence applies"}

    def save_pretrained(self, save_directory: Union[str, Path]) -> Path:
        """``config.json``, ``model.safetensors`` (encoder and head) and the feature extractor's config."""
        from safetensors.torch import save_file

        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {f"encoder.{k}": v.detach().float().cpu().contiguous() for k, v in self.encoder.state_dict().items()}
        tensors.update({f"head.{k}": v.detach().float().cpu().contiguous() for k, v in self.head.state_dict().items()})
        save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": FORMAT})
        (directory / CONFIG_FILE).write_text(json.dumps(self.config(), indent=2, default=str) + "\n",
                                             encoding="utf-8")
        self.feature_extractor.save_pretrained(str(directory))
        return directory

    @classmethod
    def from_pretrained(cls, path: Union[str, Path], *, device: DeviceLike = None, dtype: DTypeLike = None,
                        **kwargs: Any) -> "EmotionRecognizer":
        """Load a directory saved by :meth:`save_pretrained` (``kwargs``: ``threshold``, ``batch_size``...).

        Raises :class:`~speech_intent.errors.ModelLoadError` when it is not one."""
        from safetensors.torch import load_file
        from transformers import WhisperFeatureExtractor

        directory = Path(path)
        try:
            config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
            if config.get("format") != FORMAT:
                raise ValueError(f"{CONFIG_FILE} is not an emotion model's (format {config.get('format')!r})")
            weights = load_file(str(directory / WEIGHTS_FILE))
            encoder = build_encoder(config["whisper"])
            encoder.load_state_dict({k[8:]: v for k, v in weights.items() if k.startswith("encoder.")}, strict=True)
            head = EmotionHead(int(config["num_states"]), int(config["whisper"]["d_model"]), len(config["labels"]),
                               HeadConfig(**config["head"]))
            head.load_state_dict({k[5:]: v for k, v in weights.items() if k.startswith("head.")}, strict=True)
            extractor = WhisperFeatureExtractor.from_pretrained(str(directory))
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
            raise ModelLoadError(directory, f"not an emotion model directory: {error}") from error
        kwargs.setdefault("threshold", config.get("threshold", 0.0))
        kwargs.setdefault("context_margin", config.get("context_margin", DEFAULT_CONTEXT_MARGIN))
        return cls(encoder, extractor, head, config["labels"], device=device, dtype=dtype, **kwargs)
