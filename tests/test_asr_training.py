"""Whisper fine-tuning (speech_intent.asr_training): manifests, evaluation data kept out, rehearsal samples,
training through the real Seq2SeqTrainer on a tiny random Whisper saved to disk, the saved WhisperASR and
its CTranslate2 copy loaded by both backends, LoRA merged, and the train-asr CLI."""
from __future__ import annotations

import json
import shutil
import sys
import zlib

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from speech_intent.asr import FasterWhisperASR, WhisperASR, convert_ctranslate2_whisper, load_asr
from speech_intent.asr_training import (
    CTRANSLATE2_DIR,
    TRAINING_FILE,
    ASRExample,
    ASRTrainingOptions,
    EvaluationData,
    LoraOptions,
    bundled_rehearsal_path,
    collect_examples,
    detokenize,
    fine_tune_asr,
    format_sentence,
    is_transcript_manifest,
    read_transcript_manifest,
    sample_rehearsal,
)
from speech_intent.cli import build_parser, main
from speech_intent.cli.train_asr import options_from_args
from speech_intent.data import Example
from speech_intent.errors import ConfigError, DataFormatError, DataNotFoundError, ManifestError

TOKEN_KEYS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not on PATH (apt-get install espeak-ng)")


class ToneSynthesizer:
    """A stand-in text-to-speech: one tone per word (pitch from the word, voice shifts it), 16 kHz."""

    sampling_rate = 16000
    num_voices = 3

    def __init__(self) -> None:
        self.calls = 0

    def synthesize(self, text: str, *, voice: int = 0) -> np.ndarray:
        self.calls += 1
        t = np.arange(int(0.15 * self.sampling_rate)) / self.sampling_rate
        words = [0.3 * np.sin(2 * np.pi * (200 + zlib.crc32(w.encode()) % 600 + 40 * (voice % 3)) * t)
                 for w in text.split()]
        return np.concatenate(words or [np.zeros(1600)]).astype(np.float32)


def _wav(path, seed: int, seconds: float = 1.0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * (250 + 50 * seed) * t) + 0.02 * rng.standard_normal(len(t))
                    ).astype(np.float32), 16000)
    return path


@pytest.fixture()
def corpus(tmp_path):
    """Training recordings (one a renamed copy of an evaluation recording, one the dev recording), an
    evaluation manifest, a dev manifest and an evaluation noise file."""
    (tmp_path / "eval").mkdir()
    _wav(tmp_path / "eval" / "e1.wav", 9)
    (tmp_path / "eval" / "eval.csv").write_text("audio,text,intent\ne1.wav,Turn the lights off please.,lights\n")
    _wav(tmp_path / "kitchen.wav", 11, 3.0)
    _wav(tmp_path / "dev.wav", 7)
    (tmp_path / "dev.csv").write_text("audio,text\ndev.wav,call my mom\n")
    for i in range(3):
        _wav(tmp_path / f"r{i}.wav", i)
    shutil.copy(tmp_path / "eval" / "e1.wav", tmp_path / "r_copy.wav")
    rows = ["audio,text", "r0.wav,play some jazz", "r1.wav,what time is it", "r2.wav,set a timer",
            "r_copy.wav,something else", "dev.wav,call my mom"]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


# ------------------------------------------------------------------ manifests and data
def test_transcript_manifests_in_every_format(tmp_path):
    _wav(tmp_path / "a.wav", 0)
    (tmp_path / "m.csv").write_text("file,text,intent\na.wav,Hello there.,greet\n")
    (tmp_path / "m.jsonl").write_text(json.dumps({"audio": "a.wav", "transcript": "hello  there"}) + "\n")
    (tmp_path / "labels.json").write_text(json.dumps({"a.wav": {"intent": "greet", "text": "hello"}}))
    (tmp_path / "array.json").write_text(json.dumps([{"path": str(tmp_path / "a.wav"), "text": "hi"}]))
    texts = {name: [ex.text for ex in read_transcript_manifest(tmp_path / name)]
             for name in ("m.csv", "m.jsonl", "labels.json", "array.json")}
    assert texts == {"m.csv": ["Hello there."], "m.jsonl": ["hello there"], "labels.json": ["hello"],
                     "array.json": ["hi"]}
    example = read_transcript_manifest(tmp_path / "m.csv")[0]
    assert example.audio == (tmp_path / "a.wav").resolve() and example.source == f"{tmp_path / 'm.csv'}:2"
    assert all(is_transcript_manifest(tmp_path / n) for n in texts)
    (tmp_path / "nlu.csv").write_text("text,intent\nhello,greet\n")
    assert not is_transcript_manifest(tmp_path / "nlu.csv")


def test_evaluation_and_training_read_a_manifest_alike(tmp_path):
    """One reader: the evaluation items and the training examples of a manifest are the same recordings,
    a JSON array in a .jsonl file included; a labels.json entry's error names its line."""
    from speech_intent.evaluate import is_audio_manifest, read_manifest

    for i in range(2):
        _wav(tmp_path / f"a{i}.wav", i)
    records = [{"audio": "a0.wav", "intent": "greet", "text": "hello there"},
               {"file": str(tmp_path / "a1.wav"), "intent": None, "text": "bye"}]
    (tmp_path / "m.jsonl").write_text(json.dumps(records, indent=1))
    items, examples = read_manifest(tmp_path / "m.jsonl"), read_transcript_manifest(tmp_path / "m.jsonl")
    assert [i.audio for i in items] == [e.audio for e in examples] == [(tmp_path / f"a{i}.wav").resolve()
                                                                        for i in range(2)]
    assert [i.text for i in items] == [e.text for e in examples] == ["hello there", "bye"]
    assert is_transcript_manifest is is_audio_manifest and is_audio_manifest(tmp_path / "m.jsonl")
    (tmp_path / "labels.json").write_text('{\n "a0.wav": {"intent": "greet", "text": "hi"},\n "a1.wav": {"intent": "x"}\n}')
    with pytest.raises(ManifestError, match=r"labels\.json: line 3: entry 'a1\.wav': no transcript"):
        read_transcript_manifest(tmp_path / "labels.json")
    assert [i.line for i in read_manifest(tmp_path / "labels.json")] == [2, 3]


@pytest.mark.parametrize("name, content, where", [
    ("no_text.csv", "audio,intent\na.wav,greet\n", "line 2"),
    ("missing.csv", "audio,text\na.wav,hi\nnope.wav,hello\n", "line 3"),
    ("empty_text.jsonl", '{"audio": "a.wav", "text": "hi"}\n{"audio": "a.wav", "text": " "}\n', "line 2"),
    ("bad.jsonl", '{"audio": "a.wav", "text": "hi"}\n{oops\n', "line 2"),
    ("labels.json", '{"a.wav": {"intent": "x"}}', "'a.wav'"),
    ("ragged.csv", "audio,text\na.wav,hi,extra\n", "line 2"),
])
def test_manifest_errors_name_the_file_and_row(tmp_path, name, content, where):
    _wav(tmp_path / "a.wav", 0)
    (tmp_path / name).write_text(content)
    with pytest.raises(DataFormatError) as info:
        read_transcript_manifest(tmp_path / name)
    assert isinstance(info.value, ManifestError) and name in str(info.value)
    assert where in str(info.value)
    with pytest.raises(DataNotFoundError):
        read_transcript_manifest(tmp_path / "absent.csv")


def test_collect_examples_from_data_files_sentences_and_manifests(tmp_path, corpus):
    grammar = tmp_path / "grammar.yaml"
    grammar.write_text("context:\n  expressions:\n    order:\n      - \"[get, make] me a $drink:drink\"\n"
                       "  slots:\n    drink: [latte, mocha, tea]\n")
    examples = collect_examples([grammar, "what's up", Example("play jazz", "music"), corpus / "train.csv",
                                 ASRExample("Kept.", audio=np.zeros(160, np.float32))], max_examples=4, seed=0)
    spoken = [ex for ex in examples if ex.synthesised]
    assert len(spoken) == 6 and len(examples) == 6 + 5 + 1
    assert all(ex.text == format_sentence(ex.speak) and ex.text.endswith(".") and ex.text[0].isupper()
               for ex in spoken)
    assert {ex.speak for ex in spoken[:4]} <= {f"{v} me a {d}" for v in ("get", "make") for d in ("latte", "mocha", "tea")}
    assert collect_examples(["hi"], text_format="verbatim")[0].text == "hi"
    assert format_sentence("  is it  raining? ") == "Is it raining?"
    with pytest.raises(DataNotFoundError):
        collect_examples([tmp_path / "nothing.yaml"])


@pytest.mark.parametrize("tokens, text", [
    ("what s the weather", "what's the weather"),
    ("i d like to book it ll be i m sure we re late", "I'd like to book it'll be I'm sure we're late"),
    ("they ve gone and i don t know why it isn t so you can t", "they've gone and I don't know why it isn't so you can't"),
    ("add it to lincoln s 80 s party", "add it to lincoln's 80s party"),
    ("do n't go , it 's late ( really ) !", "don't go, it's late (really)!"),
    ("so do i , right", "so do I, right"),
    ("I ’m here", "I’m here"),
    # not contractions: a single letter after another word, or spelled-out letters
    ("add d flame to james d conrey by tenacious d", "add d flame to james d conrey by tenacious d"),
    ("at t in the u s a at 7 a m", "at t in the u s a at 7 a m"),
    ("play s t r e e t d a d", "play s t r e e t d a d"),
    ("watch w i t c h", "watch w i t c h"),
    ("what's up, I'm fine.", "what's up, I'm fine."),
])
def test_detokenize_joins_split_contractions_and_keeps_letters(tokens, text):
    assert detokenize(tokens) == text
    assert detokenize(text) == text


def test_bio_folder_sentences_are_written_naturally(tmp_path):
    bio = tmp_path / "snips"
    bio.mkdir()
    (bio / "seq.in").write_text("what s the weather in d lo\ni d like to hear lincoln s song\n")
    (bio / "seq.out").write_text("O O O O O B-city I-city\nO O O O O O B-artist O\n")
    (bio / "label").write_text("GetWeather\nPlayMusic\n")
    examples = collect_examples([bio, "what s up"])
    assert [ex.speak for ex in examples] == ["what's the weather in d lo", "I'd like to hear lincoln's song",
                                             "what s up"]  # a plain sentence is not known to be tokenised
    assert [ex.text for ex in examples[:2]] == ["What's the weather in d lo.", "I'd like to hear lincoln's song."]
    verbatim = collect_examples([bio], text_format="verbatim")
    assert [ex.text for ex in verbatim] == ["what's the weather in d lo", "I'd like to hear lincoln's song"]


def test_evaluation_data_matches_paths_copies_and_transcripts(corpus):
    guard = EvaluationData.from_paths([corpus / "eval" / "eval.csv", corpus / "kitchen.wav"])
    assert guard.contains_file(corpus / "eval" / "e1.wav") and guard.contains_file(corpus / "r_copy.wav")
    assert guard.contains_file(corpus / "kitchen.wav") and not guard.contains_file(corpus / "r0.wav")
    assert guard.contains(ASRExample("turn the lights OFF, please", speak="x"))
    assert not guard.contains(ASRExample("turn the lights on", speak="x"))
    with pytest.raises(DataNotFoundError):
        EvaluationData.from_paths([corpus / "no-such-eval"])


def _bio(folder, rows):
    """A JointBERT folder of ``(tokenised text, intent)`` rows (every token tagged O)."""
    folder.mkdir()
    (folder / "seq.in").write_text("".join(f"{text}\n" for text, _ in rows))
    (folder / "seq.out").write_text("".join(" ".join("O" for _ in text.split()) + "\n" for text, _ in rows))
    (folder / "label").write_text("".join(f"{intent}\n" for _, intent in rows))
    return folder


def test_rehearsal_sample_is_sized_seeded_and_written_naturally(tmp_path):
    bio = _bio(tmp_path / "other", [(f"what s the weather in city {i}", "GetWeather") for i in range(20)]
               + [(f"i d like to hear song {i}", "PlayMusic") for i in range(20)])
    (tmp_path / "more.csv").write_text("text,intent\n" + "".join(f"set a timer for {i} minutes,timer\n"
                                                                 for i in range(10)))
    sources = [bio, tmp_path / "more.csv"]
    sample = sample_rehearsal(sources, 12, seed=3)
    assert len(sample.examples) == 12 and sample.requested == 12 and sample.available == 50 and sample.dropped == 0
    assert sum(sample.sources.values()) == sum(sample.intents.values()) == 12
    assert set(sample.sources) == {str(p) for p in sources} and set(sample.intents) <= {"GetWeather", "PlayMusic",
                                                                                          "timer"}
    assert all(ex.synthesised and ex.source in sample.sources for ex in sample.examples)
    spoken = [ex.speak for ex in sample.examples]
    assert len(set(spoken)) == 12 and not any(" s " in t or t.startswith("i d ") for t in spoken)
    assert all(ex.text == format_sentence(ex.speak) for ex in sample.examples)
    again = sample_rehearsal(sources, 12, seed=3)
    assert [(ex.speak, ex.voice) for ex in again.examples] == [(ex.speak, ex.voice) for ex in sample.examples]
    assert [ex.speak for ex in sample_rehearsal(sources, 12, seed=4).examples] != spoken
    everything = sample_rehearsal(bio, 100, seed=3, text_format="verbatim")  # fewer than asked: all of them
    assert len(everything.examples) == 40 and everything.examples[0].text == "what's the weather in city 0"
    with pytest.raises(ConfigError):
        sample_rehearsal(bio, 0)


def test_rehearsal_never_draws_or_reads_evaluation_data(corpus):
    guard = EvaluationData.from_paths([corpus / "eval"])  # a folder: its recordings and its manifest
    guard.add(corpus / "eval" / "eval.csv")
    guard.add_examples(read_transcript_manifest(corpus / "dev.csv"))
    rows = ["turn the lights OFF please", "Call my mom.", "play the news", "what s on"]
    other = _bio(corpus / "other", [(text, "x") for text in rows])
    sample = sample_rehearsal([other], 4, seed=0, evaluation=guard)
    assert [ex.speak for ex in sample.examples] == ["play the news", "what's on"]
    assert sample.dropped == 2 and sample.available == 4 and sample.to_dict()["dropped_as_evaluation"] == 2
    (corpus / "eval" / "more.csv").write_text("text,intent\nplay jazz,music\n")
    for inside in (corpus / "eval" / "more.csv", corpus):  # inside an excluded folder; holding one
        with pytest.raises(ConfigError, match="evaluation"):
            sample_rehearsal([other, inside], 2, evaluation=guard)
    with pytest.raises(ConfigError, match="audio manifest"):
        sample_rehearsal([corpus / "train.csv"], 2, evaluation=guard)
    with pytest.raises(ConfigError, match="no rehearsal sentences"):
        sample_rehearsal([_bio(corpus / "evalonly", [("call my mom", "x")])], 2, evaluation=guard)
    with pytest.raises(DataNotFoundError):
        sample_rehearsal([corpus / "absent"], 2)


def test_train_asr_cli_rehearsal_flags(corpus, tiny_whisper_dir, capsys):
    parser = build_parser()
    base = ["train-asr", "--data", "grammar.yaml", "--output", "out"]
    assert options_from_args(parser.parse_args(base)).rehearsal_examples == ASRTrainingOptions().rehearsal_examples
    args = parser.parse_args(base + ["--rehearsal", "snips/train", "other.yaml", "--rehearsal-examples", "50",
                                     "--seed", "3"])
    assert args.rehearsal == ["snips/train", "other.yaml"] and parser.parse_args(base).rehearsal is None
    options = options_from_args(args)
    assert options.rehearsal_examples == 50 and options.seed == 3
    assert options_from_args(parser.parse_args(base + ["--rehearsal-examples", "0"])).rehearsal_examples == 0
    with pytest.raises(ConfigError):
        options_from_args(parser.parse_args(base + ["--rehearsal-examples", "-1"]))
    # the flags reach fine_tune_asr: a rehearsal source inside --exclude is refused before any training
    (corpus / "eval" / "more.csv").write_text("text,intent\nplay jazz,music\n")
    rc = main(["train-asr", "--data", "play some jazz", "--output", str(corpus / "out"), "--base",
               str(tiny_whisper_dir), "--exclude", str(corpus / "eval"), "--rehearsal", str(corpus / "eval" / "more.csv"),
               "--device", "cpu", "-q"])
    assert rc == 1 and "overlaps the excluded evaluation data" in capsys.readouterr().err
    assert not (corpus / "out").exists()


def test_options_are_checked():
    with pytest.raises(ConfigError):
        ASRTrainingOptions(snr_range=(20, 5))
    with pytest.raises(ConfigError):
        ASRTrainingOptions(speed_range=(0.9,))
    with pytest.raises(ConfigError):
        ASRTrainingOptions(batch_size=0)
    with pytest.raises(ConfigError):
        LoraOptions(rank=0)
    options = ASRTrainingOptions(lora={"rank": 4}, snr_range=[0, 10])
    assert options.lora == LoraOptions(rank=4) and options.snr_range == (0.0, 10.0)
    assert ASRTrainingOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options
    with pytest.raises(ConfigError):
        ASRTrainingOptions.from_dict({"epoch": 1})


# ------------------------------------------------------------------ training
def test_evaluation_noise_is_refused(corpus, tiny_whisper_dir):
    with pytest.raises(ConfigError, match="evaluation"):
        fine_tune_asr(["play some jazz"], corpus / "out", base=tiny_whisper_dir, noise=corpus / "kitchen.wav",
                      exclude=[corpus / "kitchen.wav"], synthesizer=ToneSynthesizer(), device="cpu", progress=False)
    assert not (corpus / "out").exists()


def test_fine_tune_lowers_the_loss_and_saves_both_backends(corpus, tiny_whisper_dir):
    synth = ToneSynthesizer()
    options = ASRTrainingOptions(epochs=3, learning_rate=1e-3, warmup_ratio=0.0, batch_size=2, logging_steps=1,
                                 noise_probability=0.0, speed_range=(1.0, 1.0), specaugment=False,
                                 ctranslate2_quantization="float32")
    out = corpus / "asr"
    other = _bio(corpus / "other", [("call my mom", "call"), ("what s the weather", "weather")])
    result = fine_tune_asr([corpus / "train.csv", "the lights off please", "turn the lights off please"], out,
                           base=tiny_whisper_dir, options=options.replace(rehearsal_examples=1),
                           dev=[corpus / "dev.csv"], exclude=[corpus / "eval" / "eval.csv"], rehearsal=other,
                           synthesizer=synth, device="cpu", progress=False, prompt="jazz, timer.")
    # the renamed copy of the evaluation recording, the dev recording and the evaluation sentence are left out;
    # one rehearsal sentence is added (the other is the dev transcript)
    assert result.excluded_examples == 3 and result.train_examples == 5 and result.synthesised_examples == 2
    assert result.rehearsal == {"sentences": 1, "requested": 1, "sources": {str(other): 1}, "available": 2,
                                "dropped_as_evaluation": 1, "intents": {"weather": 1}}
    losses = [loss for _, loss in result.train_loss]
    assert len(losses) == result.steps == 9 and losses[-1] < losses[0]
    assert [step for step, _ in result.dev_wer] == [3, 6, 9] and result.best_step in (3, 6, 9)
    assert result.dev_wer_before is not None and result.best_dev_wer == min(w for _, w in result.dev_wer)
    saved = json.loads((out / TRAINING_FILE).read_text())
    assert saved["train_examples"] == 5 and saved["options"]["learning_rate"] == 1e-3
    assert saved["rehearsal"] == result.rehearsal and saved["options"]["rehearsal_examples"] == 1
    for name in ("config.json", "generation_config.json"):  # the base's special tokens, untouched by training
        got, want = (json.loads((d / name).read_text()) for d in (out, tiny_whisper_dir))
        assert [got.get(k) for k in TOKEN_KEYS] == [want.get(k) for k in TOKEN_KEYS]

    asr = load_asr(out, device="cpu", max_new_tokens=8)
    assert isinstance(asr, WhisperASR) and not asr.model.config.apply_spec_augment and asr.model.config.use_cache
    clip = synth.synthesize("play some jazz")
    assert isinstance(asr.transcribe([clip])[0].text, str)
    fast = load_asr(out / CTRANSLATE2_DIR, device="cpu", max_new_tokens=8)
    assert isinstance(fast, FasterWhisperASR) and isinstance(fast.transcribe([clip])[0].text, str)

    # the CTranslate2 copy holds the fine-tuned weights (read back by the library's own converter)
    trained, base = load_file(out / "model.safetensors"), load_file(tiny_whisper_dir / "model.safetensors")
    back = load_file(convert_ctranslate2_whisper(out / CTRANSLATE2_DIR, corpus / "back") / "model.safetensors")
    key = "model.decoder.layers.0.self_attn.q_proj.weight"
    assert torch.allclose(back[key], trained[key], atol=1e-6) and not torch.allclose(trained[key], base[key])


def test_lora_without_peft_is_a_config_error(monkeypatch, corpus, tiny_whisper_dir):
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(ConfigError, match="peft"):
        fine_tune_asr(["play some jazz"], corpus / "out", base=tiny_whisper_dir,
                      options=ASRTrainingOptions(lora=LoraOptions(rank=2), ctranslate2=False, noise_probability=0),
                      synthesizer=ToneSynthesizer(), device="cpu", progress=False)


@needs_espeak
def test_train_asr_cli_lora_merges_into_the_decoder(corpus, tiny_whisper_dir, capsys):
    pytest.importorskip("peft", reason="peft (the train extra) is not installed")
    out = corpus / "lora"
    rc = main(["train-asr", "--data", str(corpus / "train.csv"), "play some jazz", "--base", str(tiny_whisper_dir),
               "--output", str(out), "--exclude", str(corpus / "eval"), "--lora", "4", "--freeze-encoder",
               "--epochs", "1", "--batch-size", "2", "--lr", "1e-2", "--no-ctranslate2", "--device", "cpu", "-q",
               "--rehearsal-examples", "2"])
    err = capsys.readouterr().err
    assert rc == 0, err
    # no --rehearsal: two of the library's general-English sentences are trained on too
    assert "1 evaluation examples left out, 2 rehearsal sentences of " in err and "saved:" in err
    record = json.loads((out / TRAINING_FILE).read_text())["rehearsal"]
    assert record["sources"] == {str(bundled_rehearsal_path()): 2} and record["available"] >= 400
    trained, base = load_file(out / "model.safetensors"), load_file(tiny_whisper_dir / "model.safetensors")
    assert not any("lora" in k for k in trained) and set(trained) == set(base)
    changed = {k for k in base if not torch.equal(trained[k], base[k])}
    assert changed and all(".decoder." in k and k.endswith(".weight") for k in changed)
    assert isinstance(load_asr(out, device="cpu", max_new_tokens=8), WhisperASR)
    assert json.loads((out / TRAINING_FILE).read_text())["options"]["lora"]["rank"] == 4


def test_a_half_precision_checkpoint_is_trained_from_float32_weights(tmp_path, tiny_whisper_dir):
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from speech_intent.asr_training.base_model import load_base

    half = tmp_path / "half"
    WhisperForConditionalGeneration.from_pretrained(tiny_whisper_dir).to(torch.float16).save_pretrained(half)
    WhisperProcessor.from_pretrained(tiny_whisper_dir).save_pretrained(half)
    model, _, _ = load_base(str(half), tmp_path / "scratch")
    assert {p.dtype for p in model.parameters()} == {torch.float32}
