"""ASR options as dataclasses (one set of names, saved with a pipeline), the prompt per call."""
from __future__ import annotations

import json
import threading
import warnings

import numpy as np
import pytest

from speech_intent import SpeechIntentPipeline, Wav2Vec2ASR, WhisperASR
from speech_intent.asr import load_asr
from speech_intent.asr.base import BaseASR
from speech_intent.asr.options import FasterWhisperOptions, Wav2Vec2Options, WhisperOptions
from speech_intent.errors import ConfigError
from speech_intent.results import Transcript

from .conftest import _intent


# ------------------------------------------------------------------ the dataclasses
def test_same_names_on_every_whisper_backend_and_validation():
    shared = {"batch_size", "num_beams", "max_new_tokens", "prompt", "language", "task", "context_margin",
              "min_context", "encoder_budget"}
    assert set(FasterWhisperOptions.names()) == shared
    assert set(WhisperOptions.names()) == shared | {"compile", "grammar_rejection"}
    assert set(Wav2Vec2Options.names()) == {"batch_size", "lowercase"}
    for bad in ({"batch_size": 0}, {"num_beams": 0}, {"num_beams": 1.5}, {"task": "summarise"},
                {"context_margin": -1.0}, {"encoder_budget": 0}, {"prompt": 3}, {"grammar_rejection": float("nan")}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            WhisperOptions(**bad)
    assert WhisperOptions(num_beams=None, grammar_rejection=float("-inf"), encoder_budget=float("inf")).num_beams is None


def test_from_dict_round_trips_and_names_unknown_keys():
    options = WhisperOptions(num_beams=3, prompt="latte", context_margin=2.0, grammar_rejection=0.5)
    assert WhisperOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options
    assert FasterWhisperOptions.from_dict({"num_beams": 2, "task": "transcribe"}) == FasterWhisperOptions(num_beams=2)
    with pytest.raises(ConfigError, match="'beam_sise'.*'colour'"):
        FasterWhisperOptions.from_dict({"beam_sise": 2, "colour": "red"})
    with pytest.raises(ConfigError, match="'beam_size'"):  # only the current names
        FasterWhisperOptions.from_dict({"beam_size": 2})
    with pytest.raises(ConfigError, match="'num_beams'"):  # CTC decoding has no beams
        Wav2Vec2Options.from_dict({"num_beams": 2})


# ------------------------------------------------------------- options on a stage
def test_stage_options_configure_and_attribute_access(tiny_whisper_dir):
    asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=8, context_margin=1.0)
    assert isinstance(asr.options, WhisperOptions) and asr.options.max_new_tokens == 8
    assert asr.context_margin == 1.0 and asr.num_beams == 1  # num_beams: the beams in use
    asr.context_margin = 2  # an option name as an attribute sets the option
    asr.encoder_budget = float("inf")
    asr.grammar_rejection = 0.5
    assert (asr.options.context_margin, asr.options.encoder_budget, asr.options.grammar_rejection) == (
        2, float("inf"), 0.5)
    assert "context_margin" not in vars(asr)  # held by the options only
    assert asr.configure(num_beams=3, prompt="a latte") is asr and asr.num_beams == 3
    assert asr.prompt == "a latte"
    asr.num_beams = 2
    assert asr.options.num_beams == 2
    with pytest.raises(AttributeError, match="beam_size"):
        asr.beam_size
    before = asr.options
    with pytest.raises(ConfigError, match="batch_size"):
        asr.configure(batch_size=0)
    with pytest.raises(ConfigError, match="'beams'"):
        asr.configure(beams=2)
    with pytest.raises(ConfigError, match="num_beams"):
        asr.num_beams = 0
    assert asr.options is before  # a refused change leaves the options as they were
    with pytest.raises(ConfigError, match="unknown WhisperOptions option"):
        WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", beams=2)
    with pytest.raises(AttributeError):
        asr.no_such_option


def test_wav2vec2_has_no_prompt_or_beams(tiny_wav2vec2_dir, sine):
    asr = load_asr(tiny_wav2vec2_dir, device="cpu", options={"lowercase": False}, batch_size=2)
    assert asr.options == Wav2Vec2Options(batch_size=2, lowercase=False) and not asr.accepts_prompt
    with pytest.raises(ConfigError, match="takes no prompt"):
        asr.transcribe([sine], prompt="hello")
    with pytest.raises(AttributeError):
        asr.beam_size
    with pytest.raises(ConfigError, match="must be a Wav2Vec2Options"):
        asr.options = WhisperOptions()


def test_options_round_trip_through_a_saved_pipeline(tiny_whisper_dir, tiny_wav2vec2_dir, tiny_bert_dir, tmp_path):
    options = WhisperOptions(batch_size=3, num_beams=2, max_new_tokens=7, prompt="large latte", context_margin=1.5,
                             min_context=3.0, encoder_budget=float("inf"), grammar_rejection=0.25)
    asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", options=options)
    SpeechIntentPipeline(asr, _intent(tiny_bert_dir)).save_pretrained(tmp_path / "w")
    saved = json.loads((tmp_path / "w" / "pipeline.json").read_text())
    assert saved["asr"]["options"] == options.to_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # current names: nothing to warn about
        loaded = SpeechIntentPipeline.from_pretrained(tmp_path / "w", device="cpu")
    assert loaded.asr.options == options and loaded.asr.num_beams == 2
    ctc = Wav2Vec2ASR.from_pretrained(tiny_wav2vec2_dir, device="cpu", lowercase=False, batch_size=5)
    SpeechIntentPipeline(ctc, _intent(tiny_bert_dir)).save_pretrained(tmp_path / "c")
    assert SpeechIntentPipeline.from_pretrained(tmp_path / "c").asr.options == Wav2Vec2Options(5, lowercase=False)


def _rewrite_options(directory, options) -> None:
    config_file = directory / "pipeline.json"
    config = json.loads(config_file.read_text())
    config["asr"]["options"] = options
    config_file.write_text(json.dumps(config))


def test_pipeline_json_with_unknown_or_bad_options_is_a_config_error(tiny_whisper_dir, tiny_bert_dir, tmp_path):
    asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu")
    SpeechIntentPipeline(asr, _intent(tiny_bert_dir)).save_pretrained(tmp_path / "p")
    _rewrite_options(tmp_path / "p", {"num_beams": 2, "prompt": "a mocha", "max_new_tokens": 9})  # only some set
    loaded = SpeechIntentPipeline.from_pretrained(tmp_path / "p", device="cpu")
    assert loaded.asr.options == WhisperOptions(num_beams=2, prompt="a mocha", max_new_tokens=9)
    _rewrite_options(tmp_path / "p", {"num_beams": 1, "beam_sise": 2})
    with pytest.raises(ConfigError, match="pipeline.json.*'beam_sise'"):
        SpeechIntentPipeline.from_pretrained(tmp_path / "p", device="cpu")
    _rewrite_options(tmp_path / "p", {"num_beams": 0})
    with pytest.raises(ConfigError, match="num_beams must be an integer >= 1"):
        SpeechIntentPipeline.from_pretrained(tmp_path / "p", device="cpu")


# ------------------------------------------------------------------ prompt per call
class _SlowRecordingASR(BaseASR):
    """Holds each batch until ``parties`` calls are inside ``_transcribe_batch`` at once."""

    backend = "recording"
    options_class = FasterWhisperOptions
    accepts_prompt = True

    def __init__(self, parties: int, prompt=None) -> None:
        self.options = FasterWhisperOptions(prompt=prompt)
        self.barrier = threading.Barrier(parties, timeout=30)

    def _transcribe_batch(self, batch, prompt=None):
        self.barrier.wait()  # every call is in flight before any returns
        return [Transcript(text=str(prompt), confidence=1.0) for _ in batch]

    def save_pretrained(self, save_directory) -> None:  # pragma: no cover - not saved here
        raise NotImplementedError


def test_concurrent_calls_on_one_stage_each_get_their_own_prompt():
    asr = _SlowRecordingASR(parties=3, prompt="stage prompt")
    clips = [np.zeros(1600, dtype=np.float32)] * 4
    out = {}

    def call(name, **kwargs):
        out[name] = [t.text for t in asr.transcribe(clips, batch_size=4, **kwargs)]

    threads = [threading.Thread(target=call, args=("coffee",), kwargs={"prompt": "latte, mocha"}),
               threading.Thread(target=call, args=("lights",), kwargs={"prompt": "kitchen, bedroom"}),
               threading.Thread(target=call, args=("own",))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert out == {"coffee": ["latte, mocha"] * 4, "lights": ["kitchen, bedroom"] * 4, "own": ["stage prompt"] * 4}
    assert asr.options.prompt == "stage prompt"


def test_whisper_prompt_per_call_reaches_generate(tiny_whisper_dir, sine):
    asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=4, context_margin=None)
    generate, prompts = asr.model.generate, []

    def spy(*args, **kwargs):
        ids = kwargs.get("prompt_ids")
        text = None if ids is None else asr.processor.tokenizer.decode(ids)  # "<|startofprev|> large latte"
        prompts.append(text and text.replace("<|startofprev|>", "").strip())
        return generate(*args, **kwargs)

    asr.model.generate = spy
    asr.transcribe([sine], prompt="large latte")
    asr.transcribe([sine])
    asr.configure(prompt="small mocha")
    asr.transcribe([sine])
    asr.transcribe([sine], prompt="dark roast")  # a call's prompt wins over the stage's
    assert prompts == ["large latte", None, "small mocha", "dark roast"]
    assert asr.options.prompt == "small mocha"
