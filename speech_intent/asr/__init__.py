"""ASR stages: audio in, :class:`~speech_intent.results.Transcript` out.

- :class:`WhisperASR`: Whisper on transformers (GPU-friendly, fp16/bf16).
- :class:`Wav2Vec2ASR`: CTC models on transformers.
- :class:`FasterWhisperASR`: Whisper on CTranslate2 (the CPU default).

Each stage's decoding options are a frozen dataclass (:mod:`speech_intent.asr.options`).
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Optional, Union

from .._lazy import lazy_attributes
from ..errors import ConfigError, ModelLoadError
from ..quiet import quiet_transformers
from ..validation import check_model_path
from .whisper_common import grammar_unsupported

if TYPE_CHECKING:
    from ..device import DeviceLike
    from .base import ASRStage, BaseASR
    from .convert import convert_ctranslate2_whisper
    from .faster_whisper import FasterWhisperASR
    from .options import ASROptions, FasterWhisperOptions, Wav2Vec2Options, WhisperOptions
    from .wav2vec2 import Wav2Vec2ASR
    from .whisper import WhisperASR

#: backend name -> (module, class); :data:`BACKENDS` imports a class on first use
_BACKEND_CLASSES = {
    "whisper": (".whisper", "WhisperASR"),
    "wav2vec2": (".wav2vec2", "Wav2Vec2ASR"),
    "faster-whisper": (".faster_whisper", "FasterWhisperASR"),
}
#: the ASR backend names (known without importing any backend)
BACKEND_NAMES = tuple(_BACKEND_CLASSES)


class _Backends(Mapping[str, type]):
    """``{"whisper": WhisperASR, "wav2vec2": Wav2Vec2ASR, "faster-whisper": FasterWhisperASR}``, read-only;
    the names are known at once, a class is imported when it is looked up."""

    def __getitem__(self, name: str) -> type:
        module, attribute = _BACKEND_CLASSES[name]
        return getattr(importlib.import_module(module, __name__), attribute)

    def __iter__(self) -> Iterator[str]:
        return iter(_BACKEND_CLASSES)

    def __len__(self) -> int:
        return len(_BACKEND_CLASSES)

    def __contains__(self, name: object) -> bool:
        return name in _BACKEND_CLASSES

    def __repr__(self) -> str:
        return repr(dict(self))


BACKENDS: Mapping[str, type] = _Backends()

__all__ = [
    "ASRStage", "BaseASR", "WhisperASR", "Wav2Vec2ASR", "FasterWhisperASR", "BACKENDS", "ASROptions",
    "WhisperOptions", "FasterWhisperOptions", "Wav2Vec2Options", "detect_backend", "load_asr", "apply_grammar",
    "convert_ctranslate2_whisper",
]

_EXPORTS = {
    **dict.fromkeys(["ASRStage", "BaseASR"], ".base"),
    "convert_ctranslate2_whisper": ".convert",
    "FasterWhisperASR": ".faster_whisper",
    **dict.fromkeys(["ASROptions", "FasterWhisperOptions", "Wav2Vec2Options", "WhisperOptions"], ".options"),
    "Wav2Vec2ASR": ".wav2vec2",
    "WhisperASR": ".whisper",
}

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, globals())


def detect_backend(name_or_path: Union[str, Path]) -> str:
    """Guess the backend of a local directory or hub name.

    A directory with ``model.bin`` is CTranslate2 (faster-whisper); a transformers
    ``config.json`` with ``model_type == "whisper"`` is Whisper, any other is CTC.
    Hub names: ``*whisper*`` -> whisper, otherwise CTC; bare size names such as
    ``"tiny.en"`` -> faster-whisper.

    Raises:
        ModelLoadError: a local path that does not exist or is a file
            (:func:`~speech_intent.validation.check_model_path`), or a directory with neither file.
    """
    check_model_path(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if (path / "model.bin").is_file():
            return "faster-whisper"
        config = path / "config.json"
        if config.is_file():
            model_type = json.loads(config.read_text()).get("model_type", "")
            return "whisper" if model_type == "whisper" else "wav2vec2"
        raise ModelLoadError(name_or_path, "cannot tell the ASR backend: not a model directory (no model.bin or "
                                           "config.json)")
    name = str(name_or_path)
    if "/" not in name:
        return "faster-whisper"
    return "whisper" if "whisper" in name.lower() else "wav2vec2"


def load_asr(
    name_or_path: Union[str, Path, None] = None,
    *,
    backend: Optional[str] = None,
    device: DeviceLike = None,
    grammar: Any = None,
    options: Union[ASROptions, Mapping[str, Any], None] = None,
    num_workers: Optional[int] = None,
    **kwargs,
) -> BaseASR:
    """Load an ASR stage; ``None`` is the bundled tiny.en: on faster-whisper, or with
    ``backend="whisper"`` its transformers twin (converted once into the cache).

    ``grammar`` (a grammar file / mapping) turns on grammar-constrained decoding, which
    needs the transformers Whisper backend (chosen by itself for the bundled model).
    ``options`` (the backend's options dataclass or a mapping of its fields) and keyword
    arguments with option names (``num_beams=4``, ``prompt=...``) set decoding options; other
    keyword arguments go to the backend's ``from_pretrained`` (``dtype``, ``cpu_threads``, ...).
    ``num_workers``: batches the stage will be called with at once, from as many threads (a server's
    model workers): faster-whisper starts that many CTranslate2 workers, each on its share of the CPU
    threads; the torch backends take concurrent calls as they are (``None``: 1).
    """
    if num_workers is not None and num_workers > 1:
        kwargs["num_workers"] = num_workers
    if options is not None:
        kwargs["options"] = options
    if grammar is not None:
        kwargs["grammar"] = grammar
        backend = backend or ("whisper" if name_or_path is None else detect_backend(name_or_path))
        if backend != "whisper":
            raise grammar_unsupported(backend)
    if name_or_path is None and backend == "whisper":
        from .convert import bundled_whisper_transformers_path

        with quiet_transformers():  # the first run's conversion writes a checkpoint
            name_or_path = bundled_whisper_transformers_path()
    elif name_or_path is None:
        if backend not in (None, "faster-whisper"):
            raise ConfigError(f"the bundled model runs on faster-whisper or whisper, not {backend!r}")
        from .faster_whisper import FasterWhisperASR

        return FasterWhisperASR.from_pretrained(None, device=device, **kwargs)
    check_model_path(name_or_path)
    if str(name_or_path).startswith("~"):  # "~/models/asr": the user's home
        name_or_path = Path(name_or_path).expanduser()
    backend = backend or detect_backend(name_or_path)
    if backend not in BACKENDS:
        raise ConfigError(f"unknown ASR backend {backend!r}; choose from {sorted(BACKENDS)}")
    if backend != "faster-whisper":
        kwargs.pop("num_workers", None)
    with quiet_transformers(reports=False):  # its loading bars; a load report (a CTC model without its head) stays
        return BACKENDS[backend].from_pretrained(name_or_path, device=device, **kwargs)


def apply_grammar(asr: BaseASR, grammar: Any = None, rejection: Optional[float] = None) -> None:
    """Grammar options on a loaded stage (transformers Whisper only): ``grammar`` replaces its
    grammar when given, ``rejection`` its out-of-grammar margin when given (the stage must then
    have a grammar, its own or this one); what is not given is kept."""
    if not hasattr(asr, "set_grammar"):
        raise grammar_unsupported(asr.backend)
    if grammar is not None:
        asr.set_grammar(grammar)
    if rejection is not None:
        if not asr.constrained:
            raise ConfigError("grammar rejection needs a grammar (--grammar, or a pipeline saved with one)")
        asr.configure(grammar_rejection=rejection)
