"""CPU inference runtimes of the intent stage: the torch model as loaded, or ONNX Runtime.

- ``torch``: the model itself (any device and dtype; the default).
- ``onnx``: ONNX Runtime (CPU, float32) on an ONNX export of the model. Same logits up to
  float rounding (``benchmarks/nlu_speed.py`` measures speed and agreement). The export is made
  once per model, checked against the model on a padded batch, and cached under
  ``cache_dir()/onnx`` by a hash of the weights, the config and the exporter's version. It
  needs the ``onnx`` package (``pip install speech-intent[onnx]``; ``onnxruntime`` comes with
  faster-whisper). ONNX Runtime uses ``torch.get_num_threads()`` threads, read when the session
  is created.

int8 dynamic quantisation (torch's or ONNX Runtime's) is not offered: it was faster but changed
the slots of about 4% of SNIPS test utterances (``benchmarks/README.md``).
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, ModelLoadError
from ..models import cache_dir

logger = logging.getLogger(__name__)

RUNTIMES = ("torch", "onnx")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: A forward pass: named int64 inputs -> (intent logits, slot logits or ``None``), float32 on CPU or the device.
Forward = Callable[[Dict[str, torch.Tensor]], Tuple[torch.Tensor, Optional[torch.Tensor]]]
_OPSET = 17


def check_runtime(runtime: str, device: torch.device, dtype: torch.dtype) -> None:
    """Raise :class:`ConfigError` for an unknown runtime or one that cannot run on ``device`` / ``dtype``."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}")
    if runtime != "torch" and (device.type != "cpu" or dtype != torch.float32):
        raise ConfigError(f"runtime {runtime!r} runs on the CPU in float32; got device {device}, dtype {dtype}")


class _Heads(nn.Module):
    """The model with positional inputs and a plain tuple out (what tracing and export need)."""

    def __init__(self, model: nn.Module, joint: bool, names: Sequence[str]) -> None:
        super().__init__()
        self.model, self.joint, self.names = model, joint, tuple(names)

    def forward(self, *tensors: torch.Tensor):
        out = self.model(**dict(zip(self.names, tensors)))
        return (out.intent_logits, out.slot_logits) if self.joint else (out.logits,)


def build_forward(runtime: str, model: nn.Module, *, joint: bool,
                  example: Optional[Dict[str, torch.Tensor]] = None) -> Forward:
    """The forward pass of ``runtime`` for ``model`` (in eval mode, on its device and dtype).

    ``example`` (needed by ``onnx``): a tokenised CPU batch with padding (texts of different
    lengths), used to export and to check the ONNX file against the model once when it is made.
    """
    if runtime == "torch":
        return torch_forward(model, joint)
    if example is None:
        raise ConfigError(f"runtime {runtime!r} needs an example batch")
    names = [n for n in INPUTS if n in example]
    return onnx_forward(onnx_file(model, joint=joint, example=example), names, joint)


def torch_forward(model: nn.Module, joint: bool) -> Forward:
    """The forward pass of a torch model (joint: intent and slot logits; else ``(logits, None)``)."""
    def forward(inputs: Dict[str, torch.Tensor]):
        out = model(**inputs)
        return (out.intent_logits, out.slot_logits) if joint else (out.logits, None)
    return forward


def onnx_forward(path: Path, names: Sequence[str], joint: bool) -> Forward:
    """The forward pass of an ONNX Runtime CPU session on ``path`` (inputs ``names``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(inputs: Dict[str, torch.Tensor]):
        outputs = session.run(None, {n: inputs[n].numpy() for n in names})
        return torch.from_numpy(outputs[0]), torch.from_numpy(outputs[1]) if joint else None
    return forward


# ------------------------------------------------------------------------------------------ export


def model_hash(model: nn.Module, *extra: str) -> str:
    """sha256 (16 hex digits) of the model's config, every weight, and ``extra`` strings."""
    digest = hashlib.sha256(model.config.to_json_string(use_diff=False).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()[:16]


def onnx_file(model: nn.Module, *, joint: bool, example: Dict[str, torch.Tensor],
              directory: Optional[Path] = None) -> Path:
    """The cached ONNX export of ``model`` (made and checked first when missing)."""
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
        import onnxruntime  # noqa: F401
    except ImportError as error:
        raise ConfigError(f"the onnx runtimes need the onnx and onnxruntime packages "
                          f"(pip install speech-intent[onnx]): {error}") from error
    names = [n for n in INPUTS if n in example]
    key = model_hash(model, f"torch={torch.__version__}", f"opset={_OPSET}", f"inputs={names}", f"joint={joint}")
    directory = directory or cache_dir() / "onnx"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key}.onnx"
    if not path.is_file():
        _atomic(path, lambda tmp: _export(model, joint, names, example, tmp))
    return path


def _atomic(target: Path, make: Callable[[Path], None]) -> None:
    """Write ``target`` through a temporary file in its folder, so a crash leaves no half-written file."""
    fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=target.parent)
    os.close(fd)
    try:
        make(Path(name))
        os.replace(name, target)
    finally:
        if os.path.exists(name):
            os.remove(name)


def _export(model: nn.Module, joint: bool, names: Sequence[str], example: Dict[str, torch.Tensor], out: Path) -> None:
    outputs = ["intent_logits", "slot_logits"] if joint else ["logits"]
    axes = {n: {0: "batch", 1: "tokens"} for n in names}
    axes.update({"intent_logits": {0: "batch"}, "slot_logits": {0: "batch", 1: "tokens"}, "logits": {0: "batch"}})
    wrapper = _Heads(model, joint, names).eval()
    args = tuple(example[n].cpu() for n in names)
    logger.info("exporting the intent model to ONNX: %s", out)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
        torch.onnx.export(wrapper, args, str(out), input_names=list(names), output_names=outputs,
                          dynamic_axes={k: v for k, v in axes.items() if k in [*names, *outputs]},
                          opset_version=_OPSET, dynamo=False)
    _check_export(wrapper, args, out, names)


def _check_export(wrapper: nn.Module, args: Tuple[torch.Tensor, ...], path: Path, names: Sequence[str]) -> None:
    """The exported file must give the model's logits on the (padded) example batch."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: a.numpy() for n, a in zip(names, args)})
    with torch.no_grad():
        want = [t.float().numpy() for t in wrapper(*args)]
    mask = args[names.index("attention_mask")].numpy().astype(bool) if "attention_mask" in names else None
    for g, w in zip(got, want):
        if w.ndim == 3 and mask is not None:  # slot logits: padded positions are not used
            g, w = g[mask], w[mask]
        if not np.allclose(g, w, atol=1e-3, rtol=1e-3):
            raise ModelLoadError(path, f"the ONNX export differs from the model (max |diff| {np.abs(g - w).max():.3g})")
