"""Grammar-constrained decoding for :class:`~speech_intent.asr.whisper.WhisperASR`: :class:`GrammarDecoder`.

The decoder is kept inside the sentences of a Rhino-style grammar (:mod:`~speech_intent.asr.grammar`)
by a :class:`~speech_intent.asr.grammar.GrammarLogitsProcessor`. With a rejection margin, a free
decoding runs too and a clip is marked out of grammar (``Transcript.in_grammar = False``, free text
kept) when the free transcript's mean token log-probability beats the constrained one by more than
that margin (nats per token), both scored the same way (mean token log-probability).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..results import Transcript
from .grammar import GrammarAutomaton, GrammarLogitsProcessor, load_constraint

__all__ = ["GrammarDecoder", "ScoredGenerate"]

#: ``generate(processors) -> (texts, mean token log-probabilities)``: one batch decoded with the given
#: extra logits processors (none: free decoding).
ScoredGenerate = Callable[[Sequence[Any]], Tuple[List[str], np.ndarray]]


class GrammarDecoder:
    """A grammar's automaton and the logits processor that keeps a Whisper decoder inside it.

    Args:
        grammar: a grammar file / mapping / compiled automaton (a bad one raises
            :class:`~speech_intent.errors.DataFormatError`).
        tokenizer: the Whisper tokenizer.
        eos_token_id / start_token_id: the checkpoint's end-of-text and decoder start tokens.
    """

    def __init__(self, grammar: Union[str, Path, Mapping[str, Any], GrammarAutomaton], tokenizer: Any, *,
                 eos_token_id: Any, start_token_id: Any) -> None:
        self.automaton = load_constraint(grammar)
        self.processor = GrammarLogitsProcessor(self.automaton, tokenizer, eos_token_id=eos_token_id,
                                                start_token_id=start_token_id)

    @property
    def source(self) -> Optional[Dict[str, Any]]:
        """The grammar mapping (``None`` for an automaton compiled without its source)."""
        return self.automaton.source

    def decode(self, generate: ScoredGenerate, rejection: Optional[float]) -> List[Transcript]:
        """Transcripts of one batch: constrained decoding, plus free decoding and scoring when ``rejection``
        (a margin in nats per token) is set."""
        texts, con_lp = generate([self.processor])
        # a constrained decoding cut off by max_new_tokens (or ended at a dead end) is not a sentence
        complete = [self.automaton.matches(t) for t in texts]
        if rejection is None:
            return [Transcript(text=t, confidence=float(np.exp(lp)), in_grammar=ok)
                    for t, lp, ok in zip(texts, con_lp, complete)]
        free_texts, free_lp = generate([])
        out = []
        for text, lp, free_text, flp, ok in zip(texts, con_lp, free_texts, free_lp, complete):
            inside = bool(ok and flp - lp <= rejection)
            out.append(Transcript(text=text if inside else free_text, confidence=float(np.exp(lp if inside else flp)),
                                  in_grammar=inside, grammar_margin=float(flp - lp)))
        return out
