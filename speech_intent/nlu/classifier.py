"""The intent stage: a fine-tuned BERT-style intent (and slot) model.

Loads either a plain ``AutoModelForSequenceClassification`` checkpoint or a joint
intent + slot checkpoint (:class:`~speech_intent.nlu.joint.JointIntentSlotModel`,
detected from ``config.json``). All texts of a call are tokenised at once, sorted by token
count and cut into batches padded to their longest text; softmax confidence and top-k;
label names come from the model config. Joint
models also fill ``slots`` / ``slot_spans``, decoded from the BIO tags of each
word's first sub-word via the fast tokenizer's character offsets (argmax per word, or
Viterbi for a CRF slot decoder). The text
normaliser used in training is stored beside the weights (``speech_intent.json``)
and applied to every input. ``runtime="onnx"`` / ``"onnx-int8"`` runs the forward pass on ONNX
Runtime on the CPU instead of torch (:mod:`speech_intent.nlu.onnx`); everything else is the same.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from ..device import DeviceLike, DTypeLike, resolve_device, resolve_dtype
from ..errors import ModelLoadError
from ..normalize import TextNormalizer
from ..quiet import quiet_transformers
from ..results import IntentPrediction
from ..slots import SlotSpan, slot_dict, tags_to_slots
from ..text_encoder import pad_rows
from ..validation import check_classifier_dir, check_model_path, read_json_object
from .canonical import SlotCanonicalizer
from .joint import JointIntentSlotModel, is_joint_config
from .onnx import check_runtime, default_export_dir, load_onnx_forward
from .subwords import first_subword_tags, first_subwords

logger = logging.getLogger(__name__)

STAGE_CONFIG = "speech_intent.json"
#: Intent label of the explicit out-of-scope class (trained from examples with ``intent=None``);
#: a prediction of it is reported as ``intent=None``.
OOS_LABEL = "__oos__"
#: Tokenizer outputs passed to the model (those the tokenizer gives).
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class IntentClassifier:
    """Text -> intent label with confidence and top-k (and slots, for joint models).

    Args:
        model: a sequence-classification model or a :class:`JointIntentSlotModel`;
            ``config.id2label`` names the intents.
        tokenizer: its tokenizer (a fast one for joint models: slots need character offsets).
        device / dtype: explicit placement and precision (``None`` = auto).
        normalizer: applied to every text before tokenising (``None``: texts used as given).
        threshold: predictions with confidence under it get ``intent=None`` (out of scope).
        max_length: tokenizer truncation length.
        batch_size: texts per forward pass.
        training: what training recorded (dev metrics, threshold choice); saved with the stage.
        canonicalizer: maps extracted values of closed slots to their canonical values
            (``slots`` holds the canonical value, ``slot_spans[i].raw`` the text as found).
        runtime: the forward pass: ``"torch"`` (default), or ONNX Runtime on the CPU, ``"onnx"``
            (float32 export) or ``"onnx-int8"`` (int8 dynamic quantisation of it); needs
            ``pip install 'speech-intent[onnx]'``, device ``cpu`` (``None`` gives the CPU) and float32.
        threads: ONNX Runtime intra-op threads (``None``: torch's thread count in the calling thread,
            at most the usable cores); the torch runtime uses torch's own setting.
        onnx_dir: where the ONNX export is kept and reused (``None``: ``onnx/`` beside the weights
            when loaded from a writable directory, else speech-intent's cache folder).

    Out-of-scope predictions (under ``threshold``, the ``__oos__`` class, empty text) have
    ``intent=None`` and no slots. When a slot name occurs more than once in a text,
    ``slots`` keeps the first (leftmost) value and ``slot_spans`` lists every occurrence.
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
        training: Optional[Dict[str, Any]] = None,
        canonicalizer: Optional[SlotCanonicalizer] = None,
        runtime: str = "torch",
        threads: Optional[int] = None,
        onnx_dir: Union[str, Path, None] = None,
    ) -> None:
        self.device = resolve_device("cpu" if device is None and runtime != "torch" else device)
        self.dtype = resolve_dtype(dtype, self.device)
        check_runtime(runtime, self.device, self.dtype)
        self.runtime = runtime
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.tokenizer = tokenizer
        self.normalizer = normalizer
        self.threshold = threshold
        self.max_length = max_length
        self.batch_size = batch_size
        self.training = training
        self.canonicalizer = canonicalizer
        self.slot_labels: List[str] = list(model.config.slot_labels or []) if is_joint_config(model.config) else []
        if self.is_joint and not getattr(tokenizer, "is_fast", False):
            raise ModelLoadError(None, "a joint intent + slot model needs a fast tokenizer (character offsets)")
        id2label = getattr(model.config, "id2label", None) or {}
        if len(id2label) != model.config.num_labels:
            raise ModelLoadError(None, f"config has {len(id2label)} label names for {model.config.num_labels} outputs")
        self.labels: List[str] = [id2label[i] for i in range(model.config.num_labels)]
        self._onnx = (load_onnx_forward(self, runtime, export_dir=onnx_dir, threads=threads)
                      if runtime != "torch" else None)

    @property
    def is_joint(self) -> bool:
        """True when the model also tags slots."""
        return bool(self.slot_labels)

    @classmethod
    def from_pretrained(
        cls, name_or_path: Union[str, Path], *, device: DeviceLike = None, dtype: DTypeLike = None, **kwargs
    ) -> "IntentClassifier":
        """Load a sequence-classification or joint intent + slot checkpoint (safetensors only, no remote code).

        ``kwargs`` are the constructor's (``runtime="onnx-int8"``, ``threads``, ``threshold``, ...).
        """
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        check_model_path(name_or_path)  # a local path that does not exist: not sent to the hub
        if str(name_or_path).startswith("~"):
            name_or_path = Path(name_or_path).expanduser()
        if Path(name_or_path).is_dir():  # local checkpoints: clear errors for bad labels / heads / pickles
            check_classifier_dir(name_or_path)
        try:
            with quiet_transformers():  # transformers' load report: what matters in it is logged below
                tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
                joint = is_joint_config(AutoConfig.from_pretrained(str(name_or_path)))
                model_class = JointIntentSlotModel if joint else AutoModelForSequenceClassification
                model, loading = model_class.from_pretrained(str(name_or_path), use_safetensors=True,
                                                             output_loading_info=True)
        except (OSError, ValueError) as error:
            raise ModelLoadError(name_or_path, f"cannot load an intent classifier with safetensors weights: {error}") from error
        missing = sorted(loading.get("missing_keys") or ())
        if missing:
            logger.warning("%s: %d weights are not in the checkpoint and start at random (%s%s); its predictions "
                           "mean nothing until it is trained", name_or_path, len(missing), ", ".join(missing[:3]),
                           ", ..." if len(missing) > 3 else "")
        settings = _read_stage_config(Path(name_or_path))
        if "normalizer" in settings and "normalizer" not in kwargs:
            norm = settings["normalizer"]
            kwargs["normalizer"] = TextNormalizer.from_dict(norm) if norm is not None else None
        for key in ("threshold", "max_length", "training"):
            if key in settings and key not in kwargs:
                kwargs[key] = settings[key]
        if "slot_values" in settings and "canonicalizer" not in kwargs:
            kwargs["canonicalizer"] = SlotCanonicalizer.from_dict(settings["slot_values"])
        if kwargs.get("runtime", "torch") != "torch" and kwargs.get("onnx_dir") is None and Path(name_or_path).is_dir():
            kwargs["onnx_dir"] = default_export_dir(Path(name_or_path))
        return cls(model, tokenizer, device=device, dtype=dtype, **kwargs)

    def save_pretrained(self, save_directory: Union[str, Path]) -> None:
        """Write weights (safetensors), tokenizer and the stage settings."""
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():  # its "Writing model shards" bar
            self.model.save_pretrained(str(out), safe_serialization=True)
            self.tokenizer.save_pretrained(str(out))
        settings = {
            "normalizer": self.normalizer.to_dict() if self.normalizer else None,
            "threshold": self.threshold,
            "max_length": self.max_length,
        }
        if self.training is not None:
            settings["training"] = self.training
        if self.canonicalizer is not None:
            settings["slot_values"] = self.canonicalizer.to_dict()
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
        probs, spans = self._run(normalized, batch_size=batch_size, slots=self.is_joint)
        k = max(1, min(top_k, len(self.labels)))
        values, indices = (t.tolist() for t in torch.topk(probs, k, dim=-1))
        results: List[IntentPrediction] = []
        for text, row_values, row_indices, found in zip(normalized, values, indices, spans):
            if not text:
                results.append(IntentPrediction(text=text, intent=None, confidence=0.0))
                continue
            top = [(self.labels[i], v) for v, i in zip(row_values, row_indices)]
            intent, confidence = top[0]
            if intent == OOS_LABEL or (self.threshold is not None and confidence < self.threshold):
                intent, found = None, []
            if self.canonicalizer is not None and found:
                found = [self._canonical(span) for span in found]
            results.append(IntentPrediction(text=text, intent=intent, confidence=confidence, top_k=top,
                                            slots=slot_dict(found), slot_spans=found))
        return results

    def _canonical(self, span: SlotSpan) -> SlotSpan:
        value, _ = self.canonicalizer.match(span.name, span.value)
        return SlotSpan(name=span.name, start=span.start, end=span.end, value=value, raw=span.raw or span.value)

    def predict_proba(self, texts: Sequence[str], *, batch_size: Optional[int] = None) -> torch.Tensor:
        """Softmax probabilities, shape ``(len(texts), num_labels)``, on CPU, input order."""
        return self._run(texts, batch_size=batch_size, slots=False)[0]

    @torch.inference_mode()
    def _run(
        self, texts: Sequence[str], *, batch_size: Optional[int], slots: bool
    ) -> Tuple[torch.Tensor, List[List[SlotSpan]]]:
        """Intent probabilities and (when ``slots``) decoded slot spans, in input order.

        One tokenizer call for all texts; batches of texts with similar token counts, each padded
        to its longest (a text's result does not depend on the others in its call, up to float rounding).
        """
        batch_size = batch_size or self.batch_size
        texts = [t or "" for t in texts]
        out = torch.zeros(len(texts), len(self.labels))
        spans: List[List[SlotSpan]] = [[] for _ in texts]
        if not texts:
            return out, spans
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, return_offsets_mapping=slots)
        names = [n for n in INPUTS if n in enc]
        order = sorted(range(len(texts)), key=lambda i: len(enc["input_ids"][i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            intent_logits, slot_logits = self._logits(pad_rows(enc, idx, names, self.tokenizer, self.device))
            out[idx] = torch.softmax(intent_logits.float(), dim=-1).cpu()
            if slots:
                firsts = [first_subwords(list(enc["offset_mapping"][i]), texts[i]) for i in idx]
                mask = torch.zeros(slot_logits.shape[:2], dtype=torch.bool)
                for row, first in enumerate(firsts):
                    mask[row, : len(first)] = torch.tensor([w >= 0 for w in first], dtype=torch.bool)
                tag_ids = self.model.decode_slots(slot_logits, mask.to(self.device)).cpu().tolist()
                for row, (i, first) in enumerate(zip(idx, firsts)):
                    tags = first_subword_tags(first, texts[i], tag_ids[row], self.slot_labels)
                    spans[i] = tags_to_slots(texts[i], tags)
        return out, spans

    def _logits(self, inputs: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """One forward pass: intent logits and (joint models) slot logits, else ``None``."""
        if self._onnx is not None:
            return self._onnx(inputs)
        output = self.model(**inputs)
        return (output.intent_logits, output.slot_logits) if self.is_joint else (output.logits, None)


def _read_stage_config(path: Path) -> Dict[str, Any]:
    file = path / STAGE_CONFIG
    return read_json_object(file) if file.is_file() else {}
