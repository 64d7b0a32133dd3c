"""ONNX Runtime on CPU for the intent model: export, int8 dynamic quantisation, the forward pass.

``IntentClassifier(..., runtime="onnx")`` or ``runtime="onnx-int8"`` replaces only the model's forward
pass: tokenising, batching, slot decoding (the CRF's Viterbi too: it runs in torch on the slot scores),
thresholds and canonicalisation stay the classifier's. The model is exported once with torch's
TorchScript ONNX exporter (dynamic batch and token axes, opset 17) and checked against torch on padded
batches of other shapes than the traced one (:class:`~speech_intent.errors.ModelLoadError` when they
differ). ``onnx-int8`` is that export quantised by ONNX Runtime's ``quantize_dynamic`` (int8 weights,
per output channel; activations quantised per call).

An export folder holds ``model.onnx``, ``model-int8.onnx`` and ``export.json`` (a digest of the weights
they come from: other weights are exported again). Needs ``pip install 'speech-intent[onnx]'``.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..bundled import cache_dir
from ..device import available_cpus
from ..errors import ConfigError, ModelLoadError, check_int
from .runtimes import RUNTIMES, require_onnx

logger = logging.getLogger(__name__)

__all__ = ["RUNTIMES", "OnnxForward", "check_runtime", "export_onnx", "load_onnx_forward", "require_onnx"]

EXPORT_DIR = "onnx"
MANIFEST = "export.json"
FILES = {"onnx": "model.onnx", "onnx-int8": "model-int8.onnx"}
OPSET = 17
#: Largest accepted difference between the export and torch (absolute and relative, float32).
TOLERANCE = 1e-3
_TRACE_TEXTS = ["hello", "hello there, how are you today"]
_CHECK_TEXTS = ["what is the weather like in new york tomorrow morning", "play some jazz", "hi"]
PathLike = Union[str, Path]


def check_runtime(runtime: str, device: torch.device, dtype: torch.dtype) -> None:
    """Refuse an unknown runtime, and ONNX Runtime off the CPU or in another precision than float32."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime != "torch" and (device.type != "cpu" or dtype != torch.float32):
        raise ConfigError(f"runtime {runtime!r} runs the float32 model on the CPU only; got device {str(device)!r},"
                          f" dtype {dtype} (use device='cpu', or runtime='torch' on a GPU)")


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of the model's class, architecture settings and weights: what an export depends on."""
    digest = hashlib.sha256(type(model).__name__.encode())
    config = {k: v for k, v in model.config.to_dict().items()
              if not k.startswith("_") and k not in ("transformers_version", "dtype", "torch_dtype")}
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def default_export_dir(model_dir: Path) -> Optional[Path]:
    """``model_dir/onnx`` when it holds an export or can be written, else ``None`` (the user cache)."""
    folder = model_dir / EXPORT_DIR
    return folder if (folder / MANIFEST).is_file() or _writable(folder if folder.exists() else model_dir) else None


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def _read_digest(folder: Path) -> Optional[str]:
    try:
        return json.loads((folder / MANIFEST).read_text()).get("weights_sha256")
    except (OSError, ValueError, AttributeError):
        return None


def _replace_atomically(folder: Path, name: str, write) -> Path:
    """Run ``write(tmp_path)`` and move the result to ``folder/name`` (readers never see half a file)."""
    tmp = folder / f".tmp-{os.getpid()}-{name}"
    try:
        write(tmp)
        os.replace(tmp, folder / name)
    finally:
        tmp.unlink(missing_ok=True)
    return folder / name


class _Tuple(nn.Module):
    """The model with positional inputs and a plain tuple out (what the exporter needs)."""

    def __init__(self, model: nn.Module, joint: bool, names: Sequence[str]) -> None:
        super().__init__()
        self.model, self.joint, self.names = model, joint, tuple(names)

    def forward(self, *tensors: torch.Tensor):
        out = self.model(**dict(zip(self.names, tensors)))
        return (out.intent_logits, out.slot_logits) if self.joint else (out.logits,)


def export_onnx(classifier: Any, out_dir: PathLike, *, quantize: bool = False) -> Path:
    """Write the classifier's model as ONNX into ``out_dir``; returns the file to run.

    ``model.onnx`` (float32, checked against torch) and, with ``quantize``, ``model-int8.onnx``.
    Files already there for the same weights are kept; those of other weights are replaced.
    Load them with ``IntentClassifier.from_pretrained(model_dir, runtime=..., onnx_dir=out_dir)``.
    """
    require_onnx("onnx-int8" if quantize else "onnx")
    return _export_files(classifier, Path(out_dir), quantize, weights_digest(classifier.model))


def _export_files(classifier: Any, out: Path, quantize: bool, digest: str) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = out / FILES["onnx"]
        if _read_digest(out) != digest or not path.is_file():
            (out / FILES["onnx-int8"]).unlink(missing_ok=True)  # of other weights
            names = _export(classifier, out)
            _replace_atomically(out, MANIFEST, lambda tmp: tmp.write_text(json.dumps(
                {"weights_sha256": digest, "opset": OPSET, "inputs": names, "joint": classifier.is_joint},
                indent=2) + "\n"))
        if not quantize:
            return path
        quantized = out / FILES["onnx-int8"]
        if not quantized.is_file():
            _replace_atomically(out, quantized.name, lambda tmp: _quantize(path, tmp))
        return quantized
    except OSError as error:
        raise ModelLoadError(out, f"cannot write the ONNX export: {error}") from error


def _export(classifier: Any, out: Path) -> List[str]:
    """Export ``model.onnx`` into ``out``, check it against torch; returns its input names."""
    model, tokenizer, joint = classifier.model, classifier.tokenizer, classifier.is_joint
    accepted = inspect.signature(model.forward).parameters
    trace = tokenizer(_TRACE_TEXTS, padding=True, return_tensors="pt")
    names = [n for n in accepted if n in trace]
    outputs = ["intent_logits", "slot_logits"] if joint else ["logits"]
    axes = {n: {0: "batch", 1: "tokens"} for n in names}
    axes.update({"intent_logits": {0: "batch"}, "logits": {0: "batch"}, "slot_logits": {0: "batch", 1: "tokens"}})
    wrapper = _Tuple(model, joint, names).eval()

    def write(tmp: Path) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
            try:
                torch.onnx.export(wrapper, tuple(trace[n] for n in names), str(tmp), input_names=names,
                                  output_names=outputs, dynamic_axes={k: axes[k] for k in [*names, *outputs]},
                                  opset_version=OPSET, dynamo=False)
            except Exception as error:  # the exporter raises many types (unsupported operators, tracing)
                raise ModelLoadError(out, f"torch cannot export the model to ONNX: {error}") from error
        _check(tmp, wrapper, names, [tokenizer(_CHECK_TEXTS, padding=True, return_tensors="pt"),
                                     tokenizer(_CHECK_TEXTS[:1], return_tensors="pt")])
    _replace_atomically(out, FILES["onnx"], write)
    return names


def _check(path: Path, wrapper: nn.Module, names: Sequence[str], batches: Sequence[Dict[str, torch.Tensor]]) -> None:
    """Raise :class:`ModelLoadError` when the export's outputs differ from torch's beyond :data:`TOLERANCE`."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), _session_options(1), providers=["CPUExecutionProvider"])
    for batch in batches:
        got = session.run(None, {n: batch[n].numpy() for n in names})
        with torch.no_grad():
            want = [t.float().numpy() for t in wrapper(*(batch[n] for n in names))]
        mask = batch["attention_mask"].numpy().astype(bool)
        for g, w in zip(got, want):
            if w.ndim == 3:  # slot scores: padded positions are never read
                g, w = g[mask], w[mask]
            if g.shape != w.shape or not np.allclose(g, w, atol=TOLERANCE, rtol=TOLERANCE):
                diff = np.abs(g - w).max() if g.shape == w.shape else f"shape {g.shape} vs {w.shape}"
                raise ModelLoadError(path, f"the ONNX export differs from the torch model (max |diff| {diff}, "
                                           f"tolerance {TOLERANCE}); use runtime='torch'")


def _quantize(source: Path, target: Path) -> None:
    """int8 weights per output channel; the quantiser's "consider pre-processing" warnings (logged on the
    root logger, which would also get a handler from ``logging.warning``) are dropped meanwhile."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root, drop = logging.getLogger(), logging.Filter("\0")  # passes no record of the root logger
    handler = None if root.handlers else logging.NullHandler()
    root.addFilter(drop)
    if handler is not None:
        root.addHandler(handler)
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    except Exception as error:  # onnx / onnxruntime raise their own types
        raise ModelLoadError(source, f"ONNX Runtime cannot quantise it: {error}") from error
    finally:
        root.removeFilter(drop)
        if handler is not None:
            root.removeHandler(handler)


def _check_threads(threads: Optional[int]) -> None:
    check_int("threads", threads, optional=True)


def _session_options(threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return options


class OnnxForward:
    """The forward pass of an ONNX Runtime CPU session: padded tensors in, ``(intent, slot or None)`` logits out.

    ``session.run`` is thread-safe, so one instance serves concurrent calls.
    """

    def __init__(self, path: PathLike, *, joint: bool, threads: Optional[int] = None) -> None:
        import onnxruntime as ort

        _check_threads(threads)
        self.path, self.joint = Path(path), joint
        self.threads = threads or max(1, min(torch.get_num_threads(), available_cpus()))  # torch's, in this thread
        try:
            self.session = ort.InferenceSession(str(path), _session_options(self.threads),
                                                providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for unreadable graphs
            raise ModelLoadError(path, f"ONNX Runtime cannot load it: {error}") from error
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, inputs: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        outputs = self.session.run(None, {n: inputs[n].cpu().numpy() for n in self.names})
        return torch.from_numpy(outputs[0]), (torch.from_numpy(outputs[1]) if self.joint else None)


def load_onnx_forward(classifier: Any, runtime: str, *, export_dir: Optional[PathLike] = None,
                      threads: Optional[int] = None) -> OnnxForward:
    """The ONNX Runtime forward pass of ``runtime`` for the classifier, exporting it first when needed.

    ``export_dir``: where the export is kept (``None``: ``onnx/<digest>`` under speech-intent's cache).
    """
    require_onnx(runtime)
    _check_threads(threads)
    digest = weights_digest(classifier.model)
    folder = Path(export_dir) if export_dir is not None else cache_dir() / EXPORT_DIR / digest[:16]
    path = folder / FILES[runtime]
    if not (path.is_file() and _read_digest(folder) == digest):
        logger.info("exporting the intent model to %s (%s)", path, runtime)
        path = _export_files(classifier, folder, runtime == "onnx-int8", digest)
    return OnnxForward(path, joint=classifier.is_joint, threads=threads)
