"""Grammar-constrained Whisper decoding: the automaton, the logits processor, the ASR option."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from speech_intent import IntentClassifier, SpeechIntentPipeline
from speech_intent.asr import WhisperASR
from speech_intent.asr.grammar import GrammarAutomaton, GrammarLogitsProcessor

from .conftest import GRAMMAR, _sine


@pytest.mark.parametrize("text", [
    "turn the lamp on", "Switch kitchen light off.", "Lamp on, please!", "I'd like a twelve-ounce iced mocha?",
    " turn the kitchen light on",
])
def test_automaton_accepts_grammar_sentences(automaton, text):
    assert automaton.matches(text)


@pytest.mark.parametrize("text", [
    "turn the lamp", "turn the the lamp on", "turn on the lamp", "i'd like a large latte", "lamp on..",
    "turn,the lamp on", "lampon", "", "what's the weather",
])
def test_automaton_rejects_everything_else(automaton, text):
    assert not automaton.matches(text)


def test_automaton_reads_a_grammar_file(tmp_path, automaton):
    import yaml

    path = tmp_path / "grammar.yaml"
    path.write_text(yaml.safe_dump(GRAMMAR))
    assert GrammarAutomaton.from_grammar(path).matches("switch the kitchen light off")


class _Tokenizer:
    """A toy tokenizer: id -> text, with 9 = end of text."""

    pieces = {0: " turn", 1: " the", 2: " lamp", 3: " on", 4: " off", 5: " la", 6: "mp", 7: ".", 8: " quiz"}

    def decode(self, ids):
        return "".join(self.pieces[i] for i in ids)


def test_processor_masks_tokens_outside_the_grammar(automaton):
    processor = GrammarLogitsProcessor(automaton, _Tokenizer(), eos_token_id=9, start_token_id=10)
    assert 8 not in processor.token_text  # the grammar never reads a "q" or a "z"
    scores = torch.zeros(3, 11)
    input_ids = torch.tensor([[10, 0, 1], [10, 0, 1], [10, 0, 2]])  # "turn the" / "turn the" / "turn lamp"
    masked = processor(input_ids, scores)
    allowed = [set(torch.nonzero(torch.isfinite(row)).flatten().tolist()) for row in masked]
    assert allowed[0] == allowed[1] == {2, 5, 7}  # " lamp", " la" (+ "mp") or a comma-like mark; no end yet
    assert allowed[2] == {3, 4, 7}
    done = processor(torch.tensor([[10, 0, 2, 3]]), torch.zeros(1, 11))
    assert set(torch.nonzero(torch.isfinite(done[0])).flatten().tolist()) == {7, 9}  # "." or end of text


def test_constrained_whisper_only_writes_grammar_sentences(tiny_whisper_dir, automaton):
    """A random Whisper can only say sentences of the grammar once constrained."""
    clips = [_sine(), _sine(0.7), np.random.default_rng(0).normal(0, 0.1, 24000).astype(np.float32)]
    free = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=40)
    assert not all(automaton.matches(t.text) for t in free.transcribe(clips))
    asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=40, grammar=GRAMMAR)
    out = asr.transcribe(clips, batch_size=3)
    assert all(automaton.matches(t.text) for t in out), [t.text for t in out]
    assert all(t.in_grammar is True and 0.0 < t.confidence <= 1.0 for t in out)
    beams = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=40, grammar=GRAMMAR,
                                       num_beams=3)
    assert all(automaton.matches(t.text) for t in beams.transcribe(clips, batch_size=3))


def test_rejection_compares_free_and_constrained_scores(tiny_whisper_dir, automaton):
    clips = [_sine(), _sine(0.7)]
    asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=40, grammar=GRAMMAR,
                                     grammar_rejection=float("inf"), num_beams=4)  # kept when the grammar goes
    kept = asr.transcribe(clips)
    assert all(t.in_grammar and automaton.matches(t.text) for t in kept)
    assert all(isinstance(t.grammar_margin, float) and np.isfinite(t.grammar_margin) for t in kept)
    asr.configure(grammar_rejection=-float("inf"))  # nothing is in grammar: the free transcripts come back
    rejected = asr.transcribe(clips)
    asr.set_grammar(None)
    assert [t.text for t in rejected] == [t.text for t in asr.transcribe(clips)]
    assert all(t.in_grammar is False for t in rejected)


def test_grammar_is_saved_with_the_stage_and_the_pipeline(tiny_whisper_dir, tiny_bert_dir, tmp_path, automaton):
    asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=40, grammar=GRAMMAR,
                                     grammar_rejection=0.5)
    pipe = SpeechIntentPipeline(asr, IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu"))
    pipe.save_pretrained(tmp_path / "pipe")
    loaded = SpeechIntentPipeline.from_pretrained(tmp_path / "pipe", device="cpu")
    assert loaded.asr.grammar_source == GRAMMAR and loaded.asr.grammar_rejection == 0.5
    loaded.asr.grammar_rejection = -float("inf")  # attribute assignment still sets the option
    assert loaded.asr.options.grammar_rejection == -float("inf")
    result = loaded([_sine()])[0]
    assert result.ok and result.in_grammar is False and result.intent is None and result.slots == {}
    assert result.slot_spans == [] and result.prediction.intent is None and result.text == result.prediction.text
    assert result.to_dict()["in_grammar"] is False and isinstance(result.to_dict()["grammar_margin"], float)
    import csv

    from speech_intent.batch.writer import ResultWriter

    writer = ResultWriter(str(tmp_path / "out.csv"))  # CSV keeps the column: rejected is not out of scope
    writer.write(result)
    writer.close()
    with open(tmp_path / "out.csv", encoding="utf-8", newline="") as handle:
        assert [row["in_grammar"] for row in csv.DictReader(handle)] == ["False"]


def _hidden(asr, clips):
    features = asr.processor.feature_extractor(clips, sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        return asr._encoder_hidden(features.input_features, full=True)


@pytest.mark.parametrize("prompt,beams", [(None, 3), ("Lamp, kitchen light.", 3), ("Lamp, kitchen light.", 1)])
def test_beam_search_picks_the_beams_of_transformers_generate(tiny_whisper_dir, prompt, beams):
    """Our beam search (prefix once per clip, cross-attention per clip, scores from the search)
    returns what ``generate`` + a teacher-forced pass return, free and constrained (one beam:
    what ``generate``'s greedy search returns)."""
    rng = np.random.default_rng(1)
    clips = [_sine(), _sine(0.7), rng.normal(0, 0.1, 24000).astype(np.float32), rng.normal(0, 0.2, 9000).astype(np.float32)]
    results = {}
    for grammar in (None, GRAMMAR):
        asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=30, grammar=grammar,
                                         num_beams=beams)
        hidden, mask = _hidden(asr, clips), torch.ones(len(clips), 3000, dtype=torch.long)
        processors = [asr._constraint] if grammar else []
        with torch.inference_mode():
            texts, logprobs = asr._generate_scored(hidden, mask, prompt, processors)
            ref_texts, ref_logprobs = asr._generate_with_transformers(hidden, mask, prompt, processors)
        assert texts == ref_texts
        np.testing.assert_allclose(logprobs, ref_logprobs, rtol=0, atol=1e-4)
        results[grammar is None] = texts
    assert results[True] != results[False]  # the grammar changed the beams: the comparison saw both


def test_beam_search_cache_gives_the_same_beams_as_transformers(tiny_whisper_dir, monkeypatch):
    """transformers' path (multilingual checkpoints, compiled models): the cache that projects
    cross-attention states once per clip and skips reordering them changes no output."""
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    import speech_intent.asr.whisper as whisper_module

    rng = np.random.default_rng(1)
    clips = [_sine(), _sine(0.7), rng.normal(0, 0.1, 24000).astype(np.float32), rng.normal(0, 0.2, 9000).astype(np.float32)]
    for grammar in (None, GRAMMAR):
        asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=30, grammar=grammar,
                                         num_beams=3)  # the control below reorders here
        hidden, mask = _hidden(asr, clips), torch.ones(len(clips), 3000, dtype=torch.long)
        processors = [asr._constraint] if grammar else []

        def run():
            with torch.inference_mode():
                return asr._generate_with_transformers(hidden, mask, None, processors)
        ours = run()
        with monkeypatch.context() as patch:
            patch.setattr(whisper_module, "beam_search_cache",
                          lambda *a: EncoderDecoderCache(DynamicCache(), DynamicCache()))
            reference = run()
        assert ours[0] == reference[0] and np.array_equal(ours[1], reference[1])
        with monkeypatch.context() as patch:  # the comparison can fail: beams are reordered in these runs
            patch.setattr(whisper_module, "beam_search_cache", lambda *a: _NoReorderCache(DynamicCache(), DynamicCache()))
            assert run()[0] != ours[0]


def _NoReorderCache(*caches):
    from transformers.cache_utils import EncoderDecoderCache

    class NoReorder(EncoderDecoderCache):
        def reorder_cache(self, beam_idx):
            pass

    return NoReorder(*caches)


def test_processor_keeps_only_the_last_steps_prefixes(automaton):
    """Its prefix cache must not grow with every clip decoded (a long-running service)."""
    processor = GrammarLogitsProcessor(automaton, _Tokenizer(), eos_token_id=9, start_token_id=10)
    for clip in range(20):
        for step in ([10], [10, 0], [10, 0, 1], [10, 0, 1, 2]):
            processor(torch.tensor([step, step[:1] + [0] * (len(step) - 1)]), torch.zeros(2, 11))
            assert len(processor._states) <= 3  # the empty prefix and this step's two rows
    masked = processor(torch.tensor([[10, 0, 1, 2]]), torch.zeros(1, 11))  # "turn the lamp"
    assert set(torch.nonzero(torch.isfinite(masked[0])).flatten().tolist()) == {3, 4, 7}  # " on", " off", "."


def test_grammar_is_saved_and_removed_symmetrically(tiny_whisper_dir, tmp_path):
    import yaml

    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(GRAMMAR))
    asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=8)
    asr.set_grammar(GrammarAutomaton.from_grammar(path))  # a compiled automaton keeps its source
    asr.save_pretrained(tmp_path / "stage")
    assert WhisperASR.from_pretrained(tmp_path / "stage", device="cpu").grammar_source == GRAMMAR
    assert not WhisperASR.from_pretrained(tmp_path / "stage", device="cpu", grammar=False).constrained
    asr.set_grammar(None)  # saved again over the same folder: the old grammar must not come back
    asr.save_pretrained(tmp_path / "stage")
    assert not (tmp_path / "stage" / "grammar.yaml").exists()
    assert not WhisperASR.from_pretrained(tmp_path / "stage", device="cpu").constrained


def test_cut_off_constrained_decoding_is_not_in_grammar(tiny_whisper_dir, automaton):
    """No sentence of GRAMMAR is one token long: with one new token nothing is complete."""
    asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=1, grammar=GRAMMAR)
    out = asr.transcribe([_sine(), _sine(0.7)])
    assert all(not automaton.matches(t.text) and t.in_grammar is False for t in out), [t.text for t in out]


def test_bad_grammars_are_data_format_errors_and_change_nothing(tiny_whisper_dir, tmp_path):
    from speech_intent.data import DataFormatError

    asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", grammar=GRAMMAR)
    bad = tmp_path / "bad.yaml"
    bad.write_text("context:\n  expressions: [unclosed\n")
    with pytest.raises(DataFormatError, match="bad.yaml"):
        asr.set_grammar(bad)
    with pytest.raises(DataFormatError, match="no expressions"):
        asr.set_grammar({"context": {"expressions": {}}})
    assert asr.constrained and asr.grammar_source == GRAMMAR and asr.num_beams == 4
