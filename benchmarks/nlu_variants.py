"""Other CPU runtimes for the intent model, measured by ``nlu_speed.py``.

- ``onnx`` / ``onnx-int8``: the library's own ONNX Runtime forward pass
  (``IntentClassifier(..., runtime="onnx")`` / ``runtime="onnx-int8"``, :mod:`speech_intent.nlu.onnx`):
  a float32 ONNX export of the model (TorchScript exporter, dynamic batch and token axes, checked
  against torch), or that export with ONNX Runtime's ``quantize_dynamic`` (int8 weights, per channel);
- ``int8-torch`` (benchmark only, not offered by the library): ``torch.ao.quantization.quantize_dynamic``
  of every ``nn.Linear``.

Each gives an :class:`~speech_intent.nlu.IntentClassifier` on the same model object whose forward pass
is replaced, so tokenising, batching and slot decoding are the library's. The ONNX rows need
``pip install 'speech-intent[onnx]'``; their export goes to the work folder, not beside the model.
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Callable, Dict, Optional

import torch
from torch import nn

from speech_intent.nlu import IntentClassifier

VARIANTS = ("onnx", "onnx-int8", "int8-torch")
Forward = Callable[[Dict[str, torch.Tensor]], tuple]


class VariantClassifier(IntentClassifier):
    """An IntentClassifier with another forward pass (``forward(inputs) -> (intent, slot or None)``)."""

    def __init__(self, base: IntentClassifier, forward: Forward) -> None:
        super().__init__(base.model, base.tokenizer, device="cpu", normalizer=base.normalizer, threshold=base.threshold,
                         max_length=base.max_length, batch_size=base.batch_size, canonicalizer=base.canonicalizer)
        self._forward = forward

    def _logits(self, inputs):
        return self._forward(inputs)


def variant(base: IntentClassifier, name: str, work: Path, threads: Optional[int] = None) -> IntentClassifier:
    """The classifier of variant ``name`` (one of :data:`VARIANTS`); ONNX files go under ``work``.

    ``threads``: ONNX Runtime intra-op threads (``None``: the library's default, torch's thread count).
    """
    if name in ("onnx", "onnx-int8"):
        return IntentClassifier(base.model, base.tokenizer, device="cpu", normalizer=base.normalizer,
                                threshold=base.threshold, max_length=base.max_length, batch_size=base.batch_size,
                                canonicalizer=base.canonicalizer, runtime=name, threads=threads, onnx_dir=work)
    if name != "int8-torch":
        raise SystemExit(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(base.model), {nn.Linear}, dtype=torch.qint8)

    def forward(inputs):
        out = quantized(**inputs)
        return (out.intent_logits, out.slot_logits) if base.is_joint else (out.logits, None)
    return VariantClassifier(base, forward)
