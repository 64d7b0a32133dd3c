"""The intent stage: a fine-tuned BERT-style sequence classifier.

``AutoModelForSequenceClassification`` + tokenizer, batched (length-sorted,
dynamically padded), softmax confidence and top-k; label names come from the
model config. The text normaliser used in training is stored beside the
weights (``speech_intent.json``) and applied to every input.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch

from ..device import DeviceLike, DTypeLike, resolve_device, resolve_dtype
from ..errors import ModelLoadError
from ..normalize import TextNormalizer
from ..results import IntentPrediction

logger = logging.getLogger(__name__)

STAGE_CONFIG = "speech_intent.json"


class IntentClassifier:
    """Text -> intent label with confidence and top-k.

    Args:
        model: a sequence-classification model whose ``config.id2label`` names the intents.
        tokenizer: its tokenizer.
        device / dtype: explicit placement and precision (``None`` = auto).
        normalizer: applied to every text before tokenising (``None``: texts used as given).
        threshold: predictions with confidence under it get ``intent=None`` (out of scope).
        max_length: tokenizer truncation length.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        device: DeviceLike = None,
        dtype: DTypeLike = None,
        normalizer: Optional[TextNormalizer] = None,
        threshold: Optional[float] = None,
        max_length: int = 64,
        batch_size: int = 64,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.tokenizer = tokenizer
        self.normalizer = normalizer
        self.threshold = threshold
        self.max_length = max_length
        self.batch_size = batch_size
        id2label = getattr(model.config, "id2label", None) or {}
        if len(id2label) != model.config.num_labels:
            raise ModelLoadError(None, f"config has {len(id2label)} label names for {model.config.num_labels} outputs")
        self.labels: List[str] = [id2label[i] for i in range(model.config.num_labels)]

    @classmethod
    def from_pretrained(
        cls, name_or_path: Union[str, Path], *, device: DeviceLike = None, dtype: DTypeLike = None, **kwargs
    ) -> "IntentClassifier":
        """Load a sequence-classification checkpoint (safetensors only, no remote code)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
            model = AutoModelForSequenceClassification.from_pretrained(str(name_or_path), use_safetensors=True)
        except (OSError, ValueError) as error:
            raise ModelLoadError(name_or_path, f"cannot load an intent classifier with safetensors weights: {error}") from error
        settings = _read_stage_config(Path(name_or_path))
        if "normalizer" in settings and "normalizer" not in kwargs:
            norm = settings["normalizer"]
            kwargs["normalizer"] = TextNormalizer.from_dict(norm) if norm is not None else None
        for key in ("threshold", "max_length"):
            if key in settings and key not in kwargs:
                kwargs[key] = settings[key]
        return cls(model, tokenizer, device=device, dtype=dtype, **kwargs)

    def save_pretrained(self, save_directory: Union[str, Path]) -> None:
        """Write weights (safetensors), tokenizer and the stage settings."""
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(out), safe_serialization=True)
        self.tokenizer.save_pretrained(str(out))
        settings = {
            "normalizer": self.normalizer.to_dict() if self.normalizer else None,
            "threshold": self.threshold,
            "max_length": self.max_length,
        }
        (out / STAGE_CONFIG).write_text(json.dumps(settings, indent=2) + "\n")

    def normalize(self, text: str) -> str:
        return self.normalizer(text) if self.normalizer else (text or "").strip()

    def __call__(
        self, texts: Union[str, Sequence[str]], *, top_k: int = 3, batch_size: Optional[int] = None
    ) -> List[IntentPrediction]:
        """Classify texts; empty texts give ``intent=None`` with confidence 0."""
        if isinstance(texts, str):
            texts = [texts]
        normalized = [self.normalize(t) for t in texts]
        probs = self.predict_proba(normalized, batch_size=batch_size)
        k = max(1, min(top_k, len(self.labels)))
        results: List[IntentPrediction] = []
        for text, row in zip(normalized, probs):
            if not text:
                results.append(IntentPrediction(text=text, intent=None, confidence=0.0))
                continue
            values, indices = torch.topk(row, k)
            top = [(self.labels[int(i)], float(v)) for v, i in zip(values, indices)]
            intent, confidence = top[0]
            if self.threshold is not None and confidence < self.threshold:
                intent = None
            results.append(IntentPrediction(text=text, intent=intent, confidence=confidence, top_k=top))
        return results

    @torch.inference_mode()
    def predict_proba(self, texts: Sequence[str], *, batch_size: Optional[int] = None) -> torch.Tensor:
        """Softmax probabilities, shape ``(len(texts), num_labels)``, on CPU, input order."""
        batch_size = batch_size or self.batch_size
        out = torch.zeros(len(texts), len(self.labels))
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = self.tokenizer(
                [texts[i] or "" for i in idx], padding=True, truncation=True,
                max_length=self.max_length, return_tensors="pt",
            ).to(self.device)
            logits = self.model(**enc).logits.float()
            out[idx] = torch.softmax(logits, dim=-1).cpu()
        return out


def _read_stage_config(path: Path) -> Dict[str, Any]:
    file = path / STAGE_CONFIG
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise ModelLoadError(file, f"invalid JSON: {error}") from error
    if not isinstance(data, dict):
        raise ModelLoadError(file, "expected a JSON object")
    return data
