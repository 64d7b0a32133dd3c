"""Whisper through Hugging Face transformers (`WhisperForConditionalGeneration`).

A batch goes: log-Mel features over the batch's window -> encoder -> generation, free or through
the grammar decoder. fp16/bf16 on CUDA; language and task options for multilingual checkpoints;
optional decoder prompt (domain bias), per call or as ``options.prompt``.

- Encoder (:mod:`~speech_intent.asr.whisper_encoder`): a shorter window (``context_margin``, on by
  default; ``None`` = the 30 s window), and on CPU slices of a batch (``encoder_budget``) while the
  decoder runs on the whole batch. Clips whose decoding looks unreliable
  (:func:`~speech_intent.asr.whisper_common.needs_full_window`) are decoded again on the full 30 s window.
- Generation (here): transformers' ``generate``; beam search in :mod:`~speech_intent.asr.beam_search`
  (transformers' algorithm, cheaper steps) with teacher-forced confidences.
- Grammar-constrained decoding (opt-in, ``grammar``): :class:`~speech_intent.asr.grammar_decoding.GrammarDecoder`
  keeps the decoder inside a Rhino-style grammar; with ``grammar_rejection`` set, a free decoding runs
  too and a clip far likelier outside the grammar is marked out of grammar (``Transcript.in_grammar``).

GPU options (``attn_implementation="sdpa"`` is transformers' default; ``compile=True``
uses a static decoder cache and ``torch.compile``) are implemented but not benchmarked.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..device import DeviceLike, DTypeLike, resolve_device, resolve_dtype
from ..errors import ConfigError, ModelLoadError
from ..results import Transcript
from .base import BaseASR, mean_logprob_confidence
from .beam_search import beam_search, teacher_forced_logprobs
from .generation import beam_search_cache, cache_argument, suppressors
from .grammar import GrammarAutomaton, GrammarLogitsProcessor
from .grammar_decoding import GrammarDecoder
from .options import WhisperOptions, merge_options
from .whisper_common import context_frames, needs_full_window
from .whisper_encoder import clips_per_call, encode, encode_short

logger = logging.getLogger(__name__)

#: File a grammar constraint is saved to next to the weights.
GRAMMAR_FILE = "grammar.yaml"
#: Beam size of grammar-constrained decoding unless given (constrained decoding needs a few
#: hypotheses; chosen on the coffee benchmark, ``benchmarks/coffee.py``).
GRAMMAR_BEAMS = 4


class _LengthNoticeFilter(logging.Filter):
    """Drops transformers' "both max_new_tokens and max_length" notice: Whisper checkpoints carry
    ``max_length=448`` and this stage always passes a bounded ``max_new_tokens`` (which wins), so
    the notice came once per batch and said nothing to a user."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`max_new_tokens` will take precedence" not in record.getMessage()


@contextmanager
def _quiet_length_notice():
    """:class:`_LengthNoticeFilter` on transformers' generate logger, for this stage's calls only."""
    generate_logger, notice = logging.getLogger("transformers.generation.utils"), _LengthNoticeFilter()
    generate_logger.addFilter(notice)
    try:
        yield
    finally:
        generate_logger.removeFilter(notice)


class WhisperASR(BaseASR):
    """Whisper ASR stage on transformers.

    Args:
        model: a loaded ``WhisperForConditionalGeneration``.
        processor: the matching ``WhisperProcessor``.
        device / dtype: where and in which precision to run (explicit; ``None`` = auto).
        options: a :class:`~speech_intent.asr.options.WhisperOptions` (or its ``to_dict()``);
            ``None`` = defaults. Keyword arguments with option names (``num_beams=4``,
            ``prompt=...``, ``context_margin=...``) override single fields.
        grammar: a grammar file / mapping / compiled automaton to constrain decoding to.

    ``num_beams`` reads the beams in use: ``options.num_beams``, else 4 with a grammar
    (``GRAMMAR_BEAMS``) and 1 without. ``compile`` (GPU option): the first batches compile,
    later ones are faster; best with the full window, as every new shorter-context length
    compiles again.
    """

    backend = "whisper"
    options_class = WhisperOptions
    accepts_prompt = True

    def __init__(
        self,
        model,
        processor,
        *,
        device: DeviceLike = None,
        dtype: DTypeLike = None,
        options: Union[WhisperOptions, Mapping[str, Any], None] = None,
        grammar: Union[str, Path, Mapping[str, Any], GrammarAutomaton, None] = None,
        **overrides: Any,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.processor = processor
        self.sampling_rate = int(processor.feature_extractor.sampling_rate)
        self.grammar_source: Optional[Dict[str, Any]] = None
        self._grammar: Optional[GrammarDecoder] = None
        self._compiled = False
        self.options = merge_options(WhisperOptions, options, overrides)
        self.set_grammar(grammar)

    def _apply_options(self, options: WhisperOptions) -> None:  # type: ignore[override]
        """``compile=True`` compiles the model once; it cannot be undone on a loaded stage."""
        if options.compile and not self._compiled:
            # transformers' documented recipe: a static cache makes decoder shapes fixed.
            self.model.generation_config.cache_implementation = "static"
            self.model.forward = torch.compile(self.model.forward, mode="reduce-overhead", fullgraph=True)
            self._compiled = True
        elif self._compiled and not options.compile:
            raise ConfigError("compile=True cannot be undone on a loaded stage; load it again without it")

    @property
    def num_beams(self) -> int:
        """The beam size in use: ``options.num_beams``, else 4 with a grammar and 1 without."""
        given = self.options.num_beams
        return given if given is not None else (GRAMMAR_BEAMS if self.constrained else 1)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: Union[str, Path],
        *,
        device: DeviceLike = None,
        dtype: DTypeLike = None,
        attn_implementation: Optional[str] = None,
        **kwargs,
    ) -> "WhisperASR":
        """Load a transformers Whisper checkpoint (hub name or local dir), safetensors only.

        ``attn_implementation`` (``"sdpa"``, ``"eager"``, ...) is passed to transformers;
        ``None`` keeps its default (SDPA where available). A grammar saved with the stage is
        used unless ``grammar`` is given (``grammar=False``: none). Other keyword arguments go to
        the constructor (``options=``, option names such as ``num_beams=``).
        """
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        load_options = {"attn_implementation": attn_implementation} if attn_implementation else {}
        try:
            processor = WhisperProcessor.from_pretrained(str(name_or_path))
            model = WhisperForConditionalGeneration.from_pretrained(str(name_or_path), use_safetensors=True,
                                                                    **load_options)
        except (OSError, ValueError) as error:
            raise ModelLoadError(name_or_path, f"cannot load a Whisper checkpoint with safetensors weights: {error}") from error
        saved_grammar = Path(name_or_path) / GRAMMAR_FILE
        if kwargs.get("grammar") is None and saved_grammar.is_file():
            kwargs["grammar"] = saved_grammar
        elif kwargs.get("grammar") is False:  # load without the saved grammar
            kwargs["grammar"] = None
        return cls(model, processor, device=device, dtype=dtype, **kwargs)

    def save_pretrained(self, save_directory: Union[str, Path]) -> None:
        """Weights (safetensors), processor files, and the decoding grammar when one is set
        (a grammar file left in ``save_directory`` by an earlier save is removed when none is)."""
        self.model.save_pretrained(str(save_directory), safe_serialization=True)
        self.processor.save_pretrained(str(save_directory))
        grammar_file = Path(save_directory) / GRAMMAR_FILE
        if self.grammar_source is not None:
            import yaml

            grammar_file.write_text(yaml.safe_dump(self.grammar_source, sort_keys=False), encoding="utf-8")
            return
        grammar_file.unlink(missing_ok=True)
        if self._grammar is not None:
            logger.warning("the grammar of %s was given as a compiled automaton without its source and is not "
                           "saved; pass the grammar file or mapping to save it", save_directory)

    @property
    def constrained(self) -> bool:
        """True when decoding is constrained to a grammar."""
        return self._grammar is not None

    @property
    def _constraint(self) -> Optional[GrammarLogitsProcessor]:
        """The grammar's logits processor (``None`` without a grammar)."""
        return None if self._grammar is None else self._grammar.processor

    def set_grammar(self, grammar: Union[str, Path, Mapping[str, Any], GrammarAutomaton, None]) -> None:
        """Constrain decoding to ``grammar`` (a file, mapping or compiled automaton); ``None`` = free.

        Unless ``options.num_beams`` is set, a grammar also means 4 beams (``GRAMMAR_BEAMS``) and
        ``None`` greedy decoding. Raises :class:`~speech_intent.errors.DataFormatError` for a bad
        grammar (the stage is left unchanged).
        """
        if grammar is None:
            self._grammar, self.grammar_source = None, None
        else:
            config = self.model.generation_config
            self._grammar = GrammarDecoder(grammar, self.processor.tokenizer, eos_token_id=config.eos_token_id,
                                           start_token_id=config.decoder_start_token_id)
            self.grammar_source = self._grammar.source

    def _generate_kwargs(self, prompt: Optional[str], processors: Sequence[Any] = ()) -> dict:
        """``generate`` arguments: beams, language/task, prompt, the token budget, and the logits
        processors (Whisper's token suppression with cached masks, then ``processors``)."""
        from transformers import LogitsProcessorList

        options = self.options
        suppress, off = suppressors(self.model.generation_config)
        kwargs: dict = {"num_beams": self.num_beams, "logits_processor": LogitsProcessorList([*suppress, *processors]),
                        **off}
        if getattr(self.model.generation_config, "is_multilingual", False):
            kwargs["task"] = options.task
            if options.language:
                kwargs["language"] = options.language
        prefix = 4  # <|startoftranscript|>, language, task, <|notimestamps|>
        if prompt:
            kwargs["prompt_ids"] = torch.as_tensor(self.processor.get_prompt_ids(prompt), device=self.device)
            prefix += len(kwargs["prompt_ids"])
        # the decoder's position table bounds prefix + new tokens (448 for the released models)
        room = int(getattr(self.model.config, "max_target_positions", 448)) - prefix
        kwargs["max_new_tokens"] = max(1, min(options.max_new_tokens, room))
        return kwargs

    def _encode_short(self, input_features: torch.Tensor) -> torch.Tensor:
        """The encoder on fewer than 3000 frames (:func:`~speech_intent.asr.whisper_encoder.encode_short`)."""
        return encode_short(self.model.get_encoder(), input_features)

    def _encoder_hidden(self, input_features: torch.Tensor, full: bool) -> torch.Tensor:
        """Encoder output, on CPU in slices of ``encoder_budget`` clips x frames^2 (same results)."""
        step = clips_per_call(self.device, input_features, self.options.encoder_budget)
        return encode(self.model.get_encoder(), input_features, full=full, step=step)

    def _encoder_inputs(self, input_features: torch.Tensor, full: bool) -> dict:
        """``generate`` inputs: the features (full window, one call), else encoder outputs computed
        here -- shorter windows, or CPU slices of ``encoder_budget`` (same results, less time)."""
        from transformers.modeling_outputs import BaseModelOutput

        whole = clips_per_call(self.device, input_features, self.options.encoder_budget) >= len(input_features)
        if full and whole and self._grammar is None and self.num_beams == 1:
            return {"input_features": input_features}
        return {"encoder_outputs": BaseModelOutput(last_hidden_state=self._encoder_hidden(input_features, full))}

    def _run(self, batch: List[np.ndarray], frames: int, prompt: Optional[str]) -> List[Transcript]:
        """Features over ``frames`` (audio zero-padded to that length), then batched ``generate``."""
        extractor = self.processor.feature_extractor
        features = extractor(
            batch, sampling_rate=self.sampling_rate, return_tensors="pt", return_attention_mask=True,
            padding="max_length", max_length=frames * extractor.hop_length, truncation=True,
        )
        input_features = features.input_features.to(self.device, dtype=self.dtype, non_blocking=True)
        inputs = self._encoder_inputs(input_features, full=frames >= extractor.nb_max_frames)
        attention_mask = features.attention_mask.to(self.device, non_blocking=True)
        if self._grammar is not None:
            generate = partial(self._generate_scored, inputs["encoder_outputs"].last_hidden_state, attention_mask,
                               prompt)  # generate(processors): texts and mean token log-probabilities
            return self._grammar.decode(generate, self.options.grammar_rejection)
        if self.num_beams > 1:  # confidence by teacher forcing (transition scores of beams are unreliable)
            texts, logprobs = self._generate_scored(inputs["encoder_outputs"].last_hidden_state, attention_mask,
                                                    prompt)
            return [Transcript(text=t, confidence=float(np.exp(lp))) for t, lp in zip(texts, logprobs)]
        with _quiet_length_notice():
            out = self.model.generate(**inputs, attention_mask=attention_mask, return_dict_in_generate=True,
                                      output_scores=True, **self._generate_kwargs(prompt))
        texts = self._decode(out.sequences, prompt)
        scores = self._token_logprobs(out)
        return [Transcript(text=t, confidence=float(c)) for t, c in zip(texts, scores)]

    def _decode(self, sequences: torch.Tensor, prompt: Optional[str]) -> List[str]:
        texts = self.processor.tokenizer.batch_decode(sequences, skip_special_tokens=True)
        if prompt:  # transformers keeps the prompt in the decoded text for some versions
            texts = [t.replace(prompt, "", 1) if t.strip().startswith(prompt.strip()) else t for t in texts]
        return [t.strip() for t in texts]

    def _generate_scored(self, hidden: torch.Tensor, attention_mask: torch.Tensor, prompt: Optional[str],
                         processors: Sequence[Any] = ()) -> Tuple[List[str], np.ndarray]:
        """Beam search from encoder states: texts and mean token log-probabilities.

        :func:`~speech_intent.asr.beam_search.beam_search` (transformers' algorithm, cheaper steps)
        for English-only checkpoints; :meth:`_generate_with_transformers` for multilingual ones
        (language detection) and a compiled model (its static cache)."""
        config = self.model.generation_config
        if getattr(config, "is_multilingual", False) or self._compiled:
            return self._generate_with_transformers(hidden, attention_mask, prompt, processors)
        kwargs = self._generate_kwargs(prompt, processors)
        prefix = self._decoder_prefix(kwargs.get("prompt_ids"))
        for processor in kwargs["logits_processor"]:  # generate sets the begin index of its own
            if hasattr(processor, "set_begin_index"):
                processor.set_begin_index(len(prefix))
        out = beam_search(self.model, hidden, prefix, num_beams=self.num_beams, max_new_tokens=kwargs["max_new_tokens"],
                          eos_token_id=int(config.eos_token_id), processors=list(kwargs["logits_processor"]),
                          length_penalty=1.0 if config.length_penalty is None else config.length_penalty)
        texts = self.processor.tokenizer.batch_decode(out.tokens, skip_special_tokens=True)
        return [t.strip() for t in texts], out.mean_logprob

    def _decoder_prefix(self, prompt_ids: Optional[torch.Tensor]) -> List[int]:
        """What ``generate`` starts an English-only checkpoint from: ``prompt_ids`` (:meth:`_generate_kwargs`'),
        the start of transcript, the config's forced tokens, then ``<|notimestamps|>`` when it has one."""
        config = self.model.generation_config
        ids = [int(config.decoder_start_token_id)]
        forced = getattr(config, "forced_decoder_ids", None) or getattr(self.model.config, "forced_decoder_ids", None)
        for position, token in sorted(forced or []):
            if position != len(ids) or token is None:
                break
            ids.append(int(token))
        no_timestamps = getattr(config, "no_timestamps_token_id", None)
        if no_timestamps is not None and ids[-1] != no_timestamps:
            ids.append(int(no_timestamps))
        return [*([] if prompt_ids is None else prompt_ids.tolist()), *ids]

    def _generate_with_transformers(self, hidden: torch.Tensor, attention_mask: torch.Tensor, prompt: Optional[str],
                                    processors: Sequence[Any] = ()) -> Tuple[List[str], np.ndarray]:
        """``generate`` from encoder states, then texts and teacher-forced mean log-probabilities."""
        from transformers.modeling_outputs import BaseModelOutput

        extra = {}
        if self.num_beams > 1 and self.model.generation_config.cache_implementation is None:
            extra[cache_argument(self.model)] = beam_search_cache(self.model, hidden, self.num_beams)
        # a fresh wrapper per call: beam search expands the encoder output it is given in place
        with _quiet_length_notice():
            sequences = self.model.generate(encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                                            attention_mask=attention_mask, return_dict_in_generate=True,
                                            **extra, **self._generate_kwargs(prompt, processors)).sequences
        return self._decode(sequences, prompt), teacher_forced_logprobs(self.model, hidden, sequences)

    @torch.inference_mode()
    def _transcribe_batch(self, batch: List[np.ndarray], prompt: Optional[str] = None) -> List[Transcript]:
        extractor = self.processor.feature_extractor
        frames = context_frames([len(a) for a in batch], self.options.context_margin,
                                min_context=self.options.min_context, full=extractor.nb_max_frames,
                                hop=extractor.hop_length)
        out = self._run(batch, frames, prompt)
        if frames < extractor.nb_max_frames:
            limit = self._generate_kwargs(prompt)["max_new_tokens"]
            again = [i for i, t in enumerate(out) if needs_full_window(
                t.text, t.confidence, self._token_count(t.text), limit, in_grammar=t.in_grammar)]
            if again:
                logger.debug("%d of %d clips decoded on %d frames look unreliable; decoding them on 30 s",
                             len(again), len(batch), frames)
                redone = self._run([batch[i] for i in again], extractor.nb_max_frames, prompt)
                for i, transcript in zip(again, redone):
                    out[i] = transcript
        return out

    def _token_count(self, text: str) -> int:
        """Tokens of a transcript (to tell a decoding stopped by ``max_new_tokens``)."""
        return len(self.processor.tokenizer.encode(" " + text, add_special_tokens=False)) if text else 0

    def _token_logprobs(self, out) -> np.ndarray:
        """exp(mean log-prob) of the generated tokens (special and padding tokens excluded)."""
        if not getattr(out, "scores", None):
            return np.ones(len(out.sequences))
        steps = len(out.scores)
        beam_indices = getattr(out, "beam_indices", None)
        transition = self.model.compute_transition_scores(
            out.sequences, out.scores, beam_indices=beam_indices, normalize_logits=True
        )
        generated = out.sequences[:, -steps:]
        special = set(self.processor.tokenizer.all_special_ids)
        mask = torch.tensor(
            [[int(tok) not in special for tok in row] for row in generated.tolist()], dtype=torch.bool
        )
        logprobs = transition.float().cpu().numpy()
        mask_np = mask.numpy() & np.isfinite(logprobs)
        return mean_logprob_confidence(logprobs, mask_np)
