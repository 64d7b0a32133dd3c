"""Checks run before a model directory is loaded: safe weights, coherent labels, valid pipeline config.

Only headers and JSON are read (never tensors), so the checks are cheap. Every
problem raises :class:`~speech_intent.errors.ModelLoadError` naming the file and
the reason, instead of a transformers ``RuntimeError``/``KeyError`` deep in loading.
Hub names (anything that is not a local directory) are left to the loaders.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Collection, Dict, List, Optional, Union

from .errors import ConfigError, ModelLoadError, check_int

logger = logging.getLogger(__name__)

#: Files holding pickled weights: never loaded (pickle can run arbitrary code).
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack",
                  "model.ckpt.index")
#: Names of the output layer of common sequence-classification heads.
HEAD_SUFFIXES = ("classifier.weight", "classifier.out_proj.weight", "score.weight", "intent_head.weight")

PathLike = Union[str, Path]
#: The file that makes a directory a saved pipeline (see :class:`~speech_intent.pipeline.SpeechIntentPipeline`).
PIPELINE_CONFIG = "pipeline.json"


#: an ``org/name`` hub id (the hub's own rule: word characters, ``.`` and ``-``, not leading)
_HUB_ID = re.compile(r"(?!.*(?:\.\.|--))[^\W.-][\w.-]*/[^\W.-][\w.-]*")


def looks_like_local_path(name: str) -> bool:
    """Whether a model ``name_or_path`` means a local path, not a hub name: absolute, starting with ``./``,
    ``../`` or ``~``, or holding a path separator without being an ``org/name`` hub id (``a/b/c``)."""
    if name in (".", "..") or os.path.isabs(name) or name.startswith(("./", "../", "~", ".\\", "..\\")):
        return True
    if not any(sep in name for sep in (os.sep, os.altsep) if sep):
        return False
    return _HUB_ID.fullmatch(name) is None


def check_model_path(name_or_path: PathLike) -> None:
    """Refuse a model ``name_or_path`` that names a local path but no directory: a missing one
    ("does not exist") or a file ("is a file, not a model directory"). A :class:`~pathlib.Path` is
    always local; hub names (``openai/whisper-small``, ``tiny.en``) pass, for the loaders to resolve."""
    name = str(name_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        return
    if path.exists():
        raise ModelLoadError(name, "is a file, not a model directory")
    if isinstance(name_or_path, Path) or looks_like_local_path(name):
        raise ModelLoadError(name, "does not exist")


def read_json_object(file: Path) -> Dict[str, Any]:
    """A JSON file that must hold an object."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(file, f"invalid JSON: {error}") from error
    if not isinstance(data, dict):
        raise ModelLoadError(file, f"expected a JSON object, got {type(data).__name__}")
    return data


def safetensors_files(directory: Path) -> List[Path]:
    """The safetensors weight files of a transformers checkpoint directory.

    Raises:
        ModelLoadError: there are none (pickle-only checkpoints get a message saying so),
            or a header cannot be parsed.
    """
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        pickled = [name for name in PICKLE_WEIGHTS if (directory / name).exists()]
        pickled += [p.name for p in directory.glob("pytorch_model-*.bin")]
        if pickled:
            raise ModelLoadError(directory, f"only pickle weights found ({', '.join(sorted(pickled))}); speech-intent "
                                            "loads safetensors only. Re-save the model with "
                                            "save_pretrained(..., safe_serialization=True)")
        raise ModelLoadError(directory, "no model weights found (expected model.safetensors)")
    return files


def tensor_shapes(files: List[Path]) -> Dict[str, List[int]]:
    """Name -> shape of every tensor, from the safetensors headers only."""
    from safetensors import safe_open

    shapes: Dict[str, List[int]] = {}
    for file in files:
        try:
            with safe_open(str(file), framework="np") as handle:
                for key in handle.keys():
                    shapes[key] = list(handle.get_slice(key).get_shape())
        except Exception as error:  # SafetensorError, OSError: a corrupt or truncated file
            raise ModelLoadError(file, f"corrupt safetensors file: {error}") from error
    return shapes


def check_transformers_dir(directory: PathLike) -> None:
    """A local transformers checkpoint: valid ``config.json`` and safetensors weights (no pickle)."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    config = directory / "config.json"
    if not config.is_file():
        raise ModelLoadError(directory, "not a model directory (no config.json)")
    read_json_object(config)
    tensor_shapes(safetensors_files(directory))


def check_classifier_dir(directory: PathLike) -> List[str]:
    """A local sequence-classification checkpoint; returns its labels in id order.

    Checks: ``config.json`` is valid and names every label (``id2label`` with ids
    0..n-1, no generic ``LABEL_i`` only), ``num_labels`` agrees, weights are
    safetensors and the classifier head has one output row per label.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(directory, "not a model directory (no config.json)")
    config = read_json_object(config_file)
    labels = _labels(config, config_file)
    shapes = tensor_shapes(safetensors_files(directory))
    heads = {k: v for k, v in shapes.items() if k.endswith(HEAD_SUFFIXES)}
    for name, shape in heads.items():
        if not shape or shape[0] != len(labels):
            raise ModelLoadError(directory, f"classifier head {name} has {shape[0] if shape else 0} outputs but "
                                            f"config.json names {len(labels)} labels")
    if not heads:
        logger.debug("%s: no classifier head found among the weights; label count not checked", directory)
    return labels


def _labels(config: Dict[str, Any], config_file: Path) -> List[str]:
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise ModelLoadError(config_file, "missing labels: config.json has no id2label mapping")
    try:
        ids = sorted(int(k) for k in id2label)
    except (TypeError, ValueError) as error:
        raise ModelLoadError(config_file, f"id2label keys must be integers 0..n-1: {error}") from error
    if ids != list(range(len(ids))):
        raise ModelLoadError(config_file, f"id2label ids must be 0..{len(ids) - 1} without gaps, got {ids}")
    labels = [id2label[k] for k in sorted(id2label, key=int)]
    if not all(isinstance(label, str) and label.strip() for label in labels):
        raise ModelLoadError(config_file, "id2label has empty or non-string label names")
    if len(set(labels)) != len(labels):
        raise ModelLoadError(config_file, "id2label has duplicate label names")
    if all(label == f"LABEL_{i}" for i, label in enumerate(labels)):
        raise ModelLoadError(config_file, "missing labels: id2label only has generic LABEL_i names")
    num_labels = config.get("num_labels")
    if num_labels is not None and num_labels != len(labels):
        raise ModelLoadError(config_file, f"num_labels is {num_labels} but id2label names {len(labels)} labels")
    return labels


def _number(config: Dict[str, Any], key: str, file: Path, *, integer: bool = False, minimum: float = 0.0) -> None:
    value = config.get(key)
    if value is None:
        return
    if integer:
        try:
            check_int(key, value, minimum=int(minimum))
        except ConfigError as error:
            raise ModelLoadError(file, str(error)) from None
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ModelLoadError(file, f"{key} must be a number >= {minimum}, got {value!r}")


def check_pipeline_config(config: Dict[str, Any], directory: Path, file: Path, *, format_version: int,
                          backends: Collection[str]) -> None:
    """Validate a parsed ``pipeline.json``: stage entries, relative stage paths, ASR backend (one of
    ``backends``), option types."""
    version = config.get("format_version", 1)
    try:
        check_int("format_version", version, maximum=format_version)
    except ConfigError:
        raise ModelLoadError(file, f"unsupported format_version {version!r} (this version reads 1..{format_version})"
                             ) from None
    for stage in ("asr", "intent"):
        entry = config.get(stage)
        if not isinstance(entry, dict):
            raise ModelLoadError(file, f"invalid pipeline config: '{stage}' must be an object, got {entry!r}")
        path = entry.get("path", stage)
        if not isinstance(path, str) or not path or Path(path).is_absolute() or ".." in Path(path).parts:
            raise ModelLoadError(file, f"invalid pipeline config: {stage}.path must be a sub-directory name, "
                                       f"got {path!r}")
        if not (directory / path).is_dir():
            raise ModelLoadError(directory, f"pipeline is missing its {stage} stage ({path}/)")
    backend = config["asr"].get("backend")
    if backend is not None and backend not in backends:
        raise ModelLoadError(file, f"unknown ASR backend {backend!r}; choose from {sorted(backends)}")
    if not isinstance(config["asr"].get("options", {}), dict):
        raise ModelLoadError(file, "invalid pipeline config: asr.options must be an object")
    _number(config, "max_duration", file)
    _number(config, "min_duration", file)
    _number(config, "silence_threshold", file)
    _number(config, "top_k", file, integer=True, minimum=1)


def check_stage_dir(directory: Path, backend: Optional[str]) -> None:
    """Pre-load checks for a pipeline's ASR stage directory (transformers backends only)."""
    if backend in ("whisper", "wav2vec2") or (backend is None and (directory / "config.json").is_file()
                                              and not (directory / "model.bin").is_file()):
        check_transformers_dir(directory)
