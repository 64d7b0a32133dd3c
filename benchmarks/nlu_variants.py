"""Other CPU runtimes for the intent model, measured by ``nlu_speed.py`` and not offered by the library.

- ``onnx``: ONNX Runtime (float32) on an ONNX export of the model (``torch.onnx.export``, the
  TorchScript exporter, dynamic batch and token axes), checked against the model on a padded batch;
- ``int8-onnx``: that export with ONNX Runtime's ``quantize_dynamic`` (int8 weights, per channel);
- ``int8-torch``: ``torch.ao.quantization.quantize_dynamic`` of every ``nn.Linear``.

Each gives an :class:`~speech_intent.nlu.IntentClassifier` whose forward pass is replaced, so
tokenising, batching and slot decoding are the library's. The ONNX rows need the ``onnx`` package
(``pip install onnx``; ``onnxruntime`` comes with faster-whisper). ONNX Runtime uses
``torch.get_num_threads()`` threads.
"""
from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Callable, Dict, Sequence

import numpy as np
import torch
from torch import nn

from speech_intent.nlu import IntentClassifier
from speech_intent.nlu.classifier import INPUTS

VARIANTS = ("onnx", "int8-onnx", "int8-torch")
Forward = Callable[[Dict[str, torch.Tensor]], tuple]


class VariantClassifier(IntentClassifier):
    """An IntentClassifier with another forward pass (``forward(inputs) -> (intent, slot or None)``)."""

    def __init__(self, base: IntentClassifier, forward: Forward) -> None:
        super().__init__(base.model, base.tokenizer, device="cpu", normalizer=base.normalizer, threshold=base.threshold,
                         max_length=base.max_length, batch_size=base.batch_size, canonicalizer=base.canonicalizer)
        self._forward = forward

    def _logits(self, inputs):
        return self._forward(inputs)


def variant(base: IntentClassifier, name: str, work: Path) -> VariantClassifier:
    """The classifier of variant ``name`` (one of :data:`VARIANTS`); files go under ``work``."""
    if name == "int8-torch":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
            quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(base.model), {nn.Linear},
                                                               dtype=torch.qint8)

        def forward(inputs):
            out = quantized(**inputs)
            return (out.intent_logits, out.slot_logits) if base.is_joint else (out.logits, None)
        return VariantClassifier(base, forward)
    encoded = base.tokenizer(["hello", "hello there, how are you today"], padding=True, return_tensors="pt")
    names = [n for n in INPUTS if n in encoded]
    path = work / "model.onnx"
    if not path.is_file():
        export(base.model, base.is_joint, names, {n: encoded[n] for n in names}, path)
    if name == "int8-onnx":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        logging.getLogger().setLevel(logging.ERROR)  # the quantiser's "consider pre-processing" warning
        quantize_dynamic(str(path), str(work / "int8.onnx"), weight_type=QuantType.QInt8, per_channel=True)
        path = work / "int8.onnx"
    return VariantClassifier(base, onnx_forward(path, names, base.is_joint))


class _Tuple(nn.Module):
    """The model with positional inputs and a plain tuple out (what export needs)."""

    def __init__(self, model: nn.Module, joint: bool, names: Sequence[str]) -> None:
        super().__init__()
        self.model, self.joint, self.names = model, joint, tuple(names)

    def forward(self, *tensors: torch.Tensor):
        out = self.model(**dict(zip(self.names, tensors)))
        return (out.intent_logits, out.slot_logits) if self.joint else (out.logits,)


def export(model: nn.Module, joint: bool, names: Sequence[str], example: Dict[str, torch.Tensor], out: Path) -> None:
    """ONNX export with dynamic batch / token axes; raises when it differs from the model on ``example``."""
    import onnxruntime as ort

    outputs = ["intent_logits", "slot_logits"] if joint else ["logits"]
    axes = {n: {0: "batch", 1: "tokens"} for n in names}
    axes.update({"intent_logits": {0: "batch"}, "slot_logits": {0: "batch", 1: "tokens"}, "logits": {0: "batch"}})
    wrapper = _Tuple(model, joint, names).eval()
    args = tuple(example[n] for n in names)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
        torch.onnx.export(wrapper, args, str(out), input_names=list(names), output_names=outputs,
                          dynamic_axes={k: v for k, v in axes.items() if k in [*names, *outputs]},
                          opset_version=17, dynamo=False)
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(
        None, {n: a.numpy() for n, a in zip(names, args)})
    with torch.no_grad():
        want = [t.float().numpy() for t in wrapper(*args)]
    mask = example["attention_mask"].numpy().astype(bool)
    for g, w in zip(got, want):
        if w.ndim == 3:  # slot logits: padded positions are not used
            g, w = g[mask], w[mask]
        if not np.allclose(g, w, atol=1e-3, rtol=1e-3):
            raise RuntimeError(f"the ONNX export differs from the model (max |diff| {np.abs(g - w).max():.3g})")


def onnx_forward(path: Path, names: Sequence[str], joint: bool) -> Forward:
    """The forward pass of an ONNX Runtime CPU session on ``path``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(inputs):
        outputs = session.run(None, {n: inputs[n].cpu().numpy() for n in names})
        return torch.from_numpy(outputs[0]), torch.from_numpy(outputs[1]) if joint else None
    return forward
